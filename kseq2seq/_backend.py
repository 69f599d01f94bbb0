"""Select Keras' PyTorch backend before Keras is first imported."""

import os
import sys

REQUIRED_BACKEND = "torch"


def select_torch_backend():
    """Make sure Keras runs on PyTorch, or explain how to get there.

    When Keras has not been imported yet and the user has not chosen a
    backend, `KERAS_BACKEND` is set to `"torch"`. If Keras is already loaded
    on another backend, or the user asked for another one, importing
    kseq2seq fails with an `ImportError` that says how to select PyTorch:
    running on another backend would silently skip the PyTorch kernels and
    the state handling this library relies on.
    """
    keras_loaded = "keras" in sys.modules
    if not keras_loaded:
        os.environ.setdefault("KERAS_BACKEND", REQUIRED_BACKEND)

    import keras

    backend = keras.backend.backend()
    if backend != REQUIRED_BACKEND:
        if keras_loaded:
            how = (
                "Keras was imported before kseq2seq with the "
                f"'{backend}' backend. Set the environment variable "
                "KERAS_BACKEND=torch before Keras is first imported (or "
                "import kseq2seq before keras)."
            )
        else:
            how = (
                f"KERAS_BACKEND is set to '{os.environ.get('KERAS_BACKEND')}'."
                " Set KERAS_BACKEND=torch, or unset it and kseq2seq selects "
                "PyTorch itself."
            )
        raise ImportError(
            "kseq2seq requires Keras' PyTorch backend, but Keras is running "
            f"on the '{backend}' backend. {how}"
        )
