"""Validation of the builders' arguments: once, at the public edge."""

import numbers

import keras
import numpy as np


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
):
    """Resolves the five shape arguments into `(batch, length, input_dim)`.

    Precedence as in farizrahman4u/seq2seq: `batch_input_shape`, then
    `input_shape` (with `batch_size`), then `input_dim` (with `input_length`
    and `batch_size`). `None` stands for a dimension that may vary.
    """
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


_FLAGS = (
    "broadcast_state",
    "inner_broadcast_state",
    "teacher_force",
    "peek",
    "bidirectional",
)


def resolve(config):
    """Validates a builder's arguments and resolves them.

    Args:
        config: the builder's arguments by name, as given.

    Returns:
        A dict with `batch_input_shape` as `(batch, length, input_dim)`,
        `depth` as `(encoder_depth, decoder_depth)`, `hidden_dim` defaulted
        to `output_dim`, and every other argument validated.
    """
    resolved = {
        "output_dim": positive_int("output_dim", config["output_dim"]),
        "output_length": positive_int("output_length", config["output_length"]),
        "hidden_dim": positive_int("hidden_dim", config["hidden_dim"], allow_none=True),
        "batch_input_shape": input_batch_shape(
            config["batch_input_shape"],
            config["input_shape"],
            config["batch_size"],
            config["input_dim"],
            config["input_length"],
        ),
        "depth": depth_pair(config["depth"]),
        "dropout": rate("dropout", config["dropout"]),
        "unroll": boolean("unroll", config["unroll"]),
        "stateful": boolean("stateful", config["stateful"]),
        "output_activation": config["output_activation"],
    }
    activation("output_activation", config["output_activation"])
    for flag in _FLAGS:
        if flag in config:
            resolved[flag] = boolean(flag, config[flag])
    if resolved["hidden_dim"] is None:
        resolved["hidden_dim"] = resolved["output_dim"]
    batch, length, _ = resolved["batch_input_shape"]
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
