"""The recurrent encoder shared by every kseq2seq model."""

import keras
from keras import ops

from kseq2seq import ops as kernels
from kseq2seq.layers.cells import check_cell
from kseq2seq.layers.cells import dropout_mask
from kseq2seq.layers.cells import make_cell
from kseq2seq.layers.cells import state_size


@keras.saving.register_keras_serializable(package="kseq2seq")
class RecurrentEncoder(keras.layers.Layer):
    """Stacked, optionally bidirectional, recurrent encoder.

    Reads a sequence and returns everything a decoder may need: the top
    layer's output at every step, the *context vector* (the top layer's final
    output) and every layer's final state.

    With `bidirectional=True` every layer runs forwards and backwards and
    the next layer reads both directions concatenated (as `torch.nn.LSTM`
    does), so outputs, context and states are `2 * units` wide. With
    `shared_state=True` the layers thread one state through the stack at
    every step instead of keeping one each (the reference project's
    `inner_broadcast_state`).

    Masked steps (from `mask_zero` embeddings or a `Masking` layer) carry the
    previous state forward, so each sequence's final state is the one of its
    last valid step, and a backward direction starts at each sequence's true
    end.

    Args:
        units: int. Width of every layer (per direction).
        depth: int. Number of stacked layers. Defaults to `1`.
        cell: str. `"lstm"`, `"gru"` or `"simple_rnn"`. Defaults to `"lstm"`.
        bidirectional: bool. Defaults to `False`.
        shared_state: bool. Thread one state through the stack. Defaults to
            `False`.
        dropout: float in `[0, 1)`. Dropout on every layer's input, one mask
            per sequence (as `keras.layers.LSTM(dropout=...)`). Defaults to
            `0.0`.
        stateful: bool. Keep the final states of a batch as the initial
            states of the next one, until `reset_states()`. Needs a fixed
            batch size. Defaults to `False`.
        seed: int. Seed of the dropout masks. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, time, features)` float tensor.
        mask: optional boolean `(batch, time)`; `False` marks padding.
        training: bool. Enables dropout.

    Returns:
        A tuple `(sequence, context, states)`: `sequence` is
        `(batch, time, width)`, `context` is `(batch, width)` and `states`
        is a list with one list of `(batch, width)` tensors per layer (a
        single entry with `shared_state`), where `width` is `units`, or
        `2 * units` when bidirectional.

    Example:

        >>> encoder = RecurrentEncoder(8, depth=2, bidirectional=True)
        >>> sequence, context, states = encoder(np.ones((4, 5, 3)))
        >>> tuple(sequence.shape), tuple(context.shape), len(states)
        ((4, 5, 16), (4, 16), 2)
    """

    def __init__(
        self,
        units,
        depth=1,
        cell="lstm",
        bidirectional=False,
        shared_state=False,
        dropout=0.0,
        stateful=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        cell = check_cell(cell)
        self.units = units
        self.depth = depth
        self.cell = cell
        self.bidirectional = bidirectional
        self.shared_state = shared_state
        self.dropout = dropout
        self.stateful = stateful
        self.seed = seed
        self.supports_masking = True
        self.num_directions = 2 if bidirectional else 1
        self.seed_generator = keras.random.SeedGenerator(seed)
        directions = ("forward", "backward")[: self.num_directions]
        self.cells = [
            make_cell(cell, units, f"layer_{layer}_{direction}", self.dtype_policy)
            for layer in range(depth)
            for direction in directions
        ]
        self.state_variables = None

    @property
    def output_width(self):
        return self.units * self.num_directions

    def build(self, input_shape):
        batch_size, input_dim = input_shape[0], input_shape[-1]
        for layer in range(self.depth):
            width = input_dim if layer == 0 else self.output_width
            if self.shared_state and layer > 0:
                width = self.units
            for direction in range(self.num_directions):
                cell = self.cells[layer * self.num_directions + direction]
                if not cell.built:
                    cell.build((batch_size, width))
        if self.stateful and self.state_variables is None:
            if batch_size is None:
                raise ValueError(
                    "A stateful encoder needs a fixed batch size. "
                    f"Received: input_shape={tuple(input_shape)}"
                )
            self.state_variables = [
                self.add_weight(
                    shape=(batch_size, size),
                    initializer="zeros",
                    trainable=False,
                    name=f"state_{i}",
                )
                for i, size in enumerate(self._flat_state_sizes())
            ]

    def _flat_state_sizes(self):
        runs = 1 if self.shared_state else self.depth
        sizes = state_size(self.cell, self.units)
        return sizes * runs * self.num_directions

    def reset_states(self):
        """Zeroes the carried states of a stateful encoder."""
        for variable in self.state_variables or []:
            variable.assign(ops.zeros_like(variable))

    def _initial_states(self, batch_size, dtype):
        """One state list per run (a layer and direction, or the stack)."""
        per_run = len(state_size(self.cell, self.units))
        if self.stateful:
            # Copies: the variables are overwritten in place after the call,
            # and autograd must keep the values this call started from.
            flat = [ops.copy(ops.cast(v.value, dtype)) for v in self.state_variables]
        else:
            zeros = ops.zeros((batch_size, self.units), dtype=dtype)
            flat = [zeros] * (len(self._flat_state_sizes()))
        return [flat[i : i + per_run] for i in range(0, len(flat), per_run)]

    def _dropout_masks(self, batch_size, input_dim, dtype, training):
        if not training or self.dropout == 0:
            return None
        widths = [input_dim] + [
            self.units if self.shared_state else self.output_width
        ] * (self.depth - 1)
        return [
            dropout_mask(batch_size, width, self.dropout, self.seed_generator, dtype)
            for width in widths
        ]

    def call(self, inputs, mask=None, training=None):
        if self.stateful:
            self._check_batch_size(inputs)
        batch_size = ops.shape(inputs)[0]
        if mask is not None:
            mask = ops.cast(mask, "bool")
        initial = self._initial_states(batch_size, inputs.dtype)
        masks = self._dropout_masks(
            batch_size, inputs.shape[-1], inputs.dtype, training
        )
        x = inputs if masks is None else inputs * masks[0][:, None, :]
        # With one layer, one shared state and one state per layer are the
        # same recurrence, which the per-layer run can fuse.
        if self.shared_state and self.depth > 1:
            sequence, finals, final_runs = self._run_shared_stacks(
                x, initial, mask, masks
            )
        else:
            sequence, finals, final_runs = self._run_layers(x, initial, mask, masks)
        if self.stateful:
            flat = [tensor for state in final_runs for tensor in state]
            for variable, value in zip(self.state_variables, flat):
                variable.assign(ops.stop_gradient(value))
        # The context is the top layer's final output; for LSTM, GRU and
        # SimpleRNN cells that output is the first state.
        context = finals[-1][0]
        return sequence, context, finals

    def _check_batch_size(self, inputs):
        """A stateful encoder carries one state per sequence of its batch."""
        expected = self.state_variables[0].shape[0]
        if inputs.shape[0] is not None and inputs.shape[0] != expected:
            raise ValueError(
                "A stateful model must be fed batches of the size it was "
                f"built for: batch_size={expected}. Received a batch of "
                f"{inputs.shape[0]} sequences."
            )

    def _run_layers(self, x, initial, mask, masks):
        """Runs each layer, both directions at once, over the whole sequence.

        Returns `(sequence, finals, final_runs)`: the top layer's outputs,
        one merged state list per layer, and one state list per run (layer
        and direction) in the order of `state_variables`.
        """
        finals, final_runs = [], []
        for layer in range(self.depth):
            if layer > 0 and masks is not None:
                x = x * masks[layer][:, None, :]
            first = layer * self.num_directions
            runs = range(first, first + self.num_directions)
            x, states = kernels.run_layer(
                [kernels.kernel_for(self.cells[run]) for run in runs],
                x,
                [initial[run] for run in runs],
                mask,
            )
            final_runs.extend(states)
            finals.append(self._merge_states(states))
        return x, finals, final_runs

    def _run_shared_stacks(self, x, initial, mask, masks):
        """Runs one `SharedStateStack` of every layer per direction.

        The state goes up the stack within each step: a deep-transition
        recurrence that no fused kernel computes, so it runs step by step.
        Returns `(sequence, finals, final_runs)` as `_run_layers` does, with
        a single entry in `finals`.
        """
        outputs, final_runs = [], []
        for direction in range(self.num_directions):
            stack = kernels.SharedStateStack(
                [
                    kernels.kernel_for(cell)
                    for cell in self.cells[direction :: self.num_directions]
                ],
                masks,
            )
            output, state = kernels.run_sequence(
                stack,
                stack.kernels[0].project(x),
                initial[direction],
                mask,
                reverse=direction == 1,
            )
            outputs.append(output)
            final_runs.append(state)
        sequence = self._merge_directions(outputs)
        return sequence, [self._merge_states(final_runs)], final_runs

    def _merge_states(self, states):
        """One state list from one state list per direction."""
        return [self._merge_directions(parts) for parts in zip(*states)]

    def _merge_directions(self, tensors):
        if len(tensors) == 1:
            return tensors[0]
        return ops.concatenate(tensors, axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        batch_size, time_steps = input_shape[0], input_shape[1]
        width = self.output_width
        runs = 1 if self.shared_state else self.depth
        per_run = len(state_size(self.cell, self.units))
        states = [[(batch_size, width)] * per_run for _ in range(runs)]
        return (batch_size, time_steps, width), (batch_size, width), states

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "depth": self.depth,
                "cell": self.cell,
                "bidirectional": self.bidirectional,
                "shared_state": self.shared_state,
                "dropout": self.dropout,
                "stateful": self.stateful,
                "seed": self.seed,
            }
        )
        return config
