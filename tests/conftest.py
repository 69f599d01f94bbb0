import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import pytest  # noqa: E402

import kseq2seq  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield
