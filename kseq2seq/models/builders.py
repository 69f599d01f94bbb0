"""The three builders: `SimpleSeq2Seq`, `Seq2Seq`, `AttentionSeq2Seq`.

They keep the names, arguments, defaults and positional order of
farizrahman4u/seq2seq. Each resolves its arguments into a `ModelSpec`
(`kseq2seq._arguments`), which says how its decoder is wired, and hands it
to `Seq2SeqModel`.
"""

import keras
import numpy as np
import torch
from keras import ops

from kseq2seq import _arguments
from kseq2seq.models.base import Seq2SeqModel
from kseq2seq.ops import reverse_valid_steps


def _builder_arguments(arguments):
    """A builder's own arguments, as given, from its `locals()`."""
    return {
        name: value
        for name, value in arguments.items()
        if name not in ("self", "kwargs", "__class__")
    }


@keras.saving.register_keras_serializable(package="kseq2seq")
class SimpleSeq2Seq(Seq2SeqModel):
    """Encoder-decoder whose decoder reads the context at every step.

    The encoder (`depth[0]` stacked LSTMs) reads the input; its final output,
    the context vector `C`, is the decoder's input at every one of the
    `output_length` steps ("repeat vector"). The decoder (`depth[1]` stacked
    LSTMs, starting from zero states) is followed by a `Dense(output_dim)`
    head at every step.

    Args:
        output_dim: int. Width of each output step.
        output_length: int. Number of output steps.
        hidden_dim: int. Width of every recurrent layer. Defaults to
            `output_dim`, or 128 with `output_vocab_size`.
        batch_input_shape: tuple `(batch_size, input_length, input_dim)`.
            Takes precedence over the other shape arguments.
        input_shape: tuple `(input_length, input_dim)`, used with
            `batch_size`.
        batch_size: int or `None`. Needed with `stateful=True`.
        input_dim: int. Features per input step, used when neither of the
            above is given.
        input_length: int or `None` (any length, the default).
        depth: int or `(encoder_depth, decoder_depth)`. Defaults to `1`.
        dropout: float in `[0, 1)`. Dropout on the input of every recurrent layer,
            one mask per sequence. Defaults to `0.0`.
        unroll: bool. As in Keras' RNN layers: needs a fixed `input_length`.
            Accepted for compatibility; results are identical either way.
            Defaults to `False`.
        stateful: bool. The encoder's final states of one batch start the
            next batch, until `reset_states()`. Needs a fixed batch size.
            Defaults to `False`.
        output_activation: activation of the output head. Defaults to `None`
            (linear); use `"softmax"` for one-hot targets.
        cell: `"lstm"`, `"gru"` or `"simple_rnn"`, or one of the classes
            `keras.layers.LSTMCell`, `GRUCell`, `SimpleRNNCell`. Defaults
            to `"lstm"`.
        bidirectional: bool. Bidirectional encoder. Defaults to `False`.
        input_vocab_size: int. Inputs are token ids
            `(batch, input_length)` from a vocabulary of this size,
            embedded, with id 0 as padding (masked). Defaults to `None`
            (vector inputs).
        output_vocab_size: int. Outputs are probabilities over a vocabulary
            of this size; targets are ids `(batch, output_length)` padded
            with 0. Defaults to `None` (vector outputs).
        embedding_dim: int. Width of the token embeddings. Defaults to
            `hidden_dim`.
        input_embeddings: array `(input_vocab_size, embedding_dim)` of
            pre-trained input embeddings. Defaults to `None`.
        start_id: int. Token fed to a feedback decoder at step 0. Defaults
            to `1`.
        end_id: int. Token that ends a generated sequence. Defaults to `2`.
        reverse_input: bool. Reverse each input's valid steps before
            encoding (Sutskever et al. 2014). Defaults to `False`.
        check_inputs: bool. Check every input and target for NaN and inf
            values before using them: `fit`, `evaluate`, `predict` and calls
            of the model then raise a `ValueError` that gives their number
            and the index of the first (in the whole array for arrays, in
            the batch for datasets and generators). Off by default, since
            the check reads the data once more. Token ids are always checked
            against the vocabularies. Defaults to `False`.
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

        >>> model = SimpleSeq2Seq(input_dim=5, hidden_dim=10, output_length=8,
        ...                       output_dim=8)
        >>> model.compile(loss="mse", optimizer="rmsprop")
        >>> tuple(model.predict(np.ones((2, 7, 5)), verbose=0).shape)
        (2, 8, 8)
    """

    def __init__(
        self,
        output_dim=None,
        output_length=None,
        hidden_dim=None,
        input_shape=None,
        batch_size=None,
        batch_input_shape=None,
        input_dim=None,
        input_length=None,
        depth=1,
        dropout=0.0,
        unroll=False,
        stateful=False,
        output_activation=None,
        cell="lstm",
        bidirectional=False,
        input_vocab_size=None,
        output_vocab_size=None,
        embedding_dim=None,
        input_embeddings=None,
        start_id=1,
        end_id=2,
        reverse_input=False,
        check_inputs=False,
        **kwargs,
    ):
        arguments = _builder_arguments(locals())
        super().__init__(
            _arguments.resolve("SimpleSeq2Seq", arguments), arguments, **kwargs
        )


@keras.saving.register_keras_serializable(package="kseq2seq")
class Seq2Seq(Seq2SeqModel):
    """Encoder-decoder with state transfer, readout, peek and teacher forcing.

    The sequence-to-sequence model of Sutskever et al. (2014), and with
    `peek=True` of Cho et al. (2014):

        y(-1) = W_s C + b_s                      (start value)
        y(t) = Dense(LSTM(s(t-1), y(t-1)))        peek=False
        y(t) = Dense(LSTM(s(t-1), [y(t-1); C]))   peek=True

    where `C` is the encoder's context vector (its top layer's final output)
    and `s(-1)`, the decoder's initial state, is the encoder's final state
    when `broadcast_state=True` (zeros otherwise). With
    `inner_broadcast_state=True` each stack threads one shared state through
    its layers at every step, as the reference project did; with `False`
    every layer keeps its own state and the transfer goes layer by layer,
    aligned at the top of the stacks (see `StateBridge`).

    With `teacher_force=True` the decoder reads the true `y(t-1)` during
    training: pass `fit([x, y], y)` or simply `fit(x, y)`. `predict(x)`
    feeds back the model's own outputs.

    Args:
        output_dim: int. Width of each output step.
        output_length: int. Number of output steps.
        batch_input_shape: tuple `(batch_size, input_length, input_dim)`.
            Takes precedence over the other shape arguments.
        input_shape: tuple `(input_length, input_dim)`, used with
            `batch_size`.
        batch_size: int or `None`. Needed with `stateful=True`.
        input_dim: int. Features per input step, used when neither of the
            above is given.
        input_length: int or `None` (any length, the default).
        hidden_dim: int. Width of every recurrent layer. Defaults to
            `output_dim`, or 128 with `output_vocab_size`.
        depth: int or `(encoder_depth, decoder_depth)`. Defaults to `1`.
        broadcast_state: bool. Start the decoder from the encoder's final
            state. Defaults to `True`.
        unroll: bool. As in Keras' RNN layers: needs a fixed `input_length`.
            Accepted for compatibility; results are identical either way.
            Defaults to `False`.
        stateful: bool. The encoder's final states of one batch start the
            next batch, until `reset_states()`. Defaults to `False`.
        inner_broadcast_state: bool. One shared state per stack, threaded
            through every layer at every step, as in the reference project
            (at depth 1 this is the usual single layer). `False` gives the
            standard stacked recurrence, one state per layer, which runs as
            one fused call per layer at every depth; with `True` a stack
            deeper than one layer runs a step loop. Defaults to `True`.
        teacher_force: bool. Feed the ground truth during training.
            Defaults to `False`.
        peek: bool. Feed the context vector at every decoder step.
            Defaults to `False`.
        dropout: float in `[0, 1)`. Dropout on the input of every recurrent layer,
            one mask per sequence. Defaults to `0.0`.
        output_activation: activation of the output head. Defaults to `None`
            (linear).
        cell: `"lstm"`, `"gru"` or `"simple_rnn"`, or one of the classes
            `keras.layers.LSTMCell`, `GRUCell`, `SimpleRNNCell`. Defaults
            to `"lstm"`.
        bidirectional: bool. Bidirectional encoder. Defaults to `False`.
        bridge: how the encoder's final states start the decoder: `"concat"`
            hands them over as they are (a bidirectional encoder's forward
            and backward states concatenated, so the decoder is
            `2 * hidden_dim` wide), `"dense"` projects each through a tanh
            `Dense(hidden_dim)`, `None` starts from zeros. Defaults to
            `"concat"`.
        input_vocab_size: int. Inputs are token ids
            `(batch, input_length)` from a vocabulary of this size,
            embedded, with id 0 as padding (masked). Defaults to `None`
            (vector inputs).
        output_vocab_size: int. Outputs are probabilities over a vocabulary
            of this size; targets are ids `(batch, output_length)` padded
            with 0. Defaults to `None` (vector outputs).
        embedding_dim: int. Width of the token embeddings. Defaults to
            `hidden_dim`.
        input_embeddings: array `(input_vocab_size, embedding_dim)` of
            pre-trained input embeddings. Defaults to `None`.
        start_id: int. Token fed to a feedback decoder at step 0. Defaults
            to `1`.
        end_id: int. Token that ends a generated sequence. Defaults to `2`.
        scheduled_sampling: float in `[0, 1)`. With `teacher_force`, the
            probability that a training step reads the model's own
            previous prediction instead of the truth. Defaults to `0.0`.
        reverse_input: bool. Reverse each input's valid steps before
            encoding (Sutskever et al. 2014). Defaults to `False`.
        check_inputs: bool. Check every input and target for NaN and inf
            values before using them: `fit`, `evaluate`, `predict` and calls
            of the model then raise a `ValueError` that gives their number
            and the index of the first (in the whole array for arrays, in
            the batch for datasets and generators). Off by default, since
            the check reads the data once more. Token ids are always checked
            against the vocabularies. Defaults to `False`.
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

        >>> model = Seq2Seq(batch_input_shape=(16, 7, 5), hidden_dim=10,
        ...                 output_length=8, output_dim=20, depth=4)
        >>> tuple(model.predict(np.ones((16, 7, 5)), verbose=0).shape)
        (16, 8, 20)
    """

    def __init__(
        self,
        output_dim=None,
        output_length=None,
        batch_input_shape=None,
        input_shape=None,
        batch_size=None,
        input_dim=None,
        input_length=None,
        hidden_dim=None,
        depth=1,
        broadcast_state=True,
        unroll=False,
        stateful=False,
        inner_broadcast_state=True,
        teacher_force=False,
        peek=False,
        dropout=0.0,
        output_activation=None,
        cell="lstm",
        bidirectional=False,
        bridge="concat",
        input_vocab_size=None,
        output_vocab_size=None,
        embedding_dim=None,
        input_embeddings=None,
        start_id=1,
        end_id=2,
        scheduled_sampling=0.0,
        reverse_input=False,
        check_inputs=False,
        **kwargs,
    ):
        arguments = _builder_arguments(locals())
        super().__init__(_arguments.resolve("Seq2Seq", arguments), arguments, **kwargs)


@keras.saving.register_keras_serializable(package="kseq2seq")
class AttentionSeq2Seq(Seq2SeqModel):
    """Encoder-decoder with attention (Bahdanau et al. 2015).

    The encoder (`depth[0]` LSTM layers, bidirectional by default, the
    directions concatenated) produces one annotation `h_j` per input step.
    At every output step the decoder scores each annotation against its
    previous state `s(t-1)` (the output of its top layer at the previous
    step; zeros at step 0), by default with an additive score,

        e(t, j) = v . tanh(W h_j + U s(t-1) + b),  a(t) = softmax_j(e(t)),

    or with one of Luong et al.'s (2015) multiplicative scores (`attention`),
    so the weights move from step to step, and reads the attention context
    `sum_j a(t, j) h_j` together with its previous output `y(t-1)`:

        y(t) = Dense(LSTM(s(t-1), [y(t-1); context(t)]))

    Padded input steps (a mask) receive a weight of exactly zero, and the
    input length may vary. The decoder starts from zero states, as in the
    reference project, unless `bridge` hands it the encoder's states.

    Args:
        output_dim: int. Width of each output step.
        output_length: int. Number of output steps.
        batch_input_shape: tuple `(batch_size, input_length, input_dim)`.
            Takes precedence over the other shape arguments.
        input_shape: tuple `(input_length, input_dim)`, used with
            `batch_size`.
        batch_size: int or `None`. Needed with `stateful=True`.
        input_dim: int. Features per input step, used when neither of the
            above is given.
        input_length: int or `None` (any length, the default).
        hidden_dim: int. Width of every recurrent layer (per direction) and
            of the additive attention's hidden layer. Defaults to
            `output_dim`, or 128 with `output_vocab_size`.
        depth: int or `(encoder_depth, decoder_depth)`. Defaults to `1`.
        bidirectional: bool. Bidirectional encoder. Defaults to `True`.
        unroll: bool. As in Keras' RNN layers: needs a fixed `input_length`.
            Accepted for compatibility; results are identical either way.
            Defaults to `False`.
        stateful: bool. The encoder's final states of one batch start the
            next batch, until `reset_states()`. Defaults to `False`.
        dropout: float in `[0, 1)`. Dropout on the input of every recurrent layer,
            one mask per sequence. Defaults to `0.0`.
        teacher_force: bool. Feed the ground truth during training, as in
            `Seq2Seq`. Defaults to `False`.
        output_activation: activation of the output head. Defaults to `None`
            (linear).
        cell: `"lstm"`, `"gru"` or `"simple_rnn"`, or one of the classes
            `keras.layers.LSTMCell`, `GRUCell`, `SimpleRNNCell`. Defaults
            to `"lstm"`.
        bridge: how the encoder's final states start the decoder: `"concat"`
            hands them over as they are (a bidirectional encoder's forward
            and backward states concatenated, so the decoder is
            `2 * hidden_dim` wide), `"dense"` projects each through a tanh
            `Dense(hidden_dim)`, `None` starts from zeros. Defaults to
            `None`.
        input_vocab_size: int. Inputs are token ids
            `(batch, input_length)` from a vocabulary of this size,
            embedded, with id 0 as padding (masked). Defaults to `None`
            (vector inputs).
        output_vocab_size: int. Outputs are probabilities over a vocabulary
            of this size; targets are ids `(batch, output_length)` padded
            with 0. Defaults to `None` (vector outputs).
        embedding_dim: int. Width of the token embeddings. Defaults to
            `hidden_dim`.
        input_embeddings: array `(input_vocab_size, embedding_dim)` of
            pre-trained input embeddings. Defaults to `None`.
        start_id: int. Token fed to a feedback decoder at step 0. Defaults
            to `1`.
        end_id: int. Token that ends a generated sequence. Defaults to `2`.
        scheduled_sampling: float in `[0, 1)`. With `teacher_force`, the
            probability that a training step reads the model's own
            previous prediction instead of the truth. Defaults to `0.0`.
        reverse_input: bool. Reverse each input's valid steps before
            encoding (Sutskever et al. 2014). Defaults to `False`.
        check_inputs: bool. Check every input and target for NaN and inf
            values before using them: `fit`, `evaluate`, `predict` and calls
            of the model then raise a `ValueError` that gives their number
            and the index of the first (in the whole array for arrays, in
            the batch for datasets and generators). Off by default, since
            the check reads the data once more. Token ids are always checked
            against the vocabularies. Defaults to `False`.
        attention: how the decoder state `s` scores each annotation `h_j`:
            `"bahdanau"`, additive, `v . tanh(W h_j + U s + b)`;
            `"luong"`, the dot product `s . h_j`, which has no weights and
            needs the decoder as wide as the encoder's outputs
            (`bidirectional=False`, or `bridge="concat"` after a
            bidirectional encoder); `"luong_general"`, the bilinear
            `s . W h_j`, for any widths. Defaults to `"bahdanau"`.
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

        >>> model = AttentionSeq2Seq(input_dim=5, input_length=7, hidden_dim=10,
        ...                          output_length=8, output_dim=20, depth=4)
        >>> tuple(model.predict(np.ones((3, 7, 5)), verbose=0).shape)
        (3, 8, 20)
        >>> luong = AttentionSeq2Seq(input_dim=5, hidden_dim=10, output_length=8,
        ...                          output_dim=20, bidirectional=False,
        ...                          attention="luong")
        >>> tuple(luong.attention_weights(np.ones((3, 7, 5))).shape)
        (3, 8, 7)
    """

    def __init__(
        self,
        output_dim=None,
        output_length=None,
        batch_input_shape=None,
        batch_size=None,
        input_shape=None,
        input_length=None,
        input_dim=None,
        hidden_dim=None,
        depth=1,
        bidirectional=True,
        unroll=False,
        stateful=False,
        dropout=0.0,
        teacher_force=False,
        output_activation=None,
        cell="lstm",
        bridge=None,
        input_vocab_size=None,
        output_vocab_size=None,
        embedding_dim=None,
        input_embeddings=None,
        start_id=1,
        end_id=2,
        scheduled_sampling=0.0,
        reverse_input=False,
        check_inputs=False,
        attention="bahdanau",
        **kwargs,
    ):
        arguments = _builder_arguments(locals())
        super().__init__(
            _arguments.resolve("AttentionSeq2Seq", arguments), arguments, **kwargs
        )

    @torch.no_grad()
    def attention_weights(self, x, batch_size=None):
        """The attention weights of a free-running prediction.

        Like `predict`, this advances the carried state of a stateful model.

        Args:
            x: inputs, as for `predict`.
            batch_size: int. Defaults to the model's fixed batch size, or 32.

        Returns:
            NumPy array `(batch, output_length, input_length)`: row `t` is
            the distribution over input steps at output step `t`; padded
            input steps get exactly 0.
        """
        weights = []
        for batch in self._batches(x, batch_size):
            inputs = self._decoder_inputs(batch)
            _, batch_weights = self.decoder(**inputs, return_attention_weights=True)
            if self.spec.reverse_input:
                # Back from the encoder's reversed order to input positions.
                batch_weights = ops.transpose(
                    reverse_valid_steps(
                        ops.transpose(batch_weights, (0, 2, 1)), inputs["memory_mask"]
                    ),
                    (0, 2, 1),
                )
            weights.append(ops.convert_to_numpy(batch_weights))
        return np.concatenate(weights, axis=0)
