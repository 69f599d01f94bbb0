"""`Seq2SeqModel`: the model every builder makes, encoder -> bridge -> decoder."""

import functools

import keras
import numpy as np
from keras import ops

from kseq2seq import _validate
from kseq2seq import decoding
from kseq2seq import distributed
from kseq2seq.models.assembly import make_layers
from kseq2seq.models.checks import DataChecks
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

    Models are made by the builders `SimpleSeq2Seq`, `Seq2Seq` and
    `AttentionSeq2Seq`, which resolve their arguments into a `ModelSpec`
    and hand it here. The model comes compiled with its defaults (see
    `compile`).

    Teacher-forced models take `[x, y]` during training, or `x` alone with
    `fit(x, y)` (the targets are then fed to the decoder too); `predict(x)`
    always runs free, feeding back the model's own outputs.

    Args:
        spec: a `ModelSpec` from `kseq2seq._arguments.resolve`.
        arguments: the builder's own arguments, as given, for `get_config`.
        **kwargs: `keras.Model` arguments such as `name`.
    """

    def __init__(self, spec=None, arguments=None, **kwargs):
        if spec is None:
            raise TypeError(
                "Seq2SeqModel is the base class of the kseq2seq models; build "
                "one with SimpleSeq2Seq, Seq2Seq or AttentionSeq2Seq."
            )
        super().__init__(**kwargs)
        self.spec = spec
        self._arguments = _saved_arguments(spec, arguments or {})
        self._checks = DataChecks(spec, type(self).__name__)
        # The model consumes the input mask; its outputs are not masked.
        self.supports_masking = True
        self.bridge, self.input_embedding, self.encoder, self.decoder = make_layers(
            spec, self.dtype_policy
        )
        self.build(spec.batch_input_shape)
        self.compile()

    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Configures training, with the model's defaults for `"auto"`.

        The defaults: `optimizer="rmsprop"`, `loss="mse"` and no metrics for
        vector outputs; `optimizer="adam"`,
        `loss="sparse_categorical_crossentropy"` and
        `metrics=["sparse_categorical_accuracy"]` for token outputs, padded
        target positions counting in neither loss nor metrics. Other
        arguments are `keras.Model.compile`'s.
        """
        tokens = self.spec.token_outputs
        if optimizer == "auto":
            optimizer = "adam" if tokens else "rmsprop"
        if loss == "auto":
            loss = "sparse_categorical_crossentropy" if tokens else "mse"
        if metrics == "auto":
            metrics = ["sparse_categorical_accuracy"] if tokens else None
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips a custom `compile` when loading; this one only resolves
        # "auto", and a saved config holds the resolved arguments.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            # Created now so that the saved optimizer state can load into it.
            self.optimizer.build(self.trainable_variables)

    @property
    def token_inputs(self):
        return self.spec.token_inputs

    @property
    def token_outputs(self):
        return self.spec.token_outputs

    @property
    def start_id(self):
        return self.spec.start_id

    @property
    def end_id(self):
        return self.spec.end_id

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

    def _encode(self, x, mask=None, training=None):
        """Embeds and encodes `x`. Returns `(sequence, context, states, mask)`."""
        if self.token_inputs:
            ids = ops.cast(x, "int32")
            padding = ops.not_equal(ids, 0)
            mask = padding if mask is None else ops.logical_and(mask, padding)
            if self.spec.reverse_input:
                ids = reverse_valid_steps(ids, mask)
            x = self.input_embedding(ids)
        else:
            # Integer or boolean vectors would reach the cells' matmuls as
            # they are.
            x = ops.cast(x, self.compute_dtype)
            if self.spec.reverse_input:
                x = reverse_valid_steps(x, mask)
        sequence, context, states = self.encoder(x, mask=mask, training=training)
        return sequence, context, states, mask

    def _decoder_inputs(self, x, mask=None, training=None):
        """The decoder's call arguments for inputs `x`."""
        sequence, context, states, mask = self._encode(x, mask, training)
        return dict(
            context=context,
            initial_state=self.bridge(states) if self.bridge is not None else None,
            memory=sequence,
            memory_mask=mask,
        )

    def call(self, inputs, training=None, mask=None):
        x, ground_truth = self._checks.split(inputs)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        self._checks.input(x)
        if ground_truth is not None:
            self._checks.target("y", ground_truth)
            if not self.token_outputs:
                ground_truth = ops.cast(ground_truth, self.compute_dtype)
        return self.decoder(
            **self._decoder_inputs(x, mask, training),
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
        return (input_shape[0], self.spec.output_length, self.spec.output_dim)

    # The trainer's entry points and hooks.

    def fit(self, x=None, y=None, *args, **kwargs):
        checked = self._checks.whole(x, y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (list, tuple)) and len(validation) >= 2:
            checked &= self._checks.whole(
                validation[0],
                validation[1],
                names=("validation_data[0]", "validation_data[1]"),
            )
        elif validation is not None:
            checked = False
        with self._checks.checked_up_front(checked):
            return distributed.fit(self, super().fit, x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        with self._checks.checked_up_front(self._checks.whole(x, y)):
            return distributed.evaluate(self, super().evaluate, x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        with self._checks.checked_up_front(self._checks.whole(x)):
            return distributed.predict(self, super().predict, x, *args, **kwargs)

    def save(self, filepath, *args, **kwargs):
        # Under torchrun every process holds the same weights: one writes.
        if distributed.writes_files():
            super().save(filepath, *args, **kwargs)

    def save_weights(self, filepath, *args, **kwargs):
        if distributed.writes_files():
            super().save_weights(filepath, *args, **kwargs)

    def training_inputs(self, x, y):
        """What the model reads in a training step: `[x, y]` for a
        teacher-forced model given targets, `x` otherwise."""
        if self.spec.teacher_force and y is not None:
            if not isinstance(x, (list, tuple)):
                return [x, y]
        return x

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        inputs = self.training_inputs(x, y)
        if inputs is not x:
            data = keras.utils.pack_x_y_sample_weight(inputs, y, sample_weight)
        return super().train_step(data)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y is not None:
            # The one place every batch's targets pass through: training and
            # evaluation steps, and Keras' symbolic build before them.
            self._checks.target("y", y)
        if self.token_outputs and y is not None:
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

    # Inference beyond `predict`.

    def _batches(self, x, batch_size):
        batch_size = _validate.positive_int("batch_size", batch_size, allow_none=True)
        x = np.asarray(x)
        self._checks.input(x)
        batch_size = batch_size or self.spec.batch_input_shape[0] or 32
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
        parts = [self._encode(batch)[:3] for batch in self._batches(x, batch_size)]

        def join(tensors):
            return np.concatenate([ops.convert_to_numpy(t) for t in tensors], axis=0)

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
        temperature=1.0,
        top_k=None,
        top_p=None,
        seed=None,
    ):
        """Decodes free-running, token by token or step by step.

        For token outputs, greedy search, beam search or sampling from
        `start_id` until `end_id` (kept in the output; later positions are
        0, the padding id) or `max_length` tokens; the padding and start ids
        are never emitted as tokens. For vector outputs, the decoder runs
        free for `max_length` steps, any number, feeding back its own
        outputs.

        Args:
            x: inputs, as for `predict`.
            method: `"greedy"`, `"beam"` or `"sample"` (the last two for
                token outputs only).
            beam_width: int. Hypotheses kept per input by beam search.
            length_penalty: float >= 0. GNMT length penalty for ranking beam
                hypotheses; 0 ranks by total log-probability.
            max_length: int. Steps to decode. Defaults to `output_length`.
            num_return_sequences: int. Best hypotheses returned per input by
                beam search.
            batch_size: int. Defaults to the model's fixed batch size, or 32.
            temperature: float > 0. Sampling draws from the distribution
                sharpened (below 1) or flattened (above 1) by this
                temperature. Defaults to `1.0`.
            top_k: int or `None`. Sampling draws from the `top_k` most
                probable tokens only. Defaults to `None` (no limit).
            top_p: float in (0, 1] or `None`. Sampling draws from the
                smallest set of most probable tokens whose probability
                reaches `top_p` (nucleus sampling). Defaults to `None`.
            seed: int in `[0, 2**31 - 1]` or `None`. Makes sampling
                reproducible: the same seed, inputs and `batch_size` give
                the same ids on the same device. `x` is decoded in batches
                of `batch_size`, and the seed starts a generator that
                draws one seed per batch, in order: the batches draw
                independently of each other (equal inputs in two batches
                need not get equal ids), and a different `batch_size` may
                draw different ids. `None` draws fresh ids at every call.

        Returns:
            For token outputs `(ids, scores)`: int32 ids
            `(batch, max_length)` (or `(batch, num_return_sequences,
            max_length)`) and their total log-probabilities `(batch,)` (or
            `(batch, num_return_sequences)`), under the model's
            distribution (before the temperature and the filtering of
            sampling). For vector outputs, the outputs
            `(batch, max_length, output_dim)`.

        Example:

            >>> model = Seq2Seq(input_vocab_size=9, output_vocab_size=9,
            ...                 output_length=5, hidden_dim=6)
            >>> x = np.array([[5, 4, 8], [7, 8, 0]])
            >>> ids, scores = model.generate(x, method="sample", top_k=3, seed=7)
            >>> ids.shape, scores.shape
            ((2, 5), (2,))
            >>> again, _ = model.generate(x, method="sample", top_k=3, seed=7)
            >>> bool((ids == again).all())
            True
        """
        if max_length is None:
            max_length = self.spec.output_length
        max_length = _validate.positive_int("max_length", max_length)
        _validate.choice("method", method, ("greedy", "beam", "sample"))
        if method != "greedy" and not self.token_outputs:
            name = "Beam search" if method == "beam" else "Sampling"
            raise ValueError(
                f"{name} needs token outputs (`output_vocab_size`). "
                f"Received: method={method!r}"
            )
        if not self.token_outputs:
            return np.concatenate(
                [
                    ops.convert_to_numpy(
                        self.decoder.run_free(
                            **self._decoder_inputs(batch), steps=max_length
                        )
                    )
                    for batch in self._batches(x, batch_size)
                ],
                axis=0,
            )
        search = _searches(
            method,
            max_length,
            beam=dict(
                beam_width=beam_width,
                length_penalty=length_penalty,
                num_return_sequences=num_return_sequences,
            ),
            sample=dict(temperature=temperature, top_k=top_k, top_p=top_p),
            seed=_validate.integer("seed", seed, 0, 2**31 - 1, allow_none=True),
            never_drawn=self.decoder.never_emitted_ids,
        )
        results = [
            self._search_tokens(batch, search) for batch in self._batches(x, batch_size)
        ]
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*results))

    def _search_tokens(self, batch, search):
        """`(ids, scores)` of one batch, as NumPy arrays."""
        state = self.decoder.initial_decoding_state(**self._decoder_inputs(batch))
        start_ids = ops.full((ops.shape(batch)[0],), self.start_id, "int32")
        ids, scores = search(self.decoder.decode_step, state, start_ids, self.end_id)
        return ops.convert_to_numpy(ids), ops.convert_to_numpy(scores)

    def get_config(self):
        # Not chained to keras.Model: the config of a builder is its own
        # arguments, so `from_config` rebuilds the same class.
        config = {name: _json_friendly(v) for name, v in self._arguments.items()}
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            **config,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _searches(method, max_length, beam, sample, seed, never_drawn):
    """The search `generate` runs on every batch:
    `search(step_fn, state, start_ids, end_id) -> (ids, scores)`.

    `beam` and `sample` are the options of beam search and of sampling.
    Sampling seeds each batch from one generator seeded with `seed`, in
    the order of the batches; `never_drawn` are the ids it must not draw.
    """
    if method == "greedy":
        return functools.partial(decoding.greedy_search, max_length=max_length)
    if method == "beam":
        return functools.partial(decoding.beam_search, max_length=max_length, **beam)
    seeds = None if seed is None else np.random.default_rng(seed)

    def search(step_fn, state, start_ids, end_id):
        batch_seed = None if seeds is None else int(seeds.integers(2**31))
        return decoding.sample_search(
            _ruling_out(step_fn, never_drawn),
            state,
            start_ids,
            end_id,
            max_length,
            seed=batch_seed,
            **sample,
        )

    return search


def _ruling_out(step_fn, ids):
    """`step_fn` with log-probability -inf at `ids`.

    The decoder gives the ids it never emits a finite stand-in for log(0),
    which searches need to add and compare scores; a high enough sampling
    temperature would flatten it into a real chance of being drawn.
    """
    penalty = []  # Made at the first step, on the device of the outputs.

    def ruled_out_step(previous, state):
        log_probs, state = step_fn(previous, state)
        if not penalty:
            values = np.zeros((log_probs.shape[-1],), "float32")
            values[ids] = -np.inf
            penalty.append(ops.cast(ops.convert_to_tensor(values), log_probs.dtype))
        return log_probs + penalty[0], state

    return ruled_out_step


def _saved_arguments(spec, arguments):
    """The builder's arguments as `get_config` saves them."""
    arguments = dict(arguments, cell=spec.cell)
    if spec.input_embeddings is not None:
        # The matrix only initialises the weights, which are saved with the
        # model; the config keeps its shape.
        arguments.update(
            input_embeddings=None,
            input_vocab_size=spec.input_vocab_size,
            embedding_dim=spec.embedding_dim,
        )
    return arguments


def _json_friendly(value):
    if isinstance(value, (tuple, list)):
        return [_json_friendly(item) for item in value]
    return value
