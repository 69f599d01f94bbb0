"""Draws the benchmark's training-time ratios for the Performance page.

Reads the JSON report of `speed.py` and draws, for every model and size,
kseq2seq's time per training epoch relative to hand-written PyTorch and to
stock Keras layers (below 1: kseq2seq is faster). Run from the repository root:

    python benchmarks/plot.py  # results/speed.json -> docs/img/performance.png
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

BUILDERS = {
    "simple": "SimpleSeq2Seq",
    "seq2seq": "Seq2Seq\n(peek, teacher forcing)",
    "attention": "AttentionSeq2Seq\n(teacher forcing)",
    "tokens": "Seq2Seq tokens",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default="benchmarks/results/speed.json")
    parser.add_argument("--output", default="docs/img/performance.png")
    args = parser.parse_args()
    with open(args.report) as file:
        report = json.load(file)
    results = report["results"]
    sizes = sorted({r["size"] for r in results}, key=["small", "medium"].index)
    peers = (
        ("kseq2seq/pytorch", "hand-written PyTorch"),
        ("kseq2seq/keras", "stock Keras layers"),
    )
    figure, axes = plt.subplots(
        1, len(sizes), figsize=(5.5 * len(sizes), 4), sharey=True
    )
    axes = np.atleast_1d(axes)
    for ax, size in zip(axes, sizes):
        rows = [r for r in results if r["size"] == size]
        positions = np.arange(len(rows))
        for offset, (key, label) in zip((-0.2, 0.2), peers):
            values = [r["ratios"]["train_epoch_s"][key] for r in rows]
            heights = [np.nan if v is None else v for v in values]
            bars = ax.bar(positions + offset, heights, width=0.4, label=f"vs {label}")
            for bar, value in zip(bars, values):
                text = "n/a" if value is None else f"{value:.2f}"
                y = 0.02 if value is None else value + 0.02
                ax.text(
                    bar.get_x() + bar.get_width() / 2, y, text, ha="center", fontsize=8
                )
        ax.axhline(1.0, color="black", linewidth=0.8)
        tallest = max(
            v for r in rows for v in r["ratios"]["train_epoch_s"].values() if v
        )
        ax.set_ylim(0, max(1.2, tallest) * 1.3)
        ax.set_xticks(positions, [BUILDERS[r["builder"]] for r in rows], fontsize=8)
        hidden, depth = rows[0]["hidden"], rows[0]["depth"]
        ax.set_title(f"{size}: hidden {hidden}, depth {depth}")
    axes[0].set_ylabel("kseq2seq time per epoch / peer's")
    axes[0].legend(loc="upper left", fontsize=8)
    env = report["environment"]
    figure.suptitle(
        f"Training time relative to peers (below 1: kseq2seq is faster); "
        f"{env['device']}, {env['cpu_count']} CPUs, torch {env['torch']}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
