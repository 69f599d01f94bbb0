"""Recurrent cells used by the encoder and decoder, and their dropout."""

import keras

CELL_CLASSES = {
    "lstm": keras.layers.LSTMCell,
    "gru": keras.layers.GRUCell,
    "simple_rnn": keras.layers.SimpleRNNCell,
}


def check_cell(cell):
    """Validates a cell name or Keras cell class; returns the cell's name."""
    for name, cell_class in CELL_CLASSES.items():
        if cell is cell_class:
            return name
    name = cell.lower() if isinstance(cell, str) else cell
    if name not in CELL_CLASSES:
        raise ValueError(
            f"`cell` must be one of {sorted(CELL_CLASSES)} or one of the "
            "classes keras.layers.LSTMCell, GRUCell, SimpleRNNCell. "
            f"Received: cell={cell!r}"
        )
    return name


def make_cell(cell, units, name, dtype=None):
    """Creates one Keras cell. Dropout is applied by the layers, per sequence."""
    return CELL_CLASSES[cell](units, name=name, dtype=dtype)


def state_size(cell, units):
    """The sizes of one cell's states: `[h, c]` for an LSTM, `[h]` otherwise."""
    return [units, units] if cell == "lstm" else [units]


def dropout_mask(batch_size, width, rate, seed_generator, dtype):
    """One dropout mask per sequence, shared by all its time steps.

    This is the variational dropout of `keras.layers.LSTM(dropout=...)`: the
    same input features are dropped at every step of a sequence, scaled by
    `1 / (1 - rate)` so the expected input is unchanged.
    """
    ones = keras.ops.ones((batch_size, width), dtype=dtype)
    return keras.random.dropout(ones, rate, seed=seed_generator)
