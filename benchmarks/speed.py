"""Speed and memory benchmark: kseq2seq against hand-written PyTorch and stock Keras.

Four models, each at two sizes (small: hidden 128, depth 1; medium: hidden 256,
depth 2; batch 64, input and output length 20, 16 features or a vocabulary of 64):

- `SimpleSeq2Seq`;
- `Seq2Seq(peek=True, teacher_force=True, inner_broadcast_state=False)`;
- `AttentionSeq2Seq(teacher_force=True)` (bidirectional encoder);
- a token model, `Seq2Seq(input_vocab_size=64, output_vocab_size=64,
  teacher_force=True, inner_broadcast_state=False)`.

Each is raced against the identical architecture written by hand in PyTorch
(`torch.nn.LSTM` / `LSTMCell`, same widths, same trainable parameter count, same
loss, Adam with lr 1e-3) and, where the architecture can be expressed with stock
Keras 3 layers, against that. Keras cells have one bias per gate where PyTorch
has two, so the PyTorch models freeze `bias_hh` at zero.

Measured, in one process, the contenders interleaved (A B A B ...) and the
median of the repeats reported:

- training time per epoch (a fixed number of batches of 64): `model.fit` for
  kseq2seq and Keras, a plain loop for PyTorch, after one untimed epoch;
- inference time per batch, free-running (each model feeds back its own
  outputs): `predict_on_batch`, or the same computation under `torch.no_grad()`;
- greedy and beam-search (width 5) decoding latency of the token model at
  batch 1 and 64, against a hand-written PyTorch greedy loop;
- training on a padded batch of token ids (lengths spread over 50-100% of the
  maximum) against the same batch unpadded, after checking that the padded
  batch predicts what each sequence predicts alone;
- peak memory during a few training batches, each contender in fresh
  subprocesses (median of 3): the growth of `ru_maxrss` over its value once the
  model is built (on CUDA, `torch.cuda.max_memory_allocated` over the allocated
  memory).

Before timing, every model's kseq2seq weights are copied into its PyTorch twin
and both outputs (free-running and teacher-forced) are checked to agree.

Run from the repository root:

    python benchmarks/speed.py            # full run, several minutes on 2 CPU cores
    python benchmarks/speed.py --quick    # smoke test: small models, 1 repeat
    python benchmarks/speed.py --output DIR   # where speed.md and speed.json go

The device is CUDA when PyTorch sees one, else the CPU.
"""

import argparse
import dataclasses
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable
from typing import Optional

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import kseq2seq  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

BATCH = 64
LENGTH = 20
FEATURES = 16
VOCAB = 64
START_ID = 1
END_ID = 2
# Token inputs and targets are drawn from [FIRST_WORD, VOCAB): no padding
# (id 0), start or end id.
FIRST_WORD = 3
BEAM_WIDTH = 5
NEVER_EMITTED = torch.tensor([0, START_ID])
LEARNING_RATE = 1e-3
# Keras' Adam epsilon; PyTorch's default is 1e-8.
ADAM_EPSILON = 1e-7
# Largest difference allowed between kseq2seq and its PyTorch twin.
TOLERANCE = 1e-4

SIZES = {"small": (128, 1), "medium": (256, 2)}  # (hidden, depth)
BUILDERS = {
    "simple": "SimpleSeq2Seq",
    "seq2seq": "Seq2Seq (peek, teacher forcing)",
    "attention": "AttentionSeq2Seq (teacher forcing)",
    "tokens": "Seq2Seq tokens (vocab 64)",
}
CONTENDERS = ("kseq2seq", "pytorch", "keras")


@dataclasses.dataclass(frozen=True)
class Settings:
    sizes: tuple
    epoch_batches: int  # batches per training epoch
    repeats: int  # interleaved rounds; medians are taken over them
    calls: int  # inference or decoding calls per timed sample
    memory_batches: int  # training batches of the memory measurement
    memory_runs: int  # fresh processes per contender; the median is reported


FULL = Settings(
    sizes=("small", "medium"),
    epoch_batches=20,
    repeats=5,
    calls=10,
    memory_batches=5,
    memory_runs=3,
)
QUICK = Settings(
    sizes=("small",),
    epoch_batches=2,
    repeats=1,
    calls=2,
    memory_batches=2,
    memory_runs=1,
)


@dataclasses.dataclass(frozen=True)
class Case:
    builder: str
    size: str

    @property
    def key(self):
        return f"{self.builder}/{self.size}"

    @property
    def hidden(self):
        return SIZES[self.size][0]

    @property
    def depth(self):
        return SIZES[self.size][1]

    @property
    def tokens(self):
        return self.builder == "tokens"

    @property
    def teacher_forced(self):
        return self.builder != "simple"

    @property
    def contenders(self):
        """Stock Keras has no per-step attention loop."""
        if self.builder == "attention":
            return ("kseq2seq", "pytorch")
        return CONTENDERS

    @property
    def keras_predicts(self):
        """Free-running inference is a per-step loop, except without feedback."""
        return self.builder == "simple"


@dataclasses.dataclass
class Contender:
    params: int
    train_epoch: Callable[[], None]
    predict_batch: Optional[Callable[[], None]]


def make_data(case, batches, seed=0):
    """Random inputs and targets: `batches * BATCH` sequences."""
    rng = np.random.default_rng(seed)
    count = batches * BATCH
    if case.tokens:
        x = rng.integers(FIRST_WORD, VOCAB, (count, LENGTH)).astype("int32")
        y = rng.integers(FIRST_WORD, VOCAB, (count, LENGTH)).astype("int32")
    else:
        x = rng.standard_normal((count, LENGTH, FEATURES)).astype("float32")
        y = rng.standard_normal((count, LENGTH, FEATURES)).astype("float32")
    return x, y


def loss_name(case):
    return "sparse_categorical_crossentropy" if case.tokens else "mse"


def compile_keras(model, case):
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss_name(case))
    return model


# --- kseq2seq ---------------------------------------------------------------


def build_kseq2seq(case, input_length=LENGTH):
    shape = dict(
        output_length=LENGTH,
        input_length=input_length,
        hidden_dim=case.hidden,
        depth=case.depth,
    )
    vectors = dict(shape, input_dim=FEATURES, output_dim=FEATURES)
    if case.builder == "simple":
        model = kseq2seq.SimpleSeq2Seq(**vectors)
    elif case.builder == "seq2seq":
        model = kseq2seq.Seq2Seq(
            peek=True, teacher_force=True, inner_broadcast_state=False, **vectors
        )
    elif case.builder == "attention":
        model = kseq2seq.AttentionSeq2Seq(teacher_force=True, **vectors)
    else:
        model = kseq2seq.Seq2Seq(
            input_vocab_size=VOCAB,
            output_vocab_size=VOCAB,
            teacher_force=True,
            inner_broadcast_state=False,
            start_id=START_ID,
            end_id=END_ID,
            **shape,
        )
    return compile_keras(model, case)


# --- the same architectures in PyTorch --------------------------------------


def single_bias(module):
    """Freezes PyTorch's second LSTM bias at zero: Keras' cells have one bias."""
    for name, parameter in module.named_parameters():
        if name.startswith("bias_hh"):
            parameter.requires_grad_(False)
            with torch.no_grad():
                parameter.zero_()
    return module


def lstm(input_size, hidden, depth, bidirectional=False):
    return single_bias(
        nn.LSTM(
            input_size, hidden, depth, batch_first=True, bidirectional=bidirectional
        )
    )


class TorchSimpleSeq2Seq(nn.Module):
    """LSTM encoder; its last output, repeated, feeds an LSTM decoder; a head."""

    def __init__(self, hidden, depth):
        super().__init__()
        self.encoder = lstm(FEATURES, hidden, depth)
        self.decoder = lstm(hidden, hidden, depth)
        self.head = nn.Linear(hidden, FEATURES)

    def forward(self, x, y=None):
        encoded, _ = self.encoder(x)
        decoded, _ = self.decoder(encoded[:, -1:].expand(-1, LENGTH, -1))
        return self.head(decoded)

    def predict(self, x):
        return self(x)


class TorchSeq2Seq(nn.Module):
    """Encoder states start the decoder, which reads [y(t-1); context]."""

    def __init__(self, hidden, depth):
        super().__init__()
        self.encoder = lstm(FEATURES, hidden, depth)
        self.start = nn.Linear(hidden, FEATURES)
        self.decoder = lstm(FEATURES + hidden, hidden, depth)
        self.head = nn.Linear(hidden, FEATURES)

    def encode(self, x):
        encoded, state = self.encoder(x)
        return encoded[:, -1], state

    def forward(self, x, y):
        """Teacher forcing: the start value, then the truth shifted by one."""
        context, state = self.encode(x)
        previous = torch.cat([self.start(context)[:, None], y[:, :-1]], dim=1)
        context = context[:, None].expand(-1, LENGTH, -1)
        decoded, _ = self.decoder(torch.cat([previous, context], dim=-1), state)
        return self.head(decoded)

    def predict(self, x):
        context, state = self.encode(x)
        output = self.start(context)
        outputs = []
        for _ in range(LENGTH):
            step = torch.cat([output, context], dim=-1)[:, None]
            decoded, state = self.decoder(step, state)
            output = self.head(decoded[:, 0])
            outputs.append(output)
        return torch.stack(outputs, dim=1)


class TorchBahdanauAttention(nn.Module):
    """As in PyTorch's translation tutorial: `Va(tanh(Wa(q) + Ua(keys)))`.

    kseq2seq's bias `b` is `Ua`'s; the query projection has none.
    """

    def __init__(self, query_size, key_size, units):
        super().__init__()
        self.Wa = nn.Linear(query_size, units, bias=False)
        self.Ua = nn.Linear(key_size, units)
        self.Va = nn.Linear(units, 1, bias=False)

    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query)[:, None] + self.Ua(keys)))
        weights = F.softmax(scores.squeeze(2).unsqueeze(1), dim=-1)
        return torch.bmm(weights, keys)[:, 0]


class TorchAttentionSeq2Seq(nn.Module):
    """Bidirectional LSTM encoder; LSTMCell stack attending at every step."""

    def __init__(self, hidden, depth):
        super().__init__()
        self.hidden = hidden
        self.encoder = lstm(FEATURES, hidden, depth, bidirectional=True)
        self.start = nn.Linear(2 * hidden, FEATURES)
        self.attention = TorchBahdanauAttention(hidden, 2 * hidden, hidden)
        widths = [FEATURES + 2 * hidden] + [hidden] * (depth - 1)
        self.cells = nn.ModuleList(
            single_bias(nn.LSTMCell(width, hidden)) for width in widths
        )
        self.head = nn.Linear(hidden, FEATURES)

    def forward(self, x, y=None):
        """Teacher-forced with `y`, free-running without."""
        keys, (h_n, _) = self.encoder(x)
        # The top layer's forward and backward final outputs.
        previous = self.start(torch.cat([h_n[-2], h_n[-1]], dim=-1))
        zeros = keys.new_zeros(len(x), self.hidden)
        states = [(zeros, zeros)] * len(self.cells)
        outputs = []
        for t in range(LENGTH):
            # The query is the top cell's previous output.
            attended = self.attention(states[-1][0], keys)
            inputs = torch.cat([previous, attended], dim=-1)
            for layer, cell in enumerate(self.cells):
                states[layer] = cell(inputs, states[layer])
                inputs = states[layer][0]
            outputs.append(self.head(inputs))
            previous = outputs[-1] if y is None else y[:, t]
        return torch.stack(outputs, dim=1)

    def predict(self, x):
        return self(x)


class TorchTokenSeq2Seq(nn.Module):
    """Embedding + LSTM encoder; the decoder embeds the previous token."""

    def __init__(self, hidden, depth):
        super().__init__()
        self.input_embedding = nn.Embedding(VOCAB, hidden)
        self.encoder = lstm(hidden, hidden, depth)
        self.embedding = nn.Embedding(VOCAB, hidden)
        self.decoder = lstm(hidden, hidden, depth)
        self.head = nn.Linear(hidden, VOCAB)

    def encode(self, x):
        return self.encoder(self.input_embedding(x))[1]

    def step(self, ids, state):
        decoded, state = self.decoder(self.embedding(ids)[:, None], state)
        return self.head(decoded[:, 0]), state

    @staticmethod
    def best_token(logits):
        """The most probable token other than padding and the start id, as
        kseq2seq feeds back and emits: neither occurs inside a sequence."""
        return logits.index_fill(1, NEVER_EMITTED.to(logits.device), -1e9).argmax(-1)

    def forward(self, x, y):
        """Logits under teacher forcing: the start id, then the shifted truth."""
        previous = torch.cat([torch.full_like(y[:, :1], START_ID), y[:, :-1]], dim=1)
        decoded, _ = self.decoder(self.embedding(previous), self.encode(x))
        return self.head(decoded)

    def predict(self, x):
        """Probabilities, feeding back the most probable token."""
        state = self.encode(x)
        ids = torch.full_like(x[:, 0], START_ID)
        outputs = []
        for _ in range(LENGTH):
            logits, state = self.step(ids, state)
            outputs.append(F.softmax(logits, dim=-1))
            ids = self.best_token(logits)
        return torch.stack(outputs, dim=1)

    def greedy(self, x):
        """Token ids until every sequence has emitted END_ID; 0 after it."""
        state = self.encode(x)
        ids = torch.full_like(x[:, 0], START_ID)
        finished = torch.zeros_like(ids, dtype=torch.bool)
        emitted = []
        for _ in range(LENGTH):
            logits, state = self.step(ids, state)
            ids = self.best_token(logits).masked_fill(finished, 0)
            emitted.append(ids)
            finished = finished | (ids == END_ID)
            if finished.all():
                break
        ids = torch.stack(emitted, dim=1)
        return F.pad(ids, (0, LENGTH - ids.shape[1]))


TORCH_MODELS = {
    "simple": TorchSimpleSeq2Seq,
    "seq2seq": TorchSeq2Seq,
    "attention": TorchAttentionSeq2Seq,
    "tokens": TorchTokenSeq2Seq,
}


def build_torch(case):
    return TORCH_MODELS[case.builder](case.hidden, case.depth).to(DEVICE)


def trainable(net):
    return [p for p in net.parameters() if p.requires_grad]


def torch_loss(case):
    if not case.tokens:
        return F.mse_loss

    def cross_entropy(logits, y):
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=0)

    return cross_entropy


def to_device(array):
    tensor = torch.from_numpy(array)
    if tensor.dtype == torch.int32:
        tensor = tensor.long()
    return tensor.to(DEVICE)


# --- the same architectures from stock Keras layers -------------------------


def keras_encoder(inputs, case):
    """Stacked LSTMs; returns the top output sequence and every layer's state."""
    sequence, states = inputs, []
    for _ in range(case.depth):
        sequence, h, c = keras.layers.LSTM(
            case.hidden, return_sequences=True, return_state=True
        )(sequence)
        states.append([h, c])
    return sequence, states


def keras_decoder(inputs, case, states=None):
    sequence = inputs
    for layer in range(case.depth):
        initial = None if states is None else states[layer]
        sequence = keras.layers.LSTM(case.hidden, return_sequences=True)(
            sequence, initial_state=initial
        )
    return sequence


def build_stock_keras(case):
    """The functional model, teacher-forced models taking `[x, y]`."""
    if case.builder == "simple":
        x = keras.Input((LENGTH, FEATURES))
        _, states = keras_encoder(x, case)
        repeated = keras.layers.RepeatVector(LENGTH)(states[-1][0])
        outputs = keras.layers.Dense(FEATURES)(keras_decoder(repeated, case))
        return compile_keras(keras.Model(x, outputs), case)
    if case.builder == "seq2seq":
        x = keras.Input((LENGTH, FEATURES))
        y = keras.Input((LENGTH, FEATURES))
        _, states = keras_encoder(x, case)
        context = states[-1][0]
        start = keras.layers.Reshape((1, FEATURES))(
            keras.layers.Dense(FEATURES)(context)
        )
        previous = keras.layers.Concatenate(axis=1)([start, y[:, :-1]])
        inputs = keras.layers.Concatenate()(
            [previous, keras.layers.RepeatVector(LENGTH)(context)]
        )
        outputs = keras.layers.Dense(FEATURES)(keras_decoder(inputs, case, states))
        return compile_keras(keras.Model([x, y], outputs), case)
    if case.builder == "tokens":
        x = keras.Input((LENGTH,), dtype="int32")
        y = keras.Input((LENGTH,), dtype="int32")
        _, states = keras_encoder(keras.layers.Embedding(VOCAB, case.hidden)(x), case)
        previous = keras.ops.concatenate(
            [keras.ops.full_like(y[:, :1], START_ID), y[:, :-1]], axis=1
        )
        inputs = keras.layers.Embedding(VOCAB, case.hidden)(previous)
        outputs = keras.layers.Dense(VOCAB, activation="softmax")(
            keras_decoder(inputs, case, states)
        )
        return compile_keras(keras.Model([x, y], outputs), case)
    raise ValueError(f"Stock Keras has no per-step attention loop: {case.key}")


def keras_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# --- contenders -------------------------------------------------------------


def keras_contender(model, data, feed_targets, predicts=True):
    """`fit` and `predict_on_batch`; `feed_targets` passes `[x, y]` as input."""
    x, y = data
    inputs = [x, y] if feed_targets else x
    batch = x[:BATCH]

    def train_epoch():
        model.fit(inputs, y, batch_size=BATCH, epochs=1, verbose=0)

    def predict_batch():
        model.predict_on_batch(batch)

    return Contender(
        keras_params(model), train_epoch, predict_batch if predicts else None
    )


def torch_contender(net, data, case):
    """A plain training loop, shuffled like `fit`, and a free-running batch."""
    x, y = to_device(data[0]), to_device(data[1])
    batch = data[0][:BATCH]
    loss_fn = torch_loss(case)
    optimizer = torch.optim.Adam(trainable(net), lr=LEARNING_RATE, eps=ADAM_EPSILON)

    def train_epoch():
        order = torch.randperm(len(x), device=DEVICE)
        for start in range(0, len(x), BATCH):
            rows = order[start : start + BATCH]
            optimizer.zero_grad()
            loss = loss_fn(net(x[rows], y[rows]), y[rows])
            loss.backward()
            optimizer.step()

    def predict_batch():
        with torch.no_grad():
            net.predict(to_device(batch)).cpu().numpy()

    params = sum(p.numel() for p in trainable(net))
    return Contender(params, train_epoch, predict_batch)


def build_contender(case, name, data):
    if name == "kseq2seq":
        return keras_contender(build_kseq2seq(case), data, feed_targets=False)
    if name == "pytorch":
        return torch_contender(build_torch(case), data, case)
    return keras_contender(
        build_stock_keras(case), data, case.teacher_forced, case.keras_predicts
    )


# --- correctness guard ------------------------------------------------------


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable)


def _copy(parameter, array):
    parameter.copy_(torch.as_tensor(np.ascontiguousarray(array)))


def copy_cell(cell, weight_ih, weight_hh, bias_ih, bias_hh):
    """Keras `kernel (in, 4u)` is `weight_ih.T`; the gate order i, f, g, o
    is the same."""
    _copy(weight_ih, _numpy(cell.kernel).T)
    _copy(weight_hh, _numpy(cell.recurrent_kernel).T)
    _copy(bias_ih, _numpy(cell.bias))
    bias_hh.zero_()


def lstm_layer_weights(module, layer, reverse=False):
    suffix = f"l{layer}_reverse" if reverse else f"l{layer}"
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return [getattr(module, f"{name}_{suffix}") for name in names]


def copy_dense(dense, linear):
    _copy(linear.weight, _numpy(dense.kernel).T)
    _copy(linear.bias, _numpy(dense.bias))


@torch.no_grad()
def copy_weights(model, net):
    """Copies a kseq2seq model's weights into its PyTorch twin."""
    encoder, decoder = model.encoder, model.decoder
    for index, cell in enumerate(encoder.cells):
        layer, direction = divmod(index, encoder.num_directions)
        copy_cell(cell, *lstm_layer_weights(net.encoder, layer, direction == 1))
    for layer, cell in enumerate(decoder.cells):
        if decoder.attention is None:
            copy_cell(cell, *lstm_layer_weights(net.decoder, layer))
        else:
            torch_cell = net.cells[layer]
            copy_cell(
                cell,
                torch_cell.weight_ih,
                torch_cell.weight_hh,
                torch_cell.bias_ih,
                torch_cell.bias_hh,
            )
    copy_dense(decoder.head, net.head)
    if decoder.start_projection is not None:
        copy_dense(decoder.start_projection, net.start)
    if model.input_embedding is not None:
        _copy(net.input_embedding.weight, _numpy(model.input_embedding.embeddings))
    if decoder.embedding is not None:
        _copy(net.embedding.weight, _numpy(decoder.embedding.embeddings))
    if decoder.attention is not None:
        attention = decoder.attention
        _copy(net.attention.Wa.weight, _numpy(attention.query_kernel).T)
        _copy(net.attention.Ua.weight, _numpy(attention.key_kernel).T)
        _copy(net.attention.Ua.bias, _numpy(attention.bias))
        _copy(net.attention.Va.weight, _numpy(attention.score_vector)[None])


def check_equivalence(case, model, net, data):
    """Copies the weights, then compares free-running and teacher-forced outputs.

    Returns the largest absolute differences; raises if one exceeds TOLERANCE.
    """
    copy_weights(model, net)
    x, y = data[0][:BATCH], data[1][:BATCH]
    inputs = [x, y] if case.teacher_forced else x
    with torch.no_grad():
        ours_free = model.predict_on_batch(x)
        ours_forced = _numpy(
            model(
                keras.tree.map_structure(keras.ops.convert_to_tensor, inputs),
                training=True,
            )
        )
        theirs_free = net.predict(to_device(x))
        theirs_forced = net(to_device(x), to_device(y))
        if case.tokens:
            theirs_forced = F.softmax(theirs_forced, dim=-1)
    diffs = {
        "free_running": float(np.abs(ours_free - theirs_free.cpu().numpy()).max()),
        "teacher_forced": float(
            np.abs(ours_forced - theirs_forced.cpu().numpy()).max()
        ),
    }
    if max(diffs.values()) > TOLERANCE:
        raise AssertionError(f"{case.key}: kseq2seq and PyTorch differ: {diffs}")
    return diffs


def check_params(case, contenders):
    """Trainable parameters of each contender; raises unless they all agree."""
    counts = {name: contender.params for name, contender in contenders.items()}
    if len(set(counts.values())) != 1:
        raise AssertionError(f"{case.key}: parameter counts differ: {counts}")
    return counts


# --- timing -----------------------------------------------------------------


def synchronize():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def repeated(fn, calls):
    def run():
        for _ in range(calls):
            fn()

    return run


def interleave(tasks, repeats, calls=1):
    """Runs the tasks A B A B ... `repeats` times; seconds per call of each."""
    samples = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, fn in tasks.items():
            synchronize()
            start = time.perf_counter()
            fn()
            synchronize()
            samples[name].append((time.perf_counter() - start) / calls)
    return samples


def medians(samples):
    return {name: statistics.median(values) for name, values in samples.items()}


def ratio(values, numerator, denominator):
    if values.get(numerator) is None or not values.get(denominator):
        return None
    return values[numerator] / values[denominator]


def kseq2seq_ratios(values):
    return {
        "kseq2seq/pytorch": ratio(values, "kseq2seq", "pytorch"),
        "kseq2seq/keras": ratio(values, "kseq2seq", "keras"),
    }


def benchmark_case(case, settings):
    keras.utils.set_random_seed(0)
    data = make_data(case, settings.epoch_batches)
    model, net = build_kseq2seq(case), build_torch(case)
    check = check_equivalence(case, model, net, data)
    contenders = {
        "kseq2seq": keras_contender(model, data, feed_targets=False),
        "pytorch": torch_contender(net, data, case),
    }
    if "keras" in case.contenders:
        contenders["keras"] = keras_contender(
            build_stock_keras(case), data, case.teacher_forced, case.keras_predicts
        )
    params = check_params(case, contenders)
    print(
        f"{case.key}: trainable parameters "
        + ", ".join(f"{name} {count:,}" for name, count in params.items())
        + "; max |kseq2seq - PyTorch|: "
        + ", ".join(f"{kind} {diff:.1e}" for kind, diff in check.items()),
        flush=True,
    )
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
        "builder": case.builder,
        "size": case.size,
        "hidden": case.hidden,
        "depth": case.depth,
        "params": params,
        "max_abs_diff_vs_pytorch": check,
        "train_epoch_s": train,
        "predict_batch_s": predict,
    }
    if case.tokens:
        result["decoding"] = benchmark_decoding(model, net, data, settings)
    return result


def suppress_end_token(model):
    """Pushes the end id's logit down so that every decoding runs LENGTH steps."""
    bias = _numpy(model.decoder.head.bias).copy()
    bias[END_ID] = -1e4
    model.decoder.head.bias.assign(bias)


def decoding_tasks(model, net, x):
    tensor = to_device(x)

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


def benchmark_decoding(model, net, data, settings):
    """Greedy and beam-search latency, seconds per call, at batch 1 and BATCH."""
    suppress_end_token(model)
    copy_weights(model, net)
    results = {}
    for batch in (1, BATCH):
        tasks = decoding_tasks(model, net, data[0][:batch])
        ours, theirs = tasks["kseq2seq greedy"](), tasks["pytorch greedy"]()
        if not np.array_equal(ours, theirs):
            raise AssertionError("kseq2seq and PyTorch greedy decodings differ")
        tasks["kseq2seq beam"]()  # warm-up
        samples = interleave(
            {name: repeated(fn, settings.calls) for name, fn in tasks.items()},
            settings.repeats,
            settings.calls,
        )
        results[str(batch)] = samples
    return results


# --- masking ----------------------------------------------------------------


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
    x, y = make_data(case, settings.epoch_batches)
    padded = variable_length(x)
    model = build_kseq2seq(case, input_length=None)
    check_padding_is_invisible(model, padded)
    tasks = {
        "unpadded": lambda: model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0),
        "padded": lambda: model.fit(padded, y, batch_size=BATCH, epochs=1, verbose=0),
    }
    for task in tasks.values():
        task()  # warm-up
    samples = interleave(tasks, settings.repeats)
    times = medians(samples)
    return {
        "size": size,
        "samples": samples,
        "medians": times,
        "padded/unpadded": ratio(times, "padded", "unpadded"),
        "padded_fraction": float((padded == 0).mean()),
    }


# --- memory -----------------------------------------------------------------


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss():
    """Lowers `ru_maxrss` to the current RSS, where Linux allows it.

    Otherwise the baseline is the peak so far, which import-time transients
    may hold above what a small model's training ever reaches.
    """
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        pass


def measure_memory(case, name, settings):
    """Peak memory growth over a few training batches, once the model is built."""
    keras.utils.set_random_seed(0)
    contender = build_contender(case, name, make_data(case, settings.memory_batches))
    gc.collect()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        reset_peak_rss()
        baseline = peak_rss_bytes()
    contender.train_epoch()
    synchronize()
    peak = (
        torch.cuda.max_memory_allocated() if DEVICE.type == "cuda" else peak_rss_bytes()
    )
    return peak - baseline


def memory_in_subprocess(case, name, quick):
    """Runs `measure_memory` in a fresh process, with one thread.

    The process is started through `sh`, which forks it: one started straight
    from this process would inherit this process's `ru_maxrss`, as Linux
    carries the peak RSS across `exec`.
    """
    command = ["sh", "-c", '"$@"; exit $?', "sh", sys.executable, __file__]
    command += ["--memory-of", case.key, name] + (["--quick"] if quick else [])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_all_memory(cases, settings, quick):
    """Each contender `memory_runs` times, in fresh single-threaded processes,
    one per CPU at a time. Returns the samples by case key and contender."""
    jobs = [
        (case, name)
        for _ in range(settings.memory_runs)
        for case in cases
        for name in case.contenders
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        peaks = list(pool.map(lambda job: memory_in_subprocess(*job, quick), jobs))
    results = {case.key: {name: [] for name in case.contenders} for case in cases}
    for (case, name), peak in zip(jobs, peaks):
        results[case.key][name].append(peak)
    return results


# --- report -----------------------------------------------------------------


def git_revision():
    """The commit of the kseq2seq checkout measured; `+`: the package has changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(kseq2seq.__file__)))
    try:
        commit, changes = (
            subprocess.run(
                ["git", "-C", root, *command],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            for command in (
                ["rev-parse", "--short", "HEAD"],
                ["status", "--short", "--", "kseq2seq"],
            )
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+" if changes else "")


def environment():
    return {
        "device": str(DEVICE),
        "keras_device": str(keras.ops.zeros(()).device),
        "gpu": torch.cuda.get_device_name() if DEVICE.type == "cuda" else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "keras": keras.__version__,
        "kseq2seq": kseq2seq.__version__,
        "kseq2seq_commit": git_revision(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
    }


def summarize(result, memory):
    result["peak_memory_bytes"] = memory
    metrics = ("train_epoch_s", "predict_batch_s", "peak_memory_bytes")
    result["medians"] = {metric: medians(result[metric]) for metric in metrics}
    result["ratios"] = {
        metric: kseq2seq_ratios(result["medians"][metric]) for metric in metrics
    }
    for batch, samples in result.get("decoding", {}).items():
        times = medians(samples)
        result["decoding"][batch] = {
            "samples": samples,
            "medians": times,
            "ratios": {
                "kseq2seq greedy/pytorch greedy": ratio(
                    times, "kseq2seq greedy", "pytorch greedy"
                ),
                "kseq2seq beam/kseq2seq greedy": ratio(
                    times, "kseq2seq beam", "kseq2seq greedy"
                ),
            },
        }
    return result


def fmt(value, scale=1.0, digits=3):
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def metric_table(results, metric, scale, digits):
    header = ["model", "size", "params", "kseq2seq", "PyTorch", "Keras"]
    header += ["kseq2seq / PyTorch", "kseq2seq / Keras"]
    rows = []
    for r in results:
        values, ratios = r["medians"][metric], r["ratios"][metric]
        rows.append(
            [BUILDERS[r["builder"]], r["size"], f"{r['params']['kseq2seq']:,}"]
            + [fmt(values.get(name), scale, digits) for name in CONTENDERS]
            + [fmt(ratios["kseq2seq/pytorch"], digits=2)]
            + [fmt(ratios["kseq2seq/keras"], digits=2)]
        )
    return table(header, rows)


def decoding_table(results):
    header = ["size", "batch", "kseq2seq greedy", "PyTorch greedy"]
    header += ["greedy kseq2seq / PyTorch", f"kseq2seq beam ({BEAM_WIDTH})"]
    header += ["beam / greedy"]
    rows = []
    for r in results:
        for batch, d in r.get("decoding", {}).items():
            times, ratios = d["medians"], d["ratios"]
            rows.append(
                [r["size"], batch]
                + [fmt(times["kseq2seq greedy"], 1e3, 2)]
                + [fmt(times["pytorch greedy"], 1e3, 2)]
                + [fmt(ratios["kseq2seq greedy/pytorch greedy"], digits=2)]
                + [fmt(times["kseq2seq beam"], 1e3, 2)]
                + [fmt(ratios["kseq2seq beam/kseq2seq greedy"], digits=2)]
            )
    return table(header, rows)


def masking_table(masking):
    header = ["size", "padded steps", "padded", "unpadded", "padded / unpadded"]
    rows = [
        [
            m["size"],
            f"{m['padded_fraction']:.0%}",
            fmt(m["medians"]["padded"]),
            fmt(m["medians"]["unpadded"]),
            fmt(m["padded/unpadded"], digits=2),
        ]
        for m in masking
    ]
    return table(header, rows)


def describe(env):
    gpu = f", {env['gpu']}" if env["gpu"] else ""
    return (
        f"Device: {env['device']} (Keras: {env['keras_device']}{gpu}); "
        f"torch {env['torch']}, keras {env['keras']}, "
        f"kseq2seq {env['kseq2seq']} ({env['kseq2seq_commit'] or 'no git'}), "
        f"Python {env['python']}; {env['cpu_count']} CPUs, "
        f"{env['torch_threads']} torch threads."
    )


def load(averages):
    return ", ".join(f"{value:.1f}" for value in averages)


def markdown(report):
    settings, results = report["settings"], report["results"]
    mib = 1 / 2**20
    return "\n\n".join(
        [
            "# kseq2seq speed and memory benchmark",
            (
                f"{describe(report['environment'])} Batch {BATCH}, lengths "
                f"{LENGTH}; medians of {settings['repeats']} interleaved repeats. "
                "Load average (1, 5, 15 min) at start "
                f"{load(report['environment']['load_average_at_start'])}, at end "
                f"{load(report['environment']['load_average_at_end'])}: other "
                "processes running meanwhile skew the timings."
            ),
            f"## Training: seconds per epoch of {settings['epoch_batches']} batches",
            metric_table(results, "train_epoch_s", 1, 3),
            f"## Inference: ms per batch of {BATCH} (free-running)",
            metric_table(results, "predict_batch_s", 1e3, 2),
            (
                "## Peak memory during fit: MiB over the built model "
                f"({settings['memory_batches']} batches; median of "
                f"{settings['memory_runs']} fresh processes)"
            ),
            metric_table(results, "peak_memory_bytes", mib, 1),
            f"## Token model decoding: ms per call ({LENGTH} steps)",
            decoding_table(results),
            (
                "## Masking: token Seq2Seq, seconds per epoch, inputs padded to "
                f"lengths {LENGTH // 2}-{LENGTH} against the same inputs unpadded"
            ),
            masking_table(report.get("masking", [])),
        ]
    )


def write_report(report, output):
    os.makedirs(output, exist_ok=True)
    text = markdown(report)
    with open(os.path.join(output, "speed.md"), "w") as file:
        file.write(text + "\n")
    with open(os.path.join(output, "speed.json"), "w") as file:
        json.dump(report, file, indent=2)
    return text


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke test")
    parser.add_argument(
        "--output", default=os.path.join("benchmarks", "results"), help="report folder"
    )
    # Internal: measure one contender's memory in this (fresh) process.
    parser.add_argument("--memory-of", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    settings = QUICK if args.quick else FULL
    if args.memory_of:
        key, name = args.memory_of
        print(json.dumps(measure_memory(Case(*key.split("/")), name, settings)))
        return
    env = environment()
    print(describe(env), flush=True)
    cases = [Case(builder, size) for size in settings.sizes for builder in BUILDERS]
    results = []
    for case in cases:
        start = time.perf_counter()
        results.append(benchmark_case(case, settings))
        print(f"{case.key}: timed in {time.perf_counter() - start:.0f} s", flush=True)
    masking = []
    for size in settings.sizes:
        masking.append(benchmark_masking(size, settings))
        print(
            f"masking/{size}: padded / unpadded {masking[-1]['padded/unpadded']:.2f}",
            flush=True,
        )
    print("Measuring peak memory, one process per contender...", flush=True)
    memory = measure_all_memory(cases, settings, args.quick)
    env["load_average_at_end"] = os.getloadavg()
    report = {
        "environment": env,
        "settings": dataclasses.asdict(settings),
        "results": [
            summarize(r, memory[Case(r["builder"], r["size"]).key]) for r in results
        ],
        "masking": masking,
    }
    print(write_report(report, args.output))


if __name__ == "__main__":
    main()
