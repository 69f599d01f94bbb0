"""The benchmark's PyTorch twins compute what kseq2seq computes.

`benchmarks/speed.py` refuses to time a twin whose outputs differ from the
kseq2seq model's with copied weights; this runs the same checks in CI, so a
change to either side shows here rather than at benchmark time.
"""

import keras
import pytest

from benchmarks import contenders as contending
from benchmarks.config import MODELS
from benchmarks.config import Case


@pytest.mark.parametrize("model", sorted(MODELS))
def test_twins_match_kseq2seq_with_copied_weights(model):
    case = Case(model, "small")
    keras.utils.set_random_seed(0)
    data = contending.make_data(case, 1)
    built = contending.build_kseq2seq(case, jit_compile=False)
    contenders = {
        name: contending.build_contender(case, name, data, built)
        for name in case.contenders
    }
    # Each raises when a twin differs (outputs beyond the benchmark's
    # tolerance, or a parameter count).
    diffs = contending.check_equivalence(case, contenders, data)
    contending.check_params(case, contenders)
    assert diffs  # At least one twin was compared.
