"""End-to-end learning: each model reaches a stated held-out accuracy.

Fixed seeds; each test trains at most a few minutes on a 2-core CPU and stops
as soon as the target is reached. Run with `pytest -m slow`.
"""

import keras
import pytest

from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq
from kseq2seq.data import copy_task
from kseq2seq.data import reverse_task

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
