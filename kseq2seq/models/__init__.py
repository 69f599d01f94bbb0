"""The kseq2seq models: the base model and the three builders."""

from kseq2seq.models.base import Seq2SeqModel
from kseq2seq.models.builders import AttentionSeq2Seq
from kseq2seq.models.builders import Seq2Seq
from kseq2seq.models.builders import SimpleSeq2Seq

__all__ = ["AttentionSeq2Seq", "Seq2Seq", "Seq2SeqModel", "SimpleSeq2Seq"]
