"""Recurrent math written with `keras.ops`: the reference implementation.

Each supported Keras cell is split into its *input projection* (`x @ W + b`,
which does not depend on the recurrent state and can therefore be computed
for a whole sequence, or once per sequence for inputs that do not change
over time) and its *recurrence* (everything that needs the previous state).
The equations are those of `keras.layers.LSTMCell`, `GRUCell` and
`SimpleRNNCell`, so weights are interchangeable with stock Keras layers.
"""

import keras
from keras import ops


class RecurrentKernel:
    """The math of one recurrent cell, split into projection and recurrence.

    Args:
        cell: a built `keras.layers.LSTMCell`, `GRUCell` or `SimpleRNNCell`.
    """

    def __init__(self, cell):
        self.cell = cell
        self.units = cell.units

    @property
    def state_size(self):
        return [self.units]

    def input_bias(self):
        return self.cell.bias

    def project(self, inputs, start=0, stop=None, use_bias=True):
        """Projects `inputs` with the rows `start:stop` of the input kernel.

        `inputs` may have any number of leading axes. Splitting the rows lets
        a caller project the parts of a concatenated input separately (and
        some of them only once per sequence); the sum of the parts equals the
        projection of the concatenation.
        """
        kernel = self.cell.kernel
        if start != 0 or stop is not None:
            kernel = kernel[start:stop]
        projected = ops.matmul(inputs, kernel)
        bias = self.input_bias()
        if use_bias and bias is not None:
            projected = projected + bias
        return projected

    def step(self, projected, states):
        """One step from a projected input. Returns `(output, new_states)`."""
        raise NotImplementedError


class LSTMKernel(RecurrentKernel):
    @property
    def state_size(self):
        return [self.units, self.units]

    def step(self, projected, states):
        cell = self.cell
        h_tm1, c_tm1 = states
        z = projected + ops.matmul(h_tm1, cell.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = cell.recurrent_activation(z_i)
        f = cell.recurrent_activation(z_f)
        c = f * c_tm1 + i * cell.activation(z_c)
        o = cell.recurrent_activation(z_o)
        h = o * cell.activation(c)
        return h, [h, c]


class GRUKernel(RecurrentKernel):
    def input_bias(self):
        bias = self.cell.bias
        if bias is None or not self.cell.reset_after:
            return bias
        return bias[0]

    def step(self, projected, states):
        cell = self.cell
        units = self.units
        (h_tm1,) = states
        x_z = projected[..., :units]
        x_r = projected[..., units : 2 * units]
        x_h = projected[..., 2 * units :]
        if cell.reset_after:
            inner = ops.matmul(h_tm1, cell.recurrent_kernel)
            if cell.bias is not None:
                inner = inner + cell.bias[1]
            z = cell.recurrent_activation(x_z + inner[..., :units])
            r = cell.recurrent_activation(x_r + inner[..., units : 2 * units])
            hh = cell.activation(x_h + r * inner[..., 2 * units :])
        else:
            inner = ops.matmul(h_tm1, cell.recurrent_kernel[:, : 2 * units])
            z = cell.recurrent_activation(x_z + inner[..., :units])
            r = cell.recurrent_activation(x_r + inner[..., units:])
            hh = cell.activation(
                x_h + ops.matmul(r * h_tm1, cell.recurrent_kernel[:, 2 * units :])
            )
        h = z * h_tm1 + (1 - z) * hh
        return h, [h]


class SimpleRNNKernel(RecurrentKernel):
    def step(self, projected, states):
        (h_tm1,) = states
        h = self.cell.activation(
            projected + ops.matmul(h_tm1, self.cell.recurrent_kernel)
        )
        return h, [h]


_KERNELS = {
    keras.layers.LSTMCell: LSTMKernel,
    keras.layers.GRUCell: GRUKernel,
    keras.layers.SimpleRNNCell: SimpleRNNKernel,
}


def kernel_for(cell):
    """Returns the `RecurrentKernel` that computes `cell`'s math."""
    for cell_class, kernel_class in _KERNELS.items():
        if type(cell) is cell_class:
            return kernel_class(cell)
    raise ValueError(
        "kseq2seq supports keras.layers.LSTMCell, GRUCell and SimpleRNNCell. "
        f"Received: cell={cell!r}"
    )


class SharedStateStack:
    """A stack of cells that threads one state through every layer.

    At each step layer `k` starts from the state layer `k - 1` just produced
    and the top layer's state is carried to the next step (the reference
    project's `inner_broadcast_state`). It behaves as one kernel whose input
    is the bottom layer's projected input, so `run_sequence` can run it.

    Args:
        kernels: one `RecurrentKernel` per layer, bottom first; all must have
            the same state sizes.
        dropout_masks: optional per-layer input masks (entry 0 is ignored).
    """

    def __init__(self, kernels, dropout_masks=None):
        self.kernels = list(kernels)
        self.dropout_masks = dropout_masks
        self.units = self.kernels[-1].units

    @property
    def state_size(self):
        return self.kernels[0].state_size

    def step(self, projected, states):
        return step_stack(
            self.kernels,
            projected,
            states,
            shared_state=True,
            dropout_masks=self.dropout_masks,
        )


def _carry(mask_t, new, old):
    return ops.where(mask_t, new, old)


def run_sequence(kernel, projected, initial_state, mask=None, reverse=False):
    """Runs one recurrent layer over a projected sequence.

    Args:
        kernel: a `RecurrentKernel` or a `SharedStateStack`.
        projected: `(batch, time, gates)`, the (bottom) layer's input
            projection.
        initial_state: list of `(batch, units)` tensors.
        mask: optional boolean `(batch, time)`. At a masked step the state
            and the output of the previous step are carried forward, as in
            Keras' RNN layers, so the final state is the one of the last
            valid step and a reversed run starts at each sequence's true end.
        reverse: run from the last step to the first. Outputs stay aligned
            with the inputs.

    Returns:
        `(outputs, final_state)`, outputs of shape `(batch, time, units)`.
    """
    # Unstacked once: indexing `projected[:, t]` at every step would cost a
    # full-size gradient buffer per step in the backward pass.
    steps = ops.unstack(projected, axis=1)
    if mask is not None:
        mask_steps = ops.unstack(mask[..., None], axis=1)
    time_steps = len(steps)
    order = range(time_steps - 1, -1, -1) if reverse else range(time_steps)
    states = list(initial_state)
    previous_output = ops.zeros_like(states[0])
    outputs = [None] * time_steps
    for t in order:
        output, new_states = kernel.step(steps[t], states)
        if mask is not None:
            mask_t = mask_steps[t]
            new_states = [_carry(mask_t, n, o) for n, o in zip(new_states, states)]
            output = _carry(mask_t, output, previous_output)
        states = new_states
        previous_output = output
        outputs[t] = output
    return ops.stack(outputs, axis=1), states


def run_layer(layer_kernels, inputs, initial_states, mask=None):
    """One layer over a sequence, forwards and, with two kernels, backwards.

    Args:
        layer_kernels: `[forward]` or `[forward, backward]` kernels.
        inputs: `(batch, time, features)`, the layer's raw input.
        initial_states: one state list per direction.
        mask: optional boolean `(batch, time)`, as in `run_sequence`.

    Returns:
        `(outputs, final_states)`: outputs `(batch, time, units)` with the
        directions concatenated, and one final state list per direction.
    """
    outputs, final_states = [], []
    for direction, kernel in enumerate(layer_kernels):
        output, state = run_sequence(
            kernel,
            kernel.project(inputs),
            initial_states[direction],
            mask,
            reverse=direction == 1,
        )
        outputs.append(output)
        final_states.append(state)
    if len(outputs) == 1:
        return outputs[0], final_states
    return ops.concatenate(outputs, axis=-1), final_states


def step_stack(kernels, projected, states, shared_state=False, dropout_masks=None):
    """One time step through a stack of cells.

    Args:
        kernels: one `RecurrentKernel` per layer, bottom first.
        projected: the bottom layer's projected input, `(batch, gates)`.
        states: one state list per layer, or, with `shared_state`, a single
            state list threaded through every layer in turn (the state that
            layer `k` produces is layer `k + 1`'s previous state, and the top
            layer's state is carried to the next step).
        dropout_masks: optional per-layer input masks; entry 0 is ignored
            (the bottom layer's input is already projected).

    Returns:
        `(top_output, new_states)` with `new_states` shaped like `states`.
    """
    if shared_state:
        state = states
    else:
        new_states = []
    output = None
    for depth, kernel in enumerate(kernels):
        if depth > 0:
            layer_input = output
            if dropout_masks is not None and dropout_masks[depth] is not None:
                layer_input = layer_input * dropout_masks[depth]
            projected = kernel.project(layer_input)
        if shared_state:
            output, state = kernel.step(projected, state)
        else:
            output, layer_state = kernel.step(projected, states[depth])
            new_states.append(layer_state)
    return output, (state if shared_state else new_states)


def reverse_valid_steps(sequences, mask=None):
    """Reverses the order of each sequence's valid steps, wherever they are.

    The padding stays in place: with right padding `[a, b, c, 0, 0]` becomes
    `[c, b, a, 0, 0]`, with left padding `[0, 0, a, b, c]` becomes
    `[0, 0, c, b, a]`, and a mask with holes keeps its holes,
    `[a, 0, b, c]` becoming `[c, 0, b, a]`. A recurrence that skips the
    masked steps therefore reads each sequence reversed, however it is
    padded. Without a mask, the whole time axis is reversed. Applying it
    twice with the same mask gives the sequences back.

    Args:
        sequences: `(batch, time)` or `(batch, time, features)`.
        mask: optional boolean `(batch, time)`, true at the valid steps.

    Returns:
        A tensor shaped like `sequences`.
    """
    if mask is None:
        return ops.flip(sequences, axis=1)
    mask = ops.cast(mask, "bool")
    time_steps = ops.shape(sequences)[1]
    positions = ops.arange(time_steps, dtype="int32")[None, :]
    # The valid positions in order, then the padded ones: the k-th valid step
    # of a row sits at `valid_positions[k]`.
    valid_positions = ops.argsort(ops.where(mask, positions, positions + time_steps))
    valid_positions = ops.cast(valid_positions, "int32")
    rank = ops.cumsum(ops.cast(mask, "int32"), axis=1) - 1
    count = rank[:, -1:] + 1
    # The k-th valid step swaps places with the (count - 1 - k)-th; a padded
    # step stays where it is.
    mirrored = ops.take_along_axis(valid_positions, ops.maximum(count - 1 - rank, 0), 1)
    indices = ops.where(mask, mirrored, positions)
    if len(sequences.shape) == 3:
        indices = indices[:, :, None]
    return ops.take_along_axis(sequences, indices, axis=1)
