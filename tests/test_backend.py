"""`import kseq2seq` selects PyTorch, or says clearly how to."""

import os
import subprocess
import sys

import pytest


def _run(code, pythonpath=None, **environment):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(environment)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(pythonpath), env.get("PYTHONPATH", "")]
        )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )


@pytest.fixture
def keras_on_jax(tmp_path):
    """A stand-in `keras` package that reports the backend it was asked for.

    Only PyTorch is installed here, so a real Keras cannot start on another
    backend; the stand-in answers `keras.backend.backend()` as Keras would.
    """
    package = tmp_path / "keras"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import os, types\n"
        "backend = types.SimpleNamespace(\n"
        "    backend=lambda: os.environ.get('KERAS_BACKEND', 'tensorflow'))\n"
    )
    return tmp_path


def test_import_selects_torch_when_no_backend_was_chosen():
    result = _run("import kseq2seq, keras; print(keras.backend.backend())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch"


def test_import_accepts_an_explicit_torch_backend():
    result = _run("import keras; import kseq2seq", KERAS_BACKEND="torch")
    assert result.returncode == 0, result.stderr


def test_import_refuses_a_keras_already_loaded_on_another_backend(keras_on_jax):
    result = _run("import keras; import kseq2seq", keras_on_jax, KERAS_BACKEND="jax")
    assert result.returncode != 0
    assert "ImportError: kseq2seq requires Keras' PyTorch backend" in result.stderr
    assert "running on the 'jax' backend" in result.stderr
    assert "imported before kseq2seq" in result.stderr
    assert "KERAS_BACKEND=torch" in result.stderr


def test_import_refuses_another_requested_backend(keras_on_jax):
    result = _run("import kseq2seq", keras_on_jax, KERAS_BACKEND="jax")
    assert result.returncode != 0
    assert "KERAS_BACKEND is set to 'jax'" in result.stderr
    assert "Set KERAS_BACKEND=torch" in result.stderr
