"""The recurrent decoder shared by every kseq2seq model."""

import keras
from keras import ops

from kseq2seq import ops as kernels
from kseq2seq.layers.attention import make_attention
from kseq2seq.layers.cells import check_cell
from kseq2seq.layers.cells import dropout_mask
from kseq2seq.layers.cells import make_cell
from kseq2seq.layers.decoder_step import DecoderStep
from kseq2seq.layers.embedding import token_embedding
from kseq2seq.layers.feeds import ReadoutFeeds


@keras.saving.register_keras_serializable(package="kseq2seq")
class RecurrentDecoder(DecoderStep, ReadoutFeeds, keras.layers.Layer):
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
    - `attention_units`: an attention context over the encoder outputs,
      with the top layer's previous output as the query: additive
      (Bahdanau et al. 2015) by default, or a Luong et al. (2015) score
      chosen by `attention_score`.

    The top layer's output goes through a `Dense(output_dim)` head at every
    step. When every step's input is known in advance (no feedback, or
    teacher forcing without attention or scheduled sampling) each layer runs
    over the whole sequence in one call, fused on the PyTorch kernels (a
    stack with a shared state deeper than one layer excepted: no fused
    kernel threads one state through several layers). Otherwise one step
    loop serves training, free running and decoding: at every step a *feed*
    gives the readout, the truth under teacher forcing, a coin flip between
    the truth and the model's own output under scheduled sampling, or the
    model's own output when running free. The parts of the input that do
    not change over time (the peeked context) are projected once per
    sequence in that loop.

    Args:
        units: int. Width of every decoder layer.
        output_dim: int. Width of each output step.
        output_length: int. Number of output steps.
        depth: int. Number of stacked layers. Defaults to `1`.
        cell: str. `"lstm"`, `"gru"` or `"simple_rnn"`. Defaults to `"lstm"`.
        feedback: bool. Feed the previous output back. Defaults to `True`.
        peek: bool. Feed the context at every step. Defaults to `False`.
        attention_units: int or `None`. Attend over `memory`; the width of
            the additive score's hidden layer. Defaults to `None` (no
            attention).
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
        attention_score: str. How the attention scores each encoder output
            against the query: `"bahdanau"` (additive, `BahdanauAttention`
            of `attention_units` units), `"luong"` (dot product, which
            needs `units` equal to the memory's width) or `"luong_general"`
            (bilinear, `LuongAttention(score_mode="general")`). Defaults to
            `"bahdanau"`.
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
        attention_score="bahdanau",
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
        self.attention_score = attention_score
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
        self._make_layers()

    def _make_layers(self):
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
        self.cells = [
            make_cell(self.cell, self.units, f"layer_{layer}", policy)
            for layer in range(self.depth)
        ]
        # A token decoder keeps the head linear (logits) and applies the
        # softmax itself, so decoding can work with log-probabilities.
        self.head = keras.layers.Dense(
            self.output_dim,
            activation=None if self.tokens else self.output_activation,
            name="head",
            dtype=policy.variable_dtype if self._mixed and not self.tokens else policy,
        )
        self.embedding = None
        self.start_projection = None
        if self.tokens and self.feedback:
            self.embedding = token_embedding(
                self.output_dim, self.embedding_dim, name="embedding", dtype=policy
            )
        elif self.feedback:
            self.start_projection = keras.layers.Dense(
                self.output_dim, name="start_projection", dtype=policy
            )
        self.attention = None
        if self.attention_units:
            self.attention = make_attention(
                self.attention_score,
                self.attention_units,
                name="attention",
                dtype=policy,
            )

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

    def _dropout_masks(self, batch_size, dtype, training):
        if not training or self.dropout == 0:
            return None
        widths = [self._input_width()] + [self.units] * (self.depth - 1)
        return [
            dropout_mask(batch_size, width, self.dropout, self.seed_generator, dtype)
            for width in widths
        ]

    def _step_loop(self, state, steps, feed, own_readout, masks=None):
        """The one step loop, over a feed from `_feed`. Returns the outputs
        `(batch, steps, output_dim)` and the attention weights
        `(batch, steps, time)` (or `None`)."""
        tops, outputs, weights = [], [], []
        own, penalty = None, None
        for t in range(steps):
            top, state, step_weights = self._step(feed(t, own), state, masks)
            weights.append(step_weights)
            if own_readout is None:
                tops.append(top)
                continue
            logits = self._head(top)
            output = ops.softmax(logits, axis=-1) if self.tokens else logits
            if penalty is None and self.tokens:
                penalty = self.never_emitted_penalty(logits)
            own = own_readout(logits, output, penalty)
            outputs.append(output)
        if own_readout is not None:
            result = ops.stack(outputs, axis=1)
        else:
            # The head runs once over every step.
            result = self._outputs(ops.stack(tops, axis=1))
        if self.attention is None:
            return result, None
        weights = ops.stack(weights, axis=1)
        if self._mixed:
            weights = ops.cast(weights, self._output_dtype)
        return result, weights

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
        if not (self.feedback and training):
            ground_truth = None  # Teacher forcing is for training only.
        masks = self._dropout_masks(ops.shape(context)[0], context.dtype, training)
        if self.attention is None and (
            not self.feedback
            or (ground_truth is not None and self.sampling_probability == 0)
        ):
            return self._run_layers(context, initial_state, ground_truth, masks)
        state = self.initial_decoding_state(
            context, initial_state, memory, memory_mask, masks
        )
        feed, own_readout = self._feed(context, ground_truth, masks)
        outputs, weights = self._step_loop(
            state, self.output_length, feed, own_readout, masks
        )
        return (outputs, weights) if return_attention_weights else outputs

    def run_free(
        self, context, initial_state=None, memory=None, memory_mask=None, steps=None
    ):
        """Runs free for `steps` steps (any number), as `call` does at
        inference: what `generate` runs for vector outputs.

        Returns:
            `(batch, steps, output_dim)` outputs (probabilities for a token
            decoder).
        """
        with self._autocast():
            state = self.initial_decoding_state(
                context, initial_state, memory, memory_mask
            )
            feed, own_readout = self._feed(context, None, None)
            outputs, _ = self._step_loop(
                state, steps or self.output_length, feed, own_readout
            )
            return outputs

    def _known_inputs(self, context, ground_truth):
        """The bottom layer's input at every step, when all are known."""
        parts = []
        if self.feedback:
            parts.append(self._true_readouts(context, ground_truth))
        if self.peek:
            parts.append(ops.repeat(context[:, None, :], self.output_length, axis=1))
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def _run_layers(self, context, initial_state, ground_truth, masks):
        """Every step's input is known: each layer runs over the sequence.

        One fused call per layer on the PyTorch kernels beats a step loop
        even over a repeated context, whose projection a loop could hoist
        (see the Performance page). A shared state threaded through more
        than one layer has no fused kernel: that stack runs the step loop.
        """
        cell_kernels = self._kernels()
        states = self._initial_states(
            initial_state, ops.shape(context)[0], context.dtype
        )
        inputs = self._known_inputs(context, ground_truth)
        if masks is not None:
            inputs = inputs * masks[0][:, None, :]
        if self.shared_state and self.depth > 1:
            stack = kernels.SharedStateStack(cell_kernels, masks)
            projected = cell_kernels[0].project(inputs)
            outputs = kernels.run_sequence(stack, projected, states[0])[0]
            return self._outputs(outputs)
        outputs = inputs
        for layer in range(self.depth):
            if layer > 0 and masks is not None:
                outputs = outputs * masks[layer][:, None, :]
            outputs, _ = kernels.run_layer(
                [cell_kernels[layer]], outputs, [states[layer]]
            )
        return self._outputs(outputs)

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
                "attention_score": self.attention_score,
            }
        )
        return config
