"""Every example in the docstrings, the README and docs/ runs."""

import doctest
import importlib
import pathlib
import pkgutil
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import kseq2seq

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(kseq2seq.__path__, prefix="kseq2seq.")
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


ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def python_blocks(page):
    """The ```python blocks of a Markdown page, in order.

    Blocks that only include a file's section (`--8<-- "examples/x.py:part"`)
    are left out: the examples they come from run in test_examples.
    """
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    return [block for block in blocks if not _only_includes(block)]


def _only_includes(block):
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith("--8<--") for line in lines)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip("no Python blocks")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__markdown__"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{page.name}, block {number}", "exec")
        exec(code, namespace)


def test_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: no broken link, include or API reference."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "api" / "index.html").exists()
