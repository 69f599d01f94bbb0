import numpy as np
import pytest

from kseq2seq.data import copy_task
from kseq2seq.data import one_hot
from kseq2seq.data import reverse_task


def test_reverse_task_targets_are_the_reversed_inputs():
    x, y = reverse_task(50, length=8, num_symbols=10, seed=0)
    assert x.shape == y.shape == (50, 8, 10)
    np.testing.assert_array_equal(y, x[:, ::-1])
    np.testing.assert_array_equal(x.sum(-1), 1.0)


def test_same_seed_same_data_other_seed_other_data():
    a, _ = reverse_task(20, 5, seed=3)
    b, _ = reverse_task(20, 5, seed=3)
    c, _ = reverse_task(20, 5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_copy_task_targets_equal_inputs():
    x, y = copy_task(10, 4, num_symbols=3, seed=0)
    np.testing.assert_array_equal(x, y)
    assert y is not x


def test_one_hot_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="num_classes"):
        one_hot(np.array([0, 3]), 3)


@pytest.mark.parametrize("argument", ["num_samples", "length", "num_symbols"])
def test_generators_reject_non_positive_sizes(argument):
    sizes = {"num_samples": 4, "length": 3, "num_symbols": 5}
    sizes[argument] = 0
    with pytest.raises(ValueError, match=argument):
        reverse_task(**sizes)
