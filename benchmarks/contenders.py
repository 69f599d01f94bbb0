"""The contenders of each case, ready to train and predict, and the checks
that they compute the same thing before they are timed.

- `kseq2seq`: the kseq2seq model, `model.fit` and `predict_on_batch`;
- `pytorch`: its PyTorch twin (`twins.py`), a plain training loop and
  `predict` under `torch.no_grad()`;
- `pytorch_tutorial`: for `AttentionSeq2Seq`, the twin with the attention
  of PyTorch's translation tutorial, which projects the keys at every step;
- `keras_twin`: the PyTorch twin wrapped in a `keras.Model`
  (`keras.layers.TorchModuleWrapper`), trained with the same `fit`: what
  kseq2seq costs beyond Keras' trainer;
- `keras`: the model built from stock Keras layers, where it can be
  (`stock_keras.py`).

Every contender has the same trainable parameter count, the same loss and
Adam with the same learning rate and epsilon.
"""

import dataclasses
from typing import Callable
from typing import Optional

import keras
import numpy as np
import torch
import torch.nn.functional as F

import kseq2seq
from benchmarks import stock_keras
from benchmarks import twins
from benchmarks.config import ADAM_EPSILON
from benchmarks.config import BATCH
from benchmarks.config import DEVICE
from benchmarks.config import END_ID
from benchmarks.config import FEATURES
from benchmarks.config import FIRST_WORD
from benchmarks.config import LEARNING_RATE
from benchmarks.config import LENGTH
from benchmarks.config import START_ID
from benchmarks.config import TOLERANCE
from benchmarks.config import VOCAB


@dataclasses.dataclass
class Contender:
    """What the benchmark times of one contender.

    Attributes:
        params: trainable parameter count.
        train_epoch: trains one epoch on the case's data.
        predict_batch: one free-running prediction of a batch, NumPy in and
            out; `None` where the contender cannot run free.
        outputs: `(x, y) -> (free_running, training)` outputs as NumPy
            (probabilities for token models), to compare with kseq2seq's;
            `None` for a contender with weights of its own.
    """

    params: int
    train_epoch: Callable[[], None]
    predict_batch: Optional[Callable[[], None]]
    outputs: Optional[Callable] = None


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


def to_device(array):
    tensor = torch.from_numpy(array)
    if tensor.dtype == torch.int32:
        tensor = tensor.long()
    return tensor.to(DEVICE)


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


# --- building the models -----------------------------------------------------


def build_kseq2seq(case, input_length=LENGTH, jit_compile="auto"):
    """The kseq2seq model of `case`, compiled as every contender is."""
    shape = dict(
        output_length=LENGTH,
        input_length=input_length,
        hidden_dim=case.hidden,
        depth=case.depth,
    )
    vectors = dict(shape, input_dim=FEATURES, output_dim=FEATURES)
    per_layer = dict(inner_broadcast_state=False)
    builders = {
        "simple": lambda: kseq2seq.SimpleSeq2Seq(**vectors),
        "seq2seq": lambda: kseq2seq.Seq2Seq(**vectors),
        "seq2seq_per_layer": lambda: kseq2seq.Seq2Seq(**per_layer, **vectors),
        "seq2seq_peek": lambda: kseq2seq.Seq2Seq(
            peek=True, teacher_force=True, **per_layer, **vectors
        ),
        "attention": lambda: kseq2seq.AttentionSeq2Seq(teacher_force=True, **vectors),
        "tokens": lambda: kseq2seq.Seq2Seq(
            input_vocab_size=VOCAB,
            output_vocab_size=VOCAB,
            teacher_force=True,
            start_id=START_ID,
            end_id=END_ID,
            **per_layer,
            **shape,
        ),
    }
    return stock_keras.compile_keras(builders[case.model](), case, jit_compile)


def build_twin(case, tutorial_attention=False):
    """The PyTorch twin of `case`'s kseq2seq model, on the benchmark's device."""
    vectors = dict(
        input_dim=FEATURES,
        hidden=case.hidden,
        output_dim=FEATURES,
        output_length=LENGTH,
        depth=case.depth,
    )
    builders = {
        "simple": lambda: twins.TorchSimpleSeq2Seq(**vectors),
        "seq2seq": lambda: twins.TorchSeq2Seq(**vectors),
        "seq2seq_per_layer": lambda: twins.TorchSeq2Seq(shared_state=False, **vectors),
        "seq2seq_peek": lambda: twins.TorchSeq2Seq(
            peek=True, shared_state=False, teacher_forced=True, **vectors
        ),
        "attention": lambda: twins.TorchAttentionSeq2Seq(
            project_keys_once=not tutorial_attention, **vectors
        ),
        "tokens": lambda: twins.TorchTokenSeq2Seq(
            VOCAB, case.hidden, LENGTH, case.depth, start_id=START_ID, end_id=END_ID
        ),
    }
    return builders[case.model]().to(DEVICE)


class TwinInKeras(keras.Model):
    """A PyTorch twin wrapped in a `keras.Model`, to be trained with `fit`.

    Takes `[x, y]` when the twin is teacher-forced, `x` otherwise. Token
    twins give logits in training and probabilities in inference.

    Args:
        net: a twin from `twins.py`.
        tokens: bool. Whether `net` is a token twin.
    """

    def __init__(self, net, tokens, **kwargs):
        super().__init__(**kwargs)
        self.net = keras.layers.TorchModuleWrapper(net)
        self.tokens = tokens

    def call(self, inputs, training=False):
        x, y = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        outputs = self.net(x, y, training=training)
        if self.tokens and not training:
            outputs = F.softmax(outputs, dim=-1)
        return outputs


def build_twin_in_keras(case):
    model = TwinInKeras(build_twin(case), case.tokens)
    loss = (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if case.tokens
        else "mse"
    )
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss)
    return model


# --- contenders --------------------------------------------------------------


def keras_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def keras_contender(model, data, feed_targets, predicts=True, logits=False):
    """`fit` and `predict_on_batch`; `feed_targets` passes `[x, y]` as input.

    `logits`: the model's training outputs are logits (a token twin's).
    """
    x, y = data
    inputs = [x, y] if feed_targets else x
    batch = x[:BATCH]

    def train_epoch():
        model.fit(inputs, y, batch_size=BATCH, epochs=1, verbose=0)

    def predict_batch():
        model.predict_on_batch(batch)

    def outputs(x, y):
        fed = [x, y] if feed_targets else x
        with torch.no_grad():
            tensors = keras.tree.map_structure(keras.ops.convert_to_tensor, fed)
            training = model(tensors, training=True)
        if logits:
            training = F.softmax(training, dim=-1)
        return model.predict_on_batch(x), _numpy(training)

    return Contender(
        keras_params(model), train_epoch, predict_batch if predicts else None, outputs
    )


def torch_loss(case):
    if not case.tokens:
        return F.mse_loss

    def cross_entropy(logits, y):
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=0)

    return cross_entropy


def torch_contender(net, data, case):
    """A plain training loop, shuffled like `fit`, and a free-running batch."""
    x, y = to_device(data[0]), to_device(data[1])
    batch = data[0][:BATCH]
    loss_fn = torch_loss(case)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=LEARNING_RATE, eps=ADAM_EPSILON)

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

    @torch.no_grad()
    def outputs(x, y):
        free = net.predict(to_device(x))
        training = net(to_device(x), to_device(y))
        if case.tokens:
            training = F.softmax(training, dim=-1)
        return free.cpu().numpy(), training.cpu().numpy()

    params = sum(p.numel() for p in trainable)
    return Contender(params, train_epoch, predict_batch, outputs)


def build_contender(case, name, data, model=None):
    """The contender `name` of `case`, trained on `data`.

    `model` is the kseq2seq contender's model (built when not given); twins
    get its weights when it is given, so that their outputs can be compared.
    """
    if name == "keras":
        built = stock_keras.build(case)
        contender = keras_contender(
            built, data, case.teacher_forced, case.keras_predicts
        )
        # Its own weights: nothing to compare.
        return dataclasses.replace(contender, outputs=None)
    if name == "kseq2seq":
        if model is None:
            model = build_kseq2seq(case)
        return keras_contender(model, data, case.teacher_forced)
    if name == "keras_twin":
        wrapped = build_twin_in_keras(case)
        if model is not None:
            wrapped.net.module.copy_from(model)
        return keras_contender(wrapped, data, case.teacher_forced, logits=case.tokens)
    net = build_twin(case, tutorial_attention=name == "pytorch_tutorial")
    if model is not None:
        net.copy_from(model)
    return torch_contender(net, data, case)


# --- checks ------------------------------------------------------------------


def check_equivalence(case, contenders, data):
    """Compares every twin's outputs with kseq2seq's, free-running and in
    training (teacher-forced where the model is).

    Returns the largest absolute differences by contender; raises if one
    exceeds `TOLERANCE`: a twin that computes something else is not timed.
    """
    x, y = data[0][:BATCH], data[1][:BATCH]
    ours = contenders["kseq2seq"].outputs(x, y)
    diffs = {}
    for name, contender in contenders.items():
        if name == "kseq2seq" or contender.outputs is None:
            continue
        theirs = contender.outputs(x, y)
        diffs[name] = {
            kind: float(np.abs(a - b).max())
            for kind, a, b in zip(("free_running", "training"), ours, theirs)
        }
    worst = max(d for per_kind in diffs.values() for d in per_kind.values())
    if worst > TOLERANCE:
        raise AssertionError(f"{case.key}: kseq2seq and its twins differ: {diffs}")
    return diffs


def check_params(case, contenders):
    """Trainable parameters of each contender; raises unless they all agree."""
    counts = {name: contender.params for name, contender in contenders.items()}
    if len(set(counts.values())) != 1:
        raise AssertionError(f"{case.key}: parameter counts differ: {counts}")
    return counts
