"""kseq2seq: recurrent sequence-to-sequence models for Keras 3 on PyTorch."""

from kseq2seq._backend import select_torch_backend

select_torch_backend()

from kseq2seq import callbacks  # noqa: E402, F401
from kseq2seq.layers import BahdanauAttention  # noqa: E402
from kseq2seq.layers import LuongAttention  # noqa: E402
from kseq2seq.layers import RecurrentDecoder  # noqa: E402
from kseq2seq.layers import RecurrentEncoder  # noqa: E402
from kseq2seq.layers import StateBridge  # noqa: E402
from kseq2seq.models import AttentionSeq2Seq  # noqa: E402
from kseq2seq.models import Seq2Seq  # noqa: E402
from kseq2seq.models import Seq2SeqModel  # noqa: E402
from kseq2seq.models import SimpleSeq2Seq  # noqa: E402
from kseq2seq.version import __version__  # noqa: E402
from kseq2seq.vocabulary import Vocabulary  # noqa: E402

__all__ = [
    "AttentionSeq2Seq",
    "BahdanauAttention",
    "LuongAttention",
    "RecurrentDecoder",
    "RecurrentEncoder",
    "Seq2Seq",
    "Seq2SeqModel",
    "SimpleSeq2Seq",
    "StateBridge",
    "Vocabulary",
    "__version__",
]
