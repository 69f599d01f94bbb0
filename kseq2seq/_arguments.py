"""Validation of the builders' arguments: once, at the public edge."""

import numbers

import keras
import numpy as np

from kseq2seq.layers.cells import CELL_CLASSES
from kseq2seq.layers.cells import check_cell


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if not _is_int(value) or value <= 0:
        expected = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return int(value)


def boolean(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return bool(value)


def rate(name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )
    if not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def depth_pair(depth):
    """`depth` as `(encoder_depth, decoder_depth)`."""
    message = (
        "`depth` must be a positive int or a pair (encoder_depth, "
        f"decoder_depth) of positive ints. Received: depth={depth!r}"
    )
    if _is_int(depth):
        depth = (depth, depth)
    if not isinstance(depth, (tuple, list)) or len(depth) != 2:
        raise ValueError(message)
    if not all(_is_int(d) and d > 0 for d in depth):
        raise ValueError(message)
    return int(depth[0]), int(depth[1])


def _shape(name, value, rank):
    if not isinstance(value, (tuple, list)) or len(value) != rank:
        raise ValueError(
            f"`{name}` must be a tuple of {rank} entries. Received: {name}={value!r}"
        )
    return tuple(value)


def input_batch_shape(
    batch_input_shape=None,
    input_shape=None,
    batch_size=None,
    input_dim=None,
    input_length=None,
    tokens=False,
):
    """Resolves the five shape arguments into `(batch, length, input_dim)`.

    Precedence as in farizrahman4u/seq2seq: `batch_input_shape`, then
    `input_shape` (with `batch_size`), then `input_dim` (with `input_length`
    and `batch_size`). `None` stands for a dimension that may vary.

    With `tokens`, inputs are ids `(batch, length)`: the shape is
    `(batch, length)`, given as `batch_input_shape=(batch, length)`,
    `input_shape=(length,)` or `input_length`, or not at all.
    """
    if tokens:
        if input_dim is not None:
            raise ValueError(
                "`input_dim` is the feature size of vector inputs; with "
                "`input_vocab_size` the inputs are token ids of shape (batch, "
                "input_length) and `embedding_dim` sets the embedding width. "
                f"Received: input_dim={input_dim!r}"
            )
        if batch_input_shape is not None:
            batch, length = _shape("batch_input_shape", batch_input_shape, 2)
            names = ["batch_input_shape[0]", "batch_input_shape[1]"]
        elif input_shape is not None:
            (length,) = _shape("input_shape", input_shape, 1)
            batch = batch_size
            names = ["batch_size", "input_shape[0]"]
        else:
            batch, length = batch_size, input_length
            names = ["batch_size", "input_length"]
        return (
            positive_int(names[0], batch, allow_none=True),
            positive_int(names[1], length, allow_none=True),
        )
    if batch_input_shape is not None:
        batch, length, dim = _shape("batch_input_shape", batch_input_shape, 3)
        names = [f"batch_input_shape[{i}]" for i in range(3)]
    elif input_shape is not None:
        length, dim = _shape("input_shape", input_shape, 2)
        batch = batch_size
        names = ["batch_size", "input_shape[0]", "input_shape[1]"]
    elif input_dim is not None:
        batch, length, dim = batch_size, input_length, input_dim
        names = ["batch_size", "input_length", "input_dim"]
    else:
        raise ValueError(
            "The model needs the shape of its input. Pass `input_dim` (and "
            "optionally `input_length`), `input_shape=(input_length, "
            "input_dim)` or `batch_input_shape=(batch_size, input_length, "
            "input_dim)`. Received none of them."
        )
    return (
        positive_int(names[0], batch, allow_none=True),
        positive_int(names[1], length, allow_none=True),
        positive_int(names[2], dim),
    )


def activation(name, value):
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"`{name}` must be None, a Keras activation name such as "
            f"'softmax', or a callable. Received: {name}={value!r}"
        ) from error


def cell(value):
    """A cell name or Keras cell class, as its name."""
    try:
        hash(value)
    except TypeError:
        # `check_cell` looks names up in a dict, which fails with a TypeError
        # on an unhashable value such as a list.
        raise ValueError(
            f"`cell` must be one of {sorted(CELL_CLASSES)} or one of the "
            "classes keras.layers.LSTMCell, GRUCell, SimpleRNNCell. "
            f"Received: cell={value!r}"
        ) from None
    return check_cell(value)


DEFAULT_TOKEN_HIDDEN_DIM = 128

_FLAGS = (
    "broadcast_state",
    "inner_broadcast_state",
    "teacher_force",
    "peek",
    "bidirectional",
    "reverse_input",
)


def choice(name, value, choices):
    if not (value is None or isinstance(value, str)) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )
    return value


def _token_arguments(config, resolved):
    """Validates vocabularies, embeddings and the start and end ids."""
    input_vocab_size = positive_int(
        "input_vocab_size", config.get("input_vocab_size"), allow_none=True
    )
    output_vocab_size = positive_int(
        "output_vocab_size", config.get("output_vocab_size"), allow_none=True
    )
    embedding_dim = positive_int(
        "embedding_dim", config.get("embedding_dim"), allow_none=True
    )
    embeddings = config.get("input_embeddings")
    if embeddings is not None:
        try:
            embeddings = np.asarray(embeddings, dtype="float32")
        except (TypeError, ValueError) as error:
            raise ValueError(
                "`input_embeddings` must be a matrix of numbers (input_vocab_size, "
                f"embedding_dim). Received a {type(embeddings).__name__} that "
                f"NumPy cannot convert: {error}"
            ) from None
        if embeddings.ndim != 2 or 0 in embeddings.shape:
            raise ValueError(
                "`input_embeddings` must be a matrix (input_vocab_size, "
                f"embedding_dim) with at least one row and one column. "
                f"Received an array of shape {embeddings.shape}."
            )
        if not np.isfinite(embeddings).all():
            row, column = np.argwhere(~np.isfinite(embeddings))[0]
            raise ValueError(
                "`input_embeddings` must hold finite numbers. Received "
                f"{int((~np.isfinite(embeddings)).sum())} NaN or inf values, the "
                f"first at [{row}, {column}]: {embeddings[row, column]}."
            )
        if input_vocab_size is None:
            input_vocab_size = embeddings.shape[0]
        if embeddings.shape[0] != input_vocab_size or embedding_dim not in (
            None,
            embeddings.shape[1],
        ):
            raise ValueError(
                "`input_embeddings` must have shape (input_vocab_size, "
                f"embedding_dim) = ({input_vocab_size}, "
                f"{embedding_dim or 'embedding_dim'}). Received an array of "
                f"shape {embeddings.shape}."
            )
        embedding_dim = embeddings.shape[1]
    resolved["input_vocab_size"] = input_vocab_size
    resolved["output_vocab_size"] = output_vocab_size
    resolved["input_embeddings"] = embeddings
    if input_vocab_size or output_vocab_size:
        resolved["embedding_dim"] = embedding_dim or resolved["hidden_dim"]
    else:
        resolved["embedding_dim"] = embedding_dim
    if output_vocab_size is not None:
        if resolved["output_dim"] not in (None, output_vocab_size):
            raise ValueError(
                "With `output_vocab_size` the outputs are probabilities over "
                "the vocabulary: leave `output_dim` unset or equal to it. "
                f"Received: output_dim={resolved['output_dim']!r}, "
                f"output_vocab_size={output_vocab_size!r}"
            )
        if config["output_activation"] not in (None, "softmax"):
            raise ValueError(
                "With `output_vocab_size` the output activation is a softmax. "
                f"Received: output_activation={config['output_activation']!r}"
            )
        resolved["output_dim"] = output_vocab_size
        for name in ("start_id", "end_id"):
            value = config.get(name)
            if not _is_int(value) or not 0 < value < output_vocab_size:
                raise ValueError(
                    f"`{name}` must be an id in [1, output_vocab_size) = [1, "
                    f"{output_vocab_size}); 0 is the padding id. Received: "
                    f"{name}={value!r}"
                )
        if config["start_id"] == config["end_id"]:
            raise ValueError(
                "`start_id` and `end_id` must differ. Received: "
                f"start_id={config['start_id']!r}, end_id={config['end_id']!r}"
            )
    resolved["start_id"] = config.get("start_id", 1)
    resolved["end_id"] = config.get("end_id", 2)


def resolve(config):
    """Validates a builder's arguments and resolves them.

    Args:
        config: the builder's arguments by name, as given.

    Returns:
        A dict with `batch_input_shape` as `(batch, length, input_dim)`,
        `depth` as `(encoder_depth, decoder_depth)`, `hidden_dim` defaulted
        to `output_dim`, and every other argument validated.
    """
    if config["output_length"] is None:
        raise ValueError("`output_length`, the number of output steps, is required.")
    output_vocab_size = config.get("output_vocab_size")
    if config["output_dim"] is None and output_vocab_size is None:
        raise ValueError(
            "`output_dim`, the width of each output step, is required (or "
            "`output_vocab_size` for token outputs)."
        )
    tokens_in = config.get("input_vocab_size") is not None or (
        config.get("input_embeddings") is not None
    )
    resolved = {
        "output_dim": positive_int(
            "output_dim", config["output_dim"], allow_none=output_vocab_size is not None
        ),
        "output_length": positive_int("output_length", config["output_length"]),
        "hidden_dim": positive_int("hidden_dim", config["hidden_dim"], allow_none=True),
        "batch_input_shape": input_batch_shape(
            config["batch_input_shape"],
            config["input_shape"],
            config["batch_size"],
            config["input_dim"],
            config["input_length"],
            tokens=tokens_in,
        ),
        "depth": depth_pair(config["depth"]),
        "dropout": rate("dropout", config["dropout"]),
        "unroll": boolean("unroll", config["unroll"]),
        "stateful": boolean("stateful", config["stateful"]),
        "output_activation": config["output_activation"],
    }
    activation("output_activation", config["output_activation"])
    for flag in _FLAGS:
        resolved[flag] = boolean(flag, config.get(flag, False))
    resolved["cell"] = cell(config.get("cell", "lstm"))
    resolved["bridge"] = choice(
        "bridge", config.get("bridge"), (None, "concat", "dense")
    )
    resolved["check_inputs"] = boolean(
        "check_inputs", config.get("check_inputs", False)
    )
    resolved["scheduled_sampling"] = rate(
        "scheduled_sampling", config.get("scheduled_sampling", 0.0)
    )
    if resolved["scheduled_sampling"] and not resolved["teacher_force"]:
        raise ValueError(
            "`scheduled_sampling` mixes the model's own predictions into "
            "teacher forcing: it needs `teacher_force=True`. Received: "
            f"scheduled_sampling={config.get('scheduled_sampling')!r}, "
            "teacher_force=False"
        )
    if resolved["hidden_dim"] is None:
        # A vocabulary's size is no guide to a layer's width.
        resolved["hidden_dim"] = (
            DEFAULT_TOKEN_HIDDEN_DIM if output_vocab_size else resolved["output_dim"]
        )
    _token_arguments(config, resolved)
    batch, length = resolved["batch_input_shape"][:2]
    if resolved["stateful"] and batch is None:
        raise ValueError(
            "`stateful=True` needs a fixed batch size: pass `batch_size` or "
            "`batch_input_shape=(batch_size, input_length, input_dim)`. "
            f"Received an input shape of {resolved['batch_input_shape']}."
        )
    if resolved["unroll"] and length is None:
        raise ValueError(
            "`unroll=True` needs a fixed input length: pass `input_length` or "
            "a full `input_shape`. Received an input shape of "
            f"{resolved['batch_input_shape']}."
        )
    return resolved
