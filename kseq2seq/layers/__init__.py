"""Serializable Keras layers that the kseq2seq models are made of."""

from kseq2seq.layers.attention import BahdanauAttention
from kseq2seq.layers.attention import LuongAttention
from kseq2seq.layers.bridge import StateBridge
from kseq2seq.layers.decoder import RecurrentDecoder
from kseq2seq.layers.encoder import RecurrentEncoder

__all__ = [
    "BahdanauAttention",
    "LuongAttention",
    "RecurrentDecoder",
    "RecurrentEncoder",
    "StateBridge",
]
