"""Latency of served decoding: `kseq2seq.serving.Decoder` against `generate`.

A token `AttentionSeq2Seq` (vocabulary 32, hidden 64, input and output
length 10) is exported with `export_decoding`; greedy and beam search (width
5) then decode the same inputs through the model's `generate` (Keras on
PyTorch) and through the exported graphs (NumPy and ONNX Runtime), at batch
sizes 1 and 64. Both must return the same ids. Reported: the median time of
one call over the repeats, after one warm-up call.

Run from the repository root:

    python benchmarks/serving_latency.py              # 20 repeats
    python benchmarks/serving_latency.py --quick      # smoke test: 2 repeats
    python benchmarks/serving_latency.py --threads 4  # threads of both runtimes

Other processes running meanwhile skew the timings: compare the load
averages printed with the table.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

# The checkout this file belongs to is the one measured.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

import kseq2seq  # noqa: E402
from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq.serving import Decoder  # noqa: E402
from kseq2seq.serving import export_decoding  # noqa: E402

LENGTH = 10
VOCAB = 32
METHODS = {"greedy": {}, "beam 5": dict(method="beam", beam_width=5)}


def median_seconds(call, repeats):
    call()  # Warm-up: first-call allocations and lazy initialisation.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inputs(batch, seed=0):
    """Ids padded with 0 after lengths between half and all of `LENGTH`."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(batch, LENGTH)).astype("int32")
    lengths = rng.integers(LENGTH // 2, LENGTH + 1, size=batch)
    ids[np.arange(LENGTH)[None, :] >= lengths[:, None]] = 0
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    torch.set_num_threads(args.threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1

    keras.utils.set_random_seed(0)
    model = AttentionSeq2Seq(
        input_vocab_size=VOCAB,
        output_vocab_size=VOCAB,
        input_length=LENGTH,
        output_length=LENGTH,
        hidden_dim=64,
    )
    directory = tempfile.mkdtemp()
    manifest = export_decoding(model, directory)
    decoder = Decoder(directory, session_options=options)

    rows = []
    for batch in (1, 64):
        x = inputs(batch)
        for method, search in METHODS.items():
            served = decoder.generate(x, **search)[0]
            if not (served == model.generate(x, batch_size=64, **search)[0]).all():
                raise AssertionError(f"{method}, batch {batch}: the ids differ")
            keras_s = median_seconds(
                lambda: model.generate(x, batch_size=64, **search), repeats
            )
            served_s = median_seconds(lambda: decoder.generate(x, **search), repeats)
            rows.append((batch, method, keras_s, served_s))

    print(
        f"kseq2seq {kseq2seq.__version__}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, exporter {manifest['exporters']['step']}; "
        f"{args.threads} thread(s), {repeats} repeats, load average "
        + ", ".join(f"{load:.2f}" for load in os.getloadavg())
    )
    print("\n| batch | search | `generate` | `Decoder` | speed-up |")
    print("|---|---|---|---|---|")
    for batch, method, keras_s, served_s in rows:
        print(
            f"| {batch} | {method} | {keras_s * 1e3:.1f} ms | {served_s * 1e3:.1f} ms "
            f"| {keras_s / served_s:.1f}x |"
        )


if __name__ == "__main__":
    main()
