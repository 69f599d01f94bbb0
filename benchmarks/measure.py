"""The timed sections of the benchmark, one function each.

Every section builds its contenders, checks that they agree, runs each once
untimed (warm-up), then interleaves them (`timing.interleave`).
"""

import keras
import numpy as np
import torch

from benchmarks import contenders as contending
from benchmarks.config import BATCH
from benchmarks.config import BEAM_WIDTH
from benchmarks.config import END_ID
from benchmarks.config import LENGTH
from benchmarks.config import PEERS
from benchmarks.config import Case
from benchmarks.timing import interleave
from benchmarks.timing import repeated
from benchmarks.timing import summarize


def kseq2seq_ratios(names):
    """kseq2seq against every peer present."""
    return [("kseq2seq", peer) for peer in PEERS if peer in names]


def _describe(case, params, diffs):
    counts = ", ".join(f"{name} {count:,}" for name, count in params.items())
    worst = {name: max(d.values()) for name, d in diffs.items()}
    agreement = ", ".join(f"{name} {diff:.1e}" for name, diff in worst.items())
    return f"{case.key}: trainable parameters {counts}; max |difference|: {agreement}"


def benchmark_case(case, settings):
    """Training time per epoch and free-running inference time per batch of
    every contender of `case`, after checking parameters and outputs."""
    keras.utils.set_random_seed(0)
    data = contending.make_data(case, settings.epoch_batches)
    model = contending.build_kseq2seq(case)
    contenders = {
        name: contending.build_contender(case, name, data, model)
        for name in case.contenders
    }
    diffs = contending.check_equivalence(case, contenders, data)
    params = contending.check_params(case, contenders)
    print(_describe(case, params, diffs), flush=True)
    predictors = {n: c.predict_batch for n, c in contenders.items() if c.predict_batch}
    for contender in contenders.values():  # warm-up
        contender.train_epoch()
    for predict_batch in predictors.values():
        repeated(predict_batch, 2)()
    train = interleave(
        {name: c.train_epoch for name, c in contenders.items()}, settings.repeats
    )
    predict = interleave(
        {name: repeated(fn, settings.calls) for name, fn in predictors.items()},
        settings.repeats,
        settings.calls,
    )
    result = {
        "case": case.model,
        "label": case.label,
        "size": case.size,
        "hidden": case.hidden,
        "depth": case.depth,
        "params": params,
        "max_abs_diff": diffs,
        "train_epoch_s": summarize(train, kseq2seq_ratios(train)),
        "predict_batch_s": summarize(predict, kseq2seq_ratios(predict)),
    }
    if case.tokens:
        result["decoding"] = benchmark_decoding(case, model, data, settings)
    return result


# --- decoding ----------------------------------------------------------------


def suppress_end_token(model):
    """Pushes the end id's logit down so that every decoding runs LENGTH steps."""
    head = model.decoder.head
    bias = keras.ops.convert_to_numpy(head.bias).copy()
    bias[END_ID] = -1e4
    head.bias.assign(bias)


def decoding_tasks(model, net, x):
    tensor = contending.to_device(x)

    def torch_greedy():
        with torch.no_grad():
            return net.greedy(tensor).cpu().numpy()

    return {
        "kseq2seq greedy": lambda: model.generate(x, "greedy", batch_size=len(x))[0],
        "kseq2seq beam": lambda: model.generate(
            x, "beam", beam_width=BEAM_WIDTH, batch_size=len(x)
        )[0],
        "pytorch greedy": torch_greedy,
    }


def benchmark_decoding(case, model, data, settings):
    """Greedy and beam-search latency, seconds per call, at batch 1 and BATCH.

    The PyTorch greedy loop must emit exactly kseq2seq's tokens.
    """
    suppress_end_token(model)
    net = contending.build_twin(case)
    net.copy_from(model)
    results = {}
    for batch in (1, BATCH):
        tasks = decoding_tasks(model, net, data[0][:batch])
        ours, theirs = tasks["kseq2seq greedy"](), tasks["pytorch greedy"]()
        if not np.array_equal(ours, theirs):
            raise AssertionError(f"{case.key}: kseq2seq and PyTorch decode differently")
        tasks["kseq2seq beam"]()  # warm-up
        samples = interleave(
            {name: repeated(fn, settings.calls) for name, fn in tasks.items()},
            settings.repeats,
            settings.calls,
        )
        results[str(batch)] = summarize(
            samples,
            [
                ("kseq2seq greedy", "pytorch greedy"),
                ("kseq2seq beam", "kseq2seq greedy"),
            ],
        )
    return results


# --- masking -----------------------------------------------------------------


def variable_length(x, seed=0):
    """`x` right-padded with id 0 to lengths spread over 50-100% of the max."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(LENGTH // 2, LENGTH + 1, len(x))
    padded = x.copy()
    padded[np.arange(LENGTH)[None, :] >= lengths[:, None]] = 0
    return padded


def check_padding_is_invisible(model, padded):
    """A padded batch predicts what each of its sequences predicts alone."""
    together = model.predict_on_batch(padded[:8])
    for row in range(8):
        length = int((padded[row] != 0).sum())
        alone = model.predict_on_batch(padded[row : row + 1, :length])
        np.testing.assert_allclose(together[row], alone[0], rtol=1e-4, atol=1e-5)


def benchmark_masking(size, settings):
    """Training on a padded, variable-length batch against the same batch unpadded."""
    case = Case("tokens", size)
    keras.utils.set_random_seed(0)
    x, y = contending.make_data(case, settings.epoch_batches)
    padded = variable_length(x)
    model = contending.build_kseq2seq(case, input_length=None)
    check_padding_is_invisible(model, padded)
    tasks = {
        "unpadded": lambda: model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0),
        "padded": lambda: model.fit(padded, y, batch_size=BATCH, epochs=1, verbose=0),
    }
    for task in tasks.values():
        task()  # warm-up
    samples = interleave(tasks, settings.repeats)
    return {
        "size": size,
        "padded_fraction": float((padded == 0).mean()),
        "train_epoch_s": summarize(samples, [("padded", "unpadded")]),
    }
