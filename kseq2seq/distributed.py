"""Data-parallel `fit`, `evaluate` and `predict` on `torch.distributed`.

Started by `torchrun --nproc_per_node=N`, an unchanged single-process script
trains data-parallel: kseq2seq reads the environment torchrun sets
(`WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), joins
the process group at the first `fit`, `evaluate` or `predict` (gloo on the
CPU, NCCL on GPUs), and from then on every process runs the same steps on
its share of every batch:

- `batch_size` is the global batch, as in `keras.distribution`: each
  process takes its rows of every batch, and the gradients are combined so
  that every optimizer step is the step one process would take on the whole
  batch.
- At the start of `fit` every process takes rank 0's weights, optimizer
  state and random state (so all shuffle alike), as
  `DistributedDataParallel` takes rank 0's weights when it wraps a model.
- Losses and metrics are combined over the processes at every step: logs,
  progress bars, `History` and the results of `evaluate` are the global
  values, the same on every process. `predict` returns every prediction,
  in order, on every process.
- Only rank 0 prints progress bars and writes files: elsewhere
  `model.save` and `model.save_weights` write nothing, and
  `ModelCheckpoint`, `CSVLogger` and `TensorBoard` are left out.

Keras 3.15 on PyTorch has no data-parallel `fit` of its own. When the
installed Keras has one and it is configured
(`keras.distribution.distribution()` is a `DataParallel`), kseq2seq steps
aside and lets Keras do the work.

See the "Distributed training" guide and `examples/distributed.py`.
"""

import contextlib
import datetime
import functools
import inspect
import itertools
import os
import random

import keras
import numpy as np
import torch
from torch import distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data import DistributedSampler

from kseq2seq import _validate
from kseq2seq import callbacks as callbacks_module

__all__ = ["enable", "initialize", "rank", "world_size"]

# Long enough for a slow first step or a large checkpoint on rank 0, short
# enough that a process that hangs ends the run.
DEFAULT_TIMEOUT = 600.0


def _enabled_by_environment():
    """`KSEQ2SEQ_DISTRIBUTED=0` (or false, off, no) turns it off."""
    value = os.environ.get("KSEQ2SEQ_DISTRIBUTED", "1")
    return value.strip().lower() not in ("0", "false", "off", "no")


_SETTINGS = {
    "enabled": _enabled_by_environment(),
    "rank_zero_only": True,
    "timeout": None,
}


def enable(enabled=True, rank_zero_only=True):
    """Turns data-parallel training under torchrun on or off.

    It is on by default; the environment variable `KSEQ2SEQ_DISTRIBUTED=0`
    turns it off before the script starts. Turned off, every process trains
    its own model on all of the data, as if it were alone.

    Args:
        enabled: bool. Whether `fit`, `evaluate` and `predict` split their
            batches over the processes of the group.
        rank_zero_only: bool. Whether only the process of rank 0 prints
            progress bars and writes files. `False` lets every process do
            both, for example to write each to its own directory.

    Example:

        >>> from kseq2seq import distributed
        >>> distributed.enable(False)  # each process trains on its own
        >>> distributed.world_size()
        1
        >>> distributed.enable()
    """
    _SETTINGS["enabled"] = _validate.boolean("enabled", enabled)
    _SETTINGS["rank_zero_only"] = _validate.boolean("rank_zero_only", rank_zero_only)


def initialize(backend=None, timeout=None):
    """Joins the process group that torchrun's environment describes.

    `fit`, `evaluate` and `predict` call it when they first run under
    torchrun; call it yourself to choose the backend or the timeout. It
    does nothing when a process group is initialised already, by this
    function or by your own `torch.distributed.init_process_group` call.

    Args:
        backend: `"gloo"`, `"nccl"` or `None`: NCCL when PyTorch sees a GPU,
            gloo otherwise.
        timeout: float > 0, in seconds, or `None`. How long a process waits
            for the others at any step before it stops with an error, so that
            a process that died or hangs ends the run. Defaults to the
            environment variable `KSEQ2SEQ_DISTRIBUTED_TIMEOUT`, or 600.
    """
    if dist.is_initialized():
        return
    if timeout is None:
        timeout = float(os.environ.get("KSEQ2SEQ_DISTRIBUTED_TIMEOUT", DEFAULT_TIMEOUT))
    timeout = _validate.real("timeout", timeout, 0, include_minimum=False)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    _pin_device()
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    _SETTINGS["timeout"] = timeout


def world_size():
    """The number of processes `fit` splits its batches over.

    1 when the script runs alone, when data parallelism is turned off
    (`enable(False)`), or when Keras' own `DataParallel` distribution is in
    charge. Under torchrun it joins the process group first.
    """
    if not _SETTINGS["enabled"] or _keras_distributes():
        return 1
    if not dist.is_available():
        return 1
    if not dist.is_initialized():
        if not _launched():
            return 1
        initialize()
    return dist.get_world_size()


def rank():
    """This process's rank in the group, 0 when it runs alone."""
    return dist.get_rank() if world_size() > 1 else 0


def _launched():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def _pin_device():
    # Keras creates weights on the current CUDA device: each process takes
    # the GPU of its local rank before any model is built.
    local_rank = int(os.environ.get("LOCAL_RANK", "-1"))
    if torch.cuda.is_available() and 0 <= local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)


def _keras_distributes():
    """Whether Keras' own `DataParallel` distribution is configured."""
    current = keras.distribution.distribution()
    return isinstance(current, keras.distribution.DataParallel)


if _SETTINGS["enabled"] and _launched():
    _pin_device()


# The trainer's entry points. `Seq2SeqModel` hands its calls to these, which
# call Keras' own method, unchanged when the script runs alone.


def fit(model, keras_fit, *args, **kwargs):
    """`keras_fit(*args, **kwargs)`, data-parallel under torchrun."""
    if world_size() == 1:
        return keras_fit(*args, **kwargs)
    arguments = _bind(keras_fit, args, kwargs)
    _refuse_stateful(model)
    arguments["x"], local = _shard(arguments.get("x"), pad=True)
    validation = arguments.get("validation_data")
    if validation is not None and not isinstance(validation, (list, tuple)):
        arguments["validation_data"] = _shard(validation, pad=True)[0]
    _quiet_other_ranks(arguments)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    optimizer_variables = model.optimizer.variables if model.optimizer else []
    _broadcast(list(model.variables) + list(optimizer_variables))
    _share_random_state()
    # Compiled as Keras compiles its train step, but for the all-reduce.
    backward = torch.compile(_backward) if model.jit_compile else _backward
    step = functools.partial(_train_step, model, local, backward)
    with _installed(model, "train_function", _steps(step)):
        return keras_fit(**arguments)


def evaluate(model, keras_evaluate, *args, **kwargs):
    """`keras_evaluate(*args, **kwargs)`, data-parallel under torchrun."""
    if world_size() == 1:
        return keras_evaluate(*args, **kwargs)
    arguments = _bind(keras_evaluate, args, kwargs)
    _refuse_stateful(model)
    arguments["x"], local = _shard(arguments.get("x"), pad=True)
    _quiet_other_ranks(arguments)
    _broadcast(model.variables)
    step = functools.partial(_test_step, model, local)
    with _installed(model, "test_function", _steps(step, torch.no_grad)):
        return keras_evaluate(**arguments)


def predict(model, keras_predict, *args, **kwargs):
    """`keras_predict(*args, **kwargs)`, data-parallel under torchrun.

    Each process predicts its share of `x` and every process returns all
    the predictions, in the order of `x`.
    """
    if world_size() == 1:
        return keras_predict(*args, **kwargs)
    arguments = _bind(keras_predict, args, kwargs)
    _refuse_stateful(model)
    _quiet_other_ranks(arguments)
    _broadcast(model.variables)
    x, local = _shard(arguments["x"], pad=False)
    if local:
        return _predict_batches(keras_predict, arguments, x)
    return _predict_rows(keras_predict, arguments)


def writes_files():
    """Whether this process writes what `save` and `save_weights` write."""
    if not (_SETTINGS["rank_zero_only"] and _SETTINGS["enabled"]):
        return True
    if _keras_distributes():
        return True
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return not _launched() or os.environ["RANK"] == "0"


def _bind(method, args, kwargs):
    """The arguments of a call to `method`, all by name."""
    signature = inspect.signature(method)
    arguments = dict(signature.bind(*args, **kwargs).arguments)
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(arguments.pop(name, {}))
    return arguments


def _refuse_stateful(model):
    spec = getattr(model, "spec", None)
    if spec is not None and spec.stateful:
        raise ValueError(
            "A `stateful=True` model carries its states from one batch to the "
            "next, which splitting every batch over processes would break. "
            "Train it in one process (without torchrun, or after "
            "`kseq2seq.distributed.enable(False)`). Received: stateful=True "
            f"with {dist.get_world_size()} processes"
        )


def _quiet_other_ranks(arguments):
    """Progress bars and log files from rank 0 only."""
    if not _SETTINGS["rank_zero_only"] or dist.get_rank() == 0:
        return
    arguments["verbose"] = 0
    callbacks = arguments.get("callbacks")
    if isinstance(callbacks, (list, tuple)):
        writers = (
            keras.callbacks.CSVLogger,
            keras.callbacks.ModelCheckpoint,
            keras.callbacks.TensorBoard,
            callbacks_module.TensorBoard,
        )
        arguments["callbacks"] = [
            _RestoreOnly(c) if isinstance(c, keras.callbacks.BackupAndRestore) else c
            for c in callbacks
            if not isinstance(c, writers)
        ]


class _RestoreOnly(keras.callbacks.Callback):
    """A `BackupAndRestore` on a process that writes no files.

    It restores the backup when training starts, as rank 0's does, so that
    every process resumes at the same epoch; rank 0 alone backs up and
    deletes the backup.
    """

    def __init__(self, backup):
        super().__init__()
        self.backup = backup

    def set_model(self, model):
        super().set_model(model)
        self.backup.set_model(model)

    def on_train_begin(self, logs=None):
        self.backup.on_train_begin(logs)


@contextlib.contextmanager
def _installed(model, name, function):
    """`model.<name>` is `function` within the block.

    Keras' `make_train_function` and `make_test_function` keep a step
    function that is set already, so `fit` and `evaluate` run this one.
    """
    previous = getattr(model, name)
    setattr(model, name, function)
    try:
        yield
    finally:
        setattr(model, name, previous)


def _steps(step, context=contextlib.nullcontext):
    """A Keras step function: runs `step` on each batch it is given."""

    def step_function(data):
        logs = {}
        with context():
            for batch in data:
                logs = step(batch)
        return logs

    return step_function


# The steps. Each process runs the model on its rows; one all-reduce per
# step then sums, over the processes, the gradients and the loss (each
# weighted by the number of loss terms the process averaged over), the
# numbers of rows and terms, and the change the step made to each metric's
# variables. Every process applies the same sums, so the weights, the
# optimizer and the metrics stay the same everywhere.


def _train_step(model, local, backward, data):
    """One optimizer step on this process's rows of a batch.

    `backward` is `_backward`, or its `torch.compile`d version.
    """
    x, y, sample_weight, rows, metrics = _local_batch(model, local, data, training=True)
    loss = backward(model, x, y, sample_weight) if rows else None
    variables = model.trainable_variables
    gradients = [_gradient(variable, rows) for variable in variables]
    gradients, loss, rows = _combine(model, y, rows, loss, gradients, metrics)
    if variables:
        with torch.no_grad():
            model.optimizer.apply(gradients, variables)
    _track_loss(model, loss, rows)
    return model.get_metrics_result()


def _test_step(model, local, data):
    """One evaluation step on this process's rows of a batch."""
    x, y, sample_weight, rows, metrics = _local_batch(
        model, local, data, training=False
    )
    loss = _forward(model, x, y, sample_weight, training=False) if rows else None
    _, loss, rows = _combine(model, y, rows, loss, [], metrics)
    _track_loss(model, loss, rows)
    return model.get_metrics_result()


def _local_batch(model, local, data, training):
    """`(x, y, sample_weight, rows, metrics)` of this process's batch.

    `metrics` holds the metrics' state before the step.
    """
    if not local:
        data = _rows_of_rank(data)
    if hasattr(model, "step_batch"):
        # Teacher forcing reads the targets; `class_weight` weighs them.
        x, y, sample_weight = model.step_batch(data, training=training)
    else:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    return x, y, sample_weight, _count_rows(x), _MetricChanges(model)


def _forward(model, x, y, sample_weight, training):
    """The loss of a batch; updates the metrics."""
    y_pred = model(x, training=training)
    loss = model.compute_loss(
        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
    )
    model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    return loss


def _backward(model, x, y, sample_weight):
    """The loss of a batch; updates the metrics and computes the gradients."""
    model.zero_grad()
    loss = _forward(model, x, y, sample_weight, training=True)
    model.optimizer.scale_loss(loss).backward()
    return loss


def _gradient(variable, rows):
    gradient = variable.value.grad if rows else None
    return torch.zeros_like(variable.value) if gradient is None else gradient


def _combine(model, y, rows, loss, gradients, metrics):
    """Sums a step's results over the processes.

    Returns the gradients and the loss that one process would compute on
    the whole batch, and the number of rows of the batch. The metrics'
    variables take the values one process would give them.
    """
    device = metrics.device
    terms = _loss_terms(model, y, rows, device)
    loss = torch.zeros((), device=device) if loss is None else loss.detach()
    rows = torch.tensor(float(rows), device=device)
    scalars = torch.stack([terms, terms * loss.float(), rows])
    parts = [g * terms for g in gradients] + [scalars] + metrics.changes()
    dtype = functools.reduce(torch.promote_types, [p.dtype for p in parts])
    flat = torch.cat([part.reshape(-1).to(dtype) for part in parts])
    _collective(dist.all_reduce, flat)
    pieces = flat.split([part.numel() for part in parts])
    sums = [piece.reshape(part.shape) for piece, part in zip(pieces, parts)]
    total_terms, total_loss, total_rows = sums[len(gradients)]
    metrics.add(sums[len(gradients) + 1 :])
    if _sums_losses(model):
        scale = torch.ones_like(total_terms)
    else:  # a mean over 0 terms is 0, as Keras' losses make it
        scale = torch.where(total_terms > 0, 1 / total_terms, 0)
    gradients = [
        (total * scale).to(gradient.dtype) for total, gradient in zip(sums, gradients)
    ]
    return gradients, total_loss * scale, total_rows


def _loss_terms(model, y, rows, device):
    """How much this process's loss weighs in the loss of the whole batch.

    A loss with Keras' default reduction is a mean over its terms: over the
    rows of vector outputs, over the target ids that are not padding for
    token outputs (the padded ones are masked out). A loss with
    `reduction="sum"` adds its terms: every process weighs 1.
    """
    if not rows:
        return torch.zeros((), device=device)
    if getattr(model, "token_outputs", False) and not _sums_losses(model):
        return torch.count_nonzero(torch.as_tensor(y, device=device)).float()
    terms = 1 if _sums_losses(model) else rows
    return torch.tensor(float(terms), device=device)


def _sums_losses(model):
    return getattr(model.loss, "reduction", None) == "sum"


def _track_loss(model, loss, rows):
    # Keras' loss tracker, the "loss" of the logs: the mean of the batches'
    # losses weighted by their rows, as one process computes it.
    tracker = getattr(model, "_loss_tracker", None)
    if tracker is not None:
        tracker.update_state(loss, sample_weight=rows)


class _MetricChanges:
    """What a step changes in the variables of the model's metrics.

    Every built-in Keras metric keeps sums (totals, counts, confusion
    counts), so the sum of the processes' changes is the change one process
    would make on the whole batch.
    """

    def __init__(self, model):
        tracker = getattr(model, "_loss_tracker", None)
        self.variables = [
            variable
            for metric in model.metrics
            if metric is not tracker
            for variable in metric.variables
        ]
        self.before = [v.value.detach().clone() for v in self.variables]
        weights = model.trainable_variables or model.variables
        self.device = weights[0].value.device if weights else torch.device("cpu")

    def changes(self):
        return [v.value.detach() - b for v, b in zip(self.variables, self.before)]

    def add(self, changes):
        for variable, before, change in zip(self.variables, self.before, changes):
            variable.assign(before + change.to(before.dtype))


# Collectives.


def _collective(function, *args, **kwargs):
    """Runs a `torch.distributed` collective; a failure says what happened."""
    try:
        return function(*args, **kwargs)
    except RuntimeError as error:  # DistBackendError, timeouts, lost peers
        timeout = _SETTINGS["timeout"]
        waited = "" if timeout is None else f" within the timeout of {timeout:g} s"
        raise RuntimeError(
            f"Data-parallel training stopped: process {dist.get_rank()} of "
            f"{dist.get_world_size()} lost the others, one of which ended or "
            f"did not answer{waited} (set it with `kseq2seq.distributed."
            f"initialize(timeout=...)` or KSEQ2SEQ_DISTRIBUTED_TIMEOUT). "
            f"{type(error).__name__}: {error}"
        ) from error


def _broadcast(variables):
    """Every process takes rank 0's values of `variables`."""
    values = [variable.value.detach() for variable in variables]
    if not values:
        return
    # float64 holds every value of these dtypes exactly: float32 weights,
    # int32 seeds, int64 step counters.
    flat = torch.cat([value.reshape(-1).to(torch.float64) for value in values])
    _collective(dist.broadcast, flat, src=0)
    if dist.get_rank() == 0:
        return
    pieces = flat.split([value.numel() for value in values])
    for variable, value, piece in zip(variables, values, pieces):
        variable.assign(piece.reshape(value.shape).to(value.dtype))


def _share_random_state():
    """Every process takes rank 0's random state.

    Keras shuffles arrays with PyTorch's generator and the batches of a
    `PyDataset` with Python's: with rank 0's state, every process shuffles
    as rank 0, and as one process seeded like rank 0 would.
    """
    states = [torch.get_rng_state(), random.getstate(), np.random.get_state()]
    _collective(dist.broadcast_object_list, states, src=0)
    torch.set_rng_state(states[0])
    random.setstate(states[1])
    np.random.set_state(states[2])


def _gather(value):
    """The `value` of every process, in the order of their ranks."""
    values = [None] * dist.get_world_size()
    _collective(dist.all_gather_object, values, value)
    return values


# The data. Arrays (and anything else Keras batches) reach the steps as whole
# batches, the same on every process, and each process takes its rows. A
# PyDataset or DataLoader is split by batch: process r reads batches r,
# r + N, r + 2N, ..., and one step trains on N batches at once.


def _share(total, rank, size):
    """`(start, stop)`: the rows of `rank` among `total` rows.

    The first `total % size` processes take one row more than the others.
    """
    base, extra = divmod(total, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def _count_rows(data):
    leaves = [leaf for leaf in keras.tree.flatten(data) if leaf is not None]
    return int(leaves[0].shape[0]) if leaves else 0


def _slice(data, start, stop):
    return keras.tree.map_structure(
        lambda leaf: None if leaf is None else leaf[start:stop], data
    )


def _rows_of_rank(batch):
    start, stop = _share(_count_rows(batch), dist.get_rank(), dist.get_world_size())
    return _slice(batch, start, stop)


def _shard(data, pad):
    """`(data, local)`: this process's share of `data`, and whether its
    batches are this process's own (`False`: whole batches to take rows of).

    With `pad`, every process gets as many batches as the one with most:
    the others end with a batch of no rows, which trains on nothing but
    takes part in the step's all-reduce.
    """
    if isinstance(data, (_PyDatasetShard, _LoaderShard)):
        return data, True
    if isinstance(data, keras.utils.PyDataset):
        return _PyDatasetShard(data, pad), True
    if isinstance(data, DataLoader):
        if isinstance(data.sampler, DistributedSampler):
            return data, True  # split already, by the user
        return _LoaderShard(data, pad), True
    return data, False


def _shard_steps(total, pad):
    """How many of `total` batches, split by batch, this process reads."""
    rank, size = dist.get_rank(), dist.get_world_size()
    return -(-total // size) if pad else len(range(rank, total, size))


def _without_rows(batch):
    return _slice(batch, 0, 0)


class _PyDatasetShard(keras.utils.PyDataset):
    """Batches `rank`, `rank + N`, ... of a `PyDataset`."""

    def __init__(self, dataset, pad):
        super().__init__(
            workers=getattr(dataset, "workers", 1),
            use_multiprocessing=getattr(dataset, "use_multiprocessing", False),
            max_queue_size=getattr(dataset, "max_queue_size", 10),
        )
        self.dataset = dataset
        self.pad = pad
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    @property
    def num_batches(self):
        total = self.dataset.num_batches
        return None if total is None else _shard_steps(total, self.pad)

    def __getitem__(self, index):
        total = self.dataset.num_batches
        source = index * self.size + self.rank
        if total is None or source < total:
            return self.dataset[source]
        return _without_rows(self.dataset[total - 1])

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


class _LoaderShard(DataLoader):
    """Batches `rank`, `rank + N`, ... of a `DataLoader`.

    A loader with a batch sampler loads only these batches: the sampler's
    batches of indices are split. An iterable dataset's loader is read whole
    by every process, which keeps its share.
    """

    def __init__(self, loader, pad):
        super().__init__(loader.dataset, batch_size=loader.batch_size)
        self.loader = loader
        self.pad = pad
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.split_sampler = loader.batch_sampler is not None
        if self.split_sampler:
            self.source = DataLoader(
                loader.dataset,
                batch_sampler=_SampledBatches(loader.batch_sampler),
                **_loader_settings(loader),
            )

    def __len__(self):
        return _shard_steps(len(self.loader), self.pad)

    def __iter__(self):
        # The loader's iterator is made now, as a DataLoader makes its own
        # when asked: it draws its seed then, in the same order as in one
        # process.
        if self.split_sampler:
            return self._padded(iter(self.source), lambda: len(self.loader))
        self.read = 0
        return self._padded(self._strided(iter(self.loader)), lambda: self.read)

    def _strided(self, batches):
        for self.read, batch in enumerate(batches, start=1):
            if (self.read - 1) % self.size == self.rank:
                yield batch

    def _padded(self, batches, total):
        batch = None
        for batch in batches:
            yield batch
        if self.pad and _shard_steps(total(), False) < _shard_steps(total(), True):
            yield _without_rows(next(iter(self.loader)) if batch is None else batch)


class _SampledBatches(torch.utils.data.Sampler):
    """The batches of indices `rank`, `rank + N`, ... of a batch sampler."""

    def __init__(self, batch_sampler):
        self.batch_sampler = batch_sampler
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    def __iter__(self):
        return itertools.islice(iter(self.batch_sampler), self.rank, None, self.size)

    def __len__(self):
        return len(range(self.rank, len(self.batch_sampler), self.size))


def _loader_settings(loader):
    """The arguments a `DataLoader` was made with, but its data and batches."""
    names = [
        "num_workers",
        "collate_fn",
        "pin_memory",
        "timeout",
        "worker_init_fn",
        "multiprocessing_context",
        "generator",
        "persistent_workers",
        "pin_memory_device",
        "in_order",
    ]
    settings = {name: getattr(loader, name) for name in names if hasattr(loader, name)}
    if loader.num_workers:
        settings["prefetch_factor"] = loader.prefetch_factor
    return settings


# Predictions.


def _predict_rows(keras_predict, arguments):
    """Predicts this process's rows of the arrays; gathers all in order."""
    x = arguments["x"]
    size = dist.get_world_size()
    start, stop = _share(_count_rows(x), dist.get_rank(), size)
    outputs = None
    if stop > start:
        batch_size = arguments.get("batch_size") or 32
        arguments.update(x=_slice(x, start, stop), batch_size=-(-batch_size // size))
        outputs = keras_predict(**arguments)
    return _concatenate([part for part in _gather(outputs) if part is not None])


def _predict_batches(keras_predict, arguments, x):
    """Predicts this process's batches; gathers all in the order of `x`."""
    arguments["x"] = x
    if not isinstance(x, (_PyDatasetShard, _LoaderShard)):
        return keras_predict(**arguments)  # a DistributedSampler's share
    sizes = _BatchSizes()
    callbacks = arguments.get("callbacks")
    if isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks.callbacks.append(sizes)
    else:
        arguments["callbacks"] = list(callbacks or []) + [sizes]
    batches = []
    if _has_batches(x):
        outputs = keras_predict(**arguments)
        ends = np.cumsum(sizes.sizes)[:-1]
        splits = [np.split(leaf, ends) for leaf in keras.tree.flatten(outputs)]
        batches = [
            keras.tree.pack_sequence_as(outputs, [split[i] for split in splits])
            for i in range(len(sizes.sizes))
        ]
    # Batch i of process r is batch i * N + r of `x`.
    ordered = itertools.chain.from_iterable(itertools.zip_longest(*_gather(batches)))
    return _concatenate([batch for batch in ordered if batch is not None])


def _has_batches(x):
    if isinstance(x, keras.utils.PyDataset):
        return x.num_batches != 0
    return not hasattr(x.dataset, "__len__") or len(x) != 0


def _concatenate(parts):
    return keras.tree.map_structure(lambda *arrays: np.concatenate(arrays), *parts)


class _BatchSizes(keras.callbacks.Callback):
    """Records the number of rows of each predicted batch."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def on_predict_batch_end(self, batch, logs=None):
        outputs = keras.tree.flatten(logs["outputs"])[0]
        self.sizes.append(int(outputs.shape[0]))
