"""Training with `jit_compile=True` (`torch.compile`), where it runs."""

import time

import keras

from benchmarks import contenders as contending
from benchmarks.processes import WorkerError
from benchmarks.processes import run_worker
from benchmarks.timing import interleave
from benchmarks.timing import summarize


def measure_jit(case, settings):
    """kseq2seq trained eagerly and compiled, from the same weights.

    The first compiled epoch (compilation included) is reported apart; then
    both are interleaved. A compilation that raises is reported as failed.
    """
    keras.utils.set_random_seed(0)
    data = contending.make_data(case, settings.epoch_batches)
    eager = contending.build_kseq2seq(case)
    compiled = contending.build_kseq2seq(case, jit_compile=True)
    compiled.set_weights(eager.get_weights())
    tasks = {
        "eager": contending.keras_contender(eager, data, case.teacher_forced),
        "jit": contending.keras_contender(compiled, data, case.teacher_forced),
    }
    start = time.perf_counter()
    try:
        tasks["jit"].train_epoch()
    except Exception as error:  # Dynamo and Inductor raise many kinds.
        message = str(error).strip().splitlines() or [""]
        return {"status": "failed", "error": f"{type(error).__name__}: {message[0]}"}
    first_epoch = time.perf_counter() - start
    tasks["eager"].train_epoch()  # warm-up
    samples = interleave({n: c.train_epoch for n, c in tasks.items()}, settings.repeats)
    return {
        "status": "ok",
        "first_epoch_s": first_epoch,
        "train_epoch_s": summarize(samples, [("jit", "eager")]),
    }


def measure_all_jit(cases, settings):
    """`measure_jit` of each case in a fresh process, one after the other.

    A process that crashes or outlasts `settings.jit_timeout_s` is reported
    as failed, with the reason.
    """
    results = []
    for case in cases:
        if case.model not in settings.jit_models:
            continue
        try:
            result = run_worker(
                ["--jit-of", case.key], settings, timeout=settings.jit_timeout_s
            )
        except WorkerError as error:
            result = {"status": "failed", "error": str(error)}
        results.append(
            dict(case=case.model, label=case.label, size=case.size, **result)
        )
        print(f"jit/{case.key}: {result['status']}", flush=True)
    return results
