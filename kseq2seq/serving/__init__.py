"""Serving `generate`: a token model's decoding as ONNX graphs.

`export_decoding` writes a token model's encoder and one decoder step as
ONNX graphs; `Decoder` runs greedy and beam search over them with ONNX
Runtime and NumPy, without Keras or PyTorch (its module,
`kseq2seq.serving.runtime`, imports neither, and is copied next to the
graphs).
"""

from kseq2seq.serving.export import export_decoding
from kseq2seq.serving.runtime import Decoder

__all__ = ["Decoder", "export_decoding"]
