"""The three model builders: `SimpleSeq2Seq`, `Seq2Seq`, `AttentionSeq2Seq`.

They keep the names, arguments, defaults and positional order of
farizrahman4u/seq2seq, and share one mechanism, `Seq2SeqModel`: an encoder,
an optional bridge for its final states, and a decoder.
"""

import keras
import numpy as np
import torch
from keras import ops

from kseq2seq import _arguments
from kseq2seq import decoding
from kseq2seq.layers.bridge import StateBridge
from kseq2seq.layers.decoder import RecurrentDecoder
from kseq2seq.layers.encoder import RecurrentEncoder
from kseq2seq.ops import reverse_valid_steps


@keras.saving.register_keras_serializable(package="kseq2seq")
class Seq2SeqModel(keras.Model):
    """Base class of the builders: encoder -> bridge -> decoder.

    Maps `(batch, input_length, input_dim)` to
    `(batch, output_length, output_dim)`. With `input_vocab_size` the inputs
    are token ids `(batch, input_length)` (id 0 is padding and is masked);
    with `output_vocab_size` the outputs are probabilities over the
    vocabulary and the targets are ids `(batch, output_length)`, padded
    with 0 after the end id.

    Subclasses validate their arguments and call `_assemble`. The model
    comes compiled with `loss="mse", optimizer="rmsprop"`, or, for token
    outputs, `loss="sparse_categorical_crossentropy", optimizer="adam"` and
    an accuracy metric, padded target positions counting in neither;
    calling `compile` replaces that.

    Teacher-forced models take `[x, y]` during training, or `x` alone with
    `fit(x, y)` (the targets are then fed to the decoder too); `predict(x)`
    always runs free, feeding back the model's own outputs.
    """

    def _assemble(
        self,
        config,
        args,
        *,
        feedback,
        peek=False,
        attention=False,
        shared_state=False,
        broadcast_state=False,
    ):
        """Creates the layers from resolved arguments, builds and compiles.

        Args:
            config: the builder's own arguments, as given (for `get_config`).
            args: the arguments resolved by `_arguments.resolve`.
            feedback, peek, attention: the decoder's inputs.
            shared_state: one state per stack (`inner_broadcast_state`).
            broadcast_state: hand the encoder's final states to the decoder,
                as `args["bridge"]` says.
        """
        config = dict(config, cell=args["cell"])
        if args["input_embeddings"] is not None:
            # The matrix only initialises the weights, which are saved with
            # the model; the config keeps its shape.
            config.update(
                input_embeddings=None,
                input_vocab_size=args["input_vocab_size"],
                embedding_dim=args["embedding_dim"],
            )
        self._config = config
        self._args = args
        # The model consumes the input mask; its outputs are not masked.
        self.supports_masking = True
        encoder_depth, decoder_depth = args["depth"]
        hidden_dim = args["hidden_dim"]
        directions = 2 if args["bidirectional"] else 1
        decoder_units = hidden_dim
        self.bridge = None
        if broadcast_state:
            projected = args["bridge"] == "dense"
            if not projected:
                decoder_units = hidden_dim * directions
            self.bridge = StateBridge(
                decoder_depth,
                shared_state=shared_state,
                units=hidden_dim if projected else None,
                name="bridge",
                dtype=self.dtype_policy,
            )
        self.input_embedding = None
        if args["input_vocab_size"] is not None:
            initializer = "uniform"
            if args["input_embeddings"] is not None:
                initializer = keras.initializers.Constant(args["input_embeddings"])
            self.input_embedding = keras.layers.Embedding(
                args["input_vocab_size"],
                args["embedding_dim"],
                embeddings_initializer=initializer,
                name="input_embedding",
                dtype=self.dtype_policy,
            )
        self.encoder = RecurrentEncoder(
            hidden_dim,
            depth=encoder_depth,
            cell=args["cell"],
            bidirectional=args["bidirectional"],
            shared_state=shared_state,
            dropout=args["dropout"],
            stateful=args["stateful"],
            name="encoder",
            dtype=self.dtype_policy,
        )
        self.decoder = RecurrentDecoder(
            decoder_units,
            args["output_dim"],
            args["output_length"],
            depth=decoder_depth,
            cell=args["cell"],
            feedback=feedback,
            peek=peek,
            attention_units=hidden_dim if attention else None,
            shared_state=shared_state,
            dropout=args["dropout"],
            output_activation=args["output_activation"],
            embedding_dim=(
                args["embedding_dim"] if args["output_vocab_size"] else None
            ),
            start_id=args["start_id"],
            end_id=args["end_id"],
            sampling_probability=args["scheduled_sampling"],
            name="decoder",
            dtype=self.dtype_policy,
        )
        self._batch_input_shape = args["batch_input_shape"]
        self._output_dim = args["output_dim"]
        self._output_length = args["output_length"]
        self._teacher_force = args["teacher_force"]
        self._check_inputs = args["check_inputs"]
        self.build(self._batch_input_shape)
        if self.token_outputs:
            self.compile(
                loss="sparse_categorical_crossentropy",
                optimizer="adam",
                metrics=["sparse_categorical_accuracy"],
            )
        else:
            self.compile(loss="mse", optimizer="rmsprop")

    @property
    def token_inputs(self):
        return self.input_embedding is not None

    @property
    def token_outputs(self):
        return self.decoder.tokens

    @property
    def start_id(self):
        return self.decoder.start_id

    @property
    def end_id(self):
        return self.decoder.end_id

    def build(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)
        ):
            input_shape = input_shape[0]
        input_shape = tuple(input_shape)
        if self.input_embedding is not None:
            if not self.input_embedding.built:
                self.input_embedding.build(input_shape)
            input_shape = input_shape + (self.input_embedding.output_dim,)
        if not self.encoder.built:
            self.encoder.build(input_shape)
        sequence_shape, context_shape, states_shape = self.encoder.compute_output_shape(
            input_shape
        )
        if self.bridge is not None and not self.bridge.built:
            self.bridge.build(states_shape)
        if not self.decoder.built:
            self.decoder.build(context_shape, sequence_shape)
        self.built = True

    def _split_inputs(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if not self._teacher_force or len(inputs) != 2:
                expected = (
                    "`x` or `[x, y]`" if self._teacher_force else "a single tensor `x`"
                )
                raise ValueError(
                    f"{type(self).__name__} takes {expected} as input. "
                    f"Received a {type(inputs).__name__} of {len(inputs)} tensors."
                )
            return inputs[0], inputs[1]
        return inputs, None

    def _check_input(self, x):
        if self.token_inputs:
            batch, length = self._batch_input_shape
            expected = f"(batch, {length or 'input_length'}) token ids"
            rank = 2
        else:
            batch, length, dim = self._batch_input_shape
            expected = f"(batch, {length or 'input_length'}, {dim})"
            rank = 3
        if not hasattr(x, "shape"):
            raise ValueError(
                f"{type(self).__name__} expects an array or tensor of shape "
                f"{expected} as input. Received: x of type {type(x).__name__}"
            )
        shape = tuple(x.shape)
        if len(shape) != rank:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape {expected}. "
                f"Received: x.shape={shape}"
            )
        if not _is_symbolic(x) and (shape[0] == 0 or shape[1] == 0):
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape {expected} "
                "with at least one sequence of at least one step. Received: "
                f"x.shape={shape}"
            )
        if not self.token_inputs and shape[-1] is not None and shape[-1] != dim:
            raise ValueError(
                f"The input's feature size does not match `input_dim`: "
                f"expected inputs of shape {expected}, received "
                f"x.shape={shape}."
            )
        if length is not None and shape[1] is not None and shape[1] != length:
            raise ValueError(
                f"The input's length does not match `input_length`: expected "
                f"inputs of shape {expected}, received x.shape={shape}. Pass "
                "input_length=None to accept any length."
            )
        self._check_input_values("x", x)

    def _check_input_values(self, name, x):
        """Token ids in range, always; finite values with `check_inputs`."""
        if _is_symbolic(x):
            return
        if self.token_inputs:
            _check_ids(name, x, self.input_embedding.input_dim, "input_vocab_size")
        elif self._check_inputs:
            _check_finite(name, x)

    def _check_target_values(self, name, y):
        if _is_symbolic(y):
            return
        if self.token_outputs:
            _check_ids(name, y, self._output_dim, "output_vocab_size")
        elif self._check_inputs:
            _check_finite(name, y)

    def _check_target(self, name, y, values=True):
        if not hasattr(y, "shape"):
            raise ValueError(
                f"`{name}` must be an array or tensor. Received: {name} of type "
                f"{type(y).__name__}"
            )
        shape = tuple(y.shape)
        if self.token_outputs:
            expected = (self._output_length,)
            described = f"(batch, output_length) = (batch, {self._output_length}) ids"
        else:
            expected = (self._output_length, self._output_dim)
            described = (
                "(batch, output_length, output_dim) = "
                f"(batch, {self._output_length}, {self._output_dim})"
            )
        if len(shape) != len(expected) + 1 or tuple(shape[1:]) != expected:
            raise ValueError(
                f"`{name}` must have shape {described}. Received: {name}.shape={shape}"
            )
        if values:
            self._check_target_values(name, y)

    def _check_data(self, x, y=None, names=("x", "y")):
        """Checks the data handed to `fit`, `evaluate` or `predict` as a whole.

        Arrays only (generators and datasets are checked batch by batch in
        `call`): an array without samples, token ids out of range and, with
        `check_inputs`, non-finite values, reported at their index in the
        whole array rather than in a (shuffled) batch.
        """
        if x is None:
            raise ValueError(
                f"{type(self).__name__} needs input data. Received: {names[0]}=None"
            )
        arrays = []
        if isinstance(x, (list, tuple)) and self._teacher_force and len(x) == 2:
            arrays += [
                (f"{names[0]}[0]", x[0], self._check_input_values),
                (f"{names[0]}[1]", x[1], self._check_target_values),
            ]
        else:
            arrays.append((names[0], x, self._check_input_values))
        arrays.append((names[1], y, self._check_target_values))
        for name, array, check in arrays:
            if not _is_array(array):
                continue
            if len(array.shape) == 0 or array.shape[0] == 0:
                raise ValueError(
                    f"`{name}` holds no samples. Received: {name}.shape="
                    f"{tuple(array.shape)}"
                )
            check(name, array)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_data(x, y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (list, tuple)) and len(validation) >= 2:
            self._check_data(
                validation[0],
                validation[1],
                names=("validation_data[0]", "validation_data[1]"),
            )
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_data(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_data(x)
        return super().predict(x, *args, **kwargs)

    def _encode(self, x, mask=None, training=None):
        """Embeds and encodes `x`. Returns `(sequence, context, states, mask)`."""
        if self.token_inputs:
            ids = ops.cast(x, "int32")
            padding = ops.not_equal(ids, 0)
            mask = padding if mask is None else ops.logical_and(mask, padding)
            if self._args["reverse_input"]:
                ids = reverse_valid_steps(ids, mask)
            x = self.input_embedding(ids)
        else:
            # Integer or boolean vectors would reach the cells' matmuls as
            # they are.
            x = ops.cast(x, self.compute_dtype)
            if self._args["reverse_input"]:
                x = reverse_valid_steps(x, mask)
        sequence, context, states = self.encoder(x, mask=mask, training=training)
        return sequence, context, states, mask

    def _decoder_start(self, states):
        return self.bridge(states) if self.bridge is not None else None

    def call(self, inputs, training=None, mask=None):
        x, ground_truth = self._split_inputs(inputs)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        self._check_input(x)
        if ground_truth is not None:
            self._check_target("y", ground_truth)
            if not self.token_outputs:
                ground_truth = ops.cast(ground_truth, self.compute_dtype)
        sequence, context, states, mask = self._encode(x, mask, training)
        return self.decoder(
            context,
            initial_state=self._decoder_start(states),
            memory=sequence,
            memory_mask=mask,
            ground_truth=ground_truth,
            training=training,
        )

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)
        ):
            input_shape = input_shape[0]
        return (input_shape[0], self._output_length, self._output_dim)

    def train_step(self, data):
        if self._teacher_force:
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            if not isinstance(x, (list, tuple)) and y is not None:
                data = keras.utils.pack_x_y_sample_weight((x, y), y, sample_weight)
        return super().train_step(data)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Keras builds the metrics before the loss: a target of the wrong
        # shape would fail inside a metric with a backend error.
        if y is not None and hasattr(y, "shape"):
            self._check_target("y", y, values=False)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y is not None and hasattr(y, "shape"):
            self._check_target("y", y)
            if self.token_outputs:
                # Padded target positions count in neither the loss nor the
                # metrics: Keras' losses and metrics honour the mask that a
                # tensor carries as `_keras_mask`.
                y_pred._keras_mask = ops.not_equal(y, 0)
        return super().compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
        )

    def reset_states(self):
        """Zeroes the encoder states a stateful model carries across batches."""
        self.encoder.reset_states()

    def _batches(self, x, batch_size):
        batch_size = _arguments.positive_int("batch_size", batch_size, allow_none=True)
        x = np.asarray(x)
        self._check_input(x)
        batch_size = batch_size or self._batch_input_shape[0] or 32
        for start in range(0, len(x), batch_size):
            yield ops.convert_to_tensor(x[start : start + batch_size])

    def encode(self, x, batch_size=None):
        """Runs the encoder alone.

        Args:
            x: inputs, as for `predict`.
            batch_size: int. Defaults to the model's fixed batch size, or 32.

        Returns:
            A dict of NumPy arrays: `sequence` `(batch, input_length, width)`,
            the encoder's top-layer outputs; `context` `(batch, width)`, the
            context vector; `states`, one list of `(batch, width)` arrays per
            encoder layer (one in all with `inner_broadcast_state`).
        """
        parts = []
        for batch in self._batches(x, batch_size):
            sequence, context, states, _ = self._encode(batch)
            parts.append((sequence, context, states))
        to_numpy = ops.convert_to_numpy

        def join(tensors):
            return np.concatenate([to_numpy(t) for t in tensors], axis=0)

        return {
            "sequence": join([p[0] for p in parts]),
            "context": join([p[1] for p in parts]),
            "states": [
                [join([p[2][layer][i] for p in parts]) for i in range(len(state))]
                for layer, state in enumerate(parts[0][2])
            ],
        }

    def generate(
        self,
        x,
        method="greedy",
        beam_width=5,
        length_penalty=0.0,
        max_length=None,
        num_return_sequences=1,
        batch_size=None,
    ):
        """Decodes free-running, token by token or step by step.

        For token outputs, greedy or beam search from `start_id` until
        `end_id` (kept in the output; later positions are 0, the padding id)
        or `max_length` tokens; the padding and start ids are never emitted
        as tokens. For vector outputs, the decoder runs free for
        `max_length` steps, any number, feeding back its own outputs.

        Args:
            x: inputs, as for `predict`.
            method: `"greedy"` or `"beam"` (token outputs only).
            beam_width: int. Hypotheses kept per input by beam search.
            length_penalty: float >= 0. GNMT length penalty for ranking beam
                hypotheses; 0 ranks by total log-probability.
            max_length: int. Steps to decode. Defaults to `output_length`.
            num_return_sequences: int. Best hypotheses returned per input by
                beam search.
            batch_size: int. Defaults to the model's fixed batch size, or 32.

        Returns:
            For token outputs `(ids, scores)`: int32 ids
            `(batch, max_length)` (or `(batch, num_return_sequences,
            max_length)`) and their total log-probabilities `(batch,)` (or
            `(batch, num_return_sequences)`). For vector outputs, the outputs
            `(batch, max_length, output_dim)`.
        """
        if max_length is None:
            max_length = self._output_length
        max_length = _arguments.positive_int("max_length", max_length)
        _arguments.choice("method", method, ("greedy", "beam"))
        if method == "beam" and not self.token_outputs:
            raise ValueError(
                "Beam search needs token outputs (`output_vocab_size`). "
                f"Received: method={method!r}"
            )
        results = []
        for batch in self._batches(x, batch_size):
            sequence, context, states, mask = self._encode(batch)
            state = self.decoder.initial_decoding_state(
                context, self._decoder_start(states), sequence, mask
            )
            if not self.token_outputs:
                previous = self.decoder.start_readout(context)
                outputs = []
                for _ in range(max_length):
                    previous, state = self.decoder.decode_step(previous, state)
                    outputs.append(previous)
                results.append(ops.convert_to_numpy(ops.stack(outputs, axis=1)))
                continue
            start_ids = ops.full((ops.shape(batch)[0],), self.start_id, "int32")
            step_fn = self._token_step_fn()
            if method == "greedy":
                ids, scores = decoding.greedy_search(
                    step_fn, state, start_ids, self.end_id, max_length
                )
            else:
                ids, scores = decoding.beam_search(
                    step_fn,
                    state,
                    start_ids,
                    self.end_id,
                    max_length,
                    beam_width=beam_width,
                    length_penalty=length_penalty,
                    num_return_sequences=num_return_sequences,
                )
            results.append((ops.convert_to_numpy(ids), ops.convert_to_numpy(scores)))
        if not self.token_outputs:
            return np.concatenate(results, axis=0)
        return (
            np.concatenate([r[0] for r in results], axis=0),
            np.concatenate([r[1] for r in results], axis=0),
        )

    def _token_step_fn(self):
        """The decoder's step, unable to emit the padding or the start id.

        Neither is a token a sequence can contain, but a model trained on
        padded targets can still give them some probability.
        """
        penalty = np.zeros((self._output_dim,), "float32")
        penalty[self.decoder.never_emitted_ids] = _NEVER_LOG_PROB

        def step_fn(ids, state):
            log_probs, state = self.decoder.decode_step(ids, state)
            return log_probs + ops.cast(penalty, log_probs.dtype), state

        return step_fn

    def get_config(self):
        # Not chained to keras.Model: the config of a builder is its own
        # arguments, so `from_config` rebuilds the same class.
        config = {name: _json_friendly(v) for name, v in self._config.items()}
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            **config,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# A finite stand-in for log(0): the searches add and compare scores, which
# -inf would turn into NaN in their arithmetic.
_NEVER_LOG_PROB = -1e9


def _is_array(value):
    """Whether `value` is an array or tensor (not a dataset or generator)."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _is_symbolic(x):
    """Whether `x` has no values to check: a `KerasTensor`, a torch tensor on
    the meta device while Keras infers shapes, or any tensor while PyTorch
    traces or compiles the model (`torch.export`, `torch.compile`,
    `torch.jit.trace`), where a check would become a data-dependent branch."""
    if isinstance(x, keras.KerasTensor):
        return True
    device = getattr(x, "device", None)
    if getattr(device, "type", None) == "meta":
        return True
    is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)
    return torch.jit.is_tracing() or is_compiling()


def _count(flags, noun):
    count = int(flags.sum())
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _first_index(name, flags):
    index = ", ".join(str(int(i)) for i in np.argwhere(flags)[0])
    return f"{name}[{index}]"


def _check_finite(name, x):
    """Raises a ValueError naming the NaN and inf values of float `x`."""
    if not keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
        return
    if isinstance(x, np.ndarray):
        if np.isfinite(x).all():
            return
    elif bool(ops.all(ops.isfinite(x))):
        return
    values = ops.convert_to_numpy(x)
    nan, inf = np.isnan(values), np.isinf(values)
    first = _first_index(name, nan | inf)
    raise ValueError(
        f"`check_inputs=True`: `{name}` holds {_count(nan, 'NaN')} and "
        f"{_count(inf, 'infinite value')}; the first is {first} = "
        f"{values[nan | inf][0]}. Received: {name}.shape={tuple(values.shape)}"
    )


def _check_ids(name, ids, vocab_size, argument):
    """Raises a ValueError naming the token ids of `ids` outside the vocabulary."""
    if isinstance(ids, np.ndarray):
        if ids.dtype == object or ids.dtype.kind in "USV":
            return  # Left to the conversion to a tensor to reject.
        low, high = ids.min(), ids.max()
    else:
        low, high = ops.min(ids), ops.max(ids)
    # Comparisons with NaN are False: non-finite ids fail this test too.
    if bool(low >= 0) and bool(high < vocab_size):
        return
    values = ops.convert_to_numpy(ids)
    bad = ~((values >= 0) & (values < vocab_size))
    first = _first_index(name, bad)
    raise ValueError(
        f"`{name}` must hold token ids in [0, {argument}) = [0, {vocab_size}), "
        f"0 being padding. Received {_count(bad, 'id')} outside that range; "
        f"the first is {first} = {values[bad][0]}. {name}.shape="
        f"{tuple(values.shape)}"
    )


def _constructor_config(arguments):
    """A builder's own arguments, as given, from its `locals()`."""
    return {
        name: value
        for name, value in arguments.items()
        if name not in ("self", "kwargs", "__class__")
    }


def _json_friendly(value):
    if isinstance(value, (tuple, list)):
        return [_json_friendly(item) for item in value]
    return value


_SHAPE_ARGS_DOC = """
        batch_input_shape: tuple `(batch_size, input_length, input_dim)`.
            Takes precedence over the other shape arguments.
        input_shape: tuple `(input_length, input_dim)`, used with
            `batch_size`.
        batch_size: int or `None`. Needed with `stateful=True`.
        input_dim: int. Features per input step, used when neither of the
            above is given.
        input_length: int or `None` (any length, the default)."""


_TOKEN_ARGS_DOC = """
        cell: `"lstm"`, `"gru"` or `"simple_rnn"`, or one of the classes
            `keras.layers.LSTMCell`, `GRUCell`, `SimpleRNNCell`. Defaults
            to `"lstm"`.
        {bidirectional}input_vocab_size: int. Inputs are token ids
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
        {sampling}reverse_input: bool. Reverse each input's valid steps before
            encoding (Sutskever et al. 2014). Defaults to `False`.
        check_inputs: bool. Check every input and target for NaN and inf
            values before using them: `fit`, `evaluate`, `predict` and calls
            of the model then raise a `ValueError` that gives their number
            and the index of the first (in the whole array for arrays, in
            the batch for datasets and generators). Off by default, since
            the check reads the data once more. Token ids are always checked
            against the vocabularies. Defaults to `False`."""


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
        {shape_args}
        depth: int or `(encoder_depth, decoder_depth)`. Defaults to `1`.
        dropout: float in `[0, 1)`. Dropout on the input of every recurrent layer,
            one mask per sequence. Defaults to `0.0`.
        unroll: bool. As in Keras' RNN layers: needs a fixed `input_length`.
            On the PyTorch backend every recurrence already runs as an
            explicit loop over time steps, so results are identical.
            Defaults to `False`.
        stateful: bool. The encoder's final states of one batch start the
            next batch, until `reset_states()`. Needs a fixed batch size.
            Defaults to `False`.
        output_activation: activation of the output head. Defaults to `None`
            (linear); use `"softmax"` for one-hot targets.
        {token_args}
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
        config = _constructor_config(locals())
        args = _arguments.resolve(config)
        super().__init__(**kwargs)
        self._assemble(config, args, feedback=False, peek=True)


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
        {shape_args}
        hidden_dim: int. Width of every recurrent layer. Defaults to
            `output_dim`, or 128 with `output_vocab_size`.
        depth: int or `(encoder_depth, decoder_depth)`. Defaults to `1`.
        broadcast_state: bool. Start the decoder from the encoder's final
            state. Defaults to `True`.
        unroll: bool. As in Keras' RNN layers: needs a fixed `input_length`.
            On the PyTorch backend every recurrence already runs as an
            explicit loop over time steps, so results are identical.
            Defaults to `False`.
        stateful: bool. The encoder's final states of one batch start the
            next batch, until `reset_states()`. Defaults to `False`.
        inner_broadcast_state: bool. One shared state per stack. Defaults
            to `True`.
        teacher_force: bool. Feed the ground truth during training.
            Defaults to `False`.
        peek: bool. Feed the context vector at every decoder step.
            Defaults to `False`.
        dropout: float in `[0, 1)`. Dropout on the input of every recurrent layer,
            one mask per sequence. Defaults to `0.0`.
        output_activation: activation of the output head. Defaults to `None`
            (linear).
        {token_args}
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
        config = _constructor_config(locals())
        args = _arguments.resolve(config)
        broadcast = args["broadcast_state"] and args["bridge"] is not None
        if args["output_vocab_size"] is not None and not (broadcast or args["peek"]):
            # A vector decoder still reads the input through its start
            # value; a token decoder starts from `start_id`.
            raise ValueError(
                "This token decoder would never read the input: it starts from "
                "zeros and `start_id`. Hand it the encoder's states "
                '(`broadcast_state=True`, `bridge="concat"` or `"dense"`) or '
                f"set `peek=True`. Received: broadcast_state={broadcast_state!r}, "
                f"bridge={bridge!r}, peek={peek!r}"
            )
        super().__init__(**kwargs)
        self._assemble(
            config,
            args,
            feedback=True,
            peek=args["peek"],
            shared_state=args["inner_broadcast_state"],
            broadcast_state=broadcast,
        )


@keras.saving.register_keras_serializable(package="kseq2seq")
class AttentionSeq2Seq(Seq2SeqModel):
    """Encoder-decoder with additive attention (Bahdanau et al. 2015).

    The encoder (`depth[0]` LSTM layers, bidirectional by default, the
    directions concatenated) produces one annotation `h_j` per input step.
    At every output step the decoder scores each annotation against its
    previous state `s(t-1)` (the output of its top layer at the previous
    step; zeros at step 0),

        e(t, j) = v . tanh(W h_j + U s(t-1) + b),  a(t) = softmax_j(e(t)),

    so the weights move from step to step, and reads the attention context
    `sum_j a(t, j) h_j` together with its previous output `y(t-1)`:

        y(t) = Dense(LSTM(s(t-1), [y(t-1); context(t)]))

    Padded input steps (a mask) receive a weight of exactly zero, and the
    input length may vary. The decoder starts from zero states, as in the
    reference project, unless `bridge` hands it the encoder's states.

    Args:
        output_dim: int. Width of each output step.
        output_length: int. Number of output steps.
        {shape_args}
        hidden_dim: int. Width of every recurrent layer (per direction) and
            of the attention's hidden layer. Defaults to `output_dim`, or 128
            with `output_vocab_size`.
        depth: int or `(encoder_depth, decoder_depth)`. Defaults to `1`.
        bidirectional: bool. Bidirectional encoder. Defaults to `True`.
        unroll: bool. As in Keras' RNN layers: needs a fixed `input_length`.
            On the PyTorch backend every recurrence already runs as an
            explicit loop over time steps, so results are identical.
            Defaults to `False`.
        stateful: bool. The encoder's final states of one batch start the
            next batch, until `reset_states()`. Defaults to `False`.
        dropout: float in `[0, 1)`. Dropout on the input of every recurrent layer,
            one mask per sequence. Defaults to `0.0`.
        teacher_force: bool. Feed the ground truth during training, as in
            `Seq2Seq`. Defaults to `False`.
        output_activation: activation of the output head. Defaults to `None`
            (linear).
        {token_args}
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

        >>> model = AttentionSeq2Seq(input_dim=5, input_length=7, hidden_dim=10,
        ...                          output_length=8, output_dim=20, depth=4)
        >>> tuple(model.predict(np.ones((3, 7, 5)), verbose=0).shape)
        (3, 8, 20)
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
        **kwargs,
    ):
        config = _constructor_config(locals())
        args = _arguments.resolve(config)
        super().__init__(**kwargs)
        self._assemble(
            config,
            args,
            feedback=True,
            attention=True,
            broadcast_state=args["bridge"] is not None,
        )

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
            sequence, context, states, mask = self._encode(batch)
            _, batch_weights = self.decoder(
                context,
                initial_state=self._decoder_start(states),
                memory=sequence,
                memory_mask=mask,
                return_attention_weights=True,
            )
            if self._args["reverse_input"]:
                # Back from the encoder's reversed order to input positions.
                batch_weights = ops.transpose(
                    reverse_valid_steps(ops.transpose(batch_weights, (0, 2, 1)), mask),
                    (0, 2, 1),
                )
            weights.append(ops.convert_to_numpy(batch_weights))
        return np.concatenate(weights, axis=0)


_BIDIRECTIONAL_DOC = """bidirectional: bool. Bidirectional encoder. Defaults to `False`.
        """
_BRIDGE_DOC = """bridge: how the encoder's final states start the decoder: `"concat"`
            hands them over as they are (a bidirectional encoder's forward
            and backward states concatenated, so the decoder is
            `2 * hidden_dim` wide), `"dense"` projects each through a tanh
            `Dense(hidden_dim)`, `None` starts from zeros. Defaults to
            {default}.
        """
_SAMPLING_DOC = """scheduled_sampling: float in `[0, 1)`. With `teacher_force`, the
            probability that a training step reads the model's own
            previous prediction instead of the truth. Defaults to `0.0`.
        """
_EXTRA_DOCS = {
    "SimpleSeq2Seq": (_BIDIRECTIONAL_DOC, ""),
    "Seq2Seq": (
        _BIDIRECTIONAL_DOC + _BRIDGE_DOC.format(default='`"concat"`'),
        _SAMPLING_DOC,
    ),
    "AttentionSeq2Seq": (_BRIDGE_DOC.format(default="`None`"), _SAMPLING_DOC),
}
for _builder in (SimpleSeq2Seq, Seq2Seq, AttentionSeq2Seq):
    _bidirectional, _sampling = _EXTRA_DOCS[_builder.__name__]
    _builder.__doc__ = _builder.__doc__.replace(
        "{shape_args}", _SHAPE_ARGS_DOC.strip()
    ).replace(
        "{token_args}",
        _TOKEN_ARGS_DOC.strip().format(
            bidirectional=_bidirectional, sampling=_sampling
        ),
    )
