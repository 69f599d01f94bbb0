"""
Title: Numbers to words, greedy vs beam search
Description: Train a token Seq2Seq (GRU, peek, teacher forcing) to write
numbers in English words ("1234" -> "one thousand, two hundred and
thirty-four"), then decode held-out numbers with greedy and with beam search
and compare the two.

Run `python examples/numbers_to_words.py` (a minute or two on a 2-core
CPU), or `python examples/numbers_to_words.py --quick` for a seconds-long
smoke run. Needs `num2words` (`pip install num2words`). Figures are written
to `--out` (default: the current directory).
"""

import argparse
import os

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
from num2words import num2words  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq import Vocabulary  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
parser.add_argument("--out", default=".", help="where to write the figure")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

"""## Data

Numbers of 1 to 9 digits (the number of digits drawn uniformly, then the
number), each used once; `num2words` writes them out. The comma becomes a
word of its own, so that "thousand," and "thousand" share one token.
"""

# --8<-- [start:data]
keras.utils.set_random_seed(0)
num_train, num_test, epochs = (500, 100, 2) if args.quick else (12000, 1000, 10)

rng = np.random.default_rng(0)
digits = rng.integers(1, 10, size=3 * (num_train + num_test))
drawn = rng.integers(np.where(digits == 1, 0, 10 ** (digits - 1)), 10**digits)
numbers = list(dict.fromkeys(drawn.tolist()))[: num_train + num_test]


def to_words(number):
    return num2words(number).replace(",", " ,")  # "thousand ," : two words


def from_words(text):
    return text.replace(" ,", ",")


sources = [str(number) for number in numbers]
targets = [to_words(number) for number in numbers]
print(sources[0], "->", targets[0])
# --8<-- [end:data]

"""## Vocabularies

Characters on the input side, words on the output side.
"""

# --8<-- [start:vocab]
digit_vocab = Vocabulary.from_texts(sources)  # "0" to "9"
word_vocab = Vocabulary.from_texts(targets[:num_train], level="word")
X = digit_vocab.encode(sources)
Y = word_vocab.encode(targets, add_end=True)
X_train, Y_train, X_test = X[:num_train], Y[:num_train], X[num_train:]
test_numbers, test_words = numbers[num_train:], targets[num_train:]
print(f"{len(digit_vocab)} input ids, {len(word_vocab)} output ids")
print(f"inputs {X.shape}, targets {Y.shape}")
print(word_vocab.tokens[:12])
# --8<-- [end:vocab]

"""## Model"""

# --8<-- [start:model]
model = Seq2Seq(
    input_vocab_size=len(digit_vocab),
    output_vocab_size=len(word_vocab),
    output_length=Y.shape[1],
    hidden_dim=128,
    embedding_dim=32,
    cell="gru",
    peek=True,
    teacher_force=True,
    reverse_input=True,
)
model.compile(
    loss="sparse_categorical_crossentropy",
    optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
    metrics=["sparse_categorical_accuracy"],
)
# --8<-- [end:model]

"""## Training, with greedy and beam decoding after every epoch"""


# --8<-- [start:train]
def decode(method):
    ids, scores = model.generate(X_test, method=method, beam_width=5, batch_size=500)
    return [from_words(text) for text in word_vocab.decode(ids)], scores


def exact_match(predicted):
    return np.mean([p == from_words(t) for p, t in zip(predicted, test_words)])


curves = {"greedy": [], "beam": []}
print("epoch   loss  token acc  greedy exact  beam exact  outputs that differ")
for epoch in range(1, epochs + 1):
    fit = model.fit(X_train, Y_train, batch_size=32, epochs=1, verbose=0)
    greedy, greedy_scores = decode("greedy")
    beam, beam_scores = decode("beam")
    curves["greedy"].append(exact_match(greedy))
    curves["beam"].append(exact_match(beam))
    differ = np.mean([g != b for g, b in zip(greedy, beam)])
    loss = fit.history["loss"][0]
    token_accuracy = fit.history["sparse_categorical_accuracy"][0]
    print(
        f"{epoch:5d}  {loss:5.3f}  {token_accuracy:9.3f}  "
        f"{curves['greedy'][-1]:12.3f}  {curves['beam'][-1]:10.3f}  {differ:19.3f}"
    )
# --8<-- [end:train]

"""## Side by side"""

# --8<-- [start:compare]
# The held-out numbers whose two decodings differ, then the first others.
differing = [i for i in range(num_test) if greedy[i] != beam[i]]
shown = (differing + [i for i in range(num_test) if i not in differing])[:8]
for i in shown:
    print(f"{test_numbers[i]:,}")
    print(f"  truth   {from_words(test_words[i])}")
    print(f"  greedy  {greedy[i]}  (log p = {greedy_scores[i]:.2f})")
    print(f"  beam    {beam[i]}  (log p = {beam_scores[i]:.2f})")
print(f"{len(differing)} of {num_test} held-out numbers decode differently")
print(f"greedy exact match: {exact_match(greedy):.3f}")
print(f"beam exact match:   {exact_match(beam):.3f}")
# --8<-- [end:compare]

"""## The beam's runners-up"""

# --8<-- [start:candidates]
ids, scores = model.generate(
    X_test[shown[:1]], method="beam", beam_width=5, num_return_sequences=3
)
print(f"{test_numbers[shown[0]]:,}")
for text, score in zip(word_vocab.decode(ids[0]), scores[0]):
    print(f"  {score:7.2f}  {from_words(text)}")
# --8<-- [end:candidates]

"""## Errors by number of digits"""

# --8<-- [start:plot]
lengths = np.array([len(str(n)) for n in test_numbers])
present = sorted(set(lengths.tolist()))  # the digit counts among held-out numbers
errors = {}
for method, predicted in (("greedy", greedy), ("beam", beam)):
    wrong = np.array([p != from_words(t) for p, t in zip(predicted, test_words)])
    errors[method] = [wrong[lengths == n].mean() for n in present]
print("digits        " + "".join(f"{n:>6}" for n in present))
print("held out      " + "".join(f"{(lengths == n).sum():>6}" for n in present))
for method, rates in errors.items():
    print(f"{method + ' wrong':14}" + "".join(f"{rate:6.3f}" for rate in rates))

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for offset, (method, rates) in zip((-0.2, 0.2), errors.items()):
    axes[0].plot(range(1, epochs + 1), curves[method], marker="o", label=method)
    axes[1].bar(np.array(present) + offset, rates, width=0.4, label=method)
axes[0].set(title="held-out exact match", xlabel="epoch", ylim=(0, 1))
axes[1].set(title="held-out error rate after training", xlabel="digits")
axes[1].set_xticks(present)
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
fig.tight_layout()
fig.savefig(os.path.join(args.out, "numbers_to_words-accuracy.png"), dpi=100)
plt.close(fig)
# --8<-- [end:plot]
