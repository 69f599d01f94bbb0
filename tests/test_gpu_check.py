"""`benchmarks/gpu_check.py`: its skip path, its CPU dry run and its helpers.

The checks themselves need a GPU; here the script runs without one: it must
skip cleanly, and `--cpu-dry-run` must run the checks that need no GPU and
write the results. The synchronisation counter is exercised with the
warnings PyTorch raises on CUDA, raised by hand.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import traceback
import warnings

import keras
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
CHECK_NAMES = [
    "train_builders",
    "fused_kernels",
    "save_gpu_load_cpu",
    "mixed_bfloat16",
    "sync_free_steps",
    "speed_vs_pytorch",
]
NEED_CUDA = {"sync_free_steps", "speed_vs_pytorch"}


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "No CUDA device" in result.stdout
    assert "--cpu-dry-run" in result.stdout
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    code = gpu_check.main(["--cpu-dry-run", "--out", str(out)])
    return code, out


def test_dry_run_runs_the_checks_that_need_no_cuda(dry_run):
    code, out = dry_run
    report = json.loads((out / "gpu_check.json").read_text())
    checks = {record["name"]: record for record in report["checks"]}
    assert list(checks) == CHECK_NAMES
    for name, record in checks.items():
        assert set(record) == {"name", "passed", "details", "seconds"}
        assert record["details"]["summary"]
        if name in NEED_CUDA:
            assert record["passed"] is None
            assert record["seconds"] == 0
        else:
            assert record["passed"] is True, record["details"]
            assert record["seconds"] > 0
    assert code == 0
    assert report["passed"] is True
    assert report["environment"]["device"] == "cpu"


def test_dry_run_records_what_each_check_measured(dry_run):
    _, out = dry_run
    checks = {
        record["name"]: record["details"]
        for record in json.loads((out / "gpu_check.json").read_text())["checks"]
    }
    trained = checks["train_builders"]
    assert set(gpu_check.model_cases(gpu_check.TINY_SIZES)) < set(trained)
    for name in gpu_check.model_cases(gpu_check.TINY_SIZES):
        assert trained[name]["loss_after"] < trained[name]["loss_before"]
        assert trained[name]["weight_devices"] == ["cpu"]
    # On a CPU the fused layers run PyTorch's fused operators, not cuDNN.
    fused = checks["fused_kernels"]["SimpleSeq2Seq(cell='gru')"]
    assert fused["rnn_ops"] == ["aten::gru"] and fused["fused_layer_runs"] > 0
    for case in ("attention", "attention_tokens"):
        loaded = checks["save_gpu_load_cpu"][case]
        assert loaded["weights_bit_identical"] and not loaded["loader_saw_cuda"]
    bfloat16 = checks["mixed_bfloat16"]["AttentionSeq2Seq"]
    assert bfloat16["compute_dtype"] == "bfloat16"
    assert bfloat16["variable_dtypes"] == ["float32"]


def test_dry_run_writes_a_markdown_summary(dry_run):
    _, out = dry_run
    text = (out / "gpu_check.md").read_text()
    for name in CHECK_NAMES:
        assert f"| `{name}` |" in text
    assert "| `sync_free_steps` | skipped |" in text


def test_a_check_that_raises_is_a_failure_and_the_run_goes_on(tmp_path, monkeypatch):
    @gpu_check.check()
    def broken(setup):
        raise RuntimeError("no such kernel")

    @gpu_check.check()
    def fine(setup):
        return True, {"summary": "ok"}

    monkeypatch.setattr(gpu_check, "CHECKS", (broken, fine))
    assert gpu_check.main(["--cpu-dry-run", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    first, second = report["checks"]
    assert first["passed"] is False and report["passed"] is False
    assert "RuntimeError: no such kernel" in first["details"]["summary"]
    assert "no such kernel" in first["details"]["traceback"]
    assert second["passed"] is True


def test_rnn_evidence_asks_cuda_for_cudnn_forward_and_backward():
    host = ["aten::lstm", "aten::_cudnn_rnn", "aten::mm"]
    kernels = ["RNN_blockPersist_fp_LSTM<float>", "ampere_sgemm_32x128_tn"]
    forward_only = gpu_check.rnn_evidence(host, kernels, cuda=True)
    assert not forward_only["fused"]
    assert forward_only["rnn_kernels"] == ["RNN_blockPersist_fp_LSTM<float>"]
    both = gpu_check.rnn_evidence(host + ["aten::_cudnn_rnn_backward"], kernels, True)
    assert both["fused"]
    assert not gpu_check.rnn_evidence(host, ["ampere_sgemm_32x128_tn"], True)["fused"]
    # The step loop of the generic path shows no recurrent operator at all.
    assert not gpu_check.rnn_evidence(["aten::mm", "aten::sigmoid"], [], False)["fused"]


def _synchronise():
    warnings.warn(gpu_check.SYNC_MESSAGE, UserWarning)


def train_step():
    _synchronise()


def test_sync_counter_records_each_sync_with_its_place():
    with pytest.warns(UserWarning, match="unrelated"):
        with gpu_check.SyncCounter(debug_mode=False) as counter:
            _synchronise()
            train_step()
            warnings.warn("unrelated", UserWarning)
    assert len(counter.syncs) == 2
    outside, inside = counter.syncs
    assert outside["caller"].endswith("in _synchronise")
    assert outside["source"] == "other" and outside["kseq2seq"] is None
    assert not outside["in_step"] and inside["in_step"]
    counts = gpu_check.count_by_place(counter.syncs)
    assert list(counts.values()) == [2]


def test_describe_sync_names_the_caller_and_the_kseq2seq_frame():
    def frame(package, path, line, name):
        folder = os.path.dirname(package.__file__)
        return (os.path.join(folder, path), line, name, None)

    stack = traceback.StackSummary.from_list(
        [
            frame(keras, "src/backend/torch/trainer.py", 46, "train_step"),
            frame(gpu_check.kseq2seq, "ops/torch_kernels.py", 203, "lengths"),
            frame(torch, "nn/utils/rnn.py", 340, "pack_padded_sequence"),
        ]
    )
    sync = gpu_check.describe_sync(stack)
    assert sync == {
        "caller": "torch/nn/utils/rnn.py:340 in pack_padded_sequence",
        "source": "torch",
        "kseq2seq": "kseq2seq/ops/torch_kernels.py:203 in lengths",
        "in_step": True,
    }
    place = gpu_check.count_by_place([sync])
    assert place == {f"{sync['caller']} <- {sync['kseq2seq']}": 1}


@pytest.fixture
def cpu_copies_warn(monkeypatch):
    """`Tensor.cpu()` warns as a device-to-host copy does on CUDA."""
    original = torch.Tensor.cpu

    def cpu(self, *args, **kwargs):
        _synchronise()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)


@pytest.mark.filterwarnings("ignore:called a synchronizing CUDA operation")
def test_step_syncs_separates_the_training_step(cpu_copies_warn):
    sizes = gpu_check.TINY_SIZES
    cases = gpu_check.model_cases(sizes)
    found = {}
    for name in ("Seq2Seq", "tokens: Seq2Seq(teacher_force=True)"):
        model = gpu_check.build(*cases[name])
        x, y = gpu_check.data_for(model, sizes, padded=True)
        found[name] = gpu_check.step_syncs(model, x, y, sizes, debug_mode=False)
    assert found["Seq2Seq"]["in_step"] == 0
    tokens = found["tokens: Seq2Seq(teacher_force=True)"]
    assert tokens["steps"] == sizes.samples // sizes.batch
    places = tokens["in_step_places"]
    assert sum(places.values()) == tokens["in_step"]
    assert all("kseq2seq/ops/torch_kernels.py" in place for place in places)
    # Each of the two encoder layers copies its mask to the CPU once a step.
    lengths = [n for place, n in places.items() if "_right_padded_lengths" in place]
    assert lengths == [2 * tokens["steps"]]


@pytest.mark.cuda
def test_sync_counter_counts_an_item_call_on_cuda():
    tensor = torch.ones(3, device="cuda")
    with gpu_check.SyncCounter() as counter:
        tensor.sum().item()
        tensor * 2
    assert len(counter.syncs) == 1
    assert counter.syncs[0]["caller"].endswith(
        "test_sync_counter_counts_an_item_call_on_cuda"
    )
