"""
Title: Number addition, side by side with keras.io's addition_rnn
Description: Rebuild the keras.io addition example ("12+345" -> "357") with
stock Keras layers, then train kseq2seq's SimpleSeq2Seq and a token Seq2Seq
with teacher forcing on the same 45,000 sums, and count the epochs each
needs to reach 99% per-character validation accuracy.

Run `python examples/addition.py` (about 15 minutes on one core of an idle
CPU), or `python examples/addition.py --quick` for a seconds-long smoke
run. Figures are written to `--out` (default: the current directory).
"""

import argparse
import os
import time

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq import SimpleSeq2Seq  # noqa: E402
from kseq2seq import Vocabulary  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
parser.add_argument("--out", default=".", help="where to write the figure")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

"""## Data

keras.io's own setting: 50,000 different sums of two numbers of 1 to 3
digits, a shuffled 10% of them held out for validation. Each number gets a
number of digits, then that many random digits (so "007" is 7), and each
unordered pair is kept once.
"""

# --8<-- [start:data]
keras.utils.set_random_seed(0)
DIGITS = 3
MAXLEN = DIGITS + 1 + DIGITS  # "123+456"
num_train, num_test, max_epochs = (1800, 200, 2) if args.quick else (45000, 5000, 30)
target = 0.99  # per-character validation accuracy at which a model stops

rng = np.random.default_rng(0)
pairs, seen = [], set()
while len(pairs) < num_train + num_test:
    lengths = rng.integers(1, DIGITS + 1, size=2)
    a, b = rng.integers(0, 10**lengths).tolist()  # d random digits: below 10**d
    if (min(a, b), max(a, b)) not in seen:  # "12+345" and "345+12" are one pair
        seen.add((min(a, b), max(a, b)))
        pairs.append((a, b))
# Later pairs are rarer ones (larger numbers): shuffle before splitting.
pairs = [pairs[i] for i in rng.permutation(len(pairs))]
queries = [f"{a}+{b}" for a, b in pairs]
answers = [str(a + b) for a, b in pairs]
train_queries, test_queries = queries[:num_train], queries[num_train:]
train_answers, test_answers = answers[:num_train], answers[num_train:]
print(f"{len(train_queries)} training and {len(test_queries)} validation sums")
print("e.g.", list(zip(train_queries[:4], train_answers[:4])))
# --8<-- [end:data]

"""## The keras.io encoding

One-hot characters over the 12 symbols `0123456789+ `, the query padded and
then reversed, so the padding comes first.
"""

# --8<-- [start:one_hot]
CHARS = "0123456789+ "


def one_hot(texts, length):
    x = np.zeros((len(texts), length, len(CHARS)), dtype="float32")
    for i, text in enumerate(texts):
        for t, char in enumerate(text.ljust(length)):
            x[i, t, CHARS.index(char)] = 1.0
    return x


def from_one_hot(probabilities):
    return ["".join(CHARS[i] for i in row) for row in probabilities.argmax(-1)]


x_train = one_hot([q.ljust(MAXLEN)[::-1] for q in train_queries], MAXLEN)
x_test = one_hot([q.ljust(MAXLEN)[::-1] for q in test_queries], MAXLEN)
y_train = one_hot(train_answers, DIGITS + 1)
print(repr(train_queries[0].ljust(MAXLEN)[::-1]), x_train.shape, y_train.shape)
# --8<-- [end:one_hot]

"""## The keras.io model, with stock Keras layers"""

# --8<-- [start:keras_io]
keras_io = keras.Sequential(
    [
        keras.Input((MAXLEN, len(CHARS))),
        keras.layers.LSTM(128),
        keras.layers.RepeatVector(DIGITS + 1),
        keras.layers.LSTM(128, return_sequences=True),
        keras.layers.Dense(len(CHARS), activation="softmax"),
    ]
)
keras_io.compile(
    loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
)
# --8<-- [end:keras_io]

"""## The same architecture in kseq2seq: SimpleSeq2Seq"""

# --8<-- [start:simple]
simple = SimpleSeq2Seq(
    input_dim=len(CHARS),
    input_length=MAXLEN,
    hidden_dim=128,
    output_length=DIGITS + 1,
    output_dim=len(CHARS),
    output_activation="softmax",
)
simple.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
print(f"keras.io: {keras_io.count_params():,} parameters")
print(f"SimpleSeq2Seq: {simple.count_params():,} parameters")

# Given the keras.io model's weights, SimpleSeq2Seq computes the same function.
twin = SimpleSeq2Seq.from_config(simple.get_config())
twin.set_weights(keras_io.get_weights())
same = np.allclose(
    twin.predict(x_test, verbose=0), keras_io.predict(x_test, verbose=0), atol=1e-5
)
print("same outputs with the same weights:", same)
# --8<-- [end:simple]

"""## A token Seq2Seq with teacher forcing

Token ids instead of one-hot vectors, padding masked instead of spelled out
with spaces, the answer followed by an end id, and a decoder that reads the
previous digit of the answer.
"""

# --8<-- [start:tokens]
vocab = Vocabulary.from_texts(queries + answers)  # the digits and "+"
X_train = vocab.encode(train_queries)
X_test = vocab.encode(test_queries)
Y_train = vocab.encode(train_answers, max_length=DIGITS + 2, add_end=True)
print(train_queries[0], X_train[0], train_answers[0], Y_train[0])

tokens = Seq2Seq(
    input_vocab_size=len(vocab),
    output_vocab_size=len(vocab),
    output_length=DIGITS + 2,
    hidden_dim=128,
    peek=True,
    teacher_force=True,
    reverse_input=True,
)
print(f"Seq2Seq: {tokens.count_params():,} parameters")
# --8<-- [end:tokens]

"""## Training until 99% per-character validation accuracy

Every model answers the validation queries free-running: the one-hot models
by `predict`, the token model by `generate`, which feeds back its own
digits and stops at the end id. Both kinds of answer are compared as
strings, padded to 4 characters as in the keras.io example. A model stops
training after the first epoch that ends at 99% per-character accuracy or
more, or after `max_epochs`.
"""


# --8<-- [start:train]
def accuracies(predicted, expected):
    """Per-character accuracy over the 4-character answer field, exact match."""
    width = DIGITS + 1
    guess = np.array([list(p.ljust(width)[:width]) for p in predicted])
    truth = np.array([list(e.ljust(width)) for e in expected])
    exact = np.mean([p.strip() == e for p, e in zip(predicted, expected)])
    return (guess == truth).mean(), exact


models = {
    "keras.io": (
        keras_io,
        (x_train, y_train),
        lambda: from_one_hot(keras_io.predict(x_test, batch_size=500, verbose=0)),
    ),
    "SimpleSeq2Seq": (
        simple,
        (x_train, y_train),
        lambda: from_one_hot(simple.predict(x_test, batch_size=500, verbose=0)),
    ),
    "Seq2Seq": (
        tokens,
        (X_train, Y_train),
        lambda: vocab.decode(tokens.generate(X_test, batch_size=500)[0]),
    ),
}
# keras.io's val_accuracy after each of its 29 epochs, as its page prints it.
PUBLISHED = [
    0.4116, 0.5708, 0.6534, 0.7011, 0.7436, 0.7705, 0.8573, 0.9228, 0.9665,
    0.9774, 0.9807, 0.9842, 0.9810, 0.9970, 0.9902, 0.9921, 0.9711, 0.9565,
    0.9965, 0.9791, 0.9982, 0.9953, 0.9984, 0.9952, 0.9752, 0.9983, 0.9985,
    0.9754, 0.9883,
]  # fmt: skip
history = {name: [] for name in models}  # (per-char, exact) after every epoch
seconds = dict.fromkeys(models, 0.0)
print("epoch  published" + "".join(f"{name:>20}" for name in models))
print("        per-char" + "".join(f"{'per-char  exact':>20}" for name in models))
for epoch in range(1, max_epochs + 1):
    training = [n for n in models if not history[n] or history[n][-1][0] < target]
    if not training:
        break
    published = f"{PUBLISHED[epoch - 1]:.4f}" if epoch <= len(PUBLISHED) else ""
    row = f"{epoch:5d}  {published:>8} "
    for name, (model, (x, y), answer) in models.items():
        if name not in training:
            row += f"{'':20}"
            continue
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        seconds[name] += time.perf_counter() - start
        per_char, exact = accuracies(answer(), test_answers)
        history[name].append((per_char, exact))
        row += f"{per_char:13.4f}{exact:7.3f}"
    print(row, flush=True)
first = next(epoch for epoch, p in enumerate(PUBLISHED, 1) if p >= target)
print(f"keras.io (published): {target:.0%} first after epoch {first}")
for name, scores in history.items():
    if scores[-1][0] >= target:
        when = f"{target:.0%} after epoch {len(scores)}"
    else:
        when = f"{scores[-1][0]:.2%} after {len(scores)} epochs"
    per_epoch = seconds[name] / len(scores)
    print(f"{name:>20}: {when}, {seconds[name]:.0f} s ({per_epoch:.1f} s an epoch)")
# --8<-- [end:train]

"""## Curves, with the curve keras.io publishes"""

# --8<-- [start:plot]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
axes[0].plot(
    range(1, len(PUBLISHED) + 1), PUBLISHED, "k--", label="keras.io (published)"
)
for name, scores in history.items():
    scores = np.array(scores)
    for ax, column in zip(axes, scores.T):
        ax.plot(range(1, len(scores) + 1), column, marker="o", label=name)
for ax, title in zip(axes, ["per-character accuracy", "exact-match accuracy"]):
    ax.axhline(target, color="grey", linewidth=0.8)
    ax.set_title(f"validation {title}")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
axes[0].legend()
fig.tight_layout()
fig.savefig(os.path.join(args.out, "addition-accuracy.png"), dpi=100)
plt.close(fig)
# --8<-- [end:plot]

"""## The answers they still get wrong"""

# --8<-- [start:examples]
final = {name: answer() for name, (_, _, answer) in models.items()}
wrong = {
    name: [i for i, p in enumerate(guesses) if p.strip() != test_answers[i]]
    for name, guesses in final.items()
}
print(", ".join(f"{name}: {len(w)} wrong" for name, w in wrong.items()))
shown = list(dict.fromkeys([*sorted(set().union(*wrong.values())), *range(num_test)]))[
    :10
]
print(f"{'query':>8}  {'answer':>6}  " + "  ".join(f"{n:>13}" for n in final))
for i in shown:
    cells = [
        p.strip() + (" " if p.strip() == test_answers[i] else "*")
        for p in (final[name][i] for name in final)
    ]
    print(
        f"{test_queries[i]:>8}  {test_answers[i]:>6}  "
        + "  ".join(f"{c:>13}" for c in cells)
    )
print("(* marks a wrong answer)")
# --8<-- [end:examples]
