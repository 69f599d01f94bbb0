"""Peak memory during training, each contender in fresh processes."""

import gc
import os
import resource
import sys
from concurrent.futures import ThreadPoolExecutor

import keras
import torch

from benchmarks import contenders as contending
from benchmarks.config import DEVICE
from benchmarks.processes import run_worker
from benchmarks.timing import summarize

# PyTorch's twin and stock Keras layers; the tutorial attention and the
# twin inside Keras' `fit` add nothing the time tables do not show.
MEASURED = ("kseq2seq", "pytorch", "keras")


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss():
    """Lowers `ru_maxrss` to the current RSS, where Linux allows it.

    Otherwise the baseline is the peak so far, which import-time transients
    may hold above what a small model's training ever reaches.
    """
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        pass


def measure_memory(case, name, settings):
    """Peak memory growth over a few training batches, once the model is built.

    On CUDA, `torch.cuda.max_memory_allocated` over the memory allocated
    then; on a CPU, the growth of `ru_maxrss`.
    """
    keras.utils.set_random_seed(0)
    data = contending.make_data(case, settings.memory_batches)
    contender = contending.build_contender(case, name, data)
    gc.collect()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        reset_peak_rss()
        baseline = peak_rss_bytes()
    contender.train_epoch()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - baseline
    return peak_rss_bytes() - baseline


def measure_all_memory(cases, settings):
    """Each measured contender `memory_runs` times, in fresh single-threaded
    processes, one per CPU at a time.

    Returns a summary (`timing.summarize`) by case key.
    """
    jobs = [
        (case, name)
        for _ in range(settings.memory_runs)
        for case in cases
        for name in case.contenders
        if name in MEASURED
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(job):
        case, name = job
        return run_worker(["--memory-of", case.key, name], settings, env)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        peaks = list(pool.map(run, jobs))
    samples = {case.key: {} for case in cases}
    for (case, name), peak in zip(jobs, peaks):
        samples[case.key].setdefault(name, []).append(peak)
    return {
        key: summarize(values, [("kseq2seq", n) for n in values if n != "kseq2seq"])
        for key, values in samples.items()
    }
