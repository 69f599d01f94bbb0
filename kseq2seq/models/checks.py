"""The rules a model's inputs and targets follow, each written once.

`DataChecks` holds them for one model: the shapes of `x` and `y`, arrays of
numbers rather than text or Python lists, token ids that are whole numbers
inside the vocabularies, with `check_inputs=True` finite values, and the
shapes of `sample_weight` and `class_weight`. The model calls it at its
public edges: `fit`, `evaluate` and `predict` check
whole arrays once (so an error names an index in the array, not in a
shuffled batch), and the trainer's steps check each batch's shapes, and
its values only where the whole data could not be checked up front
(datasets and generators).
"""

import contextlib

import keras
import numpy as np
import torch
from keras import ops

from kseq2seq import _validate


class DataChecks:
    """The input and target rules of one model.

    Args:
        spec: the model's `ModelSpec`.
        model_name: the builder's name, for messages.
    """

    def __init__(self, spec, model_name):
        self.spec = spec
        self.model_name = model_name
        # Off while `fit`, `evaluate` or `predict` run on arrays whose values
        # were checked as a whole.
        self.check_batch_values = True

    def split(self, inputs):
        """`(x, ground_truth)`: teacher-forced models also take `[x, y]`."""
        if not isinstance(inputs, (list, tuple)):
            return inputs, None
        teacher_force = self.spec.teacher_force
        if not teacher_force or len(inputs) != 2:
            expected = "`x` or `[x, y]`" if teacher_force else "a single tensor `x`"
            raise ValueError(
                f"{self.model_name} takes {expected} as input. "
                f"Received a {type(inputs).__name__} of {len(inputs)} tensors."
            )
        return inputs[0], inputs[1]

    def _expected_input(self):
        length = self.spec.batch_input_shape[1] or "input_length"
        if self.spec.token_inputs:
            return f"(batch, {length}) token ids", 2
        return f"(batch, {length}, {self.spec.batch_input_shape[2]})", 3

    def input(self, x):
        """Checks a batch of inputs `x`: its shape, then its values."""
        expected, rank = self._expected_input()
        if not hasattr(x, "shape"):
            raise ValueError(
                f"{self.model_name} expects an array or tensor of shape "
                f"{expected} as input. Received: x of type {type(x).__name__}"
            )
        shape = tuple(x.shape)
        if len(shape) != rank:
            raise ValueError(
                f"{self.model_name} expects inputs of shape {expected}. "
                f"Received: x.shape={shape}"
            )
        if not is_symbolic(x) and (shape[0] == 0 or shape[1] == 0):
            raise ValueError(
                f"{self.model_name} expects inputs of shape {expected} "
                "with at least one sequence of at least one step. Received: "
                f"x.shape={shape}"
            )
        dim = None if self.spec.token_inputs else self.spec.batch_input_shape[2]
        if dim is not None and shape[-1] is not None and shape[-1] != dim:
            raise ValueError(
                f"The input's feature size does not match `input_dim`: "
                f"expected inputs of shape {expected}, received "
                f"x.shape={shape}."
            )
        length = self.spec.batch_input_shape[1]
        if length is not None and shape[1] is not None and shape[1] != length:
            raise ValueError(
                f"The input's length does not match `input_length`: expected "
                f"inputs of shape {expected}, received x.shape={shape}. Pass "
                "input_length=None to accept any length."
            )
        if self.check_batch_values:
            self.input_values("x", x)

    def input_values(self, name, x):
        """Token ids: whole numbers in range, always; finite values with
        `check_inputs`."""
        if is_symbolic(x):
            return
        expected = self._expected_input()[0]
        if self.spec.token_inputs:
            check_ids(name, x, self.spec.input_vocab_size, "input_vocab_size", expected)
        else:
            check_numeric(name, x, expected)
            if self.spec.check_inputs:
                check_finite(name, x)

    def target_values(self, name, y):
        if is_symbolic(y):
            return
        expected = self._expected_target()
        if self.spec.token_outputs:
            check_ids(name, y, self.spec.output_dim, "output_vocab_size", expected)
        else:
            check_numeric(name, y, expected)
            if self.spec.check_inputs:
                check_finite(name, y)

    def _expected_target(self):
        length, dim = self.spec.output_length, self.spec.output_dim
        if self.spec.token_outputs:
            return f"(batch, output_length) = (batch, {length}) ids"
        return f"(batch, output_length, output_dim) = (batch, {length}, {dim})"

    def target(self, name, y):
        """Checks a batch of targets: its shape, then its values."""
        if not hasattr(y, "shape"):
            raise ValueError(
                f"`{name}` must be an array or tensor. Received: {name} of type "
                f"{type(y).__name__}"
            )
        shape = tuple(y.shape)
        expected = (self.spec.output_length,)
        if not self.spec.token_outputs:
            expected += (self.spec.output_dim,)
        if len(shape) != len(expected) + 1 or tuple(shape[1:]) != expected:
            raise ValueError(
                f"`{name}` must have shape {self._expected_target()}. Received: "
                f"{name}.shape={shape}"
            )
        if self.check_batch_values:
            self.target_values(name, y)

    def _arrays(self, x, y, names):
        """The parts of `x` and `y`, with the expected shape and the value
        check of each."""
        expected_input = self._expected_input()[0]
        expected_target = self._expected_target()
        if self.spec.teacher_force and is_pair(x):
            parts = [
                (f"{names[0]}[0]", x[0], expected_input, self.input_values),
                (f"{names[0]}[1]", x[1], expected_target, self.target_values),
            ]
        else:
            parts = [(names[0], x, expected_input, self.input_values)]
        return parts + [(names[1], y, expected_target, self.target_values)]

    def whole(self, x, y=None, names=("x", "y"), needs_targets=False):
        """Checks the data handed to `fit`, `evaluate` or `predict` at once.

        Arrays only (datasets and generators are checked batch by batch):
        text and Python lists, which Keras cannot batch, arrays without
        samples, token ids that are not whole numbers in the vocabulary and,
        with `check_inputs`, non-finite values, reported at their index in
        the whole array. With `needs_targets`, arrays `x` need targets `y`.
        Returns whether every part of the data was an array.
        """
        if x is None:
            raise ValueError(
                f"{self.model_name} needs input data. Received: {names[0]}=None"
            )
        all_arrays = True
        for name, array, expected, check in self._arrays(x, y, names):
            if array is None:
                continue
            if is_python_data(array):
                raise not_an_array(name, array, expected, self.spec.token_inputs)
            if not is_array(array):
                all_arrays = False
                continue
            if len(array.shape) == 0 or array.shape[0] == 0:
                raise ValueError(
                    f"`{name}` holds no samples. Received: {name}.shape="
                    f"{tuple(array.shape)}"
                )
            check(name, array)
        if needs_targets and y is None and all_arrays:
            raise ValueError(
                f"{self.model_name} needs targets `{names[1]}` of shape "
                f"{self._expected_target()} to compute its loss. Received: "
                f"{names[1]}=None"
            )
        return all_arrays

    def sample_weight(self, sample_weight):
        """`sample_weight` in the shape the loss can read.

        One weight per sequence, `(batch,)` or `(batch, 1)`, or one per
        target step, `(batch, output_length)`. A sequence's weight is spread
        over its steps for token outputs: Keras multiplies the weights by the
        padding mask in place, which cannot broadcast.
        """
        if sample_weight is None:
            return None
        if not hasattr(sample_weight, "shape"):
            sample_weight = ops.convert_to_tensor(sample_weight)
        shape, length = tuple(sample_weight.shape), self.spec.output_length
        if shape[1:] == (length,):
            return sample_weight
        if len(shape) == 1 or shape[1:] == (1,):
            sample_weight = ops.reshape(sample_weight, (-1, 1))
            if self.spec.token_outputs:
                sample_weight = ops.tile(sample_weight, (1, length))
            return sample_weight
        raise ValueError(
            "`sample_weight` must have shape (batch,) or (batch, 1), one weight "
            "per sequence, or (batch, output_length) = (batch, "
            f"{length}), one per target step. Received: sample_weight.shape={shape}"
        )

    def class_weights(self, class_weight):
        """The weight of every target id, `(output_vocab_size,)`, from a
        `class_weight` dict `{id: weight}`; ids left out weigh 1."""
        if class_weight is None:
            return None
        received = f"Received: class_weight={_short_repr(class_weight)}"
        if not self.spec.token_outputs:
            raise ValueError(
                "`class_weight` weighs target ids and needs token outputs "
                "(`output_vocab_size`): vector targets are not classes. Weigh "
                "the targets with `sample_weight` of shape (batch,), (batch, 1) "
                "or (batch, output_length) instead; for one-hot targets "
                f"`weights[y.argmax(-1)]` gives one weight per step. {received}"
            )
        vocab_size = self.spec.output_vocab_size
        if not isinstance(class_weight, dict):
            raise ValueError(
                f"`class_weight` must be a dict {{target id: weight}}. {received}"
            )
        table = np.ones((vocab_size,), "float32")
        for key, weight in class_weight.items():
            if not _validate.is_int(key) or not 0 <= key < vocab_size:
                raise ValueError(
                    "The keys of `class_weight` must be target ids in [0, "
                    f"output_vocab_size) = [0, {vocab_size}). Received the key "
                    f"{key!r}"
                )
            table[key] = _validate.real(f"class_weight[{key}]", weight, minimum=0)
        return table

    @contextlib.contextmanager
    def checked_up_front(self, checked):
        """Skips the per-batch value checks while `checked` is true."""
        previous = self.check_batch_values
        self.check_batch_values = previous and not checked
        try:
            yield
        finally:
            self.check_batch_values = previous


def is_array(value):
    """Whether `value` is an array or tensor (not a dataset or generator)."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def is_symbolic(x):
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


def check_finite(name, x):
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
        f"{values[nan | inf][0]!s}. Received: {name}.shape={tuple(values.shape)}"
    )


def check_ids(name, ids, vocab_size, argument, expected):
    """Raises a ValueError unless `ids` holds whole numbers in
    `[0, vocab_size)`.

    Integer arrays and whole-number floats (`3.0`, as NumPy pipelines make)
    pass; booleans, text and fractional values do not, since the embedding
    lookup would silently truncate them.
    """
    dtype = _id_dtype(name, ids, expected)
    if keras.backend.is_float_dtype(dtype):
        _check_whole(name, ids)
    if isinstance(ids, np.ndarray):
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
        f"the first is {first} = {values[bad][0]!s}. {name}.shape="
        f"{tuple(values.shape)}"
    )


def _id_dtype(name, ids, expected):
    """The standardized dtype of token ids, which must be numbers, not
    booleans."""
    check_numeric(name, ids, expected, tokens=True)
    dtype = keras.backend.standardize_dtype(ids.dtype)
    if dtype == "bool":
        raise ValueError(
            f"`{name}` must hold integer token ids, not booleans. Received: "
            f"{name}.dtype=bool, {name}.shape={tuple(ids.shape)}"
        )
    return dtype


def _check_whole(name, ids):
    """Raises a ValueError naming the first id of float `ids` that is not a
    whole number."""
    if isinstance(ids, np.ndarray):
        if (np.floor(ids) == ids).all():
            return
    elif bool(ops.all(ops.equal(ops.floor(ids), ids))):
        return
    values = ops.convert_to_numpy(ids)
    # NaN differs from its floor too.
    bad = ~(np.floor(values) == values)
    raise ValueError(
        f"`{name}` must hold whole-number token ids, since a fraction would "
        f"be truncated. Received {_count(bad, 'value')} with a "
        f"fractional part; the first is {_first_index(name, bad)} = "
        f"{values[bad][0]!s}. {name}.shape={tuple(values.shape)}"
    )


def check_numeric(name, x, expected, tokens=False):
    """Raises a ValueError for an array of text or of Python objects."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "OSUV":
        return
    if _holds_text(x):
        raise ValueError(
            _text_message(name, expected, tokens, f"{name}.dtype={x.dtype}")
        )
    raise ValueError(
        f"`{name}` must be a numeric array of shape {expected}. Received: "
        f"{name}.dtype={x.dtype}, {name}.shape={x.shape}. An array of "
        "sequences of different lengths has this dtype: pad them to one length "
        "with `keras.utils.pad_sequences`."
    )


def not_an_array(name, value, expected, tokens):
    """The ValueError for text or a Python list given where an array goes."""
    kind = type(value).__name__
    if _holds_text(value):
        return ValueError(
            _text_message(name, expected, tokens, f"{name} of type {kind}")
        )
    try:
        np.asarray(value, dtype="float64")
    except (ValueError, TypeError):
        return ValueError(
            f"`{name}` must be an array of shape {expected}. Received a {kind} "
            f"of {len(value)} items that do not make one array; pad sequences "
            "of different lengths to one length with `keras.utils.pad_sequences`."
        )
    return ValueError(
        f"`{name}` must be a NumPy array or a tensor of shape {expected}. "
        f"Received a {kind} of {len(value)} items: convert it with "
        "`np.asarray`."
    )


def _text_message(name, expected, tokens, received):
    if tokens:
        hint = (
            "The model reads token ids, not text: encode text into ids with "
            "`kseq2seq.Vocabulary.encode`."
        )
    else:
        hint = "The model reads numbers, not text."
    return f"`{name}` must be an array of shape {expected}. {hint} Received: {received}"


def _holds_text(value):
    """Whether the first element of nested lists or arrays is text."""
    while True:
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "SU":
                return True
            if value.size == 0:
                return False
            value = value.flat[0]
        elif isinstance(value, (list, tuple)) and value:
            value = value[0]
        else:
            return isinstance(value, (str, bytes))


def is_python_data(value):
    """Whether `value` is text, or a list or tuple that is not made of
    arrays (the `[x, y]` of a teacher-forced model)."""
    if isinstance(value, (str, bytes)):
        return True
    if not isinstance(value, (list, tuple)):
        return False
    return not value or not all(is_array(v) for v in value)


def is_pair(value):
    """Whether `value` is the `[x, y]` pair of arrays of a teacher-forced
    model."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(is_array(v) for v in value)
    )


def _short_repr(value, limit=80):
    """`repr(value)`, or its type and size when that would be long."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" of {len(value)} entries" if hasattr(value, "__len__") else ""
    return f"a {type(value).__name__}{size}"
