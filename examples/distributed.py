"""
Title: Data-parallel training with torch.distributed
Description: Train SimpleSeq2Seq, Seq2Seq and AttentionSeq2Seq with
DistributedDataParallel, one process per CPU core or GPU, and measure the
speed-up over one process.

Run `torchrun --nproc_per_node=2 examples/distributed.py` to train in 2
processes (gloo on CPUs, NCCL on GPUs). Started as
`python examples/distributed.py`, the script launches the processes itself:
1, then 2, and prints the speed-up (a minute or two on a CPU);
`--quick` is a seconds-long smoke run in 2 processes.
"""

import argparse
import os
import socket
import time

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402
from torch import distributed  # noqa: E402
from torch import multiprocessing  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.data import DistributedSampler  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq import SimpleSeq2Seq  # noqa: E402
from kseq2seq.data import reverse_task  # noqa: E402
from kseq2seq.distributed import train_step  # noqa: E402
from kseq2seq.distributed import wrap  # noqa: E402

BUILDERS = {"simple": SimpleSeq2Seq, "seq2seq": Seq2Seq, "attention": AttentionSeq2Seq}

"""## Joining the process group

torchrun starts one copy of this script per device and describes the group
in environment variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
`MASTER_PORT`), which `init_process_group` reads. On GPUs each process
takes the GPU of its local rank before any weight is created: Keras puts
the weights on the current CUDA device.
"""


# --8<-- [start:setup]
def setup():
    """Joins the process group. Returns `(rank, world_size)`."""
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        distributed.init_process_group("nccl")
    else:
        distributed.init_process_group("gloo")
    return distributed.get_rank(), distributed.get_world_size()


# --8<-- [end:setup]

"""## The models

Every process builds the same model: the same seed gives the same initial
weights (`wrap` also copies rank 0's weights to the others). The models
learn to reverse sequences of one-hot digits; the two with a feedback
decoder read the true previous digit during training (teacher forcing).
`train_step` uses what `compile` set: the loss and the optimizer.
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
    )
    return model


# --8<-- [end:model]

"""## The training loop

`wrap` puts the model in `DistributedDataParallel`. A `DistributedSampler`
hands each process its share of every shuffled epoch, so each global batch
of `global_batch` sequences is split over the processes, and `train_step`
runs forward and backward on the local share; DDP averages the gradients
during the backward pass, and every process applies the same update.
"""


# --8<-- [start:train]
def train(model, x, y, global_batch, epochs):
    """Trains on this process's share. Returns `(loss, seconds)` per epoch."""
    rank, world_size = distributed.get_rank(), distributed.get_world_size()
    ddp_model = wrap(model)
    dataset = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    sampler = DistributedSampler(dataset, world_size, rank, seed=0, drop_last=True)
    loader = DataLoader(
        dataset, batch_size=global_batch // world_size, sampler=sampler, drop_last=True
    )
    history = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # a new shuffle, the same in every process
        start = time.perf_counter()
        losses = [
            train_step(ddp_model, x_batch, y_batch) for x_batch, y_batch in loader
        ]
        loss = torch.stack(losses).mean()
        distributed.all_reduce(loss)  # summed over the processes, for the log
        history.append((float(loss) / world_size, time.perf_counter() - start))
    return history


# --8<-- [end:train]

"""## One process's work

Rank 0 alone evaluates, prints and saves: every process holds the same
weights. The barrier keeps the others from leaving the group before it is
done.
"""


# --8<-- [start:run]
def run(args):
    """Trains every model in this process. Returns rank 0's measurements."""
    rank, world_size = setup()
    num_train, hidden_dim = (128, 16) if args.quick else (args.samples, 128)
    x, y = reverse_task(num_train, length=8, num_symbols=10, seed=0)
    x_test, y_test = reverse_task(500, length=8, num_symbols=10, seed=1)
    results = {}
    for name in args.models:
        model = build(name, hidden_dim)
        history = train(model, x, y, args.global_batch, args.epochs)
        if rank == 0:
            # The first epoch warms up; later ones measure the throughput.
            timed = history[1:] or history
            samples = len(timed) * (num_train // args.global_batch) * args.global_batch
            speed = samples / sum(seconds for _, seconds in timed)
            predicted = model.predict(x_test, verbose=0).argmax(-1)
            accuracy = (predicted == y_test.argmax(-1)).mean()
            print(
                f"{name:>9}: {world_size} process(es), loss "
                f"{history[0][0]:.3f} -> {history[-1][0]:.3f}, held-out digit "
                f"accuracy {accuracy:.3f}, {speed:.0f} sequences/s"
            )
            model.save(os.path.join(args.out, f"distributed_{name}.keras"))
            results[name] = speed
        distributed.barrier()
    distributed.destroy_process_group()
    return results


# --8<-- [end:run]

"""## Starting the processes without torchrun

Started with plain `python`, the script launches the processes itself with
`torch.multiprocessing`, setting the variables torchrun would set, and one
thread per process (`OMP_NUM_THREADS=1`, as torchrun sets with more than
one process), also when it starts a single one: for these small recurrent
models more threads only contend for the cores.
"""


# --8<-- [start:launch]
def launch(args, world_size):
    """Runs `run` in `world_size` new processes. Returns rank 0's results."""
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world_size),
    )
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    context = multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    multiprocessing.start_processes(
        _process, (args, queue), nprocs=world_size, start_method="spawn"
    )
    return queue.get()


def _process(index, args, queue):
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    results = run(args)
    if index == 0:
        queue.put(results)


# --8<-- [end:launch]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument("--out", default=".", help="where rank 0 saves the models")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(BUILDERS),
        default=["simple", "seq2seq", "attention"],
    )
    parser.add_argument("--processes", type=int, default=2, help="without torchrun")
    parser.add_argument("--global-batch", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--samples", type=int, default=4096)
    args = parser.parse_args()
    if args.global_batch is None:
        args.global_batch = 32 if args.quick else 128
    if args.epochs is None:
        args.epochs = 2 if args.quick else 3
    return args


# --8<-- [start:main]
if __name__ == "__main__":
    args = parse_args()
    if "RANK" in os.environ:  # started by torchrun: this is one of the processes
        run(args)
    elif args.quick:
        launch(args, 2)
    else:
        processes = args.processes
        if torch.cuda.is_available():  # one process per GPU
            processes = min(processes, torch.cuda.device_count())
        one = launch(args, 1)
        if processes > 1:
            many = launch(args, processes)
            for name in args.models:
                print(
                    f"{name:>9}: {processes} processes train "
                    f"{many[name] / one[name]:.2f}x as fast as 1 "
                    f"({many[name]:.0f} vs {one[name]:.0f} sequences/s)"
                )
# --8<-- [end:main]
