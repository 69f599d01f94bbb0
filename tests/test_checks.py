"""`DataChecks`: whole arrays are checked once, datasets batch by batch."""

import numpy as np
import pytest

from kseq2seq import Seq2Seq
from kseq2seq.models import checks


def _token_model():
    return Seq2Seq(
        input_vocab_size=9,
        output_vocab_size=9,
        output_length=4,
        hidden_dim=6,
        teacher_force=True,
    )


def _ids(rows, length, seed=0):
    return np.random.default_rng(seed).integers(3, 9, size=(rows, length))


@pytest.fixture
def id_checks(monkeypatch):
    """Records the name of every array whose ids are checked."""
    names = []
    original = checks.check_ids

    def recording(name, *args, **kwargs):
        names.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(checks, "check_ids", recording)
    return names


def test_fit_on_arrays_checks_their_values_once_not_per_batch(id_checks):
    model = _token_model()
    x, y = _ids(64, 5), _ids(64, 4)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert id_checks == ["x", "y"]


def test_fit_on_a_generator_checks_every_batch(id_checks):
    import keras

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return _ids(8, 5, seed=index), _ids(8, 4, seed=index)

    model = _token_model()
    model.fit(Batches(), epochs=1, verbose=0)
    # Inputs and targets of each of the 4 batches (the targets twice under
    # teacher forcing: as the decoder's input and in the loss).
    assert id_checks.count("x") >= 4 and id_checks.count("y") >= 4


def test_per_batch_checks_come_back_after_fit():
    model = _token_model()
    model.fit(_ids(16, 5), _ids(16, 4), epochs=1, verbose=0)
    bad = _ids(2, 5)
    bad[1, 2] = 12
    with pytest.raises(ValueError, match=r"x\[1, 2\] = 12"):
        model(bad)
