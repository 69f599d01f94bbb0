"""Serving `generate`: the exported decoding graphs and the Keras-free runtime.

Each builder with token outputs is exported once (the dynamo exporter where
`onnxscript` is installed, the TorchScript one otherwise) and decoded by
`kseq2seq.serving.Decoder`; the ids must be those of `model.generate`, and the
scores within float32 rounding. The NumPy searches are checked on their own
against `kseq2seq.decoding` over a toy step function.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import cases
import keras
import numpy as np
import pytest
import torch

from kseq2seq import AttentionSeq2Seq
from kseq2seq import SimpleSeq2Seq
from kseq2seq import decoding
from kseq2seq.layers.decoder_step import NEVER_LOG_PROB
from kseq2seq.serving import Decoder
from kseq2seq.serving import export
from kseq2seq.serving import export_decoding
from kseq2seq.serving import runtime

pytest.importorskip("onnxruntime")

# The exported input length; the tests also serve shorter inputs.
LENGTH = 6

MODELS = {
    "simple": cases.tokens("simple_deep"),
    "seq2seq": cases.tokens("seq2seq"),
    "seq2seq_bidirectional_dense_gru": cases.tokens("seq2seq_bidirectional_dense_gru"),
    # Starts from zeros: the state holds one zero tensor three times.
    "attention": cases.tokens("attention"),
}

EXPORTER = "dynamo" if importlib.util.find_spec("onnxscript") else "torchscript"

# Scores add float32 log-probabilities that PyTorch and ONNX Runtime round
# differently in the last bits.
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`exported(name) -> (model, directory, manifest)`, each model once."""
    made = {}

    def get(name):
        if name not in made:
            keras.utils.set_random_seed(0)
            builder, options = MODELS[name]
            model = builder(**options)
            # Larger weights make clear-cut choices, as a trained model's:
            # rounding differences cannot swap two near-equal candidates.
            model.set_weights([3 * w for w in model.get_weights()])
            directory = str(tmp_path_factory.mktemp(name))
            manifest = export_decoding(model, directory, input_length=LENGTH)
            made[name] = model, directory, manifest
        return made[name]

    return get


def _padded_ids(batch=6, length=LENGTH, seed=0):
    """Ids right-padded with 0 to every length, one full row."""
    ids = np.random.default_rng(seed).integers(1, 9, size=(batch, length))
    for row in range(1, batch):
        ids[row, max(length - row, 1) :] = 0
    return ids.astype("int32")


INPUTS = {"padded": _padded_ids(), "shorter": _padded_ids(5, length=4, seed=1)}


@pytest.mark.parametrize("inputs", sorted(INPUTS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_greedy_ids_are_generates(exported, name, inputs):
    model, directory, manifest = exported(name)
    assert manifest["exporters"] == {"encoder": EXPORTER, "step": EXPORTER}
    x = INPUTS[inputs]
    decoder = Decoder(directory)
    for max_length in (None, model.spec.output_length + 2):
        ids, scores = decoder.generate(x, max_length=max_length)
        expected_ids, expected_scores = model.generate(x, max_length=max_length)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_allclose(scores, expected_scores, atol=SCORE_TOLERANCE)
        assert ids.dtype == np.int32 and scores.dtype == np.float32


@pytest.mark.parametrize("name", sorted(MODELS))
def test_beam_ids_are_generates(exported, name):
    model, directory, _ = exported(name)
    decoder = Decoder(directory)
    for x in INPUTS.values():
        for options in (
            dict(beam_width=3),
            dict(beam_width=4, length_penalty=1.0, num_return_sequences=3),
        ):
            ids, scores = decoder.generate(x, method="beam", **options)
            expected_ids, expected_scores = model.generate(x, method="beam", **options)
            np.testing.assert_array_equal(ids, expected_ids)
            np.testing.assert_allclose(scores, expected_scores, atol=SCORE_TOLERANCE)


def test_graphs_compute_the_models_state_and_step(exported):
    """The encoder graph gives `initial_decoding_state`, the step graph
    `decode_step`'s log-probabilities, never-emitted ids ruled out."""
    model, directory, manifest = exported("attention")
    x = INPUTS["padded"]
    decoder = Decoder(directory)
    state = decoder.encode(x)
    initial = model.decoder.initial_decoding_state(**model._decoder_inputs(x))
    expected = export._flatten(initial)
    assert [entry["name"] for entry in manifest["state"]] == list(expected)
    for entry in manifest["state"]:
        value = keras.ops.convert_to_numpy(expected[entry["name"]])
        assert state[entry["name"]].dtype == value.dtype == entry["dtype"]
        assert list(value.shape[1:]) == entry["shape"][1:]
        np.testing.assert_allclose(state[entry["name"]], value, atol=1e-6)
    assert [e["name"] for e in manifest["state"] if e["carried"]] == [
        "query",
        "states_0_0",
        "states_0_1",
    ]
    previous = np.array([1, 3, 4, 5, 6, 7], "int32")
    log_probs, _ = model.decoder.decode_step(
        keras.ops.convert_to_tensor(previous),
        export._unflatten(
            initial, {k: keras.ops.convert_to_tensor(v) for k, v in state.items()}
        ),
    )
    (served,) = decoder._step.run(["log_probs"], {"previous": previous, **state})
    np.testing.assert_allclose(served, keras.ops.convert_to_numpy(log_probs), atol=1e-5)
    never = manifest["never_emitted_ids"]
    assert never == [0, 1]
    np.testing.assert_allclose(served[:, never], NEVER_LOG_PROB, rtol=1e-6)


def _toy_step(seed, vocab_size, end_id, width=6):
    """A recurrent step function on NumPy arrays: the state follows the
    hypotheses, the padding and start ids are ruled out, and the end id is
    likely enough for sequences to end at different steps."""
    rng = np.random.default_rng(seed)
    embedding = rng.normal(size=(vocab_size, width)).astype("float32")
    recurrent = (rng.normal(size=(width, width)) / np.sqrt(width)).astype("float32")
    head = (2 * rng.normal(size=(width, vocab_size))).astype("float32")
    bias = np.zeros((vocab_size,), "float32")
    bias[end_id] = 1.0
    bias[[0, 1]] = NEVER_LOG_PROB

    def step(ids, state):
        hidden = np.tanh(state["hidden"] @ recurrent + embedding[ids])
        logits = hidden @ head
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return (log_probs + bias).astype("float32"), {"hidden": hidden}

    def keras_step(ids, state):
        arrays = {"hidden": keras.ops.convert_to_numpy(state["hidden"])}
        log_probs, new_state = step(keras.ops.convert_to_numpy(ids), arrays)
        return keras.ops.convert_to_tensor(log_probs), {
            "hidden": keras.ops.convert_to_tensor(new_state["hidden"])
        }

    return step, keras_step


@pytest.mark.parametrize(
    "options",
    [
        dict(method="greedy"),
        dict(method="beam", beam_width=4),
        dict(method="beam", beam_width=3, length_penalty=0.6),
        dict(method="beam", beam_width=5, length_penalty=1.5, num_return_sequences=3),
    ],
    ids=["greedy", "beam", "beam_penalty", "beam_returns"],
)
def test_numpy_searches_are_kseq2seq_decodings(options):
    options = dict(options)
    method = options.pop("method")
    searches = {
        "greedy": (runtime.greedy_search, decoding.greedy_search),
        "beam": (runtime.beam_search, decoding.beam_search),
    }[method]
    ended = total = 0
    for seed in range(6):
        step, keras_step = _toy_step(seed, vocab_size=8, end_id=2)
        rng = np.random.default_rng(seed)
        hidden = rng.normal(size=(5, 6)).astype("float32")
        start = np.ones((5,), "int32")
        arguments = dict(end_id=2, max_length=7, **options)
        ids, scores = searches[0](step, {"hidden": hidden}, start, **arguments)
        expected_ids, expected_scores = searches[1](
            keras_step,
            {"hidden": keras.ops.convert_to_tensor(hidden)},
            start,
            **arguments,
        )
        np.testing.assert_array_equal(ids, keras.ops.convert_to_numpy(expected_ids))
        np.testing.assert_allclose(
            scores, keras.ops.convert_to_numpy(expected_scores), rtol=1e-6
        )
        sequences = ids.reshape(-1, 7)
        ended += int((sequences == 2).any(axis=-1).sum())
        total += len(sequences)
    # The end id, the padding after it and the early stop were exercised,
    # and so were sequences that run to `max_length`.
    assert 0 < ended < total


def test_top_k_breaks_ties_towards_the_lower_index():
    values = np.array([[0.0, 1.0, 1.0, -np.inf, 1.0, 0.5]], "float32")
    np.testing.assert_array_equal(runtime._top_k(values, 2), [[1, 2]])
    np.testing.assert_array_equal(runtime._top_k(values, 5), [[1, 2, 4, 5, 0]])
    np.testing.assert_array_equal(runtime._top_k(values, 6), [[1, 2, 4, 5, 0, 3]])
    # Against a stable sort, on rows full of ties.
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, size=(50, 12)).astype("float32")
    values[values == 0] = -np.inf
    for k in (1, 3, 7, 12):
        expected = np.argsort(-values, axis=-1, kind="stable")[:, :k]
        np.testing.assert_array_equal(runtime._top_k(values, k), expected)


def test_runtime_serves_in_a_process_without_keras(exported, tmp_path):
    """The exported folder serves with NumPy and ONNX Runtime alone."""
    model, directory, _ = exported("attention")
    x = INPUTS["padded"]
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import sys

        import numpy as np

        sys.path.insert(0, {directory!r})
        from kseq2seq_runtime import Decoder

        decoder = Decoder({directory!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        greedy, _ = decoder.generate(x)
        beam, _ = decoder.generate(x, method="beam", beam_width=3)
        np.save({str(tmp_path / "greedy.npy")!r}, greedy)
        np.save({str(tmp_path / "beam.npy")!r}, beam)
        loaded = {{"keras", "torch", "kseq2seq"}} & set(sys.modules)
        assert not loaded, loaded
        """
    )
    # The process must not find kseq2seq even from the current folder.
    subprocess.run(
        [sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=120
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "greedy.npy"), model.generate(x)[0]
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "beam.npy"),
        model.generate(x, method="beam", beam_width=3)[0],
    )


def test_torchscript_exporter_serves_vector_inputs(tmp_path):
    model = SimpleSeq2Seq(
        input_dim=3, input_length=5, output_vocab_size=9, output_length=4, hidden_dim=5
    )
    manifest = export_decoding(model, tmp_path, exporter="torchscript")
    assert manifest["exporters"] == {"encoder": "torchscript", "step": "torchscript"}
    assert manifest["inputs"] == {"dtype": "float32", "shape": [None, 5, 3]}
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
    decoder = Decoder(tmp_path)
    np.testing.assert_array_equal(decoder.generate(x)[0], model.generate(x)[0])
    beam = dict(method="beam", beam_width=3)
    np.testing.assert_array_equal(
        decoder.generate(x, **beam)[0], model.generate(x, **beam)[0]
    )


def test_auto_falls_back_to_torchscript_where_dynamo_fails(tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(export, "_export_dynamo", failing)
    model = AttentionSeq2Seq(**cases.TOKENS)
    with pytest.warns(UserWarning, match="unsupported operator"):
        manifest = export_decoding(model, tmp_path, input_length=4)
    assert manifest["exporters"] == {"encoder": "torchscript", "step": "torchscript"}
    with open(tmp_path / "manifest.json") as file:
        assert json.load(file) == manifest
    x = _padded_ids(3, length=4)
    np.testing.assert_array_equal(
        Decoder(tmp_path).generate(x)[0], model.generate(x)[0]
    )
    with pytest.raises(RuntimeError, match="unsupported operator"):
        export_decoding(model, tmp_path, input_length=4, exporter="dynamo")


def test_dynamo_export_fails_rather_than_fix_the_batch_size(tmp_path):
    """A graph that holds for the example's batch size alone is an error,
    not a file that serves that size only."""

    class OneBatchSize(torch.nn.Module):
        def forward(self, x):
            return x.reshape(2, -1)  # The example's batch size, read as a number.

    with pytest.raises(Exception, match="batch"):
        export._export_dynamo(
            OneBatchSize(), (torch.ones(2, 3),), str(tmp_path / "g.onnx"), ["x"], ["y"]
        )
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "make, arguments, message",
    [
        (lambda: AttentionSeq2Seq(**cases.VECTOR), {}, "token outputs"),
        (
            lambda: AttentionSeq2Seq(**cases.TOKENS, dtype="mixed_bfloat16"),
            dict(input_length=4),
            "float32 copy",
        ),
        (
            lambda: SimpleSeq2Seq(
                **cases.TOKENS, batch_size=2, stateful=True, input_length=4
            ),
            {},
            "stateful=True",
        ),
        (lambda: AttentionSeq2Seq(**cases.TOKENS), {}, "Received: input_length=None"),
        (
            lambda: AttentionSeq2Seq(**cases.TOKENS, input_length=4),
            dict(input_length=5),
            "input length, 4, or None. Received: input_length=5",
        ),
        (
            lambda: AttentionSeq2Seq(**cases.TOKENS),
            dict(input_length=4, exporter="onnx"),
            "`exporter` must be one of",
        ),
    ],
    ids=["vector", "mixed", "stateful", "length", "other_length", "exporter"],
)
def test_export_refuses_what_it_cannot_serve(tmp_path, make, arguments, message):
    with pytest.raises(ValueError, match=message):
        export_decoding(make(), tmp_path, **arguments)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "inputs, options, message",
    [
        ([[1, 2, 9]], {}, r"ids in \[0, 9\)"),
        ([[1, -2, 3]], {}, r"ids in \[0, 9\)"),
        ([[1.0, 2.0]], {}, "integer ids"),
        (np.ones((2, LENGTH + 1), "int32"), {}, r"length <= 6"),
        ([1, 2, 3], {}, r"Received: inputs.shape=\(3,\)"),
        ([[1, 2]], dict(method="sample"), "`method` must be one of"),
        ([[1, 2]], dict(method="beam", beam_width=0), "beam_width=0"),
        (
            [[1, 2]],
            dict(method="beam", beam_width=2, num_return_sequences=3),
            "at most `beam_width`",
        ),
        ([[1, 2]], dict(method="beam", length_penalty=-1.0), "length_penalty=-1.0"),
        ([[1, 2]], dict(max_length=0), "`max_length` must be a positive int"),
        (
            [[1, 2]],
            dict(batch_size=True),
            "`batch_size` must be a positive int or None",
        ),
    ],
)
def test_runtime_checks_its_arguments(exported, inputs, options, message):
    _, directory, _ = exported("attention")
    with pytest.raises(ValueError, match=message):
        Decoder(directory).generate(inputs, **options)


def test_runtime_refuses_another_format(exported, tmp_path):
    _, directory, manifest = exported("attention")
    with open(tmp_path / "manifest.json", "w") as file:
        json.dump(dict(manifest, format_version=runtime.FORMAT_VERSION + 1), file)
    with pytest.raises(ValueError, match="format kseq2seq-decoding version 1"):
        Decoder(tmp_path)
