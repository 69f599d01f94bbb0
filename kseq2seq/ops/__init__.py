"""The recurrent kernels behind every kseq2seq layer.

This is the one interface between the layers and the math:

- `kernel_for(cell)` returns a `RecurrentKernel` with `project(inputs,
  start, stop)` (the input projection `x @ W + b`, or a slice of its rows)
  and `step(projected, states)` (one recurrence step);
- `run_layer(kernels, inputs, initial_states, mask)` runs one layer, in one
  or both directions, over a whole sequence;
- `run_sequence(kernel, projected, initial_state, mask, reverse)` runs one
  layer (or a `SharedStateStack` of layers) over a projected sequence;
- `step_stack(kernels, projected, states, shared_state, dropout_masks)` runs
  one time step through a stack of layers;
- `reverse_valid_steps(sequences, mask)` reverses each sequence's valid
  steps, leaving the padding in place;
- `dense(layer, inputs)` and `embed(layer, ids)` compute a built
  `keras.layers.Dense` or `Embedding` layer inside the step loops, where
  Keras' per-operation dispatch would cost more than the math at small
  batches;
- `weight(variable)` reads a weight as the kernels do, and
  `weights_read_once()` is a block in which the PyTorch kernels read each
  weight once, for a forward pass or a decoding search, whose step loops
  read every weight at every step and assign none.

Two implementations give the same results: `generic` with `keras.ops`, and
`torch_kernels`, which calls PyTorch directly and fuses whole layers into
one `torch._VF` call. The PyTorch kernels are used for Keras' LSTM, GRU and
SimpleRNN cells with their standard activations; `fast_kernels(False)`
turns them off, for example to compare the two.

How a recurrence ran can be observed: inside `with count_runs() as counts:`
every call through this interface is counted in `counts`, a `RunCounts`
with `fused` (layers run in fused whole-sequence calls), `loops` (sequences
run in a Python loop over time steps, one per direction) and `steps`
(single steps through `step_stack`). A layer whose inputs are all known
should show only fused runs:

    with count_runs() as counts:
        encoder(inputs)
    assert counts == RunCounts(fused=encoder.depth)
"""

import contextlib
import dataclasses
import weakref

from kseq2seq.ops import generic
from kseq2seq.ops import torch_kernels
from kseq2seq.ops.generic import RecurrentKernel
from kseq2seq.ops.generic import SharedStateStack
from kseq2seq.ops.generic import reverse_valid_steps

_fast_kernels = True


@contextlib.contextmanager
def fast_kernels(enabled=True):
    """Turns the PyTorch kernels on or off inside a `with` block."""
    global _fast_kernels
    previous, _fast_kernels = _fast_kernels, bool(enabled)
    try:
        yield
    finally:
        _fast_kernels = previous


# Kernels hold no state of their own, only their cell: one per cell and
# path is enough, and decoding loops ask for them at every step.
_kernels = weakref.WeakKeyDictionary()


def kernel_for(cell):
    """Returns the `RecurrentKernel` that computes `cell`'s math."""
    per_path = _kernels.get(cell)
    if per_path is None:
        per_path = _kernels[cell] = {"supported": torch_kernels.supports(cell)}
    fast = _fast_kernels and per_path["supported"]
    kernel = per_path.get(fast)
    if kernel is None:
        kernel = torch_kernels.kernel_for(cell) if fast else generic.kernel_for(cell)
        per_path[fast] = kernel
    return kernel


def weight(variable):
    """A Keras variable's value, as the kernels read it: once per
    `weights_read_once()` block on the PyTorch path."""
    if _fast_kernels:
        return torch_kernels._tensor(variable)
    return variable


def weights_read_once():
    """A `with` block in which the PyTorch kernels read each variable once;
    see `torch_kernels.weights_read_once`."""
    return torch_kernels.weights_read_once()


def dense(layer, inputs):
    """`layer.call(inputs)` for a built `keras.layers.Dense`."""
    if _fast_kernels:
        return torch_kernels.dense(layer, inputs)
    return layer.call(inputs)


def embed(layer, ids):
    """`layer.call(ids)` for a built `keras.layers.Embedding`."""
    if _fast_kernels:
        return torch_kernels.embed(layer, ids)
    return layer.call(ids)


@dataclasses.dataclass
class RunCounts:
    """How the recurrences inside a `count_runs()` block ran.

    Attributes:
        fused: layers (one or both directions) run by `run_layer` in fused
            whole-sequence calls.
        loops: sequences run in a Python loop over time steps: one per
            `run_sequence` call (a layer, or a `SharedStateStack`) and one
            per direction of a `run_layer` call that could not be fused.
        steps: single time steps through a stack of layers (`step_stack`
            calls, as decoding loops make).
    """

    fused: int = 0
    loops: int = 0
    steps: int = 0


# The `RunCounts` of the open `count_runs()` blocks, innermost first; `None`
# when nothing is recorded, so that the calls below pay for one check only.
_recording = None


@contextlib.contextmanager
def count_runs():
    """Counts how recurrences run inside a `with` block.

    Blocks may be nested; each counts every run inside it.

    Returns:
        A context manager that yields a `RunCounts`, updated while the
        block runs.

    Example:

        >>> cell = keras.layers.LSTMCell(4)
        >>> cell.build((None, 3))
        >>> inputs, states = np.ones((2, 5, 3)), [[np.zeros((2, 4))] * 2]
        >>> with count_runs() as counts:
        ...     _ = run_layer([kernel_for(cell)], inputs, states)
        >>> counts
        RunCounts(fused=1, loops=0, steps=0)
    """
    global _recording
    counts = RunCounts()
    previous = _recording
    _recording = (counts,) + (previous or ())
    try:
        yield counts
    finally:
        _recording = previous


def _record(field, number=1):
    for counts in _recording:
        setattr(counts, field, getattr(counts, field) + number)


def run_layer(layer_kernels, inputs, initial_states, mask=None):
    """Runs one layer in one or both directions; see `generic.run_layer`.

    The whole layer runs in fused calls when its kernels allow it, in a
    step loop per direction otherwise.
    """
    if all(isinstance(k, torch_kernels.FUSABLE) for k in layer_kernels):
        result = torch_kernels.run_layer(layer_kernels, inputs, initial_states, mask)
        if result is not None:
            if _recording is not None:
                _record("fused")
            return result
    if _recording is not None:
        _record("loops", len(layer_kernels))
    return generic.run_layer(layer_kernels, inputs, initial_states, mask)


def run_sequence(kernel, projected, initial_state, mask=None, reverse=False):
    """Runs one layer or stack over a projected sequence, step by step; see
    `generic.run_sequence`."""
    if _recording is not None:
        _record("loops")
    return generic.run_sequence(kernel, projected, initial_state, mask, reverse)


def step_stack(kernels, projected, states, shared_state=False, dropout_masks=None):
    """One time step through a stack of layers; see `generic.step_stack`."""
    if _recording is not None:
        _record("steps")
    return generic.step_stack(kernels, projected, states, shared_state, dropout_masks)


__all__ = [
    "RecurrentKernel",
    "RunCounts",
    "SharedStateStack",
    "count_runs",
    "dense",
    "embed",
    "fast_kernels",
    "kernel_for",
    "reverse_valid_steps",
    "run_layer",
    "run_sequence",
    "step_stack",
]
