"""The recurrent decoder shared by every kseq2seq model."""

import keras
from keras import ops

from kseq2seq import ops as kernels
from kseq2seq.layers.attention import BahdanauAttention
from kseq2seq.layers.cells import check_cell
from kseq2seq.layers.cells import dropout_mask
from kseq2seq.layers.cells import make_cell
from kseq2seq.layers.cells import state_size


@keras.saving.register_keras_serializable(package="kseq2seq")
class RecurrentDecoder(keras.layers.Layer):
    """Stacked recurrent decoder: context in, `output_length` steps out.

    At every step the bottom layer reads the concatenation of up to three
    parts, each switched on by an argument:

    - `feedback`: the previous output `y(t-1)` (the *readout*). The output
      fed at step 0, the *start value*, is a learned projection of the
      context, `y(-1) = W_s C + b_s`. Under teacher forcing (`ground_truth`
      given and `training=True`) step `t` reads the true `y(t-1)` instead,
      and step 0 still the start value.
    - `peek`: the context vector `C`, the same at every step (Cho et al.
      2014; without feedback this is the "repeat the context" decoder).
    - `attention_units`: an additive attention context over the encoder
      outputs, with the top layer's previous output as the query
      (Bahdanau et al. 2015).

    The top layer's output goes through a `Dense(output_dim)` head at every
    step. Parts of the input that do not change over time (the context) are
    projected once per sequence, and when every step's input is known in
    advance (no feedback, or teacher forcing without attention) each layer
    runs over the whole sequence at once.

    Args:
        units: int. Width of every decoder layer.
        output_dim: int. Width of each output step.
        output_length: int. Number of output steps.
        depth: int. Number of stacked layers. Defaults to `1`.
        cell: str. `"lstm"`, `"gru"` or `"simple_rnn"`. Defaults to `"lstm"`.
        feedback: bool. Feed the previous output back. Defaults to `True`.
        peek: bool. Feed the context at every step. Defaults to `False`.
        attention_units: int or `None`. Attend over `memory` with this many
            hidden units. Defaults to `None` (no attention).
        shared_state: bool. Thread one state through the stack at every step
            (the reference project's `inner_broadcast_state`). Defaults to
            `False`.
        dropout: float in `[0, 1)`. Dropout on every layer's input, one mask
            per sequence. Defaults to `0.0`.
        output_activation: activation of the head. Defaults to `None`
            (linear).
        seed: int. Seed of the dropout masks. Defaults to `None`.
        **kwargs: base layer arguments.

    Call arguments:
        context: `(batch, context_dim)`, the encoder's context vector.
        initial_state: optional list with one entry per layer (one entry
            when `shared_state`): a list of `(batch, units)` tensors, or
            `None` to start that layer from zeros.
        memory: `(batch, time, memory_dim)` encoder outputs; needed with
            attention.
        memory_mask: optional boolean `(batch, time)`; padded positions get
            no attention.
        ground_truth: optional `(batch, output_length, output_dim)` targets
            for teacher forcing; used only when `training=True`.
        training: bool. Enables dropout and teacher forcing.
        return_attention_weights: bool. Also return the attention weights.

    Returns:
        `(batch, output_length, output_dim)`; with `return_attention_weights`
        a tuple of that and the `(batch, output_length, time)` weights.

    Example:

    >>> decoder = RecurrentDecoder(8, output_dim=3, output_length=4)
    >>> tuple(decoder(np.ones((2, 5))).shape)
    (2, 4, 3)
    """

    def __init__(
        self,
        units,
        output_dim,
        output_length,
        depth=1,
        cell="lstm",
        feedback=True,
        peek=False,
        attention_units=None,
        shared_state=False,
        dropout=0.0,
        output_activation=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        cell = check_cell(cell)
        if not (feedback or peek or attention_units):
            raise ValueError(
                "The decoder needs at least one input: set `feedback`, "
                "`peek` or `attention_units`."
            )
        self.units = units
        self.output_dim = output_dim
        self.output_length = output_length
        self.depth = depth
        self.cell = cell
        self.feedback = feedback
        self.peek = peek
        self.attention_units = attention_units
        self.shared_state = shared_state
        self.dropout = dropout
        self.output_activation = keras.activations.get(output_activation)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.cells = [
            make_cell(cell, units, f"layer_{layer}", self.dtype_policy)
            for layer in range(depth)
        ]
        self.head = keras.layers.Dense(
            output_dim,
            activation=self.output_activation,
            name="head",
            dtype=self.dtype_policy,
        )
        self.start_projection = None
        if feedback:
            self.start_projection = keras.layers.Dense(
                output_dim, name="start_projection", dtype=self.dtype_policy
            )
        self.attention = None
        if attention_units:
            self.attention = BahdanauAttention(
                attention_units, name="attention", dtype=self.dtype_policy
            )

    def build(self, context_shape, memory_shape=None):
        batch_size, context_dim = context_shape[0], context_shape[-1]
        if self.attention is not None and memory_shape is None:
            raise ValueError(
                "A decoder with attention needs the encoder outputs: pass `memory`."
            )
        self._segments = self._input_segments(context_dim, memory_shape)
        input_width = self._input_width()
        for layer, cell in enumerate(self.cells):
            if not cell.built:
                cell.build((batch_size, input_width if layer == 0 else self.units))
        self.head.build((batch_size, self.units))
        if self.start_projection is not None:
            self.start_projection.build(context_shape)
        if self.attention is not None:
            self.attention.build((batch_size, self.units), memory_shape)

    def _input_segments(self, context_dim, memory_shape):
        """Row ranges of the bottom layer's kernel for each input part."""
        widths = []
        if self.feedback:
            widths.append(("readout", self.output_dim))
        if self.peek:
            widths.append(("context", context_dim))
        if self.attention is not None:
            widths.append(("attention", memory_shape[-1]))
        segments, start = {}, 0
        for name, width in widths:
            segments[name] = (start, start + width)
            start += width
        return segments

    def _input_width(self):
        return max(stop for _, stop in self._segments.values())

    def _initial_states(self, initial_state, batch_size, dtype):
        zeros = ops.zeros((batch_size, self.units), dtype=dtype)
        runs = 1 if self.shared_state else self.depth
        per_run = len(state_size(self.cell, self.units))
        initial_state = list(initial_state or [None] * runs)
        return [
            [zeros] * per_run if state is None else list(state)
            for state in initial_state
        ]

    def _dropout_masks(self, batch_size, dtype, training):
        if not training or self.dropout == 0:
            return None
        widths = [self._input_width()] + [self.units] * (self.depth - 1)
        return [
            dropout_mask(batch_size, width, self.dropout, self.seed_generator, dtype)
            for width in widths
        ]

    def _project_part(self, kernel, name, value, bottom_mask):
        """Projects one part of the bottom layer's input, without bias."""
        start, stop = self._segments[name]
        if bottom_mask is not None:
            value = value * bottom_mask[..., start:stop]
        return kernel.project(value, start, stop, use_bias=False)

    def call(
        self,
        context,
        initial_state=None,
        memory=None,
        memory_mask=None,
        ground_truth=None,
        training=None,
        return_attention_weights=False,
    ):
        if self.attention is None and return_attention_weights:
            raise ValueError(
                "`return_attention_weights=True` needs a decoder with attention."
            )
        batch_size = ops.shape(context)[0]
        dtype = context.dtype
        cell_kernels = [kernels.kernel_for(cell) for cell in self.cells]
        bottom = cell_kernels[0]
        states = self._initial_states(initial_state, batch_size, dtype)
        masks = self._dropout_masks(batch_size, dtype, training)
        bottom_mask = None if masks is None else masks[0]

        # The bottom layer's input projection, split by input part: the bias
        # and the context do not change over time and are projected once.
        static = ops.zeros((batch_size, bottom.cell.kernel.shape[-1]), dtype)
        if bottom.input_bias() is not None:
            static = static + bottom.input_bias()
        if self.peek:
            static = static + self._project_part(
                bottom, "context", context, bottom_mask
            )

        teacher_forcing = self.feedback and training and ground_truth is not None
        start = None
        if self.feedback:
            start = self.start_projection(context)
        readout_projection = None
        if teacher_forcing:
            readouts = ops.concatenate(
                [start[:, None, :], ground_truth[:, :-1, :]], axis=1
            )
            readout_projection = self._project_part(
                bottom,
                "readout",
                readouts,
                None if bottom_mask is None else bottom_mask[:, None, :],
            )

        if self.attention is None and (teacher_forcing or not self.feedback):
            outputs = self._run_layers(
                cell_kernels, static, readout_projection, states, masks
            )
            return self.head(outputs)
        return self._run_steps(
            cell_kernels,
            static,
            readout_projection,
            start,
            states,
            masks,
            memory,
            memory_mask,
            return_attention_weights,
        )

    def _run_layers(self, cell_kernels, static, readout_projection, states, masks):
        """Every step's input is known: run each layer over the sequence."""
        if readout_projection is not None:
            projected = static[:, None, :] + readout_projection
        else:
            projected = ops.repeat(static[:, None, :], self.output_length, axis=1)
        if self.shared_state:
            stack = kernels.SharedStateStack(cell_kernels, masks)
            outputs, _ = kernels.run_sequence(stack, projected, states[0])
            return outputs
        for layer, kernel in enumerate(cell_kernels):
            if layer > 0:
                if masks is not None:
                    outputs = outputs * masks[layer][:, None, :]
                projected = kernel.project(outputs)
            outputs, _ = kernels.run_sequence(kernel, projected, states[layer])
        return outputs

    def _run_steps(
        self,
        cell_kernels,
        static,
        readout_projection,
        start,
        states,
        masks,
        memory,
        memory_mask,
        return_attention_weights,
    ):
        """Step by step: a step's input depends on the previous step."""
        bottom = cell_kernels[0]
        bottom_mask = None if masks is None else masks[0]
        free_running = self.feedback and readout_projection is None
        if self.attention is not None:
            keys = self.attention.project_keys(memory)
        states = states[0] if self.shared_state else states
        # The attention query is the top layer's previous output, which for
        # these cells is the first entry of its state.
        query = states[0] if self.shared_state else states[-1][0]
        readout = start
        top_outputs, readouts, attention_weights = [], [], []
        for t in range(self.output_length):
            projected = static
            if self.feedback:
                if free_running:
                    projected = projected + self._project_part(
                        bottom, "readout", readout, bottom_mask
                    )
                else:
                    projected = projected + readout_projection[:, t]
            if self.attention is not None:
                attended, weights = self.attention(
                    query, keys, memory, memory_mask=memory_mask
                )
                attention_weights.append(weights)
                projected = projected + self._project_part(
                    bottom, "attention", attended, bottom_mask
                )
            query, states = kernels.step_stack(
                cell_kernels, projected, states, self.shared_state, masks
            )
            if free_running:
                readout = self.head(query)
                readouts.append(readout)
            else:
                top_outputs.append(query)
        if free_running:
            outputs = ops.stack(readouts, axis=1)
        else:
            outputs = self.head(ops.stack(top_outputs, axis=1))
        if return_attention_weights:
            return outputs, ops.stack(attention_weights, axis=1)
        return outputs

    def compute_output_shape(self, context_shape, memory_shape=None):
        return (context_shape[0], self.output_length, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "output_dim": self.output_dim,
                "output_length": self.output_length,
                "depth": self.depth,
                "cell": self.cell,
                "feedback": self.feedback,
                "peek": self.peek,
                "attention_units": self.attention_units,
                "shared_state": self.shared_state,
                "dropout": self.dropout,
                "output_activation": keras.activations.serialize(
                    self.output_activation
                ),
                "seed": self.seed,
            }
        )
        return config
