"""End-to-end learning: each model reaches a stated held-out accuracy.

Fixed seeds; each test trains at most a few minutes on a 2-core CPU and stops
as soon as the target is reached. Run with `pytest -m slow`.
"""

import keras
import numpy as np
import pytest

from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq
from kseq2seq.data import addition_task
from kseq2seq.data import copy_task
from kseq2seq.data import date_task
from kseq2seq.data import reverse_task
from kseq2seq.vocabulary import Vocabulary

pytestmark = pytest.mark.slow


def _token_accuracy(model, x, y):
    prediction = model.predict(x, batch_size=500, verbose=0)
    return float((prediction.argmax(-1) == y.argmax(-1)).mean())


def _train_until(model, task, length, target, max_epochs):
    """Trains until the validation accuracy reaches `target`.

    Returns the token accuracy on a test set that played no part in
    training or in deciding when to stop.
    """
    train = task(12000, length, 10, seed=0)
    validation = task(500, length, 10, seed=1)
    test = task(1000, length, 10, seed=2)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
    )
    for _ in range(max_epochs):
        model.fit(*train, batch_size=64, epochs=1, verbose=0)
        if _token_accuracy(model, *validation) >= target:
            break
    return _token_accuracy(model, *test)


def test_seq2seq_learns_to_reverse_digit_sequences():
    keras.utils.set_random_seed(0)
    model = Seq2Seq(
        input_dim=10,
        input_length=8,
        hidden_dim=128,
        output_length=8,
        output_dim=10,
        teacher_force=True,
        output_activation="softmax",
    )
    accuracy = _train_until(
        model,
        reverse_task,
        8,
        target=0.96,
        max_epochs=15,
    )
    assert accuracy >= 0.95


def test_attention_seq2seq_learns_to_reverse_long_sequences():
    keras.utils.set_random_seed(0)
    model = AttentionSeq2Seq(
        input_dim=10,
        hidden_dim=64,
        output_length=20,
        output_dim=10,
        output_activation="softmax",
    )
    accuracy = _train_until(
        model,
        reverse_task,
        20,
        target=0.96,
        max_epochs=10,
    )
    assert accuracy >= 0.95


def test_simple_seq2seq_learns_to_copy():
    keras.utils.set_random_seed(0)
    model = SimpleSeq2Seq(
        input_dim=10,
        hidden_dim=128,
        output_length=6,
        output_dim=10,
        output_activation="softmax",
    )
    accuracy = _train_until(
        model,
        copy_task,
        6,
        target=0.96,
        max_epochs=15,
    )
    assert accuracy >= 0.95


def _exact_match(model, vocabulary, inputs, targets):
    ids, _ = model.generate(inputs, batch_size=500)
    return float(np.mean([p == t for p, t in zip(vocabulary.decode(ids), targets)]))


def _train_tokens_until(model, data, target, max_epochs, learning_rate=3e-3):
    """Trains until validation exact match reaches `target`.

    `data` holds (inputs, ids) for training and (inputs, texts) for
    validation and test. Returns the test exact-match rate.
    """
    (x, y), validation, test, vocabulary = data
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.ExponentialDecay(
                learning_rate, decay_steps=len(x) // 64, decay_rate=0.75
            ),
            clipnorm=1.0,
        ),
    )
    for _ in range(max_epochs):
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        if _exact_match(model, vocabulary, *validation) >= target:
            break
    return _exact_match(model, vocabulary, *test)


def _text_task(task, num_train, **options):
    train = task(num_train, seed=0, **options)
    validation = task(500, seed=1, **options)
    test = task(1000, seed=2, **options)
    source = Vocabulary.from_texts(train[0])
    target = Vocabulary.from_texts(train[1])
    length = max(len(text) for text in train[0] + validation[0] + test[0])

    def encode(inputs):
        return source.encode(inputs, max_length=length)

    data = (
        (encode(train[0]), target.encode(train[1], add_end=True)),
        (encode(validation[0]), validation[1]),
        (encode(test[0]), test[1]),
        target,
    )
    return data, source, target


def test_attention_seq2seq_normalises_human_written_dates():
    keras.utils.set_random_seed(0)
    data, source, target = _text_task(date_task, 10000)
    model = AttentionSeq2Seq(
        input_vocab_size=len(source),
        output_vocab_size=len(target),
        output_length=data[0][1].shape[1],
        hidden_dim=64,
        embedding_dim=32,
        teacher_force=True,
    )
    assert _train_tokens_until(model, data, target=0.985, max_epochs=10) >= 0.97


def test_token_seq2seq_learns_three_digit_addition():
    keras.utils.set_random_seed(0)
    data, source, target = _text_task(addition_task, 40000, digits=3)
    model = Seq2Seq(
        input_vocab_size=len(source),
        output_vocab_size=len(target),
        output_length=data[0][1].shape[1],
        hidden_dim=128,
        embedding_dim=32,
        teacher_force=True,
        reverse_input=True,
    )
    assert _train_tokens_until(model, data, target=0.965, max_epochs=12) >= 0.95
