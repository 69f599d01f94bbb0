"""Toy sequence tasks for examples, tests and quick experiments.

Each generator returns NumPy arrays ready for `fit`, drawn from its own
`numpy.random.Generator`, so the same `seed` always gives the same data.
"""

import numpy as np


def one_hot(ids, num_classes):
    """One-hot encodes integer ids: `(...,)` -> `(..., num_classes)` float32.

    Example:

    >>> one_hot(np.array([[0, 2]]), 3)
    array([[[1., 0., 0.],
            [0., 0., 1.]]], dtype=float32)
    """
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(
            f"`ids` must lie in [0, num_classes) = [0, {num_classes}). "
            f"Received ids from {ids.min()} to {ids.max()}."
        )
    return np.eye(num_classes, dtype="float32")[ids]


def _symbols(num_samples, length, num_symbols, seed):
    for name, value in (
        ("num_samples", num_samples),
        ("length", length),
        ("num_symbols", num_symbols),
    ):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(
                f"`{name}` must be a positive int. Received: {name}={value!r}"
            )
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_symbols, size=(num_samples, length))


def reverse_task(num_samples, length, num_symbols=10, seed=None):
    """Sequences of one-hot symbols and the same sequences reversed.

    Returns:
        `(x, y)`, both `(num_samples, length, num_symbols)` float32.

    Example:

    >>> x, y = reverse_task(4, length=8, num_symbols=10, seed=0)
    >>> x.shape, bool((y[:, ::-1] == x).all())
    ((4, 8, 10), True)
    """
    ids = _symbols(num_samples, length, num_symbols, seed)
    return one_hot(ids, num_symbols), one_hot(ids[:, ::-1], num_symbols)


def copy_task(num_samples, length, num_symbols=10, seed=None):
    """Sequences of one-hot symbols, to be reproduced as they are.

    Returns:
        `(x, y)`, both `(num_samples, length, num_symbols)` float32, equal.
    """
    x = one_hot(_symbols(num_samples, length, num_symbols, seed), num_symbols)
    return x, x.copy()
