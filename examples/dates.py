"""
Title: Date normalisation with AttentionSeq2Seq
Description: Train a character-level AttentionSeq2Seq to turn dates written
by hand in many formats into ISO dates, then look at where it attends.

Run `python examples/dates.py` (one to three minutes on a laptop CPU), or
`python examples/dates.py --quick` for a seconds-long smoke run. Figures are
written to the folder given by `--out` (default: the current one).
"""

import argparse
import os
import re

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Vocabulary  # noqa: E402
from kseq2seq.data import date_task  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
parser.add_argument("--out", default=".", help="folder for the figures")
args = parser.parse_args()

keras.utils.set_random_seed(0)
num_train, epochs = (1000, 1) if args.quick else (16000, 10)

# --8<-- [start:data]
train_inputs, train_targets = date_task(num_train, seed=0)
validation_inputs, validation_targets = date_task(500, seed=1)
test_inputs, test_targets = date_task(2000, seed=2)

# Held out means never seen: drop test dates written exactly as in training.
seen = set(train_inputs)
kept = [i for i, text in enumerate(test_inputs) if text not in seen]
print(f"test dates also in the training set, dropped: {len(test_inputs) - len(kept)}")
test_inputs = [test_inputs[i] for i in kept]
test_targets = [test_targets[i] for i in kept]

for text, iso in zip(train_inputs[:5], train_targets[:5]):
    print(f"{text!r:>30} -> {iso!r}")

source = Vocabulary.from_texts(train_inputs)  # characters of the written dates
target = Vocabulary.from_texts(train_targets)  # digits and "-"
input_length = max(map(len, train_inputs + validation_inputs + test_inputs))


def encode(texts):
    return source.encode(texts, max_length=input_length)


x_train = encode(train_inputs)
y_train = target.encode(train_targets, add_end=True)  # 10 characters + end id
x_validation, x_test = encode(validation_inputs), encode(test_inputs)
print(f"source vocabulary: {len(source)} ids, target vocabulary: {len(target)} ids")
print(f"x_train: {x_train.shape}, y_train: {y_train.shape}, x_test: {x_test.shape}")
# --8<-- [end:data]

# --8<-- [start:model]
model = AttentionSeq2Seq(
    input_vocab_size=len(source),
    output_vocab_size=len(target),
    output_length=y_train.shape[1],
    hidden_dim=64,
    embedding_dim=32,
    teacher_force=True,
)
batch_size = 256
steps_per_epoch = -(-len(x_train) // batch_size)
learning_rate = keras.optimizers.schedules.ExponentialDecay(
    1e-2, decay_steps=steps_per_epoch, decay_rate=0.8
)
model.compile(
    loss="sparse_categorical_crossentropy",
    optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
)
# --8<-- [end:model]


# --8<-- [start:train]
def exact_match(x, targets):
    """Greedy-decodes `x`; returns the decoded texts and the exact-match rate."""
    ids, _ = model.generate(x, batch_size=500)
    predicted = target.decode(ids)
    return predicted, np.mean([p == t for p, t in zip(predicted, targets)])


for epoch in range(1, epochs + 1):
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=1, verbose=0)
    _, accuracy = exact_match(x_validation, validation_targets)
    loss = history.history["loss"][-1]
    print(f"epoch {epoch}: loss {loss:.4f}, validation exact match {accuracy:.3f}")
# --8<-- [end:train]

# --8<-- [start:evaluate]
predicted, accuracy = exact_match(x_test, test_targets)
print(f"held-out exact match: {accuracy:.4f} ({len(test_targets)} dates)")

for text, guess in zip(test_inputs[:8], predicted[:8]):
    print(f"{text!r:>30} -> {guess!r}")

mistakes = [
    (text, guess, truth)
    for text, guess, truth in zip(test_inputs, predicted, test_targets)
    if guess != truth
]
print(f"mistakes: {len(mistakes)}")
for text, guess, truth in mistakes[:10]:
    print(f"{text!r:>30} -> {guess!r}, expected {truth!r}")
# --8<-- [end:evaluate]

# --8<-- [start:attention]
# The first held-out date of each of four formats.
formats = {
    "weekday first": r"[A-Za-z]+day, ",
    "month/day/yy": r"\d\d/\d\d/\d\d$",
    "day.month.year": r"\d\d\.\d\d\.\d{4}$",
    "year/month/day": r"\d{4}/\d\d/\d\d$",
}
chosen = [
    next(i for i, text in enumerate(test_inputs) if re.match(pattern, text))
    for pattern in formats.values()
]
weights = model.attention_weights(x_test[chosen])  # (4, output_length, input_length)

fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
for ax, name, index, matrix in zip(axes.flat, formats, chosen, weights):
    text = test_inputs[index]
    rows = list(predicted[index]) + ["end"]  # the output steps, end id included
    matrix = matrix[: len(rows), : len(text)]  # cut off padding and later steps
    ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(text)), [c if c != " " else "\u2423" for c in text])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("input character")
    ax.set_ylabel("output character")
    ax.set_title(f"{name}: {text!r} -> {predicted[index]!r}", fontsize=10)
fig.tight_layout()
fig.savefig(os.path.join(args.out, "dates-attention.png"), dpi=100)
plt.close(fig)
# --8<-- [end:attention]
