"""kseq2seq's models rebuilt from stock Keras 3 layers, where they can be.

Stock `keras.layers.LSTM` layers run over sequences known in advance: they
express `SimpleSeq2Seq` (a `RepeatVector` of the context) and teacher-forced
training of `Seq2Seq` with one state per layer (the shifted targets, taken as
a second input `[x, y]`), but no decoder that feeds back its own outputs.
"""

import keras

from benchmarks.config import FEATURES
from benchmarks.config import LEARNING_RATE
from benchmarks.config import LENGTH
from benchmarks.config import START_ID
from benchmarks.config import VOCAB


def loss_name(case):
    return "sparse_categorical_crossentropy" if case.tokens else "mse"


def compile_keras(model, case, jit_compile="auto"):
    """Adam with the benchmark's learning rate and the case's loss.

    No metrics, as the twins compute none (`metrics=None`, which a token
    kseq2seq model would otherwise replace by its default accuracy).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=loss_name(case),
        metrics=None,
        jit_compile=jit_compile,
    )
    return model


def encoder(inputs, case):
    """Stacked LSTMs; returns the top output sequence and every layer's state."""
    sequence, states = inputs, []
    for _ in range(case.depth):
        sequence, h, c = keras.layers.LSTM(
            case.hidden, return_sequences=True, return_state=True
        )(sequence)
        states.append([h, c])
    return sequence, states


def decoder(inputs, case, states=None):
    sequence = inputs
    for layer in range(case.depth):
        initial = None if states is None else states[layer]
        sequence = keras.layers.LSTM(case.hidden, return_sequences=True)(
            sequence, initial_state=initial
        )
    return sequence


def _simple(case):
    x = keras.Input((LENGTH, FEATURES))
    _, states = encoder(x, case)
    repeated = keras.layers.RepeatVector(LENGTH)(states[-1][0])
    outputs = keras.layers.Dense(FEATURES)(decoder(repeated, case))
    return keras.Model(x, outputs)


def _seq2seq_peek(case):
    x = keras.Input((LENGTH, FEATURES))
    y = keras.Input((LENGTH, FEATURES))
    _, states = encoder(x, case)
    context = states[-1][0]
    start = keras.layers.Reshape((1, FEATURES))(keras.layers.Dense(FEATURES)(context))
    previous = keras.layers.Concatenate(axis=1)([start, y[:, :-1]])
    inputs = keras.layers.Concatenate()(
        [previous, keras.layers.RepeatVector(LENGTH)(context)]
    )
    outputs = keras.layers.Dense(FEATURES)(decoder(inputs, case, states))
    return keras.Model([x, y], outputs)


def _tokens(case):
    x = keras.Input((LENGTH,), dtype="int32")
    y = keras.Input((LENGTH,), dtype="int32")
    _, states = encoder(keras.layers.Embedding(VOCAB, case.hidden)(x), case)
    previous = keras.ops.concatenate(
        [keras.ops.full_like(y[:, :1], START_ID), y[:, :-1]], axis=1
    )
    inputs = keras.layers.Embedding(VOCAB, case.hidden)(previous)
    outputs = keras.layers.Dense(VOCAB, activation="softmax")(
        decoder(inputs, case, states)
    )
    return keras.Model([x, y], outputs)


_BUILDERS = {"simple": _simple, "seq2seq_peek": _seq2seq_peek, "tokens": _tokens}


def build(case):
    """The compiled functional model; teacher-forced models take `[x, y]`."""
    if case.model not in _BUILDERS:
        raise ValueError(
            f"Stock Keras layers cannot express this model: {case.key}. Expected "
            f"one of {sorted(_BUILDERS)}."
        )
    return compile_keras(_BUILDERS[case.model](case), case)
