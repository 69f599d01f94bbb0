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
  steps, leaving the padding in place.

Two implementations give the same results: `generic` with `keras.ops`, and
`torch_kernels`, which calls PyTorch directly and fuses whole layers into
one `torch._VF` call. The PyTorch kernels are used for Keras' LSTM, GRU and
SimpleRNN cells with their standard activations; `fast_kernels(False)`
turns them off, for example to compare the two.
"""

import contextlib
import weakref

from kseq2seq.ops import generic
from kseq2seq.ops import torch_kernels
from kseq2seq.ops.generic import RecurrentKernel
from kseq2seq.ops.generic import SharedStateStack
from kseq2seq.ops.generic import reverse_valid_steps
from kseq2seq.ops.generic import run_sequence
from kseq2seq.ops.generic import step_stack

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
    fast = _fast_kernels and torch_kernels.supports(cell)
    per_path = _kernels.setdefault(cell, {})
    kernel = per_path.get(fast)
    if kernel is None:
        kernel = torch_kernels.kernel_for(cell) if fast else generic.kernel_for(cell)
        per_path[fast] = kernel
    return kernel


def run_layer(layer_kernels, inputs, initial_states, mask=None):
    """Runs one layer in one or both directions; see `generic.run_layer`."""
    if all(isinstance(k, torch_kernels.FUSABLE) for k in layer_kernels):
        result = torch_kernels.run_layer(layer_kernels, inputs, initial_states, mask)
        if result is not None:
            return result
    return generic.run_layer(layer_kernels, inputs, initial_states, mask)


__all__ = [
    "RecurrentKernel",
    "SharedStateStack",
    "fast_kernels",
    "kernel_for",
    "reverse_valid_steps",
    "run_layer",
    "run_sequence",
    "step_stack",
]
