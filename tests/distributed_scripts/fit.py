"""A single-process training script, run as it is alone and under torchrun.

`python fit.py OUT START` trains, evaluates, predicts and saves a model of
every builder (a token model among them, one in mixed precision), one fed
by a `PyDataset` and one by a `DataLoader`, and resumes training from the
checkpoint START. `torchrun --nproc_per_node=2 fit.py OUT START` runs the
same script data-parallel. Each process writes what it got to
OUT/results-<RANK or "single">.npz for the tests to compare.

What the script does for the tests' sake: each process seeds with 1 + its
rank, so that the ranks start from different weights and rank 0 starts as
the single process does; the files it saves carry the process id in their
names, so that a second writer would show; a `PyDataset` or `DataLoader`
gives each process its own batches, of 8 / WORLD_SIZE rows.
"""

import os
import sys

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

import kseq2seq  # noqa: E402
from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq import SimpleSeq2Seq  # noqa: E402

RANK = int(os.environ.get("RANK", "0"))
BATCH = 8
PER_PROCESS = BATCH // int(os.environ.get("WORLD_SIZE", "1"))
VECTOR = dict(input_dim=3, output_dim=4, output_length=4, hidden_dim=6)
TOKENS = dict(
    input_vocab_size=9,
    output_vocab_size=9,
    output_length=4,
    hidden_dim=6,
    embedding_dim=5,
)
CASES = {
    "simple": (SimpleSeq2Seq, VECTOR, {}),
    "seq2seq": (Seq2Seq, VECTOR, {"teacher_force": True, "depth": 2}),
    "attention": (AttentionSeq2Seq, TOKENS, {"teacher_force": True}),
    "mixed": (Seq2Seq, VECTOR, {"teacher_force": True, "dtype": "mixed_float16"}),
}


def data(tokens, rows=45, seed=0):
    """45 rows: with validation_split=0.25, 33 train in batches of 8 and 1."""
    rng = np.random.default_rng(seed)
    if tokens:
        x = rng.integers(1, 9, size=(rows, 6)).astype("int32")
        y = rng.integers(3, 9, size=(rows, 4)).astype("int32")
        x[::2, 4:] = 0  # padded inputs and targets
        y[::3, 2:] = 0
        return x, y
    x = rng.normal(size=(rows, 6, 3)).astype("float32")
    y = np.concatenate([x[:, :4], np.ones_like(x[:, :4, :1])], axis=-1)
    return x, y


def build(name):
    keras.utils.set_random_seed(1 + RANK)
    builder, shape, options = CASES[name]
    model = builder(**shape, **options)
    if shape is VECTOR:
        model.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["mae"])
    else:
        model.compile(optimizer=keras.optimizers.Adam(0.01))
    return model


def report(results, name, model, history, evaluation, predictions):
    for key, values in history.history.items():
        results[f"{name}/history/{key}"] = np.array(values)
    for key, value in evaluation.items():
        results[f"{name}/evaluate/{key}"] = np.array(value)
    results[f"{name}/predict"] = predictions
    for number, variable in enumerate(model.trainable_variables):
        results[f"{name}/weight{number}"] = variable.numpy()


def weighing(name, rows):
    """The token model trains with class and per-sequence sample weights."""
    if name != "attention":
        return {}
    return {
        "class_weight": {3: 2.0, 5: 0.5, 8: 3.0},
        "sample_weight": np.linspace(0.5, 1.5, rows).astype("float32"),
    }


def tensorboard(name, out):
    if name != "simple":
        return []
    return [kseq2seq.callbacks.TensorBoard(f"{out}/{name}-{os.getpid()}.logs")]


def train_on_arrays(results, name, out):
    model = build(name)
    x, y = data(CASES[name][1] is TOKENS)
    history = model.fit(
        x,
        y,
        **weighing(name, len(x)),
        batch_size=BATCH,
        epochs=2,
        validation_split=0.25,
        callbacks=[
            keras.callbacks.ModelCheckpoint(f"{out}/{name}-{os.getpid()}.keras"),
            keras.callbacks.CSVLogger(f"{out}/{name}-{os.getpid()}.csv"),
            *tensorboard(name, out),
        ],
        verbose=0,
    )
    evaluation = model.evaluate(x, y, batch_size=BATCH, return_dict=True, verbose=0)
    predictions = model.predict(x, batch_size=BATCH, verbose=0)
    report(results, name, model, history, evaluation, predictions)
    model.save(f"{out}/final-{name}-{os.getpid()}.keras")


class Batches(keras.utils.PyDataset):
    def __init__(self, *arrays):
        super().__init__()
        self.arrays = arrays

    def __len__(self):
        return -(-len(self.arrays[0]) // PER_PROCESS)

    def __getitem__(self, index):
        rows = slice(index * PER_PROCESS, (index + 1) * PER_PROCESS)
        return tuple(array[rows] for array in self.arrays)


def train_on_batches(results, name, loader):
    model = build("seq2seq")
    # In batches of 4 per process: 11 and 5, which the 2 processes split
    # unevenly.
    x, y = data(tokens=False, rows=41)
    x_val, y_val = data(tokens=False, rows=17, seed=1)
    history = model.fit(
        loader(x, y, shuffle=True),
        epochs=2,
        validation_data=loader(x_val, y_val),
        verbose=0,
    )
    evaluation = model.evaluate(loader(x, y), return_dict=True, verbose=0)
    predictions = model.predict(loader(x), verbose=0)
    report(results, name, model, history, evaluation, predictions)


def py_dataset(*arrays, shuffle=False):
    return Batches(*arrays)  # fit shuffles the order of a PyDataset's batches


def data_loader(*arrays, shuffle=False):
    tensors = TensorDataset(*(torch.from_numpy(array) for array in arrays))
    return DataLoader(tensors, batch_size=PER_PROCESS, shuffle=shuffle)


def resume(results, start):
    """Trains on from a checkpoint written by one process."""
    keras.utils.set_random_seed(1 + RANK)
    model = keras.models.load_model(start)
    x, y = data(tokens=False, seed=2)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    for number, variable in enumerate(model.trainable_variables):
        results[f"resumed/weight{number}"] = variable.numpy()


class Stopped(Exception):
    pass


class StopAfterTwoEpochs(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise Stopped()


def back_up_and_restore(results, out):
    """Three epochs, stopped after the second and run again: the second run
    restores the backup and trains the third epoch only."""
    model = build("simple")
    x, y = data(tokens=False)
    backup = keras.callbacks.BackupAndRestore(f"{out}/backup")
    try:
        model.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=3,
            callbacks=[backup, StopAfterTwoEpochs()],
            verbose=0,
        )
    except Stopped:
        pass
    model = build("simple")  # a fresh start, as after a crash
    backup = keras.callbacks.BackupAndRestore(f"{out}/backup")
    history = model.fit(x, y, batch_size=BATCH, epochs=3, callbacks=[backup], verbose=0)
    results["backup/epochs"] = np.array(history.epoch)
    for number, variable in enumerate(model.trainable_variables):
        results[f"backup/weight{number}"] = variable.numpy()


def stateful(results):
    model = Seq2Seq(**VECTOR, batch_size=BATCH, stateful=True)
    x, y = data(tokens=False, rows=16)
    try:
        model.fit(x, y, batch_size=BATCH, verbose=0)
        results["stateful"] = np.array("trained")
    except ValueError as error:
        results["stateful"] = np.array(str(error))


def run(out, start):
    """Runs every case. Returns what this process got, by name."""
    results = {}
    for name in CASES:
        train_on_arrays(results, name, out)
    train_on_batches(results, "py_dataset", py_dataset)
    train_on_batches(results, "data_loader", data_loader)
    resume(results, start)
    back_up_and_restore(results, out)
    stateful(results)
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, start = sys.argv[1:3]
    results = run(out, start)
    np.savez(f"{out}/results-{os.environ.get('RANK', 'single')}.npz", **results)
