"""The free-running inference model of every builder exports for serving.

ONNX through Keras' own `model.export(path, format="onnx")` (on the torch
backend: PyTorch's TorchScript-based ONNX exporter), run with onnxruntime and
compared with `predict`; and `torch.export`. The largest difference seen is
recorded as the test property `max_abs_error` (`pytest --junitxml` keeps it)
and printed (`pytest -s`).
"""

import cases
import keras
import numpy as np
import pytest
import torch

from kseq2seq import AttentionSeq2Seq
from kseq2seq.ops import torch_kernels

ort = pytest.importorskip("onnxruntime")

# Tracing warns about every Python value it reads from a tensor (shape checks,
# the id range check); the parity checks below are what tells whether the
# graph generalises to other inputs.
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")

LENGTH = 6

CASES = {
    "simple": cases.vector("simple_deep"),
    "seq2seq": cases.vector("seq2seq_deep"),
    "seq2seq_peek_bidirectional_gru": cases.vector("seq2seq_peek_bidirectional_gru"),
    "attention": cases.vector("attention_teacher_forced"),
    "tokens_simple": cases.tokens("simple_deep"),
    "tokens_seq2seq": cases.tokens("seq2seq_deep_per_layer_teacher_forced"),
    "tokens_attention": cases.tokens("attention_concat"),
}

# The exported graphs compute what `predict` computes, with the same
# operations up to ONNX Runtime's own kernels: float32 rounding only.
TOLERANCE = 1e-5


def _inputs(options, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    if "input_vocab_size" in options:
        x = rng.integers(1, 9, size=(batch, LENGTH)).astype("int32")
        # Right padding of every length, and one full sequence.
        for row in range(1, batch):
            x[row, LENGTH - row :] = 0
        return x
    return rng.normal(size=(batch, LENGTH, 3)).astype("float32")


def _signature(options):
    if "input_vocab_size" in options:
        return [keras.InputSpec(shape=(None, LENGTH), dtype="int32")]
    return [keras.InputSpec(shape=(None, LENGTH, 3), dtype="float32")]


def _record(record_property, name, error):
    record_property("max_abs_error", float(error))
    print(f"\n{name}: max abs error {error:.3g}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_export_matches_predict(case, tmp_path, record_property):
    builder, options = CASES[case]
    model = builder(**options)
    path = str(tmp_path / f"{case}.onnx")
    model.export(
        path, format="onnx", verbose=False, input_signature=_signature(options)
    )

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (input_spec,) = session.get_inputs()
    assert input_spec.shape[0] == "batch"  # any batch size
    errors = []
    for batch in (1, 4):
        x = _inputs(options, batch, seed=batch)
        (served,) = session.run(None, {input_spec.name: x})
        expected = model.predict(x, verbose=0)
        assert served.shape == expected.shape
        assert served.dtype == np.float32
        errors.append(np.abs(served - expected).max())
    _record(record_property, f"ONNX {case}", max(errors))
    assert max(errors) < TOLERANCE


@pytest.mark.parametrize("case", ["simple", "seq2seq", "attention"])
def test_torch_export_matches_predict(case, record_property):
    builder, options = CASES[case]
    model = builder(**options)
    x = torch.as_tensor(_inputs(options))
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (x,), dynamic_shapes=(({0: batch},),))
    error = 0.0
    for size in (1, 4):
        x = _inputs(options, size, seed=size)
        served = program.module()(torch.as_tensor(x)).detach().numpy()
        error = max(error, np.abs(served - model.predict(x, verbose=0)).max())
    _record(record_property, f"torch.export {case}", error)
    assert error < TOLERANCE


def test_masked_layers_are_not_packed_while_traced():
    """Packing needs the lengths of the example input as Python values: a
    traced graph would keep them, so a traced masked layer runs the step loop,
    which serves any padding."""
    cell = keras.layers.LSTMCell(4)
    cell.build((None, 3))
    kernel = torch_kernels.kernel_for(cell)
    x = torch.rand(2, 5, 3)
    states = [[torch.zeros(2, 4), torch.zeros(2, 4)]]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch_kernels.run_layer([kernel], x, states, mask) is not None

    def traced(x, mask):
        result = torch_kernels.run_layer([kernel], x, states, mask)
        return torch.tensor(result is None)

    assert bool(torch.jit.trace(traced, (x, mask), check_trace=False)(x, mask))


def test_mixed_precision_models_export_through_a_float32_copy(tmp_path):
    """ONNX Runtime's recurrent kernels are float32: a mixed precision
    model, whose variables are float32, is served from a float32 copy."""
    options = dict(cases.VECTOR, depth=2)
    mixed = AttentionSeq2Seq(**options, dtype="mixed_bfloat16")
    config = dict(mixed.get_config(), dtype="float32")
    served = AttentionSeq2Seq.from_config(config)
    served.set_weights(mixed.get_weights())
    path = str(tmp_path / "attention.onnx")
    served.export(path, format="onnx", verbose=False, input_signature=_signature({}))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = _inputs(options)
    (outputs,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(outputs, served.predict(x, verbose=0), atol=TOLERANCE)
    # bfloat16 keeps about three significant digits.
    np.testing.assert_allclose(outputs, mixed.predict(x, verbose=0), atol=0.05)
