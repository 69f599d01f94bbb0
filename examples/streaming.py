"""
Title: Train on data generated on the fly
Description: Train a token model from a `keras.utils.PyDataset` and a vector
model from a PyTorch `DataLoader`, both producing every batch when it is
asked for, so no dataset is ever held in memory, with the callbacks that stop
a diverging run and keep the best checkpoint.

Run `python examples/streaming.py` (about two minutes on a laptop CPU), or
`python examples/streaming.py --quick` for a seconds-long smoke run. The best
checkpoints are written to `--out DIR` (default: the current directory).
"""

import argparse
import os

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq import Vocabulary  # noqa: E402
from kseq2seq.data import addition_task  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
parser.add_argument("--out", default=".", help="directory for the checkpoints")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
keras.utils.set_random_seed(0)

"""## Token batches from a PyDataset

Batch `index` of epoch `epoch` is drawn from its own seed, `(seed, epoch,
index)`: any batch can be produced again, in any order and by any worker,
and every training epoch sees new sums, while the validation batches stay
the same. Nothing but the seeds is stored.
"""

# --8<-- [start:pydataset]
DIGITS = 2
vocab = Vocabulary(list("0123456789+"))
QUERY_LENGTH, ANSWER_LENGTH = 2 * DIGITS + 1, DIGITS + 2  # answer, end id


class AdditionBatches(keras.utils.PyDataset):
    """`batches` batches of `batch_size` sums, "12+34" -> "46", as ids; new
    sums every epoch if `fresh`."""

    def __init__(self, batches, batch_size=64, seed=0, fresh=True, **kwargs):
        super().__init__(**kwargs)  # workers, use_multiprocessing, ...
        self.batches, self.batch_size, self.seed = batches, batch_size, seed
        self.fresh, self.epoch = fresh, 0

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        seed = [self.seed, self.epoch, index]
        queries, answers = addition_task(self.batch_size, DIGITS, seed=seed)
        x = vocab.encode(queries, max_length=QUERY_LENGTH)
        y = vocab.encode(answers, max_length=ANSWER_LENGTH, add_end=True)
        return x, y

    def on_epoch_end(self):
        self.epoch += self.fresh


# --8<-- [end:pydataset]

"""## Training with TerminateOnNaN and a best-only checkpoint

`TerminateOnNaN` stops at the first batch whose loss is NaN or infinite, and
`ModelCheckpoint(save_best_only=True)` only ever writes an epoch whose loss
improved, which a NaN loss never does: the checkpoint on disk stays the last
good model even if the run diverges.
"""

# --8<-- [start:fit_tokens]
steps, epochs = (20, 1) if args.quick else (200, 12)
model = AttentionSeq2Seq(
    input_vocab_size=len(vocab),
    output_vocab_size=len(vocab),
    output_length=ANSWER_LENGTH,
    hidden_dim=64,
    teacher_force=True,
)
addition_path = os.path.join(args.out, "addition.keras")
model.fit(
    AdditionBatches(steps),
    validation_data=AdditionBatches(4, seed=1, fresh=False),
    epochs=epochs,
    verbose=2,
    callbacks=[
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(
            addition_path, monitor="val_loss", save_best_only=True
        ),
    ],
)
# --8<-- [end:fit_tokens]

# --8<-- [start:check_tokens]
best = keras.models.load_model(addition_path)
x_new, y_new = AdditionBatches(1, batch_size=500, seed=2)[0]
ids, _ = best.generate(x_new)
predicted, expected = vocab.decode(ids), vocab.decode(y_new)
exact = np.mean([p == e for p, e in zip(predicted, expected)])
print(f"sums answered exactly by the best checkpoint: {exact:.2f}")
for query, answer in zip(vocab.decode(x_new[:3]), predicted[:3]):
    print(f"{query} = {answer}")
# --8<-- [end:check_tokens]

"""## Vector windows from a torch DataLoader

An `IterableDataset` that never ends: noisy sine waves of random frequency
and phase, cut into 24 steps to read and 8 to forecast. With several loader
workers, each draws from its own seed.
"""


# --8<-- [start:dataloader]
class SineWindows(torch.utils.data.IterableDataset):
    """Endless `(24 steps, 8 next steps)` windows of noisy sine waves."""

    def __init__(self, seed=0):
        self.seed = seed

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, worker.id if worker else 0])
        steps = np.arange(32, dtype="float32")
        while True:
            frequency, phase = rng.uniform(0.1, 0.5), rng.uniform(0, 2 * np.pi)
            wave = np.sin(frequency * steps + phase) + rng.normal(0, 0.05, 32)
            wave = torch.from_numpy(wave.astype("float32")[:, None])
            yield wave[:24], wave[24:]


loader = torch.utils.data.DataLoader(SineWindows(), batch_size=64)
validation = torch.utils.data.DataLoader(SineWindows(seed=1), batch_size=64)
# --8<-- [end:dataloader]

# --8<-- [start:fit_vectors]
steps, epochs = (20, 1) if args.quick else (100, 8)
forecaster = Seq2Seq(
    input_dim=1,
    hidden_dim=32,
    output_length=8,
    output_dim=1,
    check_inputs=True,  # a NaN from a sensor stops training with its position
)
forecaster.compile(loss="mse", optimizer=keras.optimizers.Adam(3e-3))
sine_path = os.path.join(args.out, "sine.keras")
forecaster.fit(
    loader,
    steps_per_epoch=steps,  # the stream never ends: say what an epoch is
    shuffle=False,  # the loader decides the order
    validation_data=validation,
    validation_steps=4,
    epochs=epochs,
    verbose=2,
    callbacks=[
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(
            sine_path, monitor="val_loss", save_best_only=True
        ),
    ],
)
# --8<-- [end:fit_vectors]

# --8<-- [start:check_vectors]
x_new, y_new = next(iter(torch.utils.data.DataLoader(SineWindows(2), 500)))
x_new, y_new = x_new.numpy(), y_new.numpy()
forecast = keras.models.load_model(sine_path).predict(x_new, verbose=0)
model_error = np.mean((forecast - y_new) ** 2)
repeat_last = np.mean((x_new[:, -1:] - y_new) ** 2)  # a naive forecast
print(f"forecast MSE {model_error:.4f}; repeating the last value: {repeat_last:.4f}")
# --8<-- [end:check_vectors]
