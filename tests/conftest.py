import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kseq2seq  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip where PyTorch sees no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
