"""Checks kseq2seq's CUDA path on a GPU: training, cuDNN, saving, precision, syncs.

One run of six checks, sized to take under 8 minutes on a recent GPU (not yet
timed on one):

1. `train_builders`: every builder (`SimpleSeq2Seq`, `Seq2Seq`, `Seq2Seq` with
   `inner_broadcast_state=False`, `AttentionSeq2Seq`) and a token model train on
   CUDA with `fit`; the loss falls and every weight lives on the GPU.
2. `fused_kernels`: under `torch.profiler`, a training step of the fused LSTM,
   GRU and SimpleRNN layers, and of a padded (packed) token batch, runs
   `aten::_cudnn_rnn` forward and backward and CUDA kernels named after cuDNN
   or RNNs. Under `mixed_bfloat16` the same is reported, not asserted.
3. `save_gpu_load_cpu`: a model trained and saved on the GPU loads in a process
   that sees no GPU (`CUDA_VISIBLE_DEVICES=""`) with bit-identical weights and
   predictions within `LOAD_TOLERANCE` of the GPU's with TF32 off.
4. `mixed_bfloat16`: training under the `mixed_bfloat16` policy keeps float32
   variables, gives finite losses, and the loss falls.
5. `sync_free_steps`: the synchronisations `fit` makes, found with
   `torch.cuda.set_sync_debug_mode("warn")`, split into those inside the
   training step and those outside it (the batches' copies to the GPU), each
   with the line that made it. There must be none inside the step on unmasked
   batches (the vector models). A token model's batch always carries a mask
   (id 0 is padding), so its syncs are reported, not asserted.
6. `speed_vs_pytorch`: `benchmarks/speed.py --quick` on CUDA, against the
   hand-written PyTorch twins, time-boxed (`--speed-timeout`).

Each check catches its own exceptions, so one failure does not stop the
others. The results go to `OUT/gpu_check.json` and `OUT/gpu_check.md`. The exit
code is 1 if any check failed, 0 otherwise. Without CUDA the script prints why
and exits 0, unless `--cpu-dry-run` is given: then the checks that need no GPU
run on the CPU with tiny sizes, and the others are recorded as skipped.

Run from the repository root:

    python benchmarks/gpu_check.py                    # on a CUDA machine
    python benchmarks/gpu_check.py --out DIR          # default: benchmarks/results/gpu
    python benchmarks/gpu_check.py --cpu-dry-run      # exercises the script anywhere

The script imports the kseq2seq next to it, so nothing needs installing but
Keras. A machine with PyTorch but without Keras needs these wheels (the
versions the library is tested with; numpy too if the image lacks it),
downloaded on a machine with network access for Python 3.12 on manylinux
x86_64:

    pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 \\
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
        -d wheels keras==3.15.1 namex==0.1.0 optree==0.20.0 absl-py==2.5.1 \\
        rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0 \\
        h5py==3.16.0 ml-dtypes==0.7.0 packaging==26.4

and installed there with `pip install --no-index --find-links wheels keras`.
"""

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import pathlib
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from typing import Optional

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The copy of kseq2seq next to this script is the one checked, installed or not.
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    import keras  # noqa: E402
except ImportError:
    sys.exit(
        "Keras is not installed: see the docstring of benchmarks/gpu_check.py "
        "for the wheels to bring to a machine without it."
    )

import kseq2seq  # noqa: E402
from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq import SimpleSeq2Seq  # noqa: E402
from kseq2seq.data import reverse_task  # noqa: E402
from kseq2seq.ops import count_runs  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu"
SPEED_SCRIPT = ROOT / "benchmarks" / "speed.py"
SKIP_MESSAGE = (
    "No CUDA device: PyTorch {torch} sees no GPU, so the GPU checks are skipped. "
    "Run this on a CUDA machine, or pass --cpu-dry-run to run the checks that "
    "need no GPU on the CPU."
)
# What PyTorch warns on a synchronising call under set_sync_debug_mode("warn").
SYNC_MESSAGE = "called a synchronizing CUDA operation"
# A model saved on the GPU and loaded on the CPU predicts the same to this
# absolute tolerance, with TF32 off on the GPU. PyTorch lets cuDNN's RNNs use
# TF32 by default (10 bits of mantissa) on Ampere and later GPUs, so the
# difference with the default settings is reported, not asserted.
LOAD_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The data and model sizes of one run."""

    samples: int
    batch: int
    length: int
    symbols: int  # vector features; token models add 3 ids (pad, start, end)
    hidden: int
    epochs: int
    min_fall: float  # the relative fall of the training loss asked for


GPU_SIZES = Sizes(
    samples=2048, batch=64, length=12, symbols=10, hidden=64, epochs=3, min_fall=0.1
)
TINY_SIZES = Sizes(
    samples=64, batch=16, length=5, symbols=6, hidden=8, epochs=4, min_fall=0.02
)


@dataclasses.dataclass(frozen=True)
class Setup:
    """Where and how the checks run."""

    device: str  # "cuda", or "cpu" for a dry run
    sizes: Sizes
    out: pathlib.Path
    speed_timeout: float


@dataclasses.dataclass
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: the check's name.
        passed: `True` or `False`; `None` when the check needs CUDA and
            did not run.
        details: what the check measured, JSON-friendly, with a one-line
            `summary`.
        seconds: how long the check took.
    """

    name: str
    passed: Optional[bool]
    details: dict
    seconds: float


def check(needs_cuda=False):
    """Makes a check function `f(setup) -> (passed, details)` return a
    `CheckResult`, timed, with any exception caught and reported as a failure."""

    def decorate(function):
        name = function.__name__

        @functools.wraps(function)
        def run(setup):
            if needs_cuda and setup.device != "cuda":
                return CheckResult(name, None, {"summary": "skipped: needs CUDA"}, 0.0)
            print(f"[{name}] running...", flush=True)
            start = time.perf_counter()
            try:
                passed, details = function(setup)
            except Exception as error:
                passed = False
                details = {
                    "summary": f"raised {type(error).__name__}: {error}",
                    "traceback": traceback.format_exc(),
                }
            seconds = round(time.perf_counter() - start, 2)
            result = CheckResult(name, bool(passed), details, seconds)
            state = "passed" if result.passed else "FAILED"
            print(f"[{name}] {state} in {seconds:.1f} s: {details.get('summary')}")
            return result

        return run

    return decorate


# --- data, models and subprocesses -------------------------------------------


def subprocess_env(**variables):
    """This environment and `variables`, with this checkout's kseq2seq first
    on the path of a Python subprocess."""
    env = dict(os.environ, **variables)
    paths = [str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return env


def vector_data(sizes, seed=0):
    """A one-hot reversal task: `(x, y)`, both `(samples, length, symbols)`."""
    return reverse_task(sizes.samples, sizes.length, sizes.symbols, seed=seed)


def token_data(sizes, padded=True, seed=0):
    """Token ids to reverse, then the end id; right-padded with 0 if `padded`.

    Returns:
        `(x, y)`: `(samples, length)` and `(samples, length + 1)` int32 ids.
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, sizes.symbols + 3, size=(sizes.samples, sizes.length))
    lengths = np.full(sizes.samples, sizes.length)
    if padded:
        lengths = rng.integers(sizes.length // 2 + 1, sizes.length + 1, sizes.samples)
    x = np.zeros((sizes.samples, sizes.length), "int32")
    y = np.zeros((sizes.samples, sizes.length + 1), "int32")
    for row, length in enumerate(lengths):
        x[row, :length] = ids[row, :length]
        y[row, :length] = ids[row, :length][::-1]
        y[row, length] = 2  # the end id
    return x, y


def shapes(sizes):
    """The shape arguments of the vector models and of the token models."""
    vector = dict(
        input_dim=sizes.symbols,
        input_length=sizes.length,
        hidden_dim=sizes.hidden,
        output_length=sizes.length,
        output_dim=sizes.symbols,
        depth=2,
        output_activation="softmax",
    )
    tokens = dict(
        input_vocab_size=sizes.symbols + 3,
        output_vocab_size=sizes.symbols + 3,
        input_length=sizes.length,
        output_length=sizes.length + 1,
        hidden_dim=sizes.hidden,
        depth=2,
    )
    return vector, tokens


def model_cases(sizes):
    """`{name: (builder, arguments)}`: every builder and a token model."""
    vector, tokens = shapes(sizes)
    return {
        "SimpleSeq2Seq": (SimpleSeq2Seq, vector),
        "Seq2Seq": (Seq2Seq, vector),
        "Seq2Seq(inner_broadcast_state=False)": (
            Seq2Seq,
            dict(vector, inner_broadcast_state=False),
        ),
        "AttentionSeq2Seq": (AttentionSeq2Seq, vector),
        "tokens: Seq2Seq(teacher_force=True)": (
            Seq2Seq,
            dict(tokens, teacher_force=True, inner_broadcast_state=False),
        ),
    }


def build(builder, arguments, learning_rate=1e-2, seed=0):
    """A compiled model: Adam, and cross-entropy for vector outputs too."""
    keras.utils.set_random_seed(seed)
    model = builder(**arguments)
    loss = "auto" if model.token_outputs else "categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    return model


def data_for(model, sizes, padded=True, seed=0):
    if model.token_inputs:
        return token_data(sizes, padded=padded, seed=seed)
    return vector_data(sizes, seed=seed)


def weight_devices(model):
    return sorted({v.value.device.type for v in model.weights})


def train(model, x, y, sizes):
    """Trains `model`; returns the losses before and after and per epoch."""
    before = model.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=sizes.batch, epochs=sizes.epochs, verbose=0)
    after = model.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
    return {
        "loss_before": float(before["loss"]),
        "loss_after": float(after["loss"]),
        "epoch_losses": [float(loss) for loss in history.history["loss"]],
    }


def loss_fell(losses, sizes):
    """Whether training lowered the loss by at least `sizes.min_fall`, all
    losses finite."""
    values = [losses["loss_before"], losses["loss_after"], *losses["epoch_losses"]]
    if not np.all(np.isfinite(values)):
        return False
    return losses["loss_after"] < losses["loss_before"] * (1 - sizes.min_fall)


@contextlib.contextmanager
def warnings_seen():
    """Records the warnings raised inside the block, every one, instead of
    showing them. Yields a dict filled on exit: `{"Category: message": count}`.
    """
    seen = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield seen
    for warning in caught:
        key = f"{warning.category.__name__}: {str(warning.message)[:200]}"
        seen[key] = seen.get(key, 0) + 1


# --- 1. every builder trains on the device ------------------------------------


@check()
def train_builders(setup):
    """Every builder and a token model train with `fit`; the loss falls and
    the weights and outputs live on the device."""
    details = {}
    for name, (builder, arguments) in model_cases(setup.sizes).items():
        with keras.device(setup.device), warnings_seen() as seen:
            model = build(builder, arguments)
            x, y = data_for(model, setup.sizes)
            losses = train(model, x, y, setup.sizes)
            outputs = model(x[: setup.sizes.batch])
        details[name] = dict(
            losses,
            loss_fell=loss_fell(losses, setup.sizes),
            weight_devices=weight_devices(model),
            output_device=outputs.device.type,
            warnings=seen,
        )
    failed = [
        name
        for name, case in details.items()
        if not case["loss_fell"]
        or case["weight_devices"] != [setup.device]
        or case["output_device"] != setup.device
    ]
    seen = {key for case in details.values() for key in case["warnings"]}
    details["summary"] = (
        f"{len(details) - len(failed)} of {len(details)} models trained on "
        f"{setup.device} with the loss down by at least {setup.sizes.min_fall:.0%}"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + (f"; warnings ({len(seen)} kinds) in the details" if seen else "")
    )
    return not failed, details


# --- 2. the fused layers run cuDNN --------------------------------------------

# PyTorch's operators for a fused recurrence, and the kernels that cuDNN's
# RNN calls launch (named after cuDNN, RNNs or their cells).
RNN_OPS = re.compile(r"^aten::(lstm|gru|rnn_tanh|_cudnn_rnn|mkldnn_rnn)")
RNN_KERNELS = re.compile(r"cudnn|rnn|lstm|gru", re.IGNORECASE)


def profiled_names(function, cuda):
    """Runs `function` under `torch.profiler`. Returns the names of the
    operators run on the host and of the kernels run on the device."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        function()
    host, device = set(), set()
    for event in profile.events():
        if event.device_type == torch.autograd.DeviceType.CPU:
            host.add(event.name)
            device.update(kernel.name for kernel in getattr(event, "kernels", ()))
        else:
            device.add(event.name)
    return sorted(host), sorted(device)


def rnn_evidence(host, device, cuda):
    """What the profiled names say about how recurrences ran.

    Args:
        host: names of the operators run on the host.
        device: names of the kernels run on the device.
        cuda: whether cuDNN is expected (else a fused CPU operator).

    Returns:
        A dict with the recurrent operators and kernels found, and `fused`:
        on CUDA, whether `aten::_cudnn_rnn` ran forward and backward and
        launched RNN kernels; on the CPU, whether a fused operator ran.
    """
    ops = [name for name in host if RNN_OPS.match(name)]
    kernels = [name for name in device if RNN_KERNELS.search(name)]
    if cuda:
        fused = (
            "aten::_cudnn_rnn" in ops
            and any(name.startswith("aten::_cudnn_rnn_backward") for name in host)
            and bool(kernels)
        )
    else:
        fused = bool(ops)
    return {"fused": fused, "rnn_ops": ops, "rnn_kernels": kernels[:12]}


def fused_cases(sizes):
    """`{name: (builder, arguments, padded, asserted)}` for the fused check."""
    vector, tokens = shapes(sizes)
    cases = {
        f"SimpleSeq2Seq(cell={cell!r})": (
            SimpleSeq2Seq,
            dict(vector, cell=cell, bidirectional=True),
            False,
            True,
        )
        for cell in ("lstm", "gru", "simple_rnn")
    }
    cases["tokens, padded (packed)"] = (
        Seq2Seq,
        dict(tokens, teacher_force=True, inner_broadcast_state=False),
        True,
        True,
    )
    cases["SimpleSeq2Seq, mixed_bfloat16"] = (
        SimpleSeq2Seq,
        dict(vector, dtype="mixed_bfloat16"),
        False,
        False,
    )
    return cases


@check()
def fused_kernels(setup):
    """A training step of the fused layers runs cuDNN on CUDA (a fused
    operator on the CPU), seen by `torch.profiler`."""
    cuda = setup.device == "cuda"
    batch = dataclasses.replace(setup.sizes, samples=setup.sizes.batch)
    details, failed = {}, []
    for name, (builder, arguments, padded, asserted) in fused_cases(batch).items():
        with keras.device(setup.device):
            model = build(builder, arguments)
            x, y = data_for(model, batch, padded=padded)
            model.fit(x, y, batch_size=batch.batch, verbose=0)  # warm-up

            def step():
                model.fit(x, y, batch_size=batch.batch, verbose=0)

            with count_runs() as counts:
                host, device = profiled_names(step, cuda)
        evidence = rnn_evidence(host, device, cuda)
        evidence.update(asserted=asserted, fused_layer_runs=counts.fused)
        details[name] = evidence
        if asserted and not (evidence["fused"] and counts.fused):
            failed.append(name)
    expected = "cuDNN (aten::_cudnn_rnn)" if cuda else "a fused operator"
    details["summary"] = (
        f"training steps ran {expected} in every asserted case"
        if not failed
        else f"no {expected} in: {', '.join(failed)}"
    )
    return not failed, details


# --- 3. saved on the GPU, loaded on the CPU -----------------------------------


@contextlib.contextmanager
def tf32_off():
    """Full float32 matmuls and cuDNN calls on the GPU inside the block."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    previous = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = previous


def predict_on_cpu(folder, names):
    """Loads saved models on the CPU and writes their predictions and weights.

    Run in a process that sees no GPU, as a machine without one would: for
    each name, `NAME.keras` predicts `NAME_x.npy` into `NAME_loaded.npz`.
    """
    folder = pathlib.Path(folder)
    for name in names:
        with keras.device("cpu"):
            model = keras.models.load_model(folder / f"{name}.keras")
            predictions = model.predict(np.load(folder / f"{name}_x.npy"), verbose=0)
        np.savez(
            folder / f"{name}_loaded.npz",
            predictions=predictions,
            cuda_available=torch.cuda.is_available(),
            weight_devices=np.array(weight_devices(model)),
            **{f"weight_{i}": weight for i, weight in enumerate(numpy_weights(model))},
        )


def numpy_weights(model):
    return [keras.ops.convert_to_numpy(v.value) for v in model.weights]


def load_in_cpu_process(folder, names):
    """Runs `predict_on_cpu` in a subprocess with `CUDA_VISIBLE_DEVICES=""`.
    Returns what it wrote, by name."""
    completed = subprocess.run(
        [sys.executable, __file__, "--predict-on-cpu", str(folder), *names],
        env=subprocess_env(CUDA_VISIBLE_DEVICES=""),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"loading on the CPU failed:\n{completed.stderr[-3000:]}")
    return {name: np.load(folder / f"{name}_loaded.npz") for name in names}


def train_and_save(name, builder, arguments, setup, folder):
    """Trains one model on the device for an epoch and saves it with a batch
    of inputs. Returns its weights and its predictions on that batch, with
    PyTorch's default settings and with TF32 off."""
    with keras.device(setup.device):
        model = build(builder, arguments)
        x, y = data_for(model, setup.sizes)
        model.fit(x, y, batch_size=setup.sizes.batch, verbose=0)
        x = x[: setup.sizes.batch]
        default = model.predict(x, verbose=0)
        with tf32_off():
            exact = model.predict(x, verbose=0)
    model.save(folder / f"{name}.keras")
    np.save(folder / f"{name}_x.npy", x)
    return {
        "saved_on": weight_devices(model),
        "weights": numpy_weights(model),
        "default": default,
        "exact": exact,
    }


def compare_loaded(saved, loaded):
    cpu = loaded["predictions"]
    return {
        "saved_on": saved["saved_on"],
        "loaded_on": loaded["weight_devices"].tolist(),
        "loader_saw_cuda": bool(loaded["cuda_available"]),
        "weights_bit_identical": all(
            np.array_equal(weight, loaded[f"weight_{index}"])
            for index, weight in enumerate(saved["weights"])
        ),
        "max_abs_diff_tf32_off": float(np.max(np.abs(cpu - saved["exact"]))),
        "max_abs_diff_default_settings": float(np.max(np.abs(cpu - saved["default"]))),
    }


@check()
def save_gpu_load_cpu(setup):
    """Models trained and saved on the device load in a process that sees no
    GPU with the same weights, and predict the same to `LOAD_TOLERANCE`."""
    vector, tokens = shapes(setup.sizes)
    chosen = {
        "attention": (AttentionSeq2Seq, vector),
        "attention_tokens": (AttentionSeq2Seq, dict(tokens, teacher_force=True)),
    }
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        saved = {
            name: train_and_save(name, builder, arguments, setup, folder)
            for name, (builder, arguments) in chosen.items()
        }
        loaded = load_in_cpu_process(folder, list(chosen))
        details = {name: compare_loaded(saved[name], loaded[name]) for name in chosen}
    passed = all(
        case["loaded_on"] == ["cpu"]
        and not case["loader_saw_cuda"]
        and case["weights_bit_identical"]
        and case["max_abs_diff_tf32_off"] <= LOAD_TOLERANCE
        for case in details.values()
    )
    worst = max(case["max_abs_diff_tf32_off"] for case in details.values())
    details["tolerance"] = LOAD_TOLERANCE
    details["summary"] = (
        f"weights identical, predictions within {worst:.1e} (tolerance "
        f"{LOAD_TOLERANCE:.0e}, TF32 off) after loading on the CPU"
        if passed
        else f"loading on the CPU differs (worst prediction difference {worst:.1e})"
    )
    return passed, details


# --- 4. mixed_bfloat16 --------------------------------------------------------


@check()
def mixed_bfloat16(setup):
    """Training under `mixed_bfloat16` keeps float32 variables and float32
    outputs, computes in bfloat16, and lowers a finite loss."""
    cases = model_cases(setup.sizes)
    details = {}
    for name in ("AttentionSeq2Seq", "tokens: Seq2Seq(teacher_force=True)"):
        builder, arguments = cases[name]
        with keras.device(setup.device):
            model = build(builder, dict(arguments, dtype="mixed_bfloat16"))
            x, y = data_for(model, setup.sizes)
            losses = train(model, x, y, setup.sizes)
            outputs = model(x[: setup.sizes.batch])
        details[name] = dict(
            losses,
            loss_fell=loss_fell(losses, setup.sizes),
            compute_dtype=model.compute_dtype,
            variable_dtypes=sorted({v.dtype for v in model.trainable_weights}),
            output_dtype=keras.backend.standardize_dtype(outputs.dtype),
            weight_devices=weight_devices(model),
        )
    passed = all(
        case["loss_fell"]
        and case["compute_dtype"] == "bfloat16"
        and case["variable_dtypes"] == ["float32"]
        and case["output_dtype"] == "float32"
        for case in details.values()
    )
    details["summary"] = (
        "bfloat16 training lowered a finite loss with float32 variables"
        if passed
        else "bfloat16 training: see the per-model details"
    )
    return passed, details


# --- 5. synchronisations ------------------------------------------------------

_PACKAGE_DIRS = {
    package.__name__: os.path.dirname(os.path.abspath(package.__file__)) + os.sep
    for package in (kseq2seq, keras, torch)
}


def _package(frame):
    """The package `frame` runs in: kseq2seq, keras, torch or other."""
    for package, folder in _PACKAGE_DIRS.items():
        if frame.filename.startswith(folder):
            return package
    return "other"


def _frame_name(frame):
    package = _package(frame)
    path = frame.filename
    if package != "other":
        path = f"{package}/{path[len(_PACKAGE_DIRS[package]) :]}"
    return f"{path}:{frame.lineno} in {frame.name}"


def describe_sync(stack):
    """Where one synchronisation came from.

    Args:
        stack: the `traceback.StackSummary` of the synchronising call,
            outermost frame first, the warning machinery left off.

    Returns:
        A dict: `caller` (the innermost frame, which made the call),
        `source` (the package of that frame: kseq2seq, keras, torch or
        other), `kseq2seq` (the innermost frame in kseq2seq, or `None`) and
        `in_step` (whether a `train_step` frame is on the stack).
    """
    inner = next((f for f in reversed(stack) if _package(f) == "kseq2seq"), None)
    return {
        "caller": _frame_name(stack[-1]) if stack else None,
        "source": _package(stack[-1]) if stack else "other",
        "kseq2seq": None if inner is None else _frame_name(inner),
        "in_step": any(frame.name == "train_step" for frame in stack),
    }


class SyncCounter:
    """Records the CUDA synchronisations made inside a `with` block.

    PyTorch warns at each synchronising call under
    `torch.cuda.set_sync_debug_mode("warn")`: device-to-host copies
    (`.item()`, `.cpu()`, `.tolist()`), copies to the device from pageable
    host memory, and explicit synchronisations. Each of these warnings is
    recorded with the stack it was raised from instead of being shown;
    other warnings are shown as usual.

    Args:
        debug_mode: whether to switch PyTorch's sync debug mode on (needs
            CUDA); with `False` only warnings raised some other way are
            recorded.

    Attributes:
        syncs: one `describe_sync` dict per synchronisation, in order.

    Example:

        with SyncCounter() as counter:
            torch.ones(1, device="cuda").item()
        assert len(counter.syncs) == 1
    """

    def __init__(self, debug_mode=True):
        self.debug_mode = debug_mode
        self.syncs = []
        self._catch = None
        self._show = None

    def __enter__(self):
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        # Every sync, not only the first from each line; other warnings
        # keep their filters.
        warnings.filterwarnings("always", message=re.escape(SYNC_MESSAGE))
        self._show = warnings.showwarning
        warnings.showwarning = self._record
        if self.debug_mode:
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc_info):
        if self.debug_mode:
            torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(*exc_info)
        return False

    def _record(self, message, category, filename, lineno, file=None, line=None):
        if SYNC_MESSAGE not in str(message):
            self._show(message, category, filename, lineno, file, line)
            return
        stack = traceback.extract_stack()[:-1]
        # The frames of Python's warning machinery (warnings.py, or
        # _py_warnings.py from Python 3.14) come last; drop them.
        while stack and stack[-1].filename.endswith("warnings.py"):
            stack.pop()
        self.syncs.append(describe_sync(stack))


def count_by_place(syncs):
    """`{"caller <- innermost kseq2seq frame": count}`, most frequent first."""
    counts = {}
    for sync in syncs:
        place = sync["caller"]
        if sync["kseq2seq"] and sync["kseq2seq"] != sync["caller"]:
            place += f" <- {sync['kseq2seq']}"
        counts[place] = counts.get(place, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def step_syncs(model, x, y, sizes, debug_mode=True):
    """Counts the synchronisations of one epoch of `fit`, after a warm-up
    epoch, split into those inside the training step and those outside it
    (the batches' copies to the device, callbacks)."""
    model.fit(x, y, batch_size=sizes.batch, verbose=0)
    with SyncCounter(debug_mode) as counter:
        model.fit(x, y, batch_size=sizes.batch, verbose=0)
    steps = -(-len(x) // sizes.batch)
    inside = [sync for sync in counter.syncs if sync["in_step"]]
    outside = [sync for sync in counter.syncs if not sync["in_step"]]
    sources = {}
    for sync in inside:
        sources[sync["source"]] = sources.get(sync["source"], 0) + 1
    return {
        "steps": steps,
        "in_step": len(inside),
        "in_step_per_step": len(inside) / steps,
        "in_step_by_source": sources,
        "in_step_places": count_by_place(inside),
        "outside_step": len(outside),
        "outside_step_places": count_by_place(outside),
    }


def _per_step(label, found):
    sources = ", ".join(f"{n} from {s}" for s, n in found["in_step_by_source"].items())
    return f"{label} {found['in_step_per_step']:.1f}/step" + (
        f" ({sources})" if sources else ""
    )


@check(needs_cuda=True)
def sync_free_steps(setup):
    """No synchronisation inside the training step on unmasked batches.

    Token models are reported, not asserted: their batches always carry a
    mask (id 0 is padding), whose lengths the fused layers copy to the CPU
    to pack the sequences.
    """
    details, unmasked, masked = {}, [], []
    for name, (builder, arguments) in model_cases(setup.sizes).items():
        tokens = "input_vocab_size" in arguments
        for padded in (False, True) if tokens else (False,):
            label = f"{name}, padded={padded}" if tokens else name
            with keras.device(setup.device):
                model = build(builder, arguments)
                x, y = data_for(model, setup.sizes, padded=padded)
                details[label] = step_syncs(model, x, y, setup.sizes)
            (masked if tokens else unmasked).append(label)
    failed = [label for label in unmasked if details[label]["in_step"]]
    reported = "; ".join(_per_step(label, details[label]) for label in masked)
    if failed:
        found = "; ".join(_per_step(label, details[label]) for label in failed)
        verdict = f"syncs inside the training step on unmasked batches: {found}"
    else:
        verdict = "no sync inside the training step on unmasked batches"
    details["summary"] = f"{verdict}; token models (masked, reported): {reported}"
    return not failed, details


# --- 6. speed against the PyTorch twins ---------------------------------------


def run_time_boxed(command, timeout):
    """Runs `command` in its own process group, killed whole after `timeout`
    seconds. Returns `(returncode or None if timed out, output)`."""
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
            return process.returncode, output
        except subprocess.TimeoutExpired:
            # The benchmark starts processes of its own to measure memory.
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return None, output


def speed_ratios(report):
    """`{"builder/size": {metric: kseq2seq time / PyTorch time}}` from a
    speed report, skipping whatever it lacks."""
    ratios = {}
    for result in report.get("results", []):
        key = f"{result.get('builder')}/{result.get('size')}"
        ratios[key] = {
            metric: values.get("kseq2seq/pytorch")
            for metric, values in result.get("ratios", {}).items()
        }
    return ratios


@check(needs_cuda=True)
def speed_vs_pytorch(setup):
    """`benchmarks/speed.py --quick` runs on CUDA within the time box."""
    output = setup.out / "speed"
    command = [sys.executable, str(SPEED_SCRIPT), "--quick", "--output", str(output)]
    returncode, log = run_time_boxed(command, setup.speed_timeout)
    details = {
        "command": " ".join(command),
        "returncode": returncode,
        "output_tail": log[-4000:],
    }
    if returncode is None:
        details["summary"] = f"timed out after {setup.speed_timeout:.0f} s"
        return False, details
    report_path = output / "speed.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    device = report.get("environment", {}).get("device")
    details.update(
        device=device, report=str(output / "speed.md"), ratios=speed_ratios(report)
    )
    passed = returncode == 0 and device == "cuda"
    details["summary"] = (
        f"quick benchmark ran on {device}; kseq2seq/PyTorch ratios in the details"
        if passed
        else f"speed.py exited with {returncode} on device {device}"
    )
    return passed, details


# --- the run ------------------------------------------------------------------

CHECKS = (
    train_builders,
    fused_kernels,
    save_gpu_load_cpu,
    mixed_bfloat16,
    sync_free_steps,
    speed_vs_pytorch,
)


def git_commit():
    """The commit checked (`+` if the checkout has changes), or `None`
    where the copy has no git history."""
    try:
        run = functools.partial(
            subprocess.run, cwd=ROOT, capture_output=True, text=True, check=True
        )
        commit = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
        changed = run(["git", "status", "--porcelain"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+" if changed else "")


def environment(setup):
    cuda = setup.device == "cuda"
    return {
        "device": setup.device,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "keras": keras.__version__,
        "kseq2seq": kseq2seq.__version__,
        "kseq2seq_commit": git_commit(),
        "sizes": dataclasses.asdict(setup.sizes),
    }


def _status(result):
    return {True: "passed", False: "**FAILED**", None: "skipped"}[result.passed]


def markdown(report):
    env = report["environment"]
    lines = [
        "# kseq2seq GPU check",
        "",
        f"Device: {env['device']} ({env['gpu'] or 'no GPU'}); torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}, keras {env['keras']}, "
        f"kseq2seq {env['kseq2seq']} ({env['kseq2seq_commit'] or 'no git'}), "
        f"Python {env['python']}. {report['seconds']:.0f} s in all.",
        "",
        "| check | result | seconds | summary |",
        "|---|---|---|---|",
    ]
    results = [CheckResult(**record) for record in report["checks"]]
    for result in results:
        summary = str(result.details.get("summary", "")).replace("|", "\\|")
        lines.append(
            f"| `{result.name}` | {_status(result)} | {result.seconds:.1f} | "
            f"{summary} |"
        )
    for result in results:
        details = {k: v for k, v in result.details.items() if k != "summary"}
        if details:
            text = json.dumps(details, indent=2, default=str)
            lines += ["", f"## `{result.name}`", "", "```json", text, "```"]
    return "\n".join(lines) + "\n"


def write_results(setup, results, seconds):
    """Writes `gpu_check.json` and `gpu_check.md` under `setup.out`."""
    setup.out.mkdir(parents=True, exist_ok=True)
    report = {
        "environment": environment(setup),
        "passed": not any(result.passed is False for result in results),
        "seconds": round(seconds, 1),
        "checks": [dataclasses.asdict(result) for result in results],
    }
    path = setup.out / "gpu_check.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    (setup.out / "gpu_check.md").write_text(markdown(report))
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=pathlib.Path, default=DEFAULT_OUT, help="results folder"
    )
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="run the checks that need no GPU on the CPU, with tiny sizes",
    )
    parser.add_argument(
        "--speed-timeout",
        type=float,
        default=240.0,
        help="seconds the speed benchmark may run (default 240)",
    )
    # Internal: load a saved model on the CPU, in a process that sees no GPU.
    parser.add_argument("--predict-on-cpu", nargs="+", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the checks. Returns the exit code: 1 if any check failed."""
    args = parse_args(argv)
    if args.predict_on_cpu:
        predict_on_cpu(args.predict_on_cpu[0], args.predict_on_cpu[1:])
        return 0
    if args.cpu_dry_run:
        setup = Setup("cpu", TINY_SIZES, args.out, args.speed_timeout)
    elif torch.cuda.is_available():
        setup = Setup("cuda", GPU_SIZES, args.out, args.speed_timeout)
    else:
        print(SKIP_MESSAGE.format(torch=torch.__version__))
        return 0
    start = time.perf_counter()
    results = [run_check(setup) for run_check in CHECKS]
    path = write_results(setup, results, time.perf_counter() - start)
    print(f"Results: {path} and {path.with_suffix('.md')}")
    failed = [result.name for result in results if result.passed is False]
    if failed:
        print(f"Failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
