"""Draws the benchmark's training-time ratios for the Performance page.

Reads the JSON report of `speed.py` and draws, for every model and size,
kseq2seq's median time per training epoch relative to each peer's: the
PyTorch twin (and the tutorial attention), the twin trained by Keras' `fit`,
and stock Keras layers (below 1: kseq2seq is faster). Run from the
repository root:

    python benchmarks/plot.py  # results/speed.json -> docs/img/performance.png
"""

import argparse
import json
import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

METRIC = "train_epoch_s"


def training_ratios(rows, peer):
    """kseq2seq's median over `peer`'s, per row; `None` where it has none."""
    ratios = (r[METRIC]["ratios"].get(f"kseq2seq/{peer}") for r in rows)
    return [None if ratio is None else ratio["median"] for ratio in ratios]


def draw_size(ax, rows, peers, labels):
    """One group of bars per model, one bar per peer."""
    positions = np.arange(len(rows))
    width = 0.8 / len(peers)
    for index, peer in enumerate(peers):
        values = training_ratios(rows, peer)
        offset = (index - (len(peers) - 1) / 2) * width
        heights = [np.nan if v is None else v for v in values]
        bars = ax.bar(positions + offset, heights, width=width, label=labels[peer])
        for bar, value in zip(bars, values):
            if value is not None:
                x = bar.get_x() + bar.get_width() / 2
                ax.text(x, value + 0.02, f"{value:.2f}", ha="center", fontsize=6)
    ax.axhline(1.0, color="black", linewidth=0.8)
    names = [textwrap.fill(r["label"], 18, break_long_words=False) for r in rows]
    ax.set_xticks(positions, names, fontsize=7)
    ax.set_title(
        f"{rows[0]['size']}: hidden {rows[0]['hidden']}, depth {rows[0]['depth']}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default="benchmarks/results/speed.json")
    parser.add_argument("--output", default="docs/img/performance.png")
    args = parser.parse_args()
    with open(args.report) as file:
        report = json.load(file)
    results, labels = report["results"], report["contenders"]
    peers = [
        name
        for name in labels
        if name != "kseq2seq" and any(name in r[METRIC]["median"] for r in results)
    ]
    sizes = list(dict.fromkeys(r["size"] for r in results))
    figure, axes = plt.subplots(
        1, len(sizes), figsize=(7 * len(sizes), 4.5), sharey=True, squeeze=False
    )
    for ax, size in zip(axes[0], sizes):
        draw_size(ax, [r for r in results if r["size"] == size], peers, labels)
    tallest = max(
        (v for peer in peers for v in training_ratios(results, peer) if v), default=1
    )
    axes[0][0].set_ylim(0, max(1.2, tallest) * 1.15)
    axes[0][0].set_ylabel("kseq2seq time per epoch / peer's")
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncols=len(peers), fontsize=8)
    env = report["environment"]
    machine = env["gpu"] or f"{env['cpu_count']} CPUs"
    figure.suptitle(
        "Training time relative to peers, medians (below 1: kseq2seq is faster)\n"
        f"{env['device']} ({machine}), torch {env['torch']}, keras {env['keras']}",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
