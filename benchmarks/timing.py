"""Timing: contenders interleaved, minimum and median of the repeats."""

import statistics
import time

import torch

from benchmarks.config import DEVICE


def synchronize():
    """Waits for the GPU, so that a sample holds all the work it queued."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def repeated(fn, calls):
    """`fn` called `calls` times in a row."""

    def run():
        for _ in range(calls):
            fn()

    return run


def interleave(tasks, repeats, calls=1):
    """Runs every task once per round, `repeats` rounds.

    The order rotates from round to round (A B C, B C A, C A B, ...), so that
    no task always follows the same one and a slow spell of the machine
    spreads over all of them.

    Args:
        tasks: dict of name to a function of no arguments.
        repeats: int. Rounds.
        calls: int. Calls each function makes of what it times: samples are
            divided by it.

    Returns:
        A dict of name to the list of seconds per call, one per round.
    """
    names = list(tasks)
    samples = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize()
            start = time.perf_counter()
            tasks[name]()
            synchronize()
            samples[name].append((time.perf_counter() - start) / calls)
    return samples


def ratio(values, numerator, denominator):
    """`values[numerator] / values[denominator]`, `None` if either is missing."""
    if values.get(numerator) is None or not values.get(denominator):
        return None
    return values[numerator] / values[denominator]


def summarize(samples, ratios=()):
    """Minimum and median of each contender's samples, and ratios of both.

    Args:
        samples: dict of contender to its list of samples.
        ratios: `(numerator, denominator)` pairs of contenders; a pair with a
            missing contender gets `None`.

    Returns:
        A dict: `samples`, `min` and `median` (by contender), `ratios` (by
        `"numerator/denominator"`: `{"min": ..., "median": ...}`).
    """
    summary = {
        "samples": samples,
        "min": {name: min(values) for name, values in samples.items()},
        "median": {name: statistics.median(values) for name, values in samples.items()},
    }
    summary["ratios"] = {
        f"{a}/{b}": {stat: ratio(summary[stat], a, b) for stat in ("min", "median")}
        for a, b in ratios
    }
    return summary
