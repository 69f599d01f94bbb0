"""The recurrent decoder shared by every kseq2seq model."""

import contextlib

import keras
import numpy as np
from keras import ops
from keras.src.backend import AutocastScope

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
      and step 0 still the start value. A token decoder (`embedding_dim`
      set) feeds back the embedding of the previous token instead: the
      predicted one (argmax) when running free, the true one under teacher
      forcing, and `start_id` at step 0.
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
            (linear). A token decoder always uses a softmax.
        embedding_dim: int or `None`. Makes this a token decoder over a
            vocabulary of `output_dim` ids, each fed back through an
            embedding of this width. Defaults to `None` (vector outputs).
        start_id: int. Token fed at step 0 by a token decoder. Defaults to
            `1`.
        end_id: int. Token that ends a sequence in `generate`. Defaults to
            `2`.
        sampling_probability: float in `[0, 1)`. Scheduled sampling: under
            teacher forcing, the probability that a step reads the model's
            own previous prediction instead of the truth. Defaults to `0.0`.
        seed: int. Seed of the dropout masks and sampling. Defaults to
            `None`.
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
        ground_truth: optional targets for teacher forcing, used only when
            `training=True`: `(batch, output_length, output_dim)` vectors,
            or `(batch, output_length)` ids for a token decoder.
        training: bool. Enables dropout and teacher forcing.
        return_attention_weights: bool. Also return the attention weights.

    Returns:
        `(batch, output_length, output_dim)` outputs (probabilities for a
        token decoder); with `return_attention_weights` a tuple of that and
        the `(batch, output_length, time)` weights.

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
        embedding_dim=None,
        start_id=1,
        end_id=2,
        sampling_probability=0.0,
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
        self.embedding_dim = embedding_dim
        self.start_id = start_id
        self.end_id = end_id
        self.sampling_probability = sampling_probability
        self.seed = seed
        self.tokens = embedding_dim is not None
        self.output_activation = keras.activations.get(
            "softmax" if self.tokens else output_activation
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.cells = [
            make_cell(cell, units, f"layer_{layer}", self.dtype_policy)
            for layer in range(depth)
        ]
        # Under a mixed precision policy the outputs are float32, as Keras
        # advises for a model's last layer: a token decoder computes its
        # logits in the compute dtype and its softmax in float32; a vector
        # decoder's head, whose activation may be a softmax, is a float32
        # layer.
        policy = self.dtype_policy
        self._mixed = (
            not getattr(policy, "quantization_mode", None)
            and policy.compute_dtype != policy.variable_dtype
        )
        self._output_dtype = policy.variable_dtype if self._mixed else None
        # A token decoder keeps the head linear (logits) and applies the
        # softmax itself, so decoding can work with log-probabilities.
        self.head = keras.layers.Dense(
            output_dim,
            activation=None if self.tokens else self.output_activation,
            name="head",
            dtype=policy.variable_dtype if self._mixed and not self.tokens else policy,
        )
        self.embedding = None
        self.start_projection = None
        if self.tokens and feedback:
            self.embedding = keras.layers.Embedding(
                output_dim, embedding_dim, name="embedding", dtype=self.dtype_policy
            )
        elif feedback:
            self.start_projection = keras.layers.Dense(
                output_dim, name="start_projection", dtype=self.dtype_policy
            )
        self.attention = None
        if attention_units:
            self.attention = BahdanauAttention(
                attention_units, name="attention", dtype=self.dtype_policy
            )

    @property
    def never_emitted_ids(self):
        """Ids no decoded sequence contains: the padding and the start id
        (unless one of them is also the end id)."""
        return sorted({0, self.start_id} - {self.end_id})

    @property
    def readout_width(self):
        return self.embedding_dim if self.tokens else self.output_dim

    def build(self, context_shape, memory_shape=None):
        batch_size = context_shape[0]
        if self.attention is not None and memory_shape is None:
            raise ValueError(
                "A decoder with attention needs the encoder outputs: pass `memory`."
            )
        self._segments = self._input_segments(context_shape[-1], memory_shape)
        for layer, cell in enumerate(self.cells):
            if not cell.built:
                width = self._input_width() if layer == 0 else self.units
                cell.build((batch_size, width))
        self.head.build((batch_size, self.units))
        if self.embedding is not None:
            self.embedding.build((batch_size,))
        if self.start_projection is not None:
            self.start_projection.build(context_shape)
        if self.attention is not None:
            self.attention.build((batch_size, self.units), memory_shape)

    def _input_segments(self, context_dim, memory_shape):
        """Row ranges of the bottom layer's kernel for each input part."""
        widths = []
        if self.feedback:
            widths.append(("readout", self.readout_width))
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

    def _kernels(self):
        return [kernels.kernel_for(cell) for cell in self.cells]

    def _autocast(self):
        """The variables in the compute dtype, as inside `call`.

        `call` runs in Keras' autocast scope; the decoding methods, which
        loops such as `generate` call outside it, open it themselves.
        """
        if not self._mixed:
            return contextlib.nullcontext()
        return AutocastScope(self.compute_dtype)

    def _compute(self, value):
        """`value` in the compute dtype (fed-back float32 outputs, when mixed)."""
        return ops.cast(value, self.compute_dtype) if self._mixed else value

    def _head(self, top):
        """The head's outputs (logits for a token decoder); float32 when mixed."""
        if not self._mixed:
            return self.head.call(top)
        if self.tokens:
            return ops.cast(self.head.call(top), self._output_dtype)
        # The float32 head reads its variables as they are, not autocast.
        with AutocastScope(None):
            return self.head.call(ops.cast(top, self._output_dtype))

    def _project_part(self, name, value, bottom_mask=None):
        """Projects one part of the bottom layer's input, without bias."""
        start, stop = self._segments[name]
        if bottom_mask is not None:
            value = value * bottom_mask[..., start:stop]
        bottom = kernels.kernel_for(self.cells[0])
        return bottom.project(value, start, stop, use_bias=False)

    # Decoding state: everything a step needs, as a dict of tensors whose
    # first axis is the batch, so a beam search can repeat and reorder it.

    def initial_decoding_state(
        self, context, initial_state=None, memory=None, memory_mask=None, masks=None
    ):
        """The state a decoding loop starts from.

        Returns a dict of batch-first tensors (and `None`s): the recurrent
        states, the attention query, the bottom layer's projection of the
        inputs that do not change over time (bias and peeked context) and,
        with attention, the encoder outputs, their mask and their keys.
        """
        with self._autocast():
            batch_size = ops.shape(context)[0]
            dtype = context.dtype
            bottom = kernels.kernel_for(self.cells[0])
            states = self._initial_states(initial_state, batch_size, dtype)
            static = ops.zeros((batch_size, bottom.cell.kernel.shape[-1]), dtype)
            if bottom.input_bias() is not None:
                static = static + bottom.input_bias()
            if self.peek:
                static = static + self._project_part(
                    "context", context, None if masks is None else masks[0]
                )
            state = {
                "states": states,
                # The attention query is the top layer's previous output,
                # which for these cells is the first entry of its state.
                "query": states[-1][0],
                "static": static,
            }
            if self.attention is not None:
                state["memory"] = memory
                state["memory_mask"] = memory_mask
                state["keys"] = self.attention.project_keys(memory)
            return state

    def start_readout(self, context):
        """The readout fed at step 0: start token embedding or start value.

        `None` for a decoder without feedback.
        """
        if not self.feedback:
            return None
        if self.tokens:
            batch_size = ops.shape(context)[0]
            return self.embedding(ops.full((batch_size,), self.start_id, "int32"))
        return self.start_projection(context)

    def _step(self, projected_readout, state, masks=None):
        """One step from the projection of the readout. Returns
        `(top_output, new_state, attention_weights)`."""
        projected = state["static"]
        if projected_readout is not None:
            projected = projected + projected_readout
        weights = None
        if self.attention is not None:
            # Sub-layers inside the step loop are built: calling their
            # `call` directly skips Keras' per-call bookkeeping.
            attended, weights = self.attention.call(
                state["query"],
                state["keys"],
                state["memory"],
                memory_mask=state["memory_mask"],
            )
            projected = projected + self._project_part(
                "attention", attended, None if masks is None else masks[0]
            )
        states = state["states"]
        top, new_states = kernels.step_stack(
            self._kernels(),
            projected,
            states[0] if self.shared_state else states,
            self.shared_state,
            masks,
        )
        new_state = dict(state)
        new_state["states"] = [new_states] if self.shared_state else new_states
        new_state["query"] = top
        return top, new_state, weights

    def decode_step(self, previous, state):
        """One inference step, for decoding loops such as beam search.

        Args:
            previous: the previous token ids `(batch,)` of a token decoder,
                or the previous output `(batch, output_dim)` (the start
                value from `start_readout` at step 0).
            state: from `initial_decoding_state` or the previous step.

        Returns:
            `(output, new_state)`: log-probabilities `(batch, output_dim)`
            for a token decoder, the output vector otherwise.
        """
        with self._autocast():
            projected = None
            if self.feedback:
                if self.tokens:
                    readout = self.embedding.call(previous)
                else:
                    readout = self._compute(previous)
                projected = self._project_part("readout", readout)
            top, new_state, _ = self._step(projected, state)
            if self.tokens:
                return ops.log_softmax(self._head(top), axis=-1), new_state
            return self._head(top), new_state

    def _outputs(self, top):
        """Head outputs: probabilities for a token decoder."""
        outputs = self._head(top)
        return ops.softmax(outputs, axis=-1) if self.tokens else outputs

    def _feedback_penalty(self):
        """Added to a token decoder's probabilities before the argmax of a
        free-running step: they are at most 1, so -2 rules out the ids no
        sequence contains (as in `generate`). `None` for a vector decoder."""
        if not self.tokens:
            return None
        penalty = np.zeros((self.output_dim,), "float32")
        penalty[self.never_emitted_ids] = -2.0
        return ops.convert_to_tensor(penalty)

    def _feedback(self, outputs, penalty):
        """What a free-running step feeds back from its outputs."""
        if self.tokens:
            penalty = ops.cast(penalty, outputs.dtype)
            return self.embedding.call(ops.argmax(outputs + penalty, axis=-1))
        return self._compute(outputs)

    def _true_readouts(self, context, ground_truth):
        """Readouts under teacher forcing: start, then the truth shifted."""
        start = self.start_readout(context)[:, None]
        if self.tokens:
            previous = self.embedding(ops.cast(ground_truth[:, :-1], "int32"))
        else:
            previous = ground_truth[:, :-1]
        return ops.concatenate([start, ops.cast(previous, start.dtype)], axis=1)

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
        masks = self._dropout_masks(batch_size, context.dtype, training)
        bottom_mask = None if masks is None else masks[0]
        state = self.initial_decoding_state(
            context, initial_state, memory, memory_mask, masks
        )
        teacher_forcing = bool(self.feedback and training and ground_truth is not None)
        true_readouts = None
        if teacher_forcing:
            true_readouts = self._true_readouts(context, ground_truth)
        sampling = teacher_forcing and self.sampling_probability > 0

        if (
            self.attention is None
            and not sampling
            and (teacher_forcing or not self.feedback)
        ):
            outputs = self._run_layers(context, state, true_readouts, masks)
            return self._outputs(outputs)

        readout_mask = None if bottom_mask is None else bottom_mask[:, None, :]
        projected_truth = None
        if teacher_forcing and not sampling:
            # Known in advance: projected for all steps at once, and unstacked
            # once (per-step indexing costs a full-size buffer per step in
            # the backward pass).
            projected_truth = ops.unstack(
                self._project_part("readout", true_readouts, readout_mask), axis=1
            )
        elif sampling:
            true_readouts = ops.unstack(true_readouts, axis=1)
        readout = self.start_readout(context) if self.feedback else None
        feedback_penalty = self._feedback_penalty()
        tops, outputs, attention_weights = [], [], []
        for t in range(self.output_length):
            projected = None
            if projected_truth is not None:
                projected = projected_truth[t]
            elif self.feedback:
                if sampling:
                    truth = true_readouts[t]
                    if t > 0:
                        own = readout
                        coins = keras.random.uniform(
                            (batch_size, 1), seed=self.seed_generator
                        )
                        truth = ops.where(coins < self.sampling_probability, own, truth)
                    readout = truth
                projected = self._project_part("readout", readout, bottom_mask)
            top, state, weights = self._step(projected, state, masks)
            attention_weights.append(weights)
            if self.feedback and projected_truth is None:
                output = self._outputs(top)
                outputs.append(output)
                readout = self._feedback(output, feedback_penalty)
            else:
                tops.append(top)
        if outputs:
            result = ops.stack(outputs, axis=1)
        else:
            result = self._outputs(ops.stack(tops, axis=1))
        if return_attention_weights:
            weights = ops.stack(attention_weights, axis=1)
            if self._mixed:
                weights = ops.cast(weights, self._output_dtype)
            return result, weights
        return result

    def _run_layers(self, context, state, true_readouts, masks):
        """Every step's input is known: run each layer over the sequence."""
        cell_kernels = self._kernels()
        states = state["states"]
        static = state["static"][:, None, :]
        if self.shared_state or true_readouts is None:
            # The bottom layer's input projection: the parts that never
            # change were projected once, in `state["static"]`.
            if true_readouts is not None:
                readout_mask = None if masks is None else masks[0][:, None, :]
                projected = static + self._project_part(
                    "readout", true_readouts, readout_mask
                )
            else:
                projected = ops.broadcast_to(
                    static, (ops.shape(static)[0], self.output_length, static.shape[-1])
                )
            if self.shared_state:
                stack = kernels.SharedStateStack(cell_kernels, masks)
                return kernels.run_sequence(stack, projected, states[0])[0]
            outputs, _ = kernels.run_sequence(cell_kernels[0], projected, states[0])
        else:
            # Readouts that change at every step: one fused call over the
            # bottom layer's whole input beats a loop over steps.
            parts = [true_readouts]
            if self.peek:
                parts.append(ops.repeat(context[:, None, :], self.output_length, 1))
            inputs = ops.concatenate(parts, axis=-1)
            if masks is not None:
                inputs = inputs * masks[0][:, None, :]
            outputs, _ = kernels.run_layer([cell_kernels[0]], inputs, [states[0]])
        for layer in range(1, self.depth):
            if masks is not None:
                outputs = outputs * masks[layer][:, None, :]
            outputs, _ = kernels.run_layer(
                [cell_kernels[layer]], outputs, [states[layer]]
            )
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
                "embedding_dim": self.embedding_dim,
                "start_id": self.start_id,
                "end_id": self.end_id,
                "sampling_probability": self.sampling_probability,
                "seed": self.seed,
            }
        )
        return config
