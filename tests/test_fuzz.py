"""Property-based tests of the builders' arguments and of the data they take.

Every combination of arguments either builds a model whose `predict`,
`encode` and training step give the documented shapes, or raises a
`ValueError` that names the argument at fault; the same for data of the wrong
shape or with values out of range. Never another exception.

Three properties, each drawing a valid configuration of one of the three
builders (every argument, including the shape arguments in all their forms,
token inputs and outputs, `stateful` with a batch size, `unroll` with a
length, ...):

- `test_valid_arguments_build_predict_and_train`: the model builds, predicts
  `(batch, output_length, output_dim)`, encodes, and takes a training step
  with a finite loss;
- `test_one_bad_argument_raises_a_value_error_naming_it`: the same
  configuration with one argument replaced by a bad value (a negative, a
  zero, a wrong type, a conflicting combination) raises a `ValueError` whose
  message names it;
- `test_bad_data_raises_a_value_error`: a valid model given data of the
  wrong shape, ids out of the vocabulary, empty arrays or, with
  `check_inputs=True`, NaN, raises a `ValueError` that names the problem.

Hypothesis runs derandomized (the same examples on every run, no example
database), with `deadline=None` since a build takes a tenth of a second.
With the settings below the three properties try 150 + 300 + 150 = 600
examples in 10 to 20 seconds on a 2-core CPU; run
`pytest tests/test_fuzz.py --hypothesis-show-statistics` to see the counts.
"""

import re

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq

BUILDERS = [SimpleSeq2Seq, Seq2Seq, AttentionSeq2Seq]
# A softmax head over a single output feature is valid, if pointless.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FLAGS = {
    SimpleSeq2Seq: ["bidirectional"],
    Seq2Seq: [
        "bidirectional",
        "broadcast_state",
        "inner_broadcast_state",
        "teacher_force",
        "peek",
    ],
    AttentionSeq2Seq: ["bidirectional", "teacher_force"],
}
CELLS = [
    "lstm",
    "gru",
    "simple_rnn",
    "GRU",
    keras.layers.LSTMCell,
    keras.layers.GRUCell,
    keras.layers.SimpleRNNCell,
]


def _shape(draw, values):
    """A shape argument as a tuple or a list: both are accepted."""
    return draw(st.sampled_from([tuple, list]))(values)


@st.composite
def configs(draw):
    """A valid configuration: `(builder, kwargs, facts)`.

    `facts` holds what the model must then accept and produce: the fixed
    batch size and input length (or `None`), the input width or input
    vocabulary, and the output shape.
    """
    cls = draw(st.sampled_from(BUILDERS))
    kw = {"output_length": draw(st.integers(1, 4))}
    facts = {"output_length": kw["output_length"]}
    tokens_in, tokens_out = draw(st.booleans()), draw(st.booleans())
    if tokens_out:
        vocab = draw(st.integers(3, 7))
        kw["output_vocab_size"] = vocab
        if draw(st.booleans()):
            kw["output_dim"] = vocab
        # hidden_dim would default to 128: keep the models small.
        kw["hidden_dim"] = draw(st.integers(1, 6))
        if draw(st.booleans()):
            start, end = draw(
                st.lists(st.integers(1, vocab - 1), min_size=2, max_size=2, unique=True)
            )
            kw.update(start_id=start, end_id=end)
        facts["output_dim"] = vocab
    else:
        kw["output_dim"] = draw(st.integers(1, 4))
        hidden = draw(st.none() | st.integers(1, 6))
        if hidden is not None:
            kw["hidden_dim"] = hidden
        kw["output_activation"] = draw(
            st.sampled_from([None, "softmax", "tanh", "relu", "sigmoid"])
        )
        facts["output_dim"] = kw["output_dim"]
    stateful, unroll = draw(st.booleans()), draw(st.booleans())
    kw.update(stateful=stateful, unroll=unroll)
    batch = draw(st.integers(1, 3)) if stateful or draw(st.booleans()) else None
    length = draw(st.integers(1, 5)) if unroll or draw(st.booleans()) else None
    facts.update(batch=batch, length=length, tokens_in=tokens_in)
    form = draw(st.sampled_from(["batch_input_shape", "input_shape", "input_dim"]))
    facts["form"] = form
    if tokens_in:
        vocab_in = draw(st.integers(2, 8))
        facts["input_vocab_size"] = vocab_in
        if draw(st.integers(0, 3)) == 0:
            width = draw(st.integers(1, 4))
            kw["input_embeddings"] = np.random.default_rng(0).normal(
                size=(vocab_in, width)
            )
            if draw(st.booleans()):
                kw["input_vocab_size"] = vocab_in
            if draw(st.booleans()):
                kw["embedding_dim"] = width
        else:
            kw["input_vocab_size"] = vocab_in
        if form == "batch_input_shape":
            kw["batch_input_shape"] = _shape(draw, (batch, length))
        elif form == "input_shape":
            kw.update(input_shape=_shape(draw, (length,)), batch_size=batch)
        else:
            kw.update(input_length=length, batch_size=batch)
    else:
        dim = draw(st.integers(1, 4))
        facts["input_dim"] = dim
        if form == "batch_input_shape":
            kw["batch_input_shape"] = _shape(draw, (batch, length, dim))
        elif form == "input_shape":
            kw.update(input_shape=_shape(draw, (length, dim)), batch_size=batch)
        else:
            kw.update(input_dim=dim, input_length=length, batch_size=batch)
    if (tokens_in or tokens_out) and "input_embeddings" not in kw:
        embedding = draw(st.none() | st.integers(1, 5))
        if embedding is not None:
            kw["embedding_dim"] = embedding
    depth = draw(
        st.integers(1, 3)
        | st.tuples(st.integers(1, 2), st.integers(1, 3))
        | st.lists(st.integers(1, 2), min_size=2, max_size=2)
    )
    kw.update(
        depth=depth,
        dropout=draw(st.sampled_from([0.0, 0.25]) | st.floats(0.0, 0.9)),
        cell=draw(st.sampled_from(CELLS)),
        reverse_input=draw(st.booleans()),
        check_inputs=draw(st.booleans()),
    )
    for flag in FLAGS[cls]:
        kw[flag] = draw(st.booleans())
    if cls is not SimpleSeq2Seq:
        kw["bridge"] = draw(st.sampled_from([None, "concat", "dense"]))
        if kw["teacher_force"] and draw(st.booleans()):
            kw["scheduled_sampling"] = 0.25
    if cls is Seq2Seq and tokens_out and not kw["peek"]:
        # A token decoder that reads neither the encoder's states nor the
        # context is refused (a ValueError); keep this configuration valid.
        if not (kw["broadcast_state"] and kw["bridge"] is not None):
            kw["peek"] = True
    return cls, kw, facts


def _inputs(facts, batch, length, seed=0):
    rng = np.random.default_rng(seed)
    if facts["tokens_in"]:
        # Ids, 0 (padding) included: whole rows of padding are valid too.
        return rng.integers(0, facts["input_vocab_size"], size=(batch, length))
    return rng.normal(size=(batch, length, facts["input_dim"])).astype("float32")


def _targets(facts, batch, cls_kw, seed=1):
    rng = np.random.default_rng(seed)
    shape = (batch, facts["output_length"])
    if cls_kw.get("output_vocab_size"):
        return rng.integers(0, cls_kw["output_vocab_size"], size=shape)
    return rng.uniform(size=shape + (facts["output_dim"],)).astype("float32")


def _sizes(data, facts):
    batch = facts["batch"] or data.draw(st.integers(1, 3), label="batch")
    length = facts["length"] or data.draw(st.integers(1, 5), label="length")
    return batch, length


@settings(FUZZ, max_examples=150)
@given(config=configs(), data=st.data())
def test_valid_arguments_build_predict_and_train(config, data):
    cls, kw, facts = config
    model = cls(**kw)
    batch, length = _sizes(data, facts)
    x = _inputs(facts, batch, length)
    y = _targets(facts, batch, kw)
    outputs = model.predict(x, batch_size=batch, verbose=0)
    assert outputs.shape == (batch, facts["output_length"], facts["output_dim"])
    assert np.isfinite(outputs).all()
    encoded = model.encode(x, batch_size=batch)
    assert encoded["sequence"].shape[:2] == (batch, length)
    assert encoded["context"].shape[0] == batch
    loss = model.train_on_batch(x, y)
    loss = loss[0] if isinstance(loss, list) else loss
    assert np.isfinite(loss)


BAD_SIZES = [0, -1, 2.5, "3", True, [2]]
BAD_FLAGS = [1, 0, "yes", None, [True]]


def _corruptions(cls, kw, facts):
    """`(argument, overrides, pattern)`: one argument made bad, and what the
    message must contain."""
    cases = []

    def add(name, values, pattern=None, extra=None):
        for value in values:
            cases.append((name, {name: value, **(extra or {})}, pattern or name))

    add("output_length", BAD_SIZES + [None])
    if kw.get("output_vocab_size"):
        vocab = kw["output_vocab_size"]
        add("output_vocab_size", [0, -3, 1.5, "5"])
        add("output_dim", [vocab + 1, 0], "output_dim")
        add("output_activation", ["relu", "tanh"])
        add("start_id", [0, -1, vocab, 1.5, None])
        add("end_id", [0, vocab + 3, "2"])
        add("end_id", [kw.get("start_id", 1)], "start_id.*end_id")
    else:
        add("output_dim", BAD_SIZES + [None])
        add("output_activation", ["not_an_activation", 3, ["relu"]])
        add("output_vocab_size", [0, -1], "output_vocab_size")
    add("hidden_dim", BAD_SIZES)
    form = facts["form"]
    if facts["tokens_in"]:
        add("input_dim", [3], "input_dim")
        if "input_embeddings" in kw:
            vocab_in = facts["input_vocab_size"]
            add(
                "input_embeddings",
                [np.zeros(4), np.zeros((vocab_in, 0)), np.full((vocab_in, 2), np.nan)],
                extra={"embedding_dim": None, "input_vocab_size": None},
            )
            add(
                "input_embeddings",
                [np.zeros((vocab_in + 1, 2)), "abc"],
                extra={"embedding_dim": None, "input_vocab_size": vocab_in},
            )
        else:
            add("input_vocab_size", [0, -1, 2.5, "5"])
        if form == "batch_input_shape":
            add("batch_input_shape", [(1, 2, 3), 5, (0, 3), (2, -1), (1.5, None)])
        elif form == "input_shape":
            add("input_shape", [(2, 3), (0,), (-2,), ("a",)])
            add("batch_size", [0, -1, 1.5])
        else:
            add("input_length", [0, -1, 2.5, "3"])
            add("batch_size", [0, -1, 1.5])
    else:
        dim = facts["input_dim"]
        if form == "batch_input_shape":
            add(
                "batch_input_shape",
                [(2, 3), (1, 2, 3, 4), 5, "abc", (0, 2, dim), (1, 2, 0), (1, 2, -dim)],
            )
        elif form == "input_shape":
            add("input_shape", [(dim,), (1, 2, dim), 7, (0, dim), (2, 0), (2, 1.5)])
            add("batch_size", [0, -1, 1.5])
        else:
            add("input_dim", BAD_SIZES + [None], "input_dim")
            add("input_length", [0, -1, 2.5, "3"])
            add("batch_size", [0, -1, 1.5])
    if not facts["batch"]:
        add("stateful", [True], "stateful.*batch")
    if not facts["length"]:
        add("unroll", [True], "unroll.*input_length")
    add(
        "depth",
        [0, -1, (1,), (1, 2, 3), (0, 1), (1, 0), "2", 1.5, True, None, (True, 1)],
    )
    add("dropout", [-0.1, 1.0, 1.5, "0.1", True, None, float("nan")])
    add("cell", ["lstmx", None, 3, ["lstm"], keras.layers.LSTM, {"a": 1}])
    if kw.get("output_vocab_size") or facts["tokens_in"]:
        extra = {"input_embeddings": None}
        if facts["tokens_in"]:
            extra["input_vocab_size"] = facts["input_vocab_size"]
        add("embedding_dim", [0, -1, 1.5], extra=extra)
    for flag in FLAGS[cls] + ["stateful", "unroll", "reverse_input", "check_inputs"]:
        add(flag, BAD_FLAGS)
    if cls is not SimpleSeq2Seq:
        add("bridge", ["sum", 1, ["concat"], True, ""])
        add("scheduled_sampling", [1.0, -0.5, "0.1"], extra={"teacher_force": True})
        add(
            "scheduled_sampling",
            [0.3],
            "scheduled_sampling.*teacher_force",
            extra={"teacher_force": False},
        )
    add("hiden_dim", [3])  # A misspelt argument: Keras names it.
    return cases


@settings(FUZZ, max_examples=300)
@given(config=configs(), data=st.data())
def test_one_bad_argument_raises_a_value_error_naming_it(config, data):
    cls, kw, facts = config
    cases = _corruptions(cls, kw, facts)
    name, overrides, pattern = data.draw(st.sampled_from(cases), label="corruption")
    with pytest.raises(ValueError) as error:
        cls(**{**kw, **overrides})
    assert re.search(pattern, str(error.value), re.S), (name, str(error.value))


def _data_corruptions(cls, kw, facts):
    """`(label, run, pattern)`: a valid model given bad data."""
    cases = []
    tokens_out = bool(kw.get("output_vocab_size"))
    cases.append(("no samples", "predict", (0, None), {}, r"no samples"))
    if not facts["length"]:
        cases.append(("no steps", "predict", (None, 0), {}, r"at least one step"))
    else:
        cases.append(("length", "predict", (None, "+1"), {}, r"input_length"))
    if facts["batch"] and kw["stateful"]:
        cases.append(("batch", "predict", ("+1", None), {}, r"batch_size"))
    if facts["tokens_in"]:
        cases.append(("id", "predict", None, {"x": "too_big"}, r"input_vocab_size"))
        cases.append(("id", "predict", None, {"x": "negative"}, r"input_vocab_size"))
        cases.append(("rank", "predict", None, {"x": "3d"}, r"x\.shape"))
    else:
        cases.append(("dim", "predict", None, {"x": "dim+1"}, r"input_dim"))
        cases.append(("rank", "predict", None, {"x": "2d"}, r"x\.shape"))
        if kw["check_inputs"]:
            cases.append(("nan x", "fit", None, {"x": "nan"}, r"check_inputs.*NaN"))
    cases.append(("y length", "fit", None, {"y": "length+1"}, r"output_length"))
    if tokens_out:
        cases.append(("y id", "fit", None, {"y": "too_big"}, r"output_vocab_size"))
        cases.append(("y rank", "fit", None, {"y": "one_hot"}, r"y\.shape"))
    else:
        cases.append(("y dim", "fit", None, {"y": "dim+1"}, r"output_dim"))
        if kw["check_inputs"]:
            cases.append(
                ("inf y", "fit", None, {"y": "inf"}, r"check_inputs.*infinite")
            )
    if not kw.get("teacher_force"):
        cases.append(("[x, y]", "predict", None, {"x": "pair"}, r"2 tensors"))
    cases.append(
        ("cardinality", "fit", None, {"y": "fewer"}, r"cardinality|no samples")
    )
    return cases


def _resize(size, change):
    """`change` is `None` (keep), an int (the new size) or `"+1"`."""
    if change is None:
        return size
    return size + 1 if change == "+1" else change


@settings(FUZZ, max_examples=150)
@given(config=configs(), data=st.data())
def test_bad_data_raises_a_value_error(config, data):
    cls, kw, facts = config
    model = cls(**kw)
    label, method, resize, spoil, pattern = data.draw(
        st.sampled_from(_data_corruptions(cls, kw, facts)), label="bad data"
    )
    batch, length = _sizes(data, facts)
    batch = max(batch, 2)  # "fewer" targets need two samples or more.
    if facts["batch"] and kw["stateful"]:
        batch = facts["batch"]
    if resize:
        batch, length = _resize(batch, resize[0]), _resize(length, resize[1])
    x = _inputs(facts, batch, length)
    y = _targets(facts, batch, kw)
    spoilt_x = spoil.get("x")
    if spoilt_x == "too_big":
        x = x + facts["input_vocab_size"]
    elif spoilt_x == "negative":
        x = x - facts["input_vocab_size"]
    elif spoilt_x == "3d":
        x = x[..., None]
    elif spoilt_x == "dim+1":
        x = np.concatenate([x, x[..., :1]], axis=-1)
    elif spoilt_x == "2d":
        x = x[..., 0]
    elif spoilt_x == "nan":
        x[-1, -1, 0] = np.nan
    elif spoilt_x == "pair":
        x = [x, y]
    spoilt_y = spoil.get("y")
    if spoilt_y == "length+1":
        y = np.concatenate([y, y[:, :1]], axis=1)
    elif spoilt_y == "too_big":
        y = y + kw["output_vocab_size"]
    elif spoilt_y == "one_hot":
        y = np.eye(kw["output_vocab_size"])[y]
    elif spoilt_y == "dim+1":
        y = np.concatenate([y, y[..., :1]], axis=-1)
    elif spoilt_y == "inf":
        y[0, 0, -1] = np.inf
    elif spoilt_y == "fewer":
        y = y[:-1]
    with pytest.raises(ValueError) as error:
        if method == "predict":
            model.predict(x, batch_size=batch, verbose=0)
        else:
            model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    assert re.search(pattern, str(error.value), re.S), (label, str(error.value))
