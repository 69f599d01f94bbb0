"""The recurrent kernels behind every kseq2seq layer.

This is the one interface between the layers and the math:

- `kernel_for(cell)` returns a `RecurrentKernel` with `project(inputs,
  start, stop)` (the input projection `x @ W + b`, or a slice of its rows)
  and `step(projected, states)` (one recurrence step);
- `run_sequence(kernel, projected, initial_state, mask, reverse)` runs one
  layer (or a `SharedStateStack` of layers) over a whole sequence;
- `step_stack(kernels, projected, states, shared_state, dropout_masks)` runs
  one time step through a stack of layers.

The implementation here uses `keras.ops`. A faster one may replace these
functions without touching the layers, as long as it gives the same results.
"""

from kseq2seq.ops.generic import RecurrentKernel
from kseq2seq.ops.generic import SharedStateStack
from kseq2seq.ops.generic import kernel_for
from kseq2seq.ops.generic import run_sequence
from kseq2seq.ops.generic import step_stack

__all__ = [
    "RecurrentKernel",
    "SharedStateStack",
    "kernel_for",
    "run_sequence",
    "step_stack",
]
