"""Data-parallel training with torch.distributed, gloo on the CPU.

An unchanged single-process script (`distributed_scripts/fit.py`) runs
alone and under `torchrun --nproc_per_node=2` at the same time: the two
processes, seeded differently, end with identical weights, equal to those
of the single process, log the same losses and metrics, predict the same,
and write each file once. A process that dies or hangs stops the others
with an error. And every trainable weight of every builder, in every mode,
gets a gradient at every step, which `DistributedDataParallel` (and Keras'
own `DataParallel` on PyTorch, which wraps models in it) needs with
`find_unused_parameters=False`.
"""

import importlib.util
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import cases  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras import ops  # noqa: E402
from torch import distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq import distributed  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tests" / "distributed_scripts"
VOCAB = 9
VECTOR = dict(input_dim=3, output_dim=4, output_length=4, hidden_dim=6)
TOKENS = dict(
    input_vocab_size=VOCAB,
    output_vocab_size=VOCAB,
    output_length=4,
    hidden_dim=6,
    embedding_dim=5,
)


def _environment(**variables):
    """This checkout's kseq2seq, one thread per process."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **variables)
    return env


# ---------------------------------------------------------------------------
# 1. The same script, alone and in two processes.
# ---------------------------------------------------------------------------


def _start_checkpoint(path):
    """A checkpoint written by one process, for both runs to train on from."""
    keras.utils.set_random_seed(5)
    model = Seq2Seq(**VECTOR, peek=True)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 6, 3)).astype("float32")
    model.fit(x, x[:, :4, :2].repeat(2, -1), batch_size=8, verbose=0)
    model.save(path)
    return path


TIMEOUT = 10  # seconds a process waits for the others in the stopping runs


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command, log, **variables):
    with open(log, "w") as output:
        return subprocess.Popen(
            command, env=_environment(**variables), stdout=output, stderr=output
        )


def _stopping_group(how, folder):
    """The two processes of `stop.py how`, started by hand as torchrun would.

    Without torchrun, which would end the others itself when one dies.
    """
    group = dict(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        WORLD_SIZE="2",
        KSEQ2SEQ_DISTRIBUTED_TIMEOUT=str(TIMEOUT),
    )
    command = [sys.executable, str(SCRIPTS / "stop.py"), how]
    return {
        f"{how}{rank}": _start(
            command,
            folder / f"{how}{rank}.log",
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            **group,
        )
        for rank in range(2)
    }


def _wait(processes, timeout):
    """Waits for `processes` to end. Returns the time each ended at."""
    ended = {}
    deadline = time.time() + timeout
    while len(ended) < len(processes) and time.time() < deadline:
        for name, process in processes.items():
            if name not in ended and process.poll() is not None:
                ended[name] = time.time()
        time.sleep(0.1)
    return ended


def _reference_run(out, start):
    """`fit.py` alone, run in this process."""
    spec = importlib.util.spec_from_file_location("fit_script", SCRIPTS / "fit.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.run(out, start)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`fit.py` under torchrun and alone, and the two `stop.py` groups.

    All at once, the one-process run in this process. Returns the results
    (by run: "single", "rank0", "rank1"), the output folders, and the logs
    and end times of the stopping groups' processes.
    """
    base = tmp_path_factory.mktemp("runs")
    start = _start_checkpoint(base / "start.keras")
    folders = {"one": base / "one", "two": base / "two"}
    for folder in folders.values():
        folder.mkdir()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    script = [str(SCRIPTS / "fit.py"), str(folders["two"]), str(start)]
    processes = {
        "two": _start([*torchrun, "--nproc_per_node=2", *script], base / "two.log")
    }
    stopping = {**_stopping_group("kill", base), **_stopping_group("hang", base)}
    try:
        single = _reference_run(folders["one"], start)
        ending = {**processes, **stopping}
        del ending["hang1"]  # it sleeps for an hour
        ended = _wait(ending, timeout=300)
    finally:
        for process in [*processes.values(), *stopping.values()]:
            process.kill()  # the hanging one, or any that outlived the wait
            process.wait()
    logs = {
        name: (base / f"{name}.log").read_text() for name in [*processes, *stopping]
    }
    assert processes["two"].returncode == 0, logs["two"][-4000:]
    results = {
        "single": single,
        "rank0": dict(np.load(folders["two"] / "results-0.npz")),
        "rank1": dict(np.load(folders["two"] / "results-1.npz")),
    }
    return results, folders, logs, ended


def _numbers(results):
    return {k: v for k, v in results.items() if v.dtype.kind not in "US"}


def test_two_processes_train_as_one(runs):
    (results, *_) = runs
    single, rank0, rank1 = (_numbers(results[k]) for k in ("single", "rank0", "rank1"))
    assert single.keys() == rank0.keys() == rank1.keys()
    weights = [k for k in single if "/weight" in k]
    # Every builder, a token model with class and sample weights, a PyDataset
    # and a DataLoader, training on from a checkpoint one process wrote, and
    # a BackupAndRestore run stopped and run again.
    for case in ("simple", "seq2seq", "attention", "mixed", "py_dataset"):
        assert f"{case}/weight0" in weights
    assert {"data_loader/weight0", "resumed/weight0", "backup/weight0"} <= set(weights)
    # The backup of the run stopped after two epochs is restored on every
    # process: the run again trains the third epoch only.
    for run in (single, rank0, rank1):
        np.testing.assert_array_equal(run["backup/epochs"], [2])
    for key in single:
        # Rank 0's weights reach rank 1 at the start; the same summed
        # gradients keep them equal.
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        if key.startswith("mixed/"):
            # float16 computations on half the rows round differently.
            np.testing.assert_allclose(rank0[key], single[key], atol=2e-2, err_msg=key)
        else:
            np.testing.assert_allclose(
                rank0[key], single[key], rtol=1e-5, atol=1e-5, err_msg=key
            )


def test_logs_results_and_predictions_are_global(runs):
    (results, *_) = runs
    single, rank0 = results["single"], results["rank0"]
    for case in ("simple", "attention", "py_dataset", "data_loader"):
        logs = {k for k in single if k.startswith(f"{case}/history/")}
        names = {k.rsplit("/", 1)[1] for k in logs}
        metric = "sparse_categorical_accuracy" if case == "attention" else "mae"
        assert names == {"loss", metric, "val_loss", f"val_{metric}"}, names
        assert f"{case}/evaluate/loss" in single
        rows = 45 if case in ("simple", "attention") else 41
        assert (
            single[f"{case}/predict"].shape[0]
            == rank0[f"{case}/predict"].shape[0]
            == rows
        )
    # Their values are compared with one process's in the test above.


def test_one_process_writes_the_files(runs):
    (_, folders, *_) = runs
    files = [
        p.name for p in folders["two"].iterdir() if not p.name.startswith("results")
    ]
    writers = {re.search(r"-(\d+)\.", name).group(1) for name in files}
    assert len(writers) == 1, files  # one process id: rank 0's
    for case in ("simple", "seq2seq", "attention", "mixed"):
        # The checkpoint, the log and the final model, once each.
        for start, end in [(case, "keras"), (f"final-{case}", "keras"), (case, "csv")]:
            written = [
                n for n in files if n.startswith(f"{start}-") and n.endswith(end)
            ]
            assert len(written) == 1, (start, end, files)
    (logs,) = [n for n in files if n.endswith(".logs")]  # kseq2seq's TensorBoard
    assert logs.startswith("simple-")


def test_a_checkpoint_of_two_processes_trains_on_in_one(runs):
    (results, folders, *_) = runs
    x = np.random.default_rng(4).normal(size=(20, 6, 3)).astype("float32")
    y = np.concatenate([x[:, :4], x[:, :4, :1]], axis=-1)
    trained = []
    for name in ("one", "two"):
        (path,) = folders[name].glob("final-seq2seq-*.keras")
        model = keras.models.load_model(path)
        for number, variable in enumerate(model.trainable_variables):
            saved = results["rank0" if name == "two" else "single"]
            np.testing.assert_array_equal(
                variable.numpy(), saved[f"seq2seq/weight{number}"]
            )
        keras.utils.set_random_seed(0)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        trained.append([v.numpy() for v in model.trainable_variables])
    for from_one, from_two in zip(*trained):
        np.testing.assert_allclose(from_two, from_one, rtol=1e-5, atol=1e-5)


def test_stateful_models_are_refused(runs):
    (results, *_) = runs
    assert str(results["single"]["stateful"]) == "trained"
    for rank in ("rank0", "rank1"):
        message = str(results[rank]["stateful"])
        assert "Received: stateful=True with 2 processes" in message


def test_a_process_that_dies_or_hangs_stops_the_others(runs):
    (_, _, logs, ended) = runs
    for how in ("kill", "hang"):
        log = logs[f"{how}0"]
        assert f"{how}0" in ended, f"{how}: rank 0 did not stop\n{log[-3000:]}"
        assert "Data-parallel training stopped: process 0 of 2" in log, log[-3000:]
        if how == "hang":
            assert f"within the timeout of {TIMEOUT} s" in log
        # Rank 1 wrote the time it stopped answering; rank 0 ended soon after.
        stopped = float(re.search(r"stopping at ([\d.]+)", logs[f"{how}1"]).group(1))
        assert ended[f"{how}0"] - stopped < TIMEOUT + 20, (how, ended, stopped)


# ---------------------------------------------------------------------------
# 2. The switches, in one process.
# ---------------------------------------------------------------------------


@pytest.fixture
def launched(monkeypatch):
    """The environment of rank 1 of 2 under torchrun, without the others."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    yield
    distributed.enable()


def test_turned_off_every_process_trains_alone(launched, tmp_path):
    distributed.enable(False)
    assert distributed.world_size() == 1 and distributed.rank() == 0
    assert not dist.is_initialized()
    model = Seq2Seq(**VECTOR)
    model.save(tmp_path / "model.keras")  # every process writes its own
    assert (tmp_path / "model.keras").exists()


@pytest.mark.parametrize("value, enabled", [("0", False), ("off", False), ("1", True)])
def test_environment_switch(monkeypatch, value, enabled):
    monkeypatch.setenv("KSEQ2SEQ_DISTRIBUTED", value)
    assert distributed._enabled_by_environment() is enabled


def test_only_rank_zero_writes(launched, tmp_path):
    model = Seq2Seq(**VECTOR)
    model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / "model.weights.h5")
    assert not list(tmp_path.iterdir())  # rank 1 writes nothing
    distributed.enable(rank_zero_only=False)
    model.save(tmp_path / "model.keras")
    assert (tmp_path / "model.keras").exists()


def test_keras_data_parallel_takes_over(launched, monkeypatch):
    # A Keras with its own DataParallel on PyTorch, configured by the user.
    keras_distribution = object.__new__(keras.distribution.DataParallel)
    monkeypatch.setattr(keras.distribution, "distribution", lambda: keras_distribution)
    assert distributed.world_size() == 1
    assert distributed.writes_files()
    assert not dist.is_initialized()


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="`timeout` must be a real number > 0"):
        distributed.initialize(timeout=0)
    with pytest.raises(ValueError, match="`enabled` must be True or False"):
        distributed.enable("yes")


@pytest.mark.parametrize("rows", [1, 5, 8, 13])
@pytest.mark.parametrize("size", [2, 3])
def test_a_batch_is_split_as_numpy_splits_it(rows, size):
    expected = np.array_split(np.arange(rows), size)
    for rank in range(size):
        start, stop = distributed._share(rows, rank, size)
        np.testing.assert_array_equal(np.arange(rows)[start:stop], expected[rank])


# ---------------------------------------------------------------------------
# 3. Every weight gets a gradient, in every mode, under DDP itself.
# ---------------------------------------------------------------------------

MODES = [
    "simple",
    "simple_deeper_decoder_bidirectional_gru",
    "simple_rnn_dropout_reversed",
    "seq2seq",
    "seq2seq_teacher_forced",
    "seq2seq_sampling",
    "seq2seq_peek_teacher_forced_deeper_decoder",
    "seq2seq_per_layer_deeper_decoder",
    "seq2seq_bidirectional_dense_gru",
    "seq2seq_peek_zero_start_dropout",
    "seq2seq_peek_no_bridge",
    "attention",
    "attention_teacher_forced",
    "attention_sampling",
    "attention_deep_concat",
    "attention_unidirectional_dense_gru",
    "attention_dropout_reversed",
]
# With token outputs these are refused (see below): nothing reads the input.
VECTOR_MODES = ["seq2seq_zero_start", "seq2seq_no_bridge"]


def _param(name, tokens):
    builder, options = cases.MODELS[name]
    kind = "tokens" if tokens else "vectors"
    return pytest.param(name, tokens, id=f"{builder}-{kind}-{options}")


CASES = [
    _param(name, tokens)
    for name in MODES + VECTOR_MODES
    for tokens in (False, True)
    if not (tokens and name in VECTOR_MODES)
]


def _build(name, tokens):
    builder, options = cases.case(name, TOKENS if tokens else VECTOR)
    return builder(**options)


def _data(tokens, batch, seed=0):
    rng = np.random.default_rng(seed)
    if tokens:
        x = rng.integers(1, VOCAB, size=(batch, 6)).astype("int32")
        y = rng.integers(3, VOCAB, size=(batch, 4)).astype("int32")
        x[::2, 4:] = 0
        y[::2, 2] = 2  # the end id, then padding
        y[::2, 3] = 0
        return x, y
    x = rng.normal(size=(batch, 6, 3)).astype("float32")
    y = np.concatenate([x[:, :4], np.ones_like(x[:, :4, :1])], axis=-1)
    return x, y


def _ddp_step(ddp_model, x, y):
    """A training step through the DDP wrapper, with the model's loss."""
    model = ddp_model.module
    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    inputs = model.training_inputs(x, y)
    model.zero_grad(set_to_none=True)
    y_pred = ddp_model(inputs, training=True)
    loss = model.compute_loss(x=inputs, y=y, y_pred=y_pred, training=True)
    loss.backward()
    variables = model.trainable_variables
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in variables], variables)
    return float(loss)


@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo group: DDP's reducer checks gradients as with N."""
    store = tmp_path / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize("name, tokens", CASES)
def test_every_weight_gets_a_gradient_under_ddp(process_group, name, tokens):
    model = _build(name, tokens)
    ddp_model = DistributedDataParallel(model)  # find_unused_parameters=False
    x, y = _data(tokens, batch=4)
    for _ in range(2):
        # DDP raises at the second step if the first left a weight without
        # a gradient; the check below names it.
        loss = _ddp_step(ddp_model, x, y)
        missing = [v.path for v in model.trainable_variables if v.value.grad is None]
        assert not missing, f"weights without a gradient: {missing}"
    assert np.isfinite(loss)


@pytest.mark.parametrize("options", [{"broadcast_state": False}, {"bridge": None}])
def test_token_seq2seq_that_would_ignore_its_input_is_refused(options):
    # Neither the encoder's states nor the context (`peek`) would reach a
    # token decoder, which starts from `start_id`: the encoder and the input
    # embedding would get no gradient, and the outputs ignore the input.
    with pytest.raises(ValueError, match="never read the input"):
        Seq2Seq(**TOKENS, **options)
    Seq2Seq(**VECTOR, **options)  # a vector decoder's start value reads it


def test_stateful_model_trains_under_ddp(process_group):
    model = Seq2Seq(batch_size=4, stateful=True, teacher_force=True, **VECTOR)
    ddp_model = DistributedDataParallel(model)
    x, y = _data(False, batch=4)
    for _ in range(2):
        _ddp_step(ddp_model, x, y)
    assert all(v.value.grad is not None for v in model.trainable_variables)
    model.reset_states()


def test_a_one_process_group_trains_as_without_one(process_group):
    # A group of one (initialised by the user here) changes nothing.
    x, y = _data(True, batch=6)
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        model = _build("attention_teacher_forced", tokens=True)
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        results.append([v.numpy() for v in model.trainable_variables])
        if dist.is_initialized():
            dist.destroy_process_group()
    for with_group, without in zip(*results):
        np.testing.assert_array_equal(with_group, without)
