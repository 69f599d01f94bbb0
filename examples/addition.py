"""
Title: Number addition, side by side with keras.io's addition_rnn
Description: Rebuild the keras.io addition example ("12+345" -> "357") with
stock Keras layers, then train kseq2seq's SimpleSeq2Seq and a token Seq2Seq
with teacher forcing on the same data, and compare their held-out accuracy
after every epoch.

Run `python examples/addition.py` (a minute and a half on an idle 2-core
CPU, longer on a busy one), or `python examples/addition.py --quick` for a
seconds-long smoke run. Figures are written to `--out` (default: the current
directory).
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
from kseq2seq.data import addition_task  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
parser.add_argument("--out", default=".", help="where to write the figure")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

"""## Data

The keras.io example draws two numbers of 1 to 3 digits, keeps each unordered
pair once, and pads the query to 7 characters and the answer to 4 with
spaces. `addition_task` draws the numbers; the loop below drops repeated
pairs the same way, so the held-out queries never occur in training.
"""

# --8<-- [start:data]
keras.utils.set_random_seed(0)
DIGITS = 3
MAXLEN = DIGITS + 1 + DIGITS  # "123+456"
num_train, num_test, epochs = (600, 200, 2) if args.quick else (12000, 2000, 10)

queries, answers, seen = [], [], set()
for query, answer in zip(*addition_task(3 * (num_train + num_test), DIGITS, seed=0)):
    key = tuple(sorted(query.split("+")))  # "12+345" and "345+12" are one pair
    if key not in seen:
        seen.add(key)
        queries.append(query)
        answers.append(answer)
queries, answers = queries[: num_train + num_test], answers[: num_train + num_test]
train_queries, test_queries = queries[:num_train], queries[num_train:]
train_answers, test_answers = answers[:num_train], answers[num_train:]
print(f"{len(train_queries)} training and {len(test_queries)} held-out sums")
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

"""## Training and held-out accuracy, epoch by epoch

Every model answers the held-out queries free-running: the one-hot models
by `predict`, the token model by `generate`, which feeds back its own
digits and stops at the end id. Both kinds of answer are compared as
strings, padded to 4 characters as in the keras.io example.
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
history = {name: [] for name in models}  # (per-char, exact) after every epoch
seconds = dict.fromkeys(models, 0.0)
print("epoch  " + "".join(f"{name:>20}" for name in models))
print("       " + "".join(f"{'per-char  exact':>20}" for name in models))
for epoch in range(1, epochs + 1):
    row = f"{epoch:5d}  "
    for name, (model, (x, y), answer) in models.items():
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        seconds[name] += time.perf_counter() - start
        per_char, exact = accuracies(answer(), test_answers)
        history[name].append((per_char, exact))
        row += f"{per_char:13.3f}{exact:7.3f}"
    print(row, flush=True)
print("training time:", ", ".join(f"{n} {s:.0f} s" for n, s in seconds.items()))
# --8<-- [end:train]

"""## Curves"""

# --8<-- [start:plot]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
for name, scores in history.items():
    scores = np.array(scores)
    for ax, column in zip(axes, scores.T):
        ax.plot(range(1, epochs + 1), column, marker="o", label=name)
for ax, title in zip(axes, ["per-character accuracy", "exact-match accuracy"]):
    ax.set_title(f"held-out {title}")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
axes[1].legend()
fig.tight_layout()
fig.savefig(os.path.join(args.out, "addition-accuracy.png"), dpi=100)
plt.close(fig)
# --8<-- [end:plot]

"""## Some held-out answers"""

# --8<-- [start:examples]
final = {name: answer() for name, (_, _, answer) in models.items()}
print(f"{'query':>8}  {'answer':>6}  " + "  ".join(f"{n:>13}" for n in final))
for i in range(8):
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
