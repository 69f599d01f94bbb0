"""Speed and memory benchmark: kseq2seq against hand-written PyTorch and Keras.

Six models, each at two sizes (small: hidden 128, depth 1; medium: hidden
256, depth 2; batch 64, input and output length 20, 16 features or a
vocabulary of 64): `SimpleSeq2Seq`; `Seq2Seq` as it defaults (one state
threaded through each stack, free-running training); `Seq2Seq` with one
state per layer; `Seq2Seq(peek=True, teacher_force=True)`;
`AttentionSeq2Seq(teacher_force=True)`; and a token `Seq2Seq`.

Each races its PyTorch twin (`twins.py`; for attention also the tutorial's
attention, which projects the keys at every step), the same twin trained by
Keras' `fit`, and, where they can express it, stock Keras layers
(`contenders.py`). Measured: training time per epoch, free-running inference
per batch, greedy and beam-search decoding, padded against unpadded
batches, training with `jit_compile=True`, and peak memory during training
(`measure.py`, `jit.py`, `memory.py`). Before timing, every twin gets
kseq2seq's weights and must compute the same outputs.

Run from the repository root:

    python benchmarks/speed.py            # full run
    python benchmarks/speed.py --quick    # smoke test: small models, 2 repeats
    python benchmarks/speed.py --output DIR   # where speed.md and speed.json go

The device is CUDA when PyTorch sees one, else the CPU.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

# The checkout this file belongs to is the one measured, and `benchmarks` is
# imported from it, whatever else is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("KERAS_BACKEND", "torch")

from benchmarks import config  # noqa: E402
from benchmarks import jit  # noqa: E402
from benchmarks import measure  # noqa: E402
from benchmarks import memory  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks.config import Case  # noqa: E402


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1. Received: {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: small models, 2 short repeats, jit_compile for one model",
    )
    parser.add_argument(
        "--output", default=os.path.join("benchmarks", "results"), help="report folder"
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(config.MODELS), help="models to measure"
    )
    parser.add_argument(
        "--sizes", nargs="+", choices=list(config.SIZES), help="sizes to measure"
    )
    parser.add_argument(
        "--repeats", type=positive_int, help="interleaved rounds (default: 10)"
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the peak memory measurement"
    )
    parser.add_argument(
        "--no-jit", action="store_true", help="skip training with jit_compile=True"
    )
    parser.add_argument(
        "--only-jit",
        action="store_true",
        help="time training with jit_compile=True against eager training, alone",
    )
    # Internal: one measurement in this (fresh) process, with these settings.
    parser.add_argument("--memory-of", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--jit-of", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings_from(args):
    if args.settings:
        return config.Settings.from_json(args.settings)
    settings = config.QUICK if args.quick else config.FULL
    changes = {}
    if args.models:
        changes["models"] = tuple(args.models)
    if args.sizes:
        changes["sizes"] = tuple(args.sizes)
    if args.repeats:
        changes["repeats"] = args.repeats
    if args.no_memory:
        changes["memory"] = False
    if args.no_jit:
        changes["jit_models"] = ()
    return dataclasses.replace(settings, **changes)


def run(settings):
    """Every section; returns the report."""
    env = report.environment()
    print(report.describe(env), flush=True)
    results = []
    for case in settings.cases:
        start = time.perf_counter()
        results.append(measure.benchmark_case(case, settings))
        print(f"{case.key}: timed in {time.perf_counter() - start:.0f} s", flush=True)
    masking = []
    if "tokens" in settings.models:
        for size in settings.sizes:
            masking.append(measure.benchmark_masking(size, settings))
            ratio = masking[-1]["train_epoch_s"]["ratios"]["padded/unpadded"]
            print(
                f"masking/{size}: padded / unpadded {ratio['median']:.2f}", flush=True
            )
    jit_results = jit.measure_all_jit(settings.cases, settings)
    if settings.memory:
        print("Measuring peak memory, one process per contender...", flush=True)
        peaks = memory.measure_all_memory(settings.cases, settings)
        for result in results:
            result["peak_memory_bytes"] = peaks[f"{result['case']}/{result['size']}"]
    env["load_average_at_end"] = os.getloadavg()
    return {
        "environment": env,
        "settings": dataclasses.asdict(settings),
        "contenders": config.CONTENDERS,
        "results": results,
        "masking": masking,
        "jit": jit_results,
    }


def write_jit_report(results, args):
    """Writes `jit.json` and `jit.md` under `args.output`; returns the table."""
    lines = [
        "| model | size | first compiled epoch (s) | eager (s) | compiled (s) "
        "| compiled / eager |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.get("status") != "ok":
            lines.append(
                f"| {result['case']} | {result['size']} | failed: "
                f"{result.get('error')} |"
            )
            continue
        timing = result["train_epoch_s"]
        ratio = timing["ratios"]["jit/eager"]["median"]
        lines.append(
            f"| {result['case']} | {result['size']} | {result['first_epoch_s']:.1f} "
            f"| {timing['median']['eager']:.3f} | {timing['median']['jit']:.3f} "
            f"| {ratio:.2f} |"
        )
    table = "\n".join(lines)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "jit.json"), "w") as file:
        json.dump(results, file, indent=2)
    with open(os.path.join(args.output, "jit.md"), "w") as file:
        file.write(table + "\n")
    return table


def main(argv=None):
    args = parse_args(argv)
    settings = settings_from(args)
    if args.memory_of:
        key, name = args.memory_of
        case = Case(*key.split("/"))
        print(json.dumps(memory.measure_memory(case, name, settings)))
    elif args.jit_of:
        print(json.dumps(jit.measure_jit(Case(*args.jit_of.split("/")), settings)))
    elif args.only_jit:
        print(report.describe(report.environment()), flush=True)
        print(write_jit_report(jit.measure_all_jit(settings.cases, settings), args))
    else:
        print(report.write_report(run(settings), args.output))


if __name__ == "__main__":
    main()
