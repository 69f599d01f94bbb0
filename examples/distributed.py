"""
Title: Data-parallel training with torchrun
Description: An ordinary single-process training script that trains
data-parallel when torchrun starts it, and the speed-up it gets.

`python examples/distributed.py` trains SimpleSeq2Seq, Seq2Seq and
AttentionSeq2Seq in one process. `torchrun --nproc_per_node=2
examples/distributed.py` runs the same script in 2 processes, which split
every batch (gloo on CPUs, NCCL on GPUs). `python examples/distributed.py
--speedup` runs it under torchrun with 1, then 2 processes and prints the
speed-up (a minute or two on a CPU); `--quick` is a seconds-long smoke run
in 2 processes.
"""

import argparse
import os
import re
import subprocess
import sys
import time

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402

from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq import SimpleSeq2Seq  # noqa: E402
from kseq2seq import distributed  # noqa: E402
from kseq2seq.data import reverse_task  # noqa: E402

BUILDERS = {"simple": SimpleSeq2Seq, "seq2seq": Seq2Seq, "attention": AttentionSeq2Seq}

"""## The model

Nothing here knows about processes. The models learn to reverse sequences
of one-hot digits; the two with a feedback decoder read the true previous
digit during training (teacher forcing).
"""


# --8<-- [start:model]
def build(name, hidden_dim):
    keras.utils.set_random_seed(0)
    options = {} if name == "simple" else {"teacher_force": True}
    model = BUILDERS[name](
        input_dim=10,
        input_length=8,
        hidden_dim=hidden_dim,
        output_length=8,
        output_dim=10,
        output_activation="softmax",
        **options,
    )
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
        metrics=["categorical_accuracy"],
    )
    return model


# --8<-- [end:model]

"""## Training

`fit`, `evaluate` and `save` as in any Keras script. Under torchrun,
`batch_size` is the global batch: each of N processes computes the
gradients of `batch_size / N` rows of every batch, and all apply the
gradients of the whole batch. The logs are those of the whole batch too,
the same in every process; only rank 0 prints the progress bar and writes
the file. `EpochTimer` measures the training speed for the speed-up below.
"""


# --8<-- [start:train]
class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def train(name, args):
    x, y = reverse_task(args.samples, length=8, num_symbols=10, seed=0)
    x_test, y_test = reverse_task(500, length=8, num_symbols=10, seed=1)
    model = build(name, args.hidden_dim)
    timer = EpochTimer()
    model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        callbacks=[timer],
        verbose=2,
    )
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    model.save(os.path.join(args.out, f"distributed_{name}.keras"))
    # The first epoch warms up; later ones measure the speed.
    seconds = timer.seconds[1:] or timer.seconds
    speed = len(seconds) * len(x) / sum(seconds)
    # Every process prints this line, with the same loss and accuracy.
    print(
        f"process {distributed.rank()}: {name}: held-out loss {loss:.3f}, "
        f"accuracy {accuracy:.3f}, {speed:.0f} sequences/s"
    )


# --8<-- [end:train]

"""## The speed-up

`--speedup` starts the script under torchrun with 1 process, then with 2,
on the same global batches, and compares the speeds they print. Each
process runs one PyTorch thread (`OMP_NUM_THREADS=1`, which torchrun sets
for more than one process), the single one too: for these small recurrent
models more threads only contend for the cores.
"""


# --8<-- [start:speedup]
def run_under_torchrun(processes, arguments):
    """Runs this script in `processes` processes. Returns its output."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={processes}", __file__, *arguments]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    return result.stdout


def speeds(output):
    found = re.findall(r"process 0: (\w+): .*, (\d+) sequences/s", output)
    return {name: float(speed) for name, speed in found}


def compare(arguments, processes):
    one = speeds(run_under_torchrun(1, arguments))
    many = speeds(run_under_torchrun(processes, arguments))
    for name in one:
        print(
            f"{name:>9}: {processes} processes train {many[name] / one[name]:.2f}x "
            f"as fast as 1 ({many[name]:.0f} vs {one[name]:.0f} sequences/s)"
        )


# --8<-- [end:speedup]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument("--speedup", action="store_true", help="1 vs N processes")
    parser.add_argument("--processes", type=int, default=2, help="for --speedup")
    parser.add_argument("--out", default=".", help="where the models are saved")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(BUILDERS),
        default=["simple", "seq2seq", "attention"],
    )
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden-dim", type=int, default=128)
    return parser.parse_args()


def worker_arguments(args):
    """The command line of the processes `--quick` and `--speedup` start."""
    return [
        *("--models", *args.models, f"--out={args.out}"),
        f"--samples={args.samples}",
        f"--batch-size={args.batch_size}",
        f"--epochs={args.epochs}",
        f"--hidden-dim={args.hidden_dim}",
    ]


if __name__ == "__main__":
    args = parse_args()
    if args.quick:  # a smoke run of the script under torchrun
        args.samples, args.batch_size, args.epochs, args.hidden_dim = 128, 32, 2, 16
        print(run_under_torchrun(2, worker_arguments(args)))
    elif args.speedup:
        compare(worker_arguments(args), args.processes)
    else:
        for name in args.models:
            train(name, args)
