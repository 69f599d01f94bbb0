"""Robustness: checking inputs, divergence and checkpoints, damaged model
files, reproducibility, stateful streaming and training from streamed data.

The property-based tests of arguments and data shapes are in test_fuzz.py.
"""

import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import torch

from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq

to_numpy = keras.ops.convert_to_numpy

MODEL_CLASSES = [SimpleSeq2Seq, Seq2Seq, AttentionSeq2Seq]
CLASS_IDS = [cls.__name__ for cls in MODEL_CLASSES]
SMALL = dict(input_dim=3, hidden_dim=4, output_length=3, output_dim=2)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _all_finite(arrays):
    return all(np.isfinite(a).all() for a in arrays)


# ---------------------------------------------------------------------------
# 1. check_inputs: NaN and inf reported clearly, off by default.
# ---------------------------------------------------------------------------


def _spoilt(seed=0):
    """Inputs with a NaN at [4, 2, 1] and an inf at [5, 0, 0]; targets with a
    -inf at [3, 1, 1]."""
    x, y = _rand(6, 4, 3, seed=seed), _rand(6, 3, 2, seed=seed + 1)
    bad_x, bad_y = x.copy(), y.copy()
    bad_x[4, 2, 1], bad_x[5, 0, 0] = np.nan, np.inf
    bad_y[3, 1, 1] = -np.inf
    return x, y, bad_x, bad_y


X_MESSAGE = (
    r"check_inputs=True.*`x` holds 1 NaN and 1 infinite value;.*x\[4, 2, 1\] = nan"
)
Y_MESSAGE = (
    r"check_inputs=True.*`y` holds 0 NaNs and 1 infinite value;.*y\[3, 1, 1\] = -inf"
)


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=CLASS_IDS)
def test_check_inputs_reports_non_finite_values_everywhere(cls):
    model = cls(check_inputs=True, **SMALL)
    x, y, bad_x, bad_y = _spoilt()
    before = model.get_weights()
    with pytest.raises(ValueError, match=X_MESSAGE):
        model.fit(bad_x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=Y_MESSAGE):
        model.fit(x, bad_y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"`validation_data\[1\]` holds 0 NaNs"):
        model.fit(x, y, validation_data=(x, bad_y), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=X_MESSAGE):
        model.evaluate(bad_x, y, verbose=0)
    with pytest.raises(ValueError, match=Y_MESSAGE):
        model.evaluate(x, bad_y, verbose=0)
    with pytest.raises(ValueError, match=X_MESSAGE):
        model.predict(bad_x, verbose=0)
    with pytest.raises(ValueError, match=X_MESSAGE):
        model(bad_x)
    with pytest.raises(ValueError, match=X_MESSAGE):
        model.encode(bad_x)
    with pytest.raises(ValueError, match=Y_MESSAGE):
        model.train_on_batch(x, bad_y)
    # Nothing was trained on the bad values.
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    # Finite data passes.
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (6, 3, 2)


def test_check_inputs_reports_the_batch_position_for_datasets():
    model = Seq2Seq(check_inputs=True, teacher_force=True, **SMALL)
    x, y, bad_x, bad_y = _spoilt()

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return bad_x[3 * index : 3 * index + 3], y[3 * index : 3 * index + 3]

    # Batch 1 holds samples 3 to 5: the NaN of sample 4 is its row 1.
    with pytest.raises(ValueError, match=r"x\[1, 2, 1\] = nan.*x\.shape=\(3, 4, 3\)"):
        model.fit(Batches(), epochs=1, verbose=0)
    # Teacher forcing: the targets fed to the decoder are checked as well.
    with pytest.raises(ValueError, match=r"`x\[1\]` holds 0 NaNs and 1 infinite"):
        model.fit([x, bad_y], y, epochs=1, verbose=0)


def test_check_inputs_is_off_by_default_and_survives_saving(tmp_path):
    x, y, bad_x, _ = _spoilt()
    unchecked = Seq2Seq(**SMALL)
    assert unchecked.get_config()["check_inputs"] is False
    outputs = unchecked.predict(bad_x, verbose=0)  # no check: NaN in, NaN out
    assert np.isnan(outputs[4]).all() and np.isfinite(outputs[:4]).all()

    checked = Seq2Seq(check_inputs=True, **SMALL)
    path = tmp_path / "checked.keras"
    checked.save(path)
    restored = keras.models.load_model(path)
    assert restored.get_config()["check_inputs"] is True
    with pytest.raises(ValueError, match=X_MESSAGE):
        restored.predict(bad_x, verbose=0)
    with pytest.raises(ValueError, match=r"check_inputs.*True or False.*'yes'"):
        Seq2Seq(check_inputs="yes", **SMALL)


def test_token_ids_out_of_the_vocabulary_always_raise_a_value_error():
    model = AttentionSeq2Seq(
        input_vocab_size=6, output_vocab_size=5, hidden_dim=4, output_length=3
    )
    ids = np.random.default_rng(0).integers(1, 6, size=(4, 5))
    targets = np.random.default_rng(1).integers(1, 5, size=(4, 3))
    too_big, negative = ids.copy(), targets.copy()
    too_big[2, 3] = 9
    negative[1, 0] = -1
    message = r"input_vocab_size\) = \[0, 6\).*1 id outside.*x\[2, 3\] = 9"
    with pytest.raises(ValueError, match=message):
        model.predict(too_big, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.generate(too_big)
    with pytest.raises(ValueError, match=r"output_vocab_size.*y\[1, 0\] = -1"):
        model.fit(ids, negative, epochs=1, verbose=0)


def test_checks_are_skipped_while_torch_exports_the_model():
    """Value checks would be data-dependent branches in an exported graph."""
    model = Seq2Seq(
        input_vocab_size=6,
        output_vocab_size=5,
        hidden_dim=4,
        output_length=3,
        check_inputs=True,
    )
    ids = torch.as_tensor(np.random.default_rng(0).integers(1, 6, size=(2, 5)))
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (ids,), dynamic_shapes=(({0: batch},),))
    np.testing.assert_allclose(
        program.module()(ids).detach().numpy(),
        model.predict(ids.numpy(), verbose=0),
        atol=1e-5,
    )


# ---------------------------------------------------------------------------
# 2. A diverging run is stopped, and the best checkpoint stays good.
# ---------------------------------------------------------------------------


class _ExplodeAt(keras.callbacks.Callback):
    """Sets an absurd learning rate from the given epoch: the run diverges."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.optimizer.learning_rate.assign(1e12)


class _Snapshots(keras.callbacks.Callback):
    """Keeps the weights every epoch ended with."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def _diverging_run(tmp_path, **checkpoint):
    x, y = _rand(32, 5, 3), np.abs(_rand(32, 3, 2, seed=1))
    model = Seq2Seq(**SMALL)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.05))
    path = tmp_path / "best.keras"
    snapshots = _Snapshots()
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=6,
        verbose=0,
        callbacks=[
            _ExplodeAt(2),
            keras.callbacks.TerminateOnNaN(),
            snapshots,
            keras.callbacks.ModelCheckpoint(path, monitor="loss", **checkpoint),
        ],
    )
    return model, history, path, x, snapshots.weights


def test_terminate_on_nan_stops_a_diverging_run_and_the_best_checkpoint_loads(
    tmp_path,
):
    model, history, path, x, snapshots = _diverging_run(tmp_path, save_best_only=True)
    losses = history.history["loss"]
    # Stopped during the third epoch, at its first non-finite loss.
    assert len(losses) == 3 and np.isfinite(losses[:2]).all()
    assert not np.isfinite(losses[2])
    assert not _all_finite(model.get_weights())  # the model in memory is lost
    restored = keras.models.load_model(path)  # the checkpoint is not
    assert _all_finite(restored.get_weights())
    outputs = restored.predict(x, verbose=0)
    assert outputs.shape == (32, 3, 2) and np.isfinite(outputs).all()
    # It holds the weights of the better of the two good epochs.
    best = snapshots[int(np.argmin(losses[:2]))]
    for saved, kept in zip(restored.get_weights(), best):
        np.testing.assert_array_equal(saved, kept)


def test_a_checkpoint_saved_every_epoch_would_keep_the_diverged_weights(tmp_path):
    """Why `save_best_only=True`: a NaN loss is never the best, but a plain
    checkpoint saves whatever the epoch ended with."""
    path = _diverging_run(tmp_path, save_best_only=False)[2]
    restored = keras.models.load_model(path)
    assert not _all_finite(restored.get_weights())


def _inf_target_batches(y_spoilt_batch):
    x, y = _rand(32, 5, 3), np.abs(_rand(32, 3, 2, seed=1))

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            bx, by = x[8 * index : 8 * index + 8], y[8 * index : 8 * index + 8].copy()
            if index == y_spoilt_batch:
                by[0, 0, 0] = np.inf
            return bx, by

    return Batches()


def test_inf_targets_end_training_or_are_refused_with_check_inputs():
    model = SimpleSeq2Seq(**SMALL)
    history = model.fit(
        _inf_target_batches(2),
        epochs=3,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert not _all_finite(model.get_weights())  # the inf reached the update

    checked = SimpleSeq2Seq(check_inputs=True, **SMALL)
    with pytest.raises(
        ValueError, match=r"`y` holds 0 NaNs and 1 infinite.*y\[0, 0, 0\]"
    ):
        checked.fit(_inf_target_batches(2), epochs=3, verbose=0)
    assert _all_finite(checked.get_weights())  # refused before the update


# ---------------------------------------------------------------------------
# 3. Damaged and foreign .keras files: what keras.models.load_model raises.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    Seq2Seq(**SMALL).save(path)
    return path


def _rewrite(source, target, edit):
    """Copies the zip `source` to `target`, passing each member through
    `edit(name, data)`; `None` drops the member."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = edit(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)


def test_a_truncated_or_foreign_keras_file_raises(saved_model, tmp_path):
    data = saved_model.read_bytes()
    not_zips = {
        "truncated": data[: len(data) // 2],
        "nearly-whole": data[:-10],
        "empty": b"",
        "text": b"not a model",
    }
    for name, content in not_zips.items():
        path = tmp_path / f"{name}.keras"
        path.write_bytes(content)
        # Keras 3 says "File not found" for any file that is not a zip file.
        with pytest.raises(ValueError, match=r"accessible `\.keras` zip file"):
            keras.models.load_model(path)

    foreign = tmp_path / "foreign.keras"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("readme.txt", "a zip file, but not a Keras model")
    with pytest.raises((KeyError, ValueError), match="config.json"):
        keras.models.load_model(foreign)

    def halve(member):
        return lambda name, blob: blob[: len(blob) // 2] if name == member else blob

    broken_weights = tmp_path / "broken-weights.keras"
    _rewrite(saved_model, broken_weights, halve("model.weights.h5"))
    with pytest.raises((OSError, ValueError), match="truncated"):
        keras.models.load_model(broken_weights)

    broken_config = tmp_path / "broken-config.keras"
    _rewrite(saved_model, broken_config, halve("config.json"))
    with pytest.raises(ValueError):  # a json.JSONDecodeError
        keras.models.load_model(broken_config)

    # The undamaged file still loads.
    assert isinstance(keras.models.load_model(saved_model), Seq2Seq)


def test_a_keras_file_of_another_model_loads_as_that_model(tmp_path):
    path = tmp_path / "dense.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
    loaded = keras.models.load_model(path)
    assert not isinstance(loaded, Seq2Seq)  # check the type if it matters


def test_loading_without_importing_kseq2seq_names_the_class(saved_model):
    env = dict(os.environ, KERAS_BACKEND="torch")
    code = f"import keras; keras.models.load_model({str(saved_model)!r})"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "Could not locate class 'Seq2Seq'" in result.stderr


@pytest.mark.parametrize("name", ["model.h5", "model.hdf5"])
def test_saving_to_the_legacy_hdf5_format_is_refused(tmp_path, name):
    """Keras writes the file, but it would not load back as a kseq2seq model."""
    model = Seq2Seq(**SMALL)
    with pytest.raises(ValueError, match=r"`\.keras` format.*filepath='.*\.h(df)?5'"):
        model.save(str(tmp_path / name))
    with pytest.raises(ValueError, match=r"model\.save\('model\.keras'\)"):
        model.save(tmp_path / name)
    assert not (tmp_path / name).exists()
    # The weights alone save to HDF5 and load back.
    model.save_weights(tmp_path / "model.weights.h5")
    restored = Seq2Seq(**SMALL)
    restored.load_weights(tmp_path / "model.weights.h5")
    x = _rand(2, 4, 3)
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


# ---------------------------------------------------------------------------
# 4. The same seed gives the same weights and predictions.
# ---------------------------------------------------------------------------

# Dropout, scheduled sampling, shuffling and the initializers all draw
# random numbers.
_RUN = """
import hashlib
import numpy as np
import kseq2seq
import keras

def run(seed):
    keras.utils.set_random_seed(seed)
    x = np.random.rand(24, 5, 3).astype("float32")
    y = np.random.rand(24, 3, 2).astype("float32")
    model = kseq2seq.Seq2Seq(input_dim=3, hidden_dim=4, output_length=3,
                             output_dim=2, depth=2, dropout=0.3,
                             teacher_force=True, scheduled_sampling=0.5)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0)
    return model.get_weights(), model.predict(x, verbose=0)

def digest(weights, outputs):
    h = hashlib.sha256()
    for array in weights + [outputs]:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()
"""


def _run_namespace():
    namespace = {}
    exec(compile(_RUN, "reproducibility run", "exec"), namespace)
    return namespace


def test_same_seed_same_weights_and_predictions_in_one_process():
    run = _run_namespace()["run"]
    weights_a, outputs_a = run(7)
    weights_b, outputs_b = run(7)
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(outputs_a, outputs_b)
    weights_c, _ = run(8)  # the test has teeth
    assert not all(np.array_equal(a, c) for a, c in zip(weights_a, weights_c))


def test_same_seed_same_weights_and_predictions_in_another_process():
    """A fresh interpreter gets the digest this process, which has built many
    models before, gets."""
    code = _RUN + "\nprint(digest(*run(7)))\n"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    namespace = _run_namespace()
    here = namespace["digest"](*namespace["run"](7))
    there = process.communicate(timeout=300)[0].strip()
    assert process.returncode == 0
    assert there == here


# ---------------------------------------------------------------------------
# 5. Stateful streaming: chunk by chunk as the whole sequence.
# ---------------------------------------------------------------------------

STREAMING_CASES = {
    "simple-lstm": (SimpleSeq2Seq, dict(depth=2)),
    "seq2seq-gru-shared": (Seq2Seq, dict(depth=2, cell="gru")),
    "seq2seq-rnn-own-states": (
        Seq2Seq,
        dict(depth=(2, 1), cell="simple_rnn", inner_broadcast_state=False),
    ),
    "attention-unidirectional": (AttentionSeq2Seq, dict(bidirectional=False)),
    "seq2seq-tokens": (Seq2Seq, dict(input_vocab_size=9, embedding_dim=3)),
}


def _twins(cls, kwargs, batch):
    """A stateful model and a stateless one with the same weights."""
    common = dict(hidden_dim=4, output_length=3, output_dim=2, **kwargs)
    tokens = "input_vocab_size" in kwargs
    shape = (batch, None) if tokens else (batch, None, 3)
    stateful = cls(batch_input_shape=shape, stateful=True, **common)
    whole = cls(**common) if tokens else cls(input_dim=3, **common)
    for source, target in zip(stateful.trainable_weights, whole.trainable_weights):
        target.assign(source.value)
    return stateful, whole


@pytest.mark.parametrize("case", list(STREAMING_CASES))
def test_stateful_streaming_in_chunks_equals_encoding_the_whole(case):
    cls, kwargs = STREAMING_CASES[case]
    stateful, whole = _twins(cls, kwargs, batch=4)
    if "input_vocab_size" in kwargs:
        sequence = np.random.default_rng(0).integers(1, 9, size=(4, 6))
    else:
        sequence = _rand(4, 6, 3)
    chunks = [sequence[:, :2], sequence[:, 2:5], sequence[:, 5:]]  # uneven
    expected = whole.encode(sequence)
    for attempt in range(2):  # reset_states starts the stream over
        stateful.reset_states()
        parts = [stateful.encode(chunk) for chunk in chunks]
        np.testing.assert_allclose(
            np.concatenate([p["sequence"] for p in parts], axis=1),
            expected["sequence"],
            atol=1e-5,
        )
        np.testing.assert_allclose(parts[-1]["context"], expected["context"], atol=1e-5)
        streamed = [s for layer in parts[-1]["states"] for s in layer]
        whole_states = [s for layer in expected["states"] for s in layer]
        assert len(streamed) == len(whole_states)
        for a, b in zip(streamed, whole_states):
            np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("case", ["simple-lstm", "seq2seq-gru-shared"])
def test_stateful_prediction_after_streaming_equals_the_whole_prediction(case):
    """Without attention, the decoder reads only the context and the final
    states, so the prediction on the last chunk is that on the whole."""
    cls, kwargs = STREAMING_CASES[case]
    stateful, whole = _twins(cls, kwargs, batch=2)
    sequence = _rand(2, 7, 3)
    stateful.predict(sequence[:, :4], batch_size=2, verbose=0)
    last = stateful.predict(sequence[:, 4:], batch_size=2, verbose=0)
    np.testing.assert_allclose(last, whole.predict(sequence, verbose=0), atol=1e-5)


# ---------------------------------------------------------------------------
# 6. Training from data generated on the fly: PyDataset and DataLoader.
# ---------------------------------------------------------------------------


class _TokenBatches(keras.utils.PyDataset):
    """Batch `i` is drawn from the seed `(seed, i)`: nothing is stored."""

    def __init__(self, batches, batch_size=8, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.batches, self.batch_size, self.seed = batches, batch_size, seed

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, index])
        x = rng.integers(1, 9, size=(self.batch_size, 5))
        return x, x[:, ::-1][:, :3] % 6  # target ids in [0, 6)


class _VectorStream(torch.utils.data.IterableDataset):
    """An endless stream of noisy sine windows, one sample at a time."""

    def __init__(self, seed=0):
        self.seed = seed

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        steps = np.arange(9, dtype="float32")
        while True:
            phase, frequency = rng.uniform(0, 6.3), rng.uniform(0.2, 0.8)
            wave = np.sin(frequency * steps + phase).astype("float32")[:, None]
            yield torch.from_numpy(wave[:6]), torch.from_numpy(wave[6:])


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=CLASS_IDS)
def test_fit_from_a_py_dataset_of_token_batches(cls):
    model = cls(
        input_vocab_size=9,
        output_vocab_size=6,
        hidden_dim=8,
        output_length=3,
    )
    history = model.fit(_TokenBatches(4), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()
    model.evaluate(_TokenBatches(2, seed=1), verbose=0)
    ids, _ = model.generate(_TokenBatches(1, seed=2)[0][0])
    assert ids.shape == (8, 3)


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=CLASS_IDS)
def test_fit_from_a_torch_data_loader_that_streams(cls):
    model = cls(input_dim=1, hidden_dim=8, output_length=3, output_dim=1)
    loader = torch.utils.data.DataLoader(_VectorStream(), batch_size=8)
    history = model.fit(loader, steps_per_epoch=4, epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()
    x, y = next(iter(loader))
    assert model.predict(x.numpy(), verbose=0).shape == tuple(y.shape)


# ---------------------------------------------------------------------------
# 7. Token ids that are not whole numbers, text and Python lists: clear errors.
# ---------------------------------------------------------------------------


def _token_model(**kwargs):
    return Seq2Seq(
        input_vocab_size=10,
        output_vocab_size=6,
        hidden_dim=4,
        output_length=3,
        **kwargs,
    )


def _token_data(batch=6):
    rng = np.random.default_rng(0)
    return rng.integers(1, 10, (batch, 5)), rng.integers(1, 6, (batch, 3))


def test_fractional_and_boolean_token_ids_are_refused():
    model = _token_model()
    x, y = _token_data()
    fractional = x.astype("float32")
    fractional[3, 2] = 0.7
    with pytest.raises(
        ValueError, match=r"`x` must hold whole-number.*x\[3, 2\] = 0.7"
    ):
        model.predict(fractional, verbose=0)
    with pytest.raises(ValueError, match=r"whole-number.*x\[3, 2\] = 0.7"):
        model(torch.as_tensor(fractional))
    fractional_y = y.astype("float64")
    fractional_y[1, 0] = 2.5
    with pytest.raises(
        ValueError, match=r"`y` must hold whole-number.*y\[1, 0\] = 2.5"
    ):
        model.fit(x, fractional_y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"`x` must hold integer token ids, not bool"):
        model.predict(x > 4, verbose=0)
    with pytest.raises(ValueError, match=r"`y` must hold integer token ids, not bool"):
        model.evaluate(x, y > 2, verbose=0)
    nan = x.astype("float32")
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"x\[0, 0\] = nan"):
        model.predict(nan, verbose=0)


def test_whole_number_float_ids_are_read_as_integers():
    model = _token_model(teacher_force=True)
    x, y = _token_data()
    np.testing.assert_array_equal(
        model.predict(x.astype("float64"), verbose=0), model.predict(x, verbose=0)
    )
    as_ints = model.evaluate(x, y, verbose=0, return_dict=True)
    as_floats = model.evaluate(
        x.astype("float32"), y.astype("float32"), verbose=0, return_dict=True
    )
    assert as_ints == pytest.approx(as_floats, abs=1e-6)
    model.fit(x.astype("float32"), y.astype("float32"), epochs=1, verbose=0)


def test_fractional_ids_from_a_dataset_are_refused_batch_by_batch():
    model = _token_model()
    x, y = _token_data()
    fractional = x.astype("float32")
    fractional[4, 1] = 3.25

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            rows = slice(3 * index, 3 * index + 3)
            return fractional[rows], y[rows]

    with pytest.raises(ValueError, match=r"x\[1, 1\] = 3.25"):
        model.fit(Batches(), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "data, match",
    [
        (["hello", "world"], r"`x` must be an array of shape \(batch, input_length\)"),
        (np.array(["hello", "world"]), r"x.dtype=<U5"),
        ([["a", "b"], ["c", "d"]], r"token ids, not text"),
        ("hello", r"of type str"),
    ],
    ids=["list", "array", "nested", "str"],
)
def test_text_points_to_the_vocabulary(data, match):
    model = _token_model()
    with pytest.raises(ValueError, match=match) as error:
        model.predict(data, verbose=0)
    assert "kseq2seq.Vocabulary.encode" in str(error.value)
    with pytest.raises(ValueError, match=r"`y` .*kseq2seq.Vocabulary.encode"):
        model.fit(_token_data()[0], np.array([["a", "b", "c"]] * 6), verbose=0)


def test_text_given_to_a_vector_model_is_refused():
    model = Seq2Seq(**SMALL)
    with pytest.raises(ValueError, match=r"`x` .*\(batch, input_length, 3\).*not text"):
        model.predict(np.full((2, 4, 3), "a"), verbose=0)


def test_python_lists_name_the_argument_and_the_shape_without_dumping_them():
    model = _token_model()
    ragged = [[1, 2, 3]] * 500 + [[4, 5]]
    with pytest.raises(ValueError) as error:
        model.predict(ragged, verbose=0)
    message = str(error.value)
    assert "`x` must be an array of shape (batch, input_length) token ids" in message
    assert "list of 501 items" in message and "pad_sequences" in message
    assert len(message) < 300
    with pytest.raises(
        ValueError, match=r"list of 2 items: convert it with `np.asarray`"
    ):
        model.predict([[1, 2, 3], [4, 5, 6]], verbose=0)
    x, y = _token_data()
    with pytest.raises(
        ValueError, match=r"`y` must be a NumPy array.*\(batch, 3\) ids"
    ):
        model.fit(x, y.tolist(), verbose=0)
    with pytest.raises(ValueError, match=r"dtype=object.*pad_sequences"):
        model.predict(np.array([[1, 2], [3]], dtype=object), verbose=0)
    vectors = Seq2Seq(**SMALL)
    with pytest.raises(ValueError, match=r"`x` .*\(batch, input_length, 3\)"):
        vectors.predict([[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]] * 2], verbose=0)


def test_missing_targets_name_the_expected_shape():
    model = Seq2Seq(**SMALL)
    x = _rand(6, 4, 3)
    message = r"needs targets `y` of shape .* = \(batch, 3, 2\).*Received: y=None"
    with pytest.raises(ValueError, match=message):
        model.fit(x, None, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.evaluate(x, verbose=0)
    with pytest.raises(
        ValueError, match=r"needs targets `y` of shape .*\(batch, 3\) ids"
    ):
        _token_model(teacher_force=True).fit(list(_token_data()), verbose=0)


# ---------------------------------------------------------------------------
# 8. sample_weight per sequence or per step, class_weight per target id.
# ---------------------------------------------------------------------------


def _padded_token_data(batch=6):
    """Targets with a different number of padded positions in every row."""
    x, y = _token_data(batch)
    for row in range(batch):
        y[row, 3 - row % 3 :] = 0
    y[:, 0] = np.maximum(y[:, 0], 1)
    return x, y


def _cross_entropy(model, x, y):
    probabilities = model.predict(x, verbose=0)
    picked = np.take_along_axis(probabilities, y[..., None], axis=-1)[..., 0]
    return -np.log(picked), probabilities.argmax(-1) == y


def _reference(losses, correct, weights, mask, batch_size):
    """Keras' masked, weighted loss and accuracies, batch by batch.

    The loss of a batch is sum(loss * weight) over its valid positions
    divided by their number, and the loss is the mean over batches weighted
    by their size; the accuracy of `metrics` ignores the weights, that of
    `weighted_metrics` is their weighted mean.
    """
    batch_losses, sizes = [], []
    for start in range(0, len(losses), batch_size):
        rows = slice(start, start + batch_size)
        valid = mask[rows]
        batch_losses.append((losses[rows] * weights[rows])[valid].sum() / valid.sum())
        sizes.append(valid.shape[0])
    return {
        "loss": np.average(batch_losses, weights=sizes),
        "sparse_categorical_accuracy": correct[mask].mean(),
        "weighted_sparse_categorical_accuracy": (
            (correct * weights)[mask].sum() / weights[mask].sum()
        ),
    }


def _weighted_token_model(**kwargs):
    model = _token_model(**kwargs)
    model.compile(
        metrics=["sparse_categorical_accuracy"],
        weighted_metrics=["sparse_categorical_accuracy"],
    )
    return model


@pytest.mark.parametrize("batch_size", [6, 4])
def test_token_sample_weights_per_sequence_or_per_step_match_numpy(batch_size):
    model = _weighted_token_model()
    x, y = _padded_token_data()
    losses, correct = _cross_entropy(model, x, y)
    per_sequence = np.random.default_rng(2).uniform(0.5, 2.0, size=6)
    per_step = np.random.default_rng(3).uniform(0.5, 2.0, size=(6, 3))
    for weights, expected_weights in [
        (per_sequence, np.repeat(per_sequence[:, None], 3, axis=1)),
        (per_sequence[:, None], np.repeat(per_sequence[:, None], 3, axis=1)),
        (per_step, per_step),
    ]:
        logs = model.evaluate(
            x,
            y,
            sample_weight=weights,
            batch_size=batch_size,
            verbose=0,
            return_dict=True,
        )
        expected = _reference(losses, correct, expected_weights, y != 0, batch_size)
        assert logs == pytest.approx(expected, rel=1e-5)
    model.fit(x, y, sample_weight=per_sequence, batch_size=4, epochs=1, verbose=0)


def test_vector_sample_weights_per_sequence_match_numpy():
    model = Seq2Seq(**SMALL)
    model.compile(loss="mse", weighted_metrics=["mae"])
    x, y = _rand(6, 4, 3), _rand(6, 3, 2, seed=1)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, size=6)
    errors = model.predict(x, verbose=0) - y
    expected_loss = (np.mean(errors**2, axis=-1) * weights[:, None]).mean()
    expected_mae = np.average(
        np.abs(errors).mean(-1), weights=np.repeat(weights[:, None], 3, axis=1)
    )
    for given in (weights, weights[:, None]):
        logs = model.evaluate(
            x, y, sample_weight=given, batch_size=6, verbose=0, return_dict=True
        )
        assert logs["loss"] == pytest.approx(expected_loss, rel=1e-5)
        assert logs["mae"] == pytest.approx(expected_mae, rel=1e-5)
    model.fit(x, y, sample_weight=weights, batch_size=4, epochs=1, verbose=0)
    with pytest.raises(
        ValueError, match=r"`sample_weight` must have shape.*\(6, 3, 2\)"
    ):
        model.fit(x, y, sample_weight=np.ones((6, 3, 2)), verbose=0)


def test_token_class_weights_weigh_each_target_position_by_its_id():
    model = _weighted_token_model()
    x, y = _padded_token_data()
    class_weight = {1: 3.0, 4: 0.5, 5: 2.0}
    table = np.array([class_weight.get(i, 1.0) for i in range(6)])
    losses, correct = _cross_entropy(model, x, y)
    expected = _reference(losses, correct, table[y], y != 0, batch_size=6)
    logs = model.train_on_batch(x, y, class_weight=class_weight, return_dict=True)
    assert logs == pytest.approx(expected, rel=1e-5)

    # With sample_weight too, the weights multiply.
    model = _weighted_token_model()
    per_sequence = np.random.default_rng(2).uniform(0.5, 2.0, size=6)
    losses, correct = _cross_entropy(model, x, y)
    weights = table[y] * per_sequence[:, None]
    expected = _reference(losses, correct, weights, y != 0, batch_size=6)
    logs = model.train_on_batch(
        x, y, sample_weight=per_sequence, class_weight=class_weight, return_dict=True
    )
    assert logs == pytest.approx(expected, rel=1e-5)


def test_fit_with_class_weights_trains_as_the_same_per_step_sample_weights():
    keras.utils.set_random_seed(0)
    weighed = _token_model(teacher_force=True)
    explicit = _token_model(teacher_force=True)
    explicit.set_weights(weighed.get_weights())
    x, y = _padded_token_data()
    class_weight = {1: 3.0, 4: 0.5, 5: 2.0}
    table = np.array([class_weight.get(i, 1.0) for i in range(6)])
    a = weighed.fit(
        x,
        y,
        class_weight=class_weight,
        batch_size=3,
        epochs=2,
        shuffle=False,
        validation_data=(x, y),
        verbose=0,
    )
    b = explicit.fit(
        x,
        y,
        sample_weight=table[y],
        batch_size=3,
        epochs=2,
        shuffle=False,
        validation_data=(x, y),
        verbose=0,
    )
    assert a.history["loss"] == pytest.approx(b.history["loss"], rel=1e-5)
    # As in Keras, class weights apply to training only.
    assert a.history["val_loss"] == pytest.approx(b.history["val_loss"], rel=1e-5)
    for left, right in zip(weighed.get_weights(), explicit.get_weights()):
        np.testing.assert_allclose(left, right, atol=1e-6)
    assert weighed._class_weights is None

    # Batches from a dataset are weighed the same way.
    streamed, explicit = (_token_model(teacher_force=True) for _ in range(2))
    explicit.set_weights(streamed.get_weights())
    explicit.fit(x, y, sample_weight=table[y], batch_size=3, shuffle=False, verbose=0)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return x[3 * index : 3 * index + 3], y[3 * index : 3 * index + 3]

    streamed.fit(Batches(), class_weight=class_weight, shuffle=False, verbose=0)
    for left, right in zip(streamed.get_weights(), explicit.get_weights()):
        np.testing.assert_allclose(left, right, atol=1e-6)


@pytest.mark.parametrize(
    "class_weight, match",
    [
        ({6: 1.0}, r"keys of `class_weight` must be target ids in \[0, "),
        ({"a": 1.0}, r"Received the key 'a'"),
        ({1: -1.0}, r"`class_weight\[1\]` must be a real number >= 0"),
        ([1.0, 2.0], r"`class_weight` must be a dict"),
    ],
)
def test_bad_class_weights_raise_value_error(class_weight, match):
    x, y = _padded_token_data()
    with pytest.raises(ValueError, match=match):
        _token_model().fit(x, y, class_weight=class_weight, verbose=0)


def test_class_weights_of_vector_models_point_to_sample_weight():
    model = Seq2Seq(**SMALL)
    with pytest.raises(ValueError, match=r"`class_weight` weighs target ids.*sample"):
        model.fit(_rand(6, 4, 3), _rand(6, 3, 2), class_weight={0: 1.0}, verbose=0)


# ---------------------------------------------------------------------------
# 9. TensorBoard logs without TensorFlow.
# ---------------------------------------------------------------------------


def test_tensorboard_callback_logs_the_metrics_of_every_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator

    from kseq2seq.callbacks import TensorBoard

    model = Seq2Seq(**SMALL)
    model.compile(loss="mse", metrics=["mae"])
    x, y = _rand(12, 4, 3), _rand(12, 3, 2, seed=1)
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=3,
        validation_data=(x[:4], y[:4]),
        callbacks=[TensorBoard(tmp_path, update_freq=2)],
        verbose=0,
    )

    def scalars(run):
        events = event_accumulator.EventAccumulator(str(tmp_path / run))
        events.Reload()
        tags = events.Tags()["scalars"]
        return {tag: [(s.step, s.value) for s in events.Scalars(tag)] for tag in tags}

    train, validation = scalars("train"), scalars("validation")
    for name in ("loss", "mae"):
        logged = train[f"epoch_{name}"]
        assert [step for step, _ in logged] == [0, 1, 2]
        np.testing.assert_allclose(
            [value for _, value in logged], history.history[name], rtol=1e-6
        )
        np.testing.assert_allclose(
            [value for _, value in validation[f"epoch_{name}"]],
            history.history[f"val_{name}"],
            rtol=1e-6,
        )
    # Three batches an epoch, logged every second one.
    assert [step for step, _ in train["batch_loss"]] == [2, 4, 6, 8]


def test_tensorboard_callback_without_the_package_says_what_to_install(monkeypatch):
    from kseq2seq.callbacks import TensorBoard

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install tensorboard.*CSVLogger"):
        TensorBoard()
    with pytest.raises(ValueError, match=r"`update_freq` must be a positive int"):
        TensorBoard(update_freq=0)
