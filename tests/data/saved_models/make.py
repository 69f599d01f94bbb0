"""Writes the saved models that `tests/test_compatibility.py` loads.

Run once, on the code whose files later versions must keep loading:
`python tests/data/saved_models/make.py`. Each case saves `NAME.keras`
and `NAME.npz` (the inputs, `predict`'s outputs and, for token outputs,
greedy and beam ids and scores).
"""

import pathlib

import numpy as np

import kseq2seq

HERE = pathlib.Path(__file__).parent

VECTOR = dict(input_dim=3, hidden_dim=6, output_length=4, output_dim=3)
TOKENS = dict(input_vocab_size=11, output_vocab_size=11, output_length=5, hidden_dim=6)

CASES = {
    "simple_seq2seq": (kseq2seq.SimpleSeq2Seq, dict(VECTOR, depth=2)),
    "seq2seq": (kseq2seq.Seq2Seq, dict(VECTOR, depth=2, peek=True)),
    "seq2seq_layerwise_gru": (
        kseq2seq.Seq2Seq,
        dict(VECTOR, cell="gru", inner_broadcast_state=False, teacher_force=True),
    ),
    "attention_seq2seq": (kseq2seq.AttentionSeq2Seq, dict(VECTOR)),
    "simple_seq2seq_tokens": (kseq2seq.SimpleSeq2Seq, dict(TOKENS)),
    "seq2seq_tokens": (
        kseq2seq.Seq2Seq,
        dict(TOKENS, bidirectional=True, bridge="dense", teacher_force=True),
    ),
    "attention_seq2seq_tokens": (
        kseq2seq.AttentionSeq2Seq,
        dict(TOKENS, reverse_input=True, teacher_force=True),
    ),
}


def inputs(options, seed=0):
    rng = np.random.default_rng(seed)
    if "input_vocab_size" in options:
        x = rng.integers(3, options["input_vocab_size"], size=(4, 7))
        x[1, 5:] = 0  # A padded sequence.
        x[3, 3:] = 0
        return x
    return rng.normal(size=(4, 7, options["input_dim"])).astype("float32")


def main():
    import keras

    for name, (builder, options) in CASES.items():
        keras.utils.set_random_seed(7)
        model = builder(**options)
        x = inputs(options)
        record = {"x": x, "predict": model.predict(x, verbose=0)}
        if "output_vocab_size" in options:
            for method in ("greedy", "beam"):
                ids, scores = model.generate(x, method=method, beam_width=3)
                record[f"{method}_ids"], record[f"{method}_scores"] = ids, scores
        model.save(HERE / f"{name}.keras")
        np.savez(HERE / f"{name}.npz", **record)
        print(name, {k: v.shape for k, v in record.items()})


if __name__ == "__main__":
    main()
