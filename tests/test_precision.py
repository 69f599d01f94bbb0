"""Mixed precision and devices.

Under `mixed_bfloat16` or `mixed_float16` (the global policy, or `dtype=` per
model) every builder computes in 16 bits with float32 variables, returns
float32 outputs (as Keras advises for a model's last layer), trains, decodes,
and saves and reloads as it is. Both policies run on this CPU (PyTorch 2.13);
CUDA is exercised only where a GPU is present.
"""

import ast
import pathlib

import cases
import keras
import numpy as np
import pytest
import torch

import kseq2seq
from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import ops as kernels
from kseq2seq.ops import generic
from kseq2seq.ops import torch_kernels

# Wider than the catalog's default shapes.
VECTOR = dict(cases.VECTOR, hidden_dim=6, output_dim=3)
TOKENS = dict(cases.TOKENS, hidden_dim=6)

CASES = {
    "simple_bidirectional": cases.vector("simple_deep_bidirectional", VECTOR),
    "seq2seq_teacher_forced": cases.vector("seq2seq_deep_teacher_forced", VECTOR),
    "seq2seq_peek_dense_gru": cases.vector("seq2seq_peek_bidirectional_gru", VECTOR),
    "attention_softmax": cases.vector("attention_softmax", VECTOR),
    "tokens_simple_rnn_reversed": cases.tokens("simple_rnn_reversed", TOKENS),
    "tokens_seq2seq_dropout": cases.tokens(
        "seq2seq_deep_teacher_forced_dropout", TOKENS
    ),
    "tokens_attention_sampling": cases.tokens("attention_sampling_dense", TOKENS),
}

# Largest difference from the float32 model with the same weights: bfloat16
# keeps 8 significant bits, float16 11.
TOLERANCE = {"mixed_bfloat16": 0.06, "mixed_float16": 0.01}


@pytest.fixture(autouse=True)
def _float32_afterwards():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def _data(options, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    if "input_vocab_size" in options:
        x = rng.integers(1, 9, size=(batch, 6)).astype("int32")
        for row in range(1, batch):  # right padding (masked) of every length
            x[row, 6 - row % 6 :] = 0
        y = rng.integers(3, 9, size=(batch, 4)).astype("int32")
        y[:, 3] = 0  # padded targets count in neither loss nor metrics
        return x, y
    x = rng.normal(size=(batch, 6, 3)).astype("float32")
    y = rng.uniform(size=(batch, 4, 3)).astype("float32")
    if "softmax" in str(options.get("output_activation")):
        y = y / y.sum(-1, keepdims=True)
    return x, y


def _mixed_copy(builder, options, policy, how):
    """A float32 model and a mixed precision one with the same weights."""
    reference = builder(**options)
    if how == "global":
        keras.mixed_precision.set_dtype_policy(policy)
        mixed = builder(**options)
    else:
        mixed = builder(**options, dtype=policy)
    mixed.set_weights(reference.get_weights())
    return reference, mixed


@pytest.mark.parametrize(
    "policy, how",
    [
        ("mixed_bfloat16", "global"),
        ("mixed_bfloat16", "per_model"),
        ("mixed_float16", "per_model"),
    ],
)
@pytest.mark.parametrize("case", sorted(CASES))
def test_mixed_precision_outputs_are_float32_and_close(case, policy, how):
    builder, options = CASES[case]
    reference, mixed = _mixed_copy(builder, options, policy, how)
    compute = keras.mixed_precision.Policy(policy).compute_dtype
    assert mixed.dtype_policy.name == policy
    assert mixed.encoder.compute_dtype == mixed.decoder.compute_dtype == compute
    assert all(v.dtype == "float32" for v in mixed.weights)

    x, _ = _data(options)
    sequence, context, _ = mixed.encoder(
        mixed.input_embedding(x) if mixed.token_inputs else x
    )
    assert keras.backend.standardize_dtype(sequence.dtype) == compute
    outputs = mixed(x)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    predicted = mixed.predict(x, verbose=0)
    assert predicted.dtype == np.float32
    expected = reference.predict(x, verbose=0)
    np.testing.assert_allclose(predicted, expected, atol=TOLERANCE[policy])
    if mixed.token_outputs or "softmax" in str(options.get("output_activation")):
        np.testing.assert_allclose(predicted.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "case, policy",
    [(case, "mixed_bfloat16") for case in sorted(CASES)]
    + [
        ("seq2seq_teacher_forced", "mixed_float16"),
        ("tokens_attention_sampling", "mixed_float16"),
    ],
)
def test_mixed_precision_trains(case, policy):
    builder, options = CASES[case]
    model = builder(**options, dtype=policy)
    loss = "sparse_categorical_crossentropy" if model.token_outputs else "mse"
    model.compile(loss=loss, optimizer=keras.optimizers.Adam(0.02))
    if policy == "mixed_float16":
        # Keras scales float16 losses so that small gradients do not vanish.
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    x, y = _data(options, batch=16)
    history = model.fit(x, y, epochs=6, batch_size=8, verbose=0).history["loss"]
    assert np.all(np.isfinite(history))
    assert history[-1] < history[0]
    assert all(v.dtype == "float32" for v in model.weights)


@pytest.mark.parametrize("builder", [Seq2Seq, AttentionSeq2Seq])
def test_mixed_precision_generation(builder):
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    model = builder(**TOKENS, embedding_dim=4)
    x, _ = _data(TOKENS, batch=3)
    ids, scores = model.generate(x)
    predicted = model.predict(x, verbose=0)
    assert ids.dtype == np.int32 and scores.dtype == np.float32
    # Greedy decoding (the decoding steps, outside `call`) follows the
    # free-running prediction, in the same precision.
    emittable = np.ones(predicted.shape[-1], bool)
    emittable[model.decoder.never_emitted_ids] = False
    for row in range(3):
        # Running free, the model feeds back its most probable emittable id.
        expected = np.where(emittable, predicted[row], -1).argmax(-1)
        ended = np.flatnonzero(expected == model.end_id)
        stop = ended[0] + 1 if len(ended) else len(expected)
        np.testing.assert_array_equal(ids[row, :stop], expected[:stop])
        log_probability = np.log(predicted[row, np.arange(stop), expected[:stop]])
        np.testing.assert_allclose(scores[row], log_probability.sum(), rtol=1e-3)
    beams, beam_scores = model.generate(x, method="beam", beam_width=3)
    assert beams.shape == ids.shape and np.isfinite(beam_scores).all()
    assert (beam_scores >= scores - 1e-3).all()  # beam search finds no worse

    vectors = builder(**VECTOR)
    x, _ = _data(VECTOR, batch=3)
    generated = vectors.generate(x)
    assert generated.dtype == np.float32
    np.testing.assert_allclose(generated, vectors.predict(x, verbose=0), atol=1e-6)


def test_mixed_precision_attention_weights_are_float32():
    model = AttentionSeq2Seq(**TOKENS, dtype="mixed_bfloat16")
    x, _ = _data(TOKENS, batch=4)
    weights = model.attention_weights(x)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-2)
    assert (weights[x[:, None, :].repeat(4, 1) == 0] == 0).all()


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_fused_kernels_run_in_the_compute_dtype(cell, policy):
    """The fused `torch._VF` calls (packed for masks) take 16-bit weights and
    inputs, and agree with the `keras.ops` step loop in that precision."""
    compute = keras.mixed_precision.Policy(policy).compute_dtype
    layer = kseq2seq.layers.RecurrentEncoder(4, cell=cell, dtype=policy)
    layer.build((2, 5, 3))
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(2, 5, 3)), dtype=getattr(torch, compute))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with keras.src.backend.AutocastScope(compute):
        fast = kernels.kernel_for(layer.cells[0])
        states = [[torch.zeros(2, 4, dtype=x.dtype)] * len(fast.state_size)]
        assert isinstance(fast, torch_kernels.FUSABLE)
        fused = torch_kernels.run_layer([fast], x, states, mask)
        assert fused is not None  # not a fallback
        loop = generic.run_layer([generic.kernel_for(layer.cells[0])], x, states, mask)
    assert fused[0].dtype == x.dtype and loop[0].dtype == x.dtype
    np.testing.assert_allclose(
        fused[0].float().detach().numpy(), loop[0].float().detach().numpy(), atol=0.03
    )

    model = Seq2Seq(**dict(TOKENS, cell=cell), dtype=policy)
    x, _ = _data(TOKENS)
    with kernels.fast_kernels(False):
        slow = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), slow, atol=0.03)


@pytest.mark.parametrize("how", ["global", "per_model"])
def test_a_mixed_precision_model_saves_and_reloads(tmp_path, how):
    options = dict(TOKENS, teacher_force=True, bridge="dense")
    if how == "global":
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
        model = AttentionSeq2Seq(**options)
    else:
        model = AttentionSeq2Seq(**options, dtype="mixed_bfloat16")
    x, y = _data(options)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "mixed.keras"
    model.save(path)
    keras.mixed_precision.set_dtype_policy("float32")

    restored = keras.models.load_model(path)
    assert restored.dtype_policy.name == "mixed_bfloat16"
    assert restored.decoder.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in restored.weights)
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    # A float32 copy of the same weights: the way to serve on float32-only
    # runtimes (see docs/serving.md).
    config = dict(model.get_config(), dtype="float32")
    full = AttentionSeq2Seq.from_config(config)
    full.set_weights(model.get_weights())
    np.testing.assert_allclose(
        full.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.02
    )


# Devices. Keras on PyTorch creates variables and `keras.ops` tensors on its
# current device (a GPU when there is one, or as `keras.device(...)` says);
# the PyTorch kernels create theirs next to their inputs.

_FACTORIES = {"zeros", "ones", "empty", "full", "arange", "tensor", "eye"}
_FACTORIES |= {"rand", "randn", "randint", "linspace"}


def test_the_pytorch_code_creates_no_tensor_without_a_device():
    package = pathlib.Path(kseq2seq.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
                and node.func.attr in _FACTORIES
                and "device" not in {k.arg for k in node.keywords}
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"torch tensors created without device=: {offenders}"


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_models_follow_the_keras_device_scope(tmp_path):
    with keras.device("cpu"):
        model = AttentionSeq2Seq(**TOKENS, dtype="mixed_bfloat16")
        x, _ = _data(TOKENS)
        outputs = model(x)
        model.save(tmp_path / "model.keras")
    assert outputs.device.type == "cpu"
    assert {v.value.device.type for v in model.weights} == {"cpu"}
    with keras.device("cpu"):
        restored = keras.models.load_model(tmp_path / "model.keras")
    assert {v.value.device.type for v in restored.weights} == {"cpu"}
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.cuda
@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_models_move_between_cpu_and_cuda(tmp_path, policy):
    x, y = _data(TOKENS)
    with keras.device("cuda"):
        model = AttentionSeq2Seq(**TOKENS, teacher_force=True, dtype=policy)
        model.fit(x, y, epochs=1, verbose=0)
        assert {v.value.device.type for v in model.weights} == {"cuda"}
        on_gpu = model.predict(x, verbose=0)
        ids, _ = model.generate(x, method="beam", beam_width=2)
        model.save(tmp_path / "gpu.keras")
    with keras.device("cpu"):
        restored = keras.models.load_model(tmp_path / "gpu.keras")
        assert {v.value.device.type for v in restored.weights} == {"cpu"}
        np.testing.assert_allclose(
            restored.predict(x, verbose=0), on_gpu, atol=TOLERANCE["mixed_bfloat16"]
        )
        restored.save(tmp_path / "cpu.keras")
    with keras.device("cuda"):
        back = keras.models.load_model(tmp_path / "cpu.keras")
        np.testing.assert_allclose(back.predict(x, verbose=0), on_gpu, atol=1e-6)
        assert back.generate(x, method="beam", beam_width=2)[0].shape == ids.shape
