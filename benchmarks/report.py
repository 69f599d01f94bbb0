"""The report: the environment measured, Markdown tables and the JSON file."""

import json
import os
import platform
import subprocess

import keras
import torch

import kseq2seq
from benchmarks.config import BATCH
from benchmarks.config import BEAM_WIDTH
from benchmarks.config import CONTENDERS
from benchmarks.config import DEVICE
from benchmarks.config import LENGTH
from benchmarks.config import PEERS
from benchmarks.memory import MEASURED


def git_revision():
    """The commit of the kseq2seq checkout measured; `+`: the package has changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(kseq2seq.__file__)))
    try:
        commit, changes = (
            subprocess.run(
                ["git", "-C", root, *command],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            for command in (
                ["rev-parse", "--short", "HEAD"],
                ["status", "--short", "--", "kseq2seq"],
            )
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+" if changes else "")


def environment():
    return {
        "device": str(DEVICE),
        "keras_device": str(keras.ops.zeros(()).device),
        "gpu": torch.cuda.get_device_name() if DEVICE.type == "cuda" else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "keras": keras.__version__,
        "kseq2seq": kseq2seq.__version__,
        "kseq2seq_commit": git_revision(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
    }


def describe(env):
    gpu = f", {env['gpu']}" if env["gpu"] else ""
    return (
        f"Device: {env['device']} (Keras: {env['keras_device']}{gpu}); "
        f"torch {env['torch']}, keras {env['keras']}, "
        f"kseq2seq {env['kseq2seq']} ({env['kseq2seq_commit'] or 'no git'}), "
        f"Python {env['python']}; {env['cpu_count']} CPUs, "
        f"{env['torch_threads']} torch threads."
    )


# --- tables ------------------------------------------------------------------


def fmt(value, scale=1.0, digits=3):
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def timing_cell(summary, name, scale, digits):
    """`median (min)` of one contender, or `n/a`."""
    if name not in summary["median"]:
        return "n/a"
    median, minimum = summary["median"][name], summary["min"][name]
    return f"{fmt(median, scale, digits)} ({fmt(minimum, scale, digits)})"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def metric_table(results, metric, scale, digits, names=tuple(CONTENDERS)):
    """One row per case: the median (min) of each contender in `names`, and
    kseq2seq's median over each peer's."""
    peers = [name for name in names if name in PEERS]
    header = ["model", "size", "params", *(CONTENDERS[name] for name in names)]
    header += [f"kseq2seq / {CONTENDERS[peer]}" for peer in peers]
    rows = []
    for r in results:
        summary = r[metric]
        ratios = summary["ratios"]
        rows.append(
            [r["label"], r["size"], f"{r['params']['kseq2seq']:,}"]
            + [timing_cell(summary, name, scale, digits) for name in names]
            + [
                fmt(ratios.get(f"kseq2seq/{peer}", {}).get("median"), digits=2)
                for peer in peers
            ]
        )
    return table(header, rows)


def decoding_table(results):
    header = ["size", "batch", "kseq2seq greedy", "PyTorch greedy"]
    header += ["greedy kseq2seq / PyTorch", f"kseq2seq beam ({BEAM_WIDTH})"]
    header += ["beam / greedy"]
    rows = []
    for r in results:
        for batch, d in r.get("decoding", {}).items():
            ratios = d["ratios"]
            rows.append(
                [r["size"], batch]
                + [timing_cell(d, "kseq2seq greedy", 1e3, 2)]
                + [timing_cell(d, "pytorch greedy", 1e3, 2)]
                + [fmt(ratios["kseq2seq greedy/pytorch greedy"]["median"], digits=2)]
                + [timing_cell(d, "kseq2seq beam", 1e3, 2)]
                + [fmt(ratios["kseq2seq beam/kseq2seq greedy"]["median"], digits=2)]
            )
    return table(header, rows)


def masking_table(masking):
    header = ["size", "padded steps", "padded", "unpadded", "padded / unpadded"]
    rows = [
        [
            m["size"],
            f"{m['padded_fraction']:.0%}",
            timing_cell(m["train_epoch_s"], "padded", 1, 3),
            timing_cell(m["train_epoch_s"], "unpadded", 1, 3),
            fmt(m["train_epoch_s"]["ratios"]["padded/unpadded"]["median"], digits=2),
        ]
        for m in masking
    ]
    return table(header, rows)


def jit_table(jit):
    header = ["model", "size", "eager", "jit_compile=True", "jit / eager"]
    header += ["first jit epoch", "status"]
    rows = []
    for j in jit:
        if j["status"] != "ok":
            reason = j["error"].replace("|", "\\|")
            rows.append([j["label"], j["size"], "", "", "", "", f"failed: {reason}"])
            continue
        summary = j["train_epoch_s"]
        rows.append(
            [j["label"], j["size"]]
            + [timing_cell(summary, "eager", 1, 3), timing_cell(summary, "jit", 1, 3)]
            + [fmt(summary["ratios"]["jit/eager"]["median"], digits=2)]
            + [f"{j['first_epoch_s']:.1f} s", "ok"]
        )
    return table(header, rows)


def load(averages):
    return ", ".join(f"{value:.1f}" for value in averages)


def markdown(report):
    settings, results, env = (
        report["settings"],
        report["results"],
        report["environment"],
    )
    sections = [
        "# kseq2seq speed and memory benchmark",
        (
            f"{describe(env)} Batch {BATCH}, lengths {LENGTH}. Every cell is the "
            f"median (minimum) of {settings['repeats']} interleaved repeats. Load "
            f"average (1, 5, 15 min) at start {load(env['load_average_at_start'])}, "
            f"at end {load(env['load_average_at_end'])}. The benchmark keeps its "
            "threads busy, which raises the load it ends with; a load above 1 at "
            "the start means other processes were running, which skews the timings."
        ),
        f"## Training: seconds per epoch of {settings['epoch_batches']} batches",
        metric_table(results, "train_epoch_s", 1, 3),
        f"## Inference: ms per batch of {BATCH} (free-running)",
        metric_table(results, "predict_batch_s", 1e3, 2),
    ]
    if settings["memory"]:
        sections += [
            (
                "## Peak memory during fit: MiB over the built model "
                f"({settings['memory_batches']} batches; median (minimum) over "
                f"{settings['memory_runs']} fresh process(es))"
            ),
            metric_table(results, "peak_memory_bytes", 1 / 2**20, 1, MEASURED),
        ]
    sections += [
        f"## Token model decoding: ms per call ({LENGTH} steps)",
        decoding_table(results),
        (
            "## Masking: token Seq2Seq, seconds per epoch, inputs padded to "
            f"lengths {LENGTH // 2}-{LENGTH} against the same inputs unpadded"
        ),
        masking_table(report["masking"]),
    ]
    if report["jit"]:
        sections += [
            "## Training with jit_compile=True: kseq2seq, seconds per epoch",
            jit_table(report["jit"]),
        ]
    return "\n\n".join(sections)


def write_report(report, output):
    """Writes `speed.md` and `speed.json` into `output`; returns the Markdown."""
    os.makedirs(output, exist_ok=True)
    text = markdown(report)
    with open(os.path.join(output, "speed.md"), "w") as file:
        file.write(text + "\n")
    with open(os.path.join(output, "speed.json"), "w") as file:
        json.dump(report, file, indent=2)
    return text
