"""`Seq2SeqModel`: the model every builder makes, encoder -> bridge -> decoder."""

import contextlib
import inspect

import keras
from keras import ops
from keras.src.backend import AutocastScope

from kseq2seq import distributed
from kseq2seq import ops as kernels
from kseq2seq.models.assembly import make_layers
from kseq2seq.models.checks import DataChecks
from kseq2seq.models.inference import Inference
from kseq2seq.ops import reverse_valid_steps


@keras.saving.register_keras_serializable(package="kseq2seq")
class Seq2SeqModel(Inference, keras.Model):
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
        # One weight per target id while `fit` trains with `class_weight`.
        self._class_weights = None
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
        # Keras keeps an earlier `compile`'s metrics when given none, and the
        # constructor has compiled with the defaults: `metrics=None` clears.
        self._compile_metrics = None
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
            x = kernels.embed(self.input_embedding, ids)
        else:
            # Integer or boolean vectors would reach the cells' matmuls as
            # they are.
            x = ops.cast(x, self.compute_dtype)
            if self.spec.reverse_input:
                x = reverse_valid_steps(x, mask)
        with self._autocast():
            sequence, context, states = self.encoder.call(
                x, mask=mask, training=training
            )
        return sequence, context, states, mask

    def _decoder_inputs(self, x, mask=None, training=None):
        """The decoder's call arguments for inputs `x`."""
        sequence, context, states, mask = self._encode(x, mask, training)
        if self.bridge is not None:
            with self._autocast():
                states = self.bridge.call(states)
        return dict(
            context=context,
            initial_state=states if self.bridge is not None else None,
            memory=sequence,
            memory_mask=mask,
        )

    # The encoder, bridge and decoder are built sublayers that share the
    # model's dtype policy and take its training flag and mask as
    # arguments, so the model runs their `call` directly: Keras'
    # `__call__`, which has done that work once for the whole model, costs
    # about 0.4 ms a call on a CPU, the time of a small model's LSTM step.
    # Outside the model's `__call__` (`encode`, `generate`), this opens the
    # autocast scope that `__call__` would.
    def _autocast(self):
        policy = self.dtype_policy
        if policy.compute_dtype == policy.variable_dtype:
            return contextlib.nullcontext()
        return AutocastScope(policy.compute_dtype)

    def call(self, inputs, training=None, mask=None):
        x, ground_truth = self._checks.split(inputs)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        self._checks.input(x)
        if ground_truth is not None:
            self._checks.target("y", ground_truth)
            if not self.token_outputs:
                ground_truth = ops.cast(ground_truth, self.compute_dtype)
        # A forward pass assigns no weight: the kernels read each once.
        with kernels.weights_read_once():
            return self.decoder.call(
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
        """Trains the model: `keras.Model.fit`, with per-token class weights.

        For token outputs `class_weight={id: weight}` weighs each target
        position by the weight of the id it holds (ids left out weigh 1; padded
        positions still count in neither the loss nor the metrics), multiplied
        by `sample_weight` if both are given. `sample_weight` may hold one
        weight per sequence, `(batch,)` or `(batch, 1)`, or one per target
        step, `(batch, output_length)`. Arrays are checked as a whole before
        training starts.
        """
        signature = inspect.signature(super().fit)
        arguments = signature.bind(x, y, *args, **kwargs).arguments
        class_weights = self._checks.class_weights(arguments.pop("class_weight", None))
        checked = self._checks.whole(x, y, needs_targets=True)
        validation = arguments.get("validation_data")
        if isinstance(validation, (list, tuple)) and len(validation) >= 2:
            checked &= self._checks.whole(
                validation[0],
                validation[1],
                names=("validation_data[0]", "validation_data[1]"),
            )
        elif validation is not None:
            checked = False
        with self._checks.checked_up_front(checked), self._weighing(class_weights):
            return distributed.fit(self, super().fit, **arguments)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        checked = True
        if not kwargs.get("_use_cached_eval_dataset"):
            # Not `fit` evaluating its validation data, which it checked once.
            checked = self._checks.whole(x, y, needs_targets=True)
        with self._checks.checked_up_front(checked):
            return distributed.evaluate(self, super().evaluate, x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        with self._checks.checked_up_front(self._checks.whole(x)):
            return distributed.predict(self, super().predict, x, *args, **kwargs)

    def save_weights(self, filepath, *args, **kwargs):
        """Saves the weights; see `keras.Model.save_weights`. Under torchrun
        only the first process writes."""
        if distributed.writes_files():
            super().save_weights(filepath, *args, **kwargs)

    def train_on_batch(
        self, x, y=None, sample_weight=None, class_weight=None, return_dict=False
    ):
        """`keras.Model.train_on_batch`, with `class_weight` as in `fit`."""
        with self._weighing(self._checks.class_weights(class_weight)):
            return super().train_on_batch(
                x, y, sample_weight=sample_weight, return_dict=return_dict
            )

    @contextlib.contextmanager
    def _weighing(self, class_weights):
        """Weighs the training steps' target ids by `class_weights` (`None`,
        or one weight per id)."""
        if class_weights is not None:
            class_weights = ops.convert_to_tensor(class_weights)
        previous, self._class_weights = self._class_weights, class_weights
        try:
            yield
        finally:
            self._class_weights = previous

    def training_inputs(self, x, y):
        """What the model reads in a training step: `[x, y]` for a
        teacher-forced model given targets, `x` otherwise."""
        if self.spec.teacher_force and y is not None:
            if not isinstance(x, (list, tuple)):
                return [x, y]
        return x

    def step_batch(self, data, training):
        """`(inputs, y, sample_weight)` of a step on the batch `data`.

        The inputs the model reads (`training_inputs` when training), and
        the sample weights in the shape the loss reads, times the weights of
        `fit`'s `class_weight` when training. The one rule of both Keras'
        steps and the data-parallel ones.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        sample_weight = self._checks.sample_weight(sample_weight)
        if not training:
            return x, y, sample_weight
        if self._class_weights is not None and y is not None:
            # Checked before the ids index the weights.
            self._checks.target("y", y)
            weights = ops.take(self._class_weights, ops.cast(y, "int32"))
            sample_weight = (
                weights if sample_weight is None else weights * sample_weight
            )
        return self.training_inputs(x, y), y, sample_weight

    def train_step(self, data):
        batch = self.step_batch(data, training=True)
        return super().train_step(keras.utils.pack_x_y_sample_weight(*batch))

    def test_step(self, data):
        batch = self.step_batch(data, training=False)
        return super().test_step(keras.utils.pack_x_y_sample_weight(*batch))

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y is not None:
            # The one place every batch's targets pass through: training and
            # evaluation steps, and Keras' symbolic build before them.
            self._checks.target("y", y)
        sample_weight = self._checks.sample_weight(sample_weight)
        if self.token_outputs and y is not None:
            # Padded target positions count in neither the loss nor the
            # metrics: Keras' losses and metrics honour the mask that a
            # tensor carries as `_keras_mask`.
            y_pred._keras_mask = ops.not_equal(y, 0)
            if sample_weight is not None:
                # The loss scales the weights by the mask in place, and the
                # weighted metrics read them afterwards.
                sample_weight = ops.copy(sample_weight)
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

    def save(self, filepath, *args, **kwargs):
        """Saves the model to a `.keras` file; see `keras.Model.save`.

        Keras' legacy HDF5 format (`.h5`, `.hdf5`) is refused: its files do
        not load back as kseq2seq models.
        """
        if str(filepath).endswith((".h5", ".hdf5")):
            raise ValueError(
                "kseq2seq models save to the `.keras` format: a legacy HDF5 "
                'file does not load back (`load_model` fails with "Unknown '
                'layer"). Save to a `.keras` file, e.g. '
                "`model.save('model.keras')`, or save the weights alone with "
                f"`model.save_weights('model.weights.h5')`. Received: "
                f"filepath={str(filepath)!r}"
            )
        # Under torchrun every process holds the same weights: one writes.
        if distributed.writes_files():
            super().save(filepath, *args, **kwargs)

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
