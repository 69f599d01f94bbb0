"""Runs the `>>>` examples in every kseq2seq docstring."""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest

import kseq2seq

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(kseq2seq.__path__, prefix="kseq2seq.")
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    globs = {"np": np, "keras": keras}
    globs.update({name: getattr(kseq2seq, name) for name in kseq2seq.__all__})
    result = doctest.testmod(
        module,
        extraglobs=globs,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
        verbose=False,
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed"
