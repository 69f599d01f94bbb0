"""Model-level tests of the three builders: SimpleSeq2Seq, Seq2Seq and
AttentionSeq2Seq (reference API of farizrahman4u/seq2seq on Keras 3)."""

import inspect
import re
import warnings

import keras
import numpy as np
import pytest

import kseq2seq
from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq
from kseq2seq import StateBridge

to_numpy = keras.ops.convert_to_numpy

MODEL_CLASSES = [SimpleSeq2Seq, Seq2Seq, AttentionSeq2Seq]
CLASS_IDS = [cls.__name__ for cls in MODEL_CLASSES]


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _predict(model, x, **kwargs):
    return model.predict(x, verbose=0, **kwargs)


def _fit_one_epoch(model, x, y, **kwargs):
    history = model.fit(x, y, epochs=1, verbose=0, **kwargs)
    loss = history.history["loss"]
    assert len(loss) == 1 and np.isfinite(loss[0])
    return loss[0]


def _copy_trainable_weights(source, target):
    """Copies the trainable weights (the stateful models have extra state
    variables, so `get_weights` lists may differ in length)."""
    assert len(source.trainable_weights) == len(target.trainable_weights)
    for src, dst in zip(source.trainable_weights, target.trainable_weights):
        assert tuple(src.shape) == tuple(dst.shape)
        dst.assign(src.value)


# ---------------------------------------------------------------------------
# 1. Reference examples, compile defaults, positional order, shapes, imports.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "depth, encoder_cells, decoder_cells",
    [(1, 1, 1), (3, 3, 3), ((4, 5), 4, 5)],
    ids=["depth1", "depth3", "depth4-5"],
)
def test_simple_seq2seq_reference_example(depth, encoder_cells, decoder_cells):
    model = SimpleSeq2Seq(
        input_dim=5, hidden_dim=10, output_length=8, output_dim=8, depth=depth
    )
    # depth=1 builds exactly one decoder layer (the reference built two).
    assert len(model.encoder.cells) == encoder_cells
    assert len(model.decoder.cells) == decoder_cells
    model.compile(loss="mse", optimizer="rmsprop")
    x, y = _rand(6, 7, 5), _rand(6, 8, 8, seed=1)
    _fit_one_epoch(model, x, y)
    assert _predict(model, x).shape == (6, 8, 8)


@pytest.mark.parametrize("peek", [False, True])
def test_seq2seq_reference_example(peek):
    model = Seq2Seq(
        batch_input_shape=(16, 7, 5),
        hidden_dim=10,
        output_length=8,
        output_dim=20,
        depth=4,
        peek=peek,
    )
    assert len(model.encoder.cells) == 4
    assert len(model.decoder.cells) == 4
    assert model.decoder.peek is peek
    model.compile(loss="mse", optimizer="rmsprop")
    x, y = _rand(16, 7, 5), _rand(16, 8, 20, seed=1)
    _fit_one_epoch(model, x, y, batch_size=16)
    assert _predict(model, x, batch_size=16).shape == (16, 8, 20)


def test_attention_seq2seq_reference_example():
    model = AttentionSeq2Seq(
        input_dim=5,
        input_length=7,
        hidden_dim=10,
        output_length=8,
        output_dim=20,
        depth=4,
    )
    # Bidirectional by default: a forward and a backward cell per layer.
    assert model.encoder.depth == 4 and model.encoder.bidirectional
    assert len(model.encoder.cells) == 4 * 2
    assert len(model.decoder.cells) == 4
    model.compile(loss="mse", optimizer="rmsprop")
    x, y = _rand(4, 7, 5), _rand(4, 8, 20, seed=1)
    _fit_one_epoch(model, x, y)
    assert _predict(model, x).shape == (4, 8, 20)


def test_teacher_forced_seq2seq_trains_with_and_without_ground_truth_input():
    model = Seq2Seq(
        input_dim=3,
        input_length=5,
        hidden_dim=4,
        output_length=4,
        output_dim=2,
        depth=2,
        teacher_force=True,
    )
    model.compile(loss="mse", optimizer="rmsprop")
    x, y = _rand(4, 5, 3), _rand(4, 4, 2, seed=1)
    _fit_one_epoch(model, [x, y], y, batch_size=4)
    _fit_one_epoch(model, x, y, batch_size=4)
    # Inference runs free: x alone, no dummy ground truth.
    assert _predict(model, x).shape == (4, 4, 2)


def test_models_come_compiled_with_mse_and_compile_replaces_it():
    model = SimpleSeq2Seq(input_dim=3, hidden_dim=4, output_length=4, output_dim=2)
    assert model.compiled
    assert model.loss == "mse"
    x, y = _rand(4, 5, 3), _rand(4, 4, 2, seed=1)
    _fit_one_epoch(model, x, y)  # no compile() call needed
    y_pred = _predict(model, x)
    mse = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(mse, np.mean((y_pred - y) ** 2), rtol=1e-4)

    model.compile(loss="mae", optimizer="rmsprop")
    assert model.loss == "mae"
    mae = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(mae, np.mean(np.abs(y_pred - y)), rtol=1e-4)


def test_every_builder_comes_compiled_with_mse_and_rmsprop():
    for cls in MODEL_CLASSES:
        model = cls(input_dim=3, hidden_dim=4, output_length=4, output_dim=2)
        assert model.compiled and model.loss == "mse", cls.__name__
        assert isinstance(model.optimizer, keras.optimizers.RMSprop), cls.__name__


def test_simple_seq2seq_positional_order():
    # output_dim, output_length, hidden_dim, input_shape
    model = SimpleSeq2Seq(8, 4, 6, (7, 5))
    assert model.spec.batch_input_shape == (None, 7, 5)
    assert model.encoder.units == 6
    assert model.decoder.output_length == 4
    assert model.decoder.output_dim == 8
    assert _predict(model, _rand(2, 7, 5)).shape == (2, 4, 8)


def test_seq2seq_and_attention_positional_order():
    for cls in (Seq2Seq, AttentionSeq2Seq):
        # output_dim, output_length, batch_input_shape
        model = cls(8, 4, (None, 7, 5))
        assert model.spec.batch_input_shape == (None, 7, 5), cls.__name__
        assert model.decoder.output_length == 4
        assert model.decoder.output_dim == 8
        assert _predict(model, _rand(2, 7, 5)).shape == (2, 4, 8)


def test_positional_parameter_names_match_the_reference():
    def names(cls, n):
        return list(inspect.signature(cls.__init__).parameters)[1 : n + 1]

    assert names(SimpleSeq2Seq, 5) == [
        "output_dim",
        "output_length",
        "hidden_dim",
        "input_shape",
        "batch_size",
    ]
    assert names(Seq2Seq, 5) == [
        "output_dim",
        "output_length",
        "batch_input_shape",
        "input_shape",
        "batch_size",
    ]
    assert names(AttentionSeq2Seq, 5) == [
        "output_dim",
        "output_length",
        "batch_input_shape",
        "batch_size",
        "input_shape",
    ]


def test_hidden_dim_defaults_to_output_dim():
    for cls in MODEL_CLASSES:
        model = cls(input_dim=3, output_length=4, output_dim=6, hidden_dim=None)
        assert model.encoder.units == 6, cls.__name__
        assert model.decoder.units == 6, cls.__name__
        explicit = cls(input_dim=3, output_length=4, output_dim=6, hidden_dim=5)
        assert explicit.encoder.units == 5, cls.__name__


@pytest.mark.parametrize(
    "shape_kwargs, expected",
    [
        (
            dict(
                batch_input_shape=(None, 7, 5),
                input_shape=(6, 4),
                batch_size=2,
                input_dim=3,
                input_length=2,
            ),
            (None, 7, 5),
        ),
        (
            dict(input_shape=(6, 4), batch_size=2, input_dim=3, input_length=2),
            (2, 6, 4),
        ),
        (dict(input_shape=(6, 4), input_dim=3, input_length=2), (None, 6, 4)),
        (dict(input_dim=3, input_length=2, batch_size=5), (5, 2, 3)),
        (dict(input_dim=3), (None, None, 3)),
        # Lists are accepted for the shapes.
        (dict(batch_input_shape=[None, 7, 5], input_dim=3), (None, 7, 5)),
        (dict(input_shape=[6, 4], input_dim=3), (None, 6, 4)),
    ],
    ids=[
        "bis-wins",
        "input_shape-wins",
        "input_shape-no-batch",
        "input_dim",
        "input_dim-only",
        "bis-list",
        "input_shape-list",
    ],
)
@pytest.mark.filterwarnings("ignore:.*takes precedence:UserWarning")
def test_shape_precedence(shape_kwargs, expected):
    batch = expected[0] or 2
    length = expected[1] or 4
    losing_dim = 3 if expected[2] != 3 else 4
    for cls in MODEL_CLASSES:
        model = cls(output_dim=2, output_length=3, hidden_dim=4, **shape_kwargs)
        assert tuple(model.spec.batch_input_shape) == expected, cls.__name__
        x = _rand(batch, length, expected[2])
        assert _predict(model, x, batch_size=batch).shape == (batch, 3, 2)
        # The losing feature size is rejected.
        with pytest.raises(ValueError, match="input_dim"):
            _predict(model, _rand(batch, length, losing_dim), batch_size=batch)


@pytest.mark.parametrize(
    "shape_kwargs, winner, ignored",
    [
        (dict(input_dim=5, input_shape=(7, 6)), "input_shape=(7, 6)", "input_dim=5"),
        (
            dict(input_shape=[7, 6], input_length=3),
            "input_shape=[7, 6]",
            "input_length=3",
        ),
        (
            dict(batch_input_shape=(None, 7, 6), batch_size=4),
            "batch_input_shape=(None, 7, 6)",
            "batch_size=4",
        ),
        (
            dict(batch_input_shape=(2, 7, 6), input_shape=(7, 5)),
            "batch_input_shape=(2, 7, 6)",
            "input_shape=(7, 5)",
        ),
        (
            dict(batch_input_shape=(2, 7, 6), input_dim=5),
            "batch_input_shape=(2, 7, 6)",
            "input_dim=5",
        ),
        (
            dict(input_vocab_size=9, batch_input_shape=(2, 7), input_length=3),
            "batch_input_shape=(2, 7)",
            "input_length=3",
        ),
    ],
)
def test_conflicting_shape_arguments_warn_which_one_is_ignored(
    shape_kwargs, winner, ignored
):
    message = re.escape(f"`{winner}` takes precedence over `{ignored}`, which is")
    with pytest.warns(UserWarning, match=message) as record:
        model = Seq2Seq(output_dim=2, output_length=3, hidden_dim=4, **shape_kwargs)
    assert len(record) == 1
    assert record[0].filename == __file__  # points at the builder's call
    assert model.spec.batch_input_shape[-1] in (6, 7)


@pytest.mark.parametrize(
    "shape_kwargs",
    [
        dict(input_dim=6, input_shape=(7, 6), input_length=7, batch_size=2),
        dict(batch_input_shape=[2, 7, 6], input_shape=(7, 6), batch_size=2),
        dict(batch_input_shape=(None, 7, 6), input_dim=6, input_length=7),
        dict(input_vocab_size=9, batch_input_shape=(2, 7), input_length=7),
        dict(input_dim=6, input_length=7, batch_size=2),
    ],
)
def test_agreeing_shape_arguments_do_not_warn(shape_kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Seq2Seq(output_dim=2, output_length=3, hidden_dim=4, **shape_kwargs)


def test_depth_accepts_a_list():
    for cls in MODEL_CLASSES:
        model = cls(
            input_dim=3, hidden_dim=4, output_length=4, output_dim=2, depth=[2, 3]
        )
        directions = 2 if cls is AttentionSeq2Seq else 1
        assert len(model.encoder.cells) == 2 * directions, cls.__name__
        assert len(model.decoder.cells) == 3, cls.__name__
        assert _predict(model, _rand(4, 5, 3)).shape == (4, 4, 2)


def test_input_length_none_accepts_any_length():
    for cls in MODEL_CLASSES:
        model = cls(
            input_dim=3, input_length=None, hidden_dim=4, output_length=4, output_dim=2
        )
        assert model.spec.batch_input_shape[1] is None, cls.__name__
        short = _predict(model, _rand(3, 5, 3))
        long = _predict(model, _rand(3, 9, 3))
        assert short.shape == long.shape == (3, 4, 2)
        assert not np.allclose(short, long)


def test_imports_and_model_base_class():
    from kseq2seq.models import AttentionSeq2Seq as A
    from kseq2seq.models import Seq2Seq as S
    from kseq2seq.models import SimpleSeq2Seq as Simple

    assert Simple is kseq2seq.SimpleSeq2Seq
    assert S is kseq2seq.Seq2Seq
    assert A is kseq2seq.AttentionSeq2Seq
    for cls in (Simple, S, A):
        model = cls(input_dim=3, hidden_dim=4, output_length=4, output_dim=2)
        assert isinstance(model, keras.Model)
        assert isinstance(model, kseq2seq.Seq2SeqModel)


# ---------------------------------------------------------------------------
# 2. Seq2Seq flag grid.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("teacher_force", [False, True], ids=["free", "tf"])
@pytest.mark.parametrize("inner_broadcast_state", [False, True], ids=["own", "shared"])
@pytest.mark.parametrize("broadcast_state", [False, True], ids=["nobc", "bc"])
@pytest.mark.parametrize("peek", [False, True], ids=["nopeek", "peek"])
@pytest.mark.parametrize("depth", [1, 3, (2, 3)], ids=["d1", "d3", "d2-3"])
def test_seq2seq_flag_grid(
    depth, peek, broadcast_state, inner_broadcast_state, teacher_force
):
    model = Seq2Seq(
        input_dim=3,
        input_length=5,
        hidden_dim=4,
        output_length=4,
        output_dim=2,
        depth=depth,
        peek=peek,
        broadcast_state=broadcast_state,
        inner_broadcast_state=inner_broadcast_state,
        teacher_force=teacher_force,
    )
    encoder_depth, decoder_depth = (depth, depth) if isinstance(depth, int) else depth
    assert len(model.encoder.cells) == encoder_depth
    assert len(model.decoder.cells) == decoder_depth
    if broadcast_state:
        assert isinstance(model.bridge, StateBridge)
    else:
        assert model.bridge is None
    x, y = _rand(4, 5, 3), _rand(4, 4, 2, seed=1)
    if teacher_force:
        loss = model.train_on_batch([x, y], y)
        assert np.isfinite(loss)
    assert _predict(model, x).shape == (4, 4, 2)


# ---------------------------------------------------------------------------
# 3. Serialization.
# ---------------------------------------------------------------------------

SMALL = dict(hidden_dim=4, output_length=4, output_dim=2)

SAVE_CASES = {
    "simple": lambda: SimpleSeq2Seq(input_dim=3, depth=(2, 1), **SMALL),
    "seq2seq": lambda: Seq2Seq(input_dim=3, peek=True, **SMALL),
    "seq2seq_teacher_force": lambda: Seq2Seq(
        input_dim=3, input_length=5, depth=2, teacher_force=True, **SMALL
    ),
    "seq2seq_own_states": lambda: Seq2Seq(
        input_dim=3, depth=(2, 3), inner_broadcast_state=False, **SMALL
    ),
    "seq2seq_stateful": lambda: Seq2Seq(
        batch_input_shape=(4, 5, 3), stateful=True, **SMALL
    ),
    "attention": lambda: AttentionSeq2Seq(input_dim=3, depth=2, **SMALL),
    "attention_unidirectional": lambda: AttentionSeq2Seq(
        input_dim=3, bidirectional=False, output_activation="softmax", **SMALL
    ),
}


@pytest.mark.parametrize("case", sorted(SAVE_CASES))
def test_save_load_and_config_round_trip(case, tmp_path):
    model = SAVE_CASES[case]()
    x, y = _rand(4, 5, 3), _rand(4, 4, 2, seed=1)
    inputs = [x, y] if model.spec.teacher_force else x
    model.train_on_batch(inputs, y)
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    assert len(restored.decoder.cells) == len(model.decoder.cells)
    assert len(restored.weights) == len(model.weights)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    np.testing.assert_allclose(
        _predict(restored, x, batch_size=4),
        _predict(model, x, batch_size=4),
        atol=1e-6,
    )

    # get_config -> from_config -> get_config.
    config = model.get_config()
    clone = type(model).from_config(config)
    assert type(clone) is type(model)
    assert clone.get_config() == config
    assert [tuple(w.shape) for w in clone.weights] == [
        tuple(w.shape) for w in model.weights
    ]


def test_every_public_class_is_registered():
    classes = [
        getattr(kseq2seq, name)
        for name in kseq2seq.__all__
        if inspect.isclass(getattr(kseq2seq, name))
    ]
    assert {SimpleSeq2Seq, Seq2Seq, AttentionSeq2Seq} <= set(classes)
    for cls in classes:
        name = f"kseq2seq>{cls.__name__}"
        assert keras.saving.get_registered_name(cls) == name
        assert keras.saving.get_registered_object(name) is cls


# ---------------------------------------------------------------------------
# 4. Introspection: summary, get_layer, the encoder's outputs.
# ---------------------------------------------------------------------------


def test_summary_names_encoder_and_decoder():
    for cls in MODEL_CLASSES:
        model = cls(input_dim=3, hidden_dim=4, output_length=4, output_dim=2)
        lines = []
        model.summary(print_fn=lambda line, **kwargs: lines.append(line))
        text = "\n".join(lines)
        assert "encoder" in text and "RecurrentEncoder" in text, text
        assert "decoder" in text and "RecurrentDecoder" in text, text
        assert model.get_layer("encoder") is model.encoder
        assert model.get_layer("decoder") is model.decoder


@pytest.mark.parametrize(
    "cls, kwargs, width",
    [
        (SimpleSeq2Seq, {}, 6),
        (Seq2Seq, {}, 6),
        (Seq2Seq, {"depth": (2, 3), "inner_broadcast_state": False}, 6),
        (AttentionSeq2Seq, {}, 12),
        (AttentionSeq2Seq, {"bidirectional": False}, 6),
    ],
    ids=["simple", "seq2seq", "seq2seq-own", "attention-bidir", "attention-uni"],
)
def test_encoder_returns_sequence_context_states(cls, kwargs, width):
    model = cls(input_dim=3, hidden_dim=6, output_length=4, output_dim=2, **kwargs)
    outputs = model.encoder(_rand(4, 5, 3))
    assert len(outputs) == 3
    sequence, context, states = outputs
    assert tuple(sequence.shape) == (4, 5, width)
    assert tuple(context.shape) == (4, width)
    assert isinstance(states, (list, tuple)) and len(states) >= 1
    # The context is the top layer's final output: the last step of the
    # sequence for a unidirectional encoder.
    if width == 6:
        np.testing.assert_allclose(
            to_numpy(context), to_numpy(sequence)[:, -1], atol=1e-6
        )


# ---------------------------------------------------------------------------
# 5. Inside a bigger functional model, with masking.
# ---------------------------------------------------------------------------


def test_inside_a_functional_model_with_embedding():
    inp = keras.Input((None,), dtype="int32")
    e = keras.layers.Embedding(20, 5)(inp)
    out = SimpleSeq2Seq(input_dim=5, hidden_dim=8, output_length=3, output_dim=4)(e)
    m = keras.Model(inp, out)
    assert tuple(m.output.shape) == (None, 3, 4)
    m.compile(loss="mse", optimizer="rmsprop")
    tokens = np.random.default_rng(0).integers(1, 20, size=(6, 7)).astype("int32")
    before = _predict(m, tokens)
    _fit_one_epoch(m, tokens, _rand(6, 3, 4), batch_size=6)
    after = _predict(m, tokens)
    assert after.shape == (6, 3, 4)
    assert not np.allclose(before, after)  # the inner model's weights trained


MASK_CASES = {
    "simple": lambda: SimpleSeq2Seq(
        input_dim=5, hidden_dim=8, output_length=3, output_dim=4, depth=2
    ),
    "seq2seq": lambda: Seq2Seq(
        input_dim=5, hidden_dim=8, output_length=3, output_dim=4, depth=2, peek=True
    ),
    "seq2seq_own_states": lambda: Seq2Seq(
        input_dim=5,
        hidden_dim=8,
        output_length=3,
        output_dim=4,
        depth=2,
        inner_broadcast_state=False,
    ),
    "attention_bidirectional": lambda: AttentionSeq2Seq(
        input_dim=5, hidden_dim=8, output_length=3, output_dim=4, depth=2
    ),
    "attention_unidirectional": lambda: AttentionSeq2Seq(
        input_dim=5,
        hidden_dim=8,
        output_length=3,
        output_dim=4,
        bidirectional=False,
    ),
}


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_mask_zero_padding_does_not_change_the_output(case):
    inp = keras.Input((None,), dtype="int32")
    e = keras.layers.Embedding(20, 5, mask_zero=True)(inp)
    m = keras.Model(inp, MASK_CASES[case]()(e))
    short = _predict(m, np.array([[3, 4, 5]], dtype="int32"))
    padded = _predict(m, np.array([[3, 4, 5, 0, 0]], dtype="int32"))
    assert short.shape == padded.shape == (1, 3, 4)
    np.testing.assert_allclose(padded, short, atol=1e-5)
    # In a batch with a longer sequence too.
    batch = _predict(m, np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]], dtype="int32"))
    np.testing.assert_allclose(batch[:1], short, atol=1e-5)
    # Without the mask, padding does change the output (the test has teeth).
    unmasked = _predict(m, np.array([[3, 4, 5, 6, 7]], dtype="int32"))
    assert not np.allclose(unmasked, short, atol=1e-5)


# ---------------------------------------------------------------------------
# 6. dropout, unroll, stateful.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=CLASS_IDS)
def test_dropout_only_in_training(cls):
    kwargs = dict(
        input_dim=3,
        input_length=5,
        hidden_dim=4,
        output_length=3,
        output_dim=2,
        depth=2,
    )
    model = cls(dropout=0.5, **kwargs)
    reference = cls(dropout=0.0, **kwargs)
    reference.set_weights(model.get_weights())
    x = _rand(4, 5, 3)
    inference = to_numpy(model(x, training=False))
    np.testing.assert_array_equal(to_numpy(model(x, training=False)), inference)
    np.testing.assert_allclose(
        inference, to_numpy(reference(x, training=False)), atol=1e-6
    )
    np.testing.assert_allclose(_predict(model, x), inference, atol=1e-6)
    training = to_numpy(model(x, training=True))
    assert training.shape == inference.shape
    assert not np.allclose(training, inference, atol=1e-4)
    # Without dropout, training=True changes nothing.
    np.testing.assert_allclose(
        to_numpy(reference(x, training=True)), inference, atol=1e-6
    )


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (SimpleSeq2Seq, {"depth": 2}),
        (Seq2Seq, {"depth": 2, "peek": True}),
        (Seq2Seq, {"depth": (2, 3), "inner_broadcast_state": False}),
        (AttentionSeq2Seq, {"depth": 2}),
    ],
    ids=["simple", "seq2seq", "seq2seq-own", "attention"],
)
def test_unroll_gives_the_same_predictions(cls, kwargs):
    common = dict(
        input_dim=3,
        input_length=5,
        hidden_dim=4,
        output_length=4,
        output_dim=2,
        **kwargs,
    )
    unrolled = cls(unroll=True, **common)
    rolled = cls(unroll=False, **common)
    rolled.set_weights(unrolled.get_weights())
    x = _rand(4, 5, 3)
    np.testing.assert_array_equal(_predict(unrolled, x), _predict(rolled, x))


STATEFUL_CASES = {
    "simple": lambda **kw: SimpleSeq2Seq(depth=2, **kw),
    "seq2seq": lambda **kw: Seq2Seq(depth=2, **kw),
    "seq2seq_own_states": lambda **kw: Seq2Seq(
        depth=2, inner_broadcast_state=False, **kw
    ),
    "attention": lambda **kw: AttentionSeq2Seq(**kw),
}


@pytest.mark.parametrize("case", sorted(STATEFUL_CASES))
def test_stateful_carries_state_until_reset(case):
    model = STATEFUL_CASES[case](
        batch_input_shape=(4, 6, 3),
        hidden_dim=4,
        output_length=3,
        output_dim=2,
        stateful=True,
    )
    x = _rand(4, 6, 3)
    first = _predict(model, x, batch_size=4)
    second = _predict(model, x, batch_size=4)
    assert not np.allclose(first, second, atol=1e-6)
    model.reset_states()
    np.testing.assert_allclose(_predict(model, x, batch_size=4), first, atol=1e-6)


@pytest.mark.parametrize(
    "case", ["simple", "seq2seq", "seq2seq_own_states", "attention_unidirectional"]
)
def test_stateful_chunks_equal_the_whole_sequence(case):
    builders = dict(STATEFUL_CASES)
    builders["attention_unidirectional"] = lambda **kw: AttentionSeq2Seq(
        bidirectional=False, **kw
    )
    common = dict(hidden_dim=4, output_length=3, output_dim=2)
    stateful = builders[case](batch_input_shape=(4, 3, 3), stateful=True, **common)
    whole = builders[case](input_dim=3, input_length=None, **common)
    _copy_trainable_weights(stateful, whole)
    x = keras.ops.convert_to_tensor(_rand(4, 6, 3))
    stateful.encoder(x[:, :3])
    _, chunked_context, chunked_states = stateful.encoder(x[:, 3:])
    _, context, states = whole.encoder(x)
    np.testing.assert_allclose(to_numpy(chunked_context), to_numpy(context), atol=1e-5)
    flat = [t for s in states for t in s]
    chunked_flat = [t for s in chunked_states for t in s]
    assert len(chunked_flat) == len(flat)
    for a, b in zip(chunked_flat, flat):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-5)


# ---------------------------------------------------------------------------
# 7. Bad arguments and bad data raise ValueError naming the argument.
# ---------------------------------------------------------------------------

VALID = dict(input_dim=3, hidden_dim=4, output_length=4, output_dim=2)

BAD_ARGUMENTS = [
    ("no-shape", dict(input_dim=None), r"input_dim"),
    ("input_dim=0", dict(input_dim=0), r"input_dim=0"),
    ("input_dim=-1", dict(input_dim=-1), r"input_dim=-1"),
    ("output_dim=0", dict(output_dim=0), r"output_dim=0"),
    ("output_length=0", dict(output_length=0), r"output_length=0"),
    ("output_length=2.5", dict(output_length=2.5), r"output_length=2\.5"),
    ("hidden_dim=0", dict(hidden_dim=0), r"hidden_dim=0"),
    ("depth=0", dict(depth=0), r"depth=0"),
    ("depth=(1,)", dict(depth=(1,)), r"depth=\(1,\)"),
    ("depth=(2,0)", dict(depth=(2, 0)), r"depth=\(2, 0\)"),
    ("depth='3'", dict(depth="3"), r"depth='3'"),
    ("dropout=1.0", dict(dropout=1.0), r"dropout=1\.0"),
    ("dropout=-0.1", dict(dropout=-0.1), r"dropout=-0\.1"),
    ("stateful-no-batch", dict(stateful=True), r"stateful"),
    ("unroll-no-length", dict(unroll=True), r"unroll.*input_length"),
    (
        "bad-activation",
        dict(output_activation="not_an_activation"),
        r"output_activation='not_an_activation'",
    ),
    (
        "batch_input_shape-rank",
        dict(batch_input_shape=(7, 3)),
        r"batch_input_shape=\(7, 3\)",
    ),
    ("input_shape-rank", dict(input_shape=(2, 7, 3)), r"input_shape=\(2, 7, 3\)"),
]


@pytest.mark.parametrize(
    "overrides, match",
    [case[1:] for case in BAD_ARGUMENTS],
    ids=[case[0] for case in BAD_ARGUMENTS],
)
def test_bad_arguments_raise_value_error(overrides, match):
    kwargs = {**VALID, **overrides}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    for cls in MODEL_CLASSES:
        with pytest.raises(ValueError, match=match):
            cls(**kwargs)


def _small(cls, **kwargs):
    return cls(**{**VALID, **kwargs})


def _check_wrong_feature_size(cls):
    model = _small(cls, input_dim=5)
    with pytest.raises(ValueError, match=r"input_dim.*x\.shape=\(2, 7, 4\)"):
        _predict(model, _rand(2, 7, 4))


def _check_wrong_rank(cls):
    model = _small(cls, input_dim=5)
    with pytest.raises(ValueError, match=r"x\.shape=\(2, 7\)"):
        _predict(model, _rand(2, 7))


def _check_wrong_target_length(cls):
    model = _small(cls)
    with pytest.raises(ValueError, match=r"output_length.*\(4, 5, 2\)"):
        model.fit(_rand(4, 6, 3), _rand(4, 5, 2), epochs=1, verbose=0)


def _check_wrong_target_dim(cls):
    model = _small(cls)
    with pytest.raises(ValueError, match=r"output_dim.*\(4, 4, 3\)"):
        model.fit(_rand(4, 6, 3), _rand(4, 4, 3), epochs=1, verbose=0)


def _check_fixed_length(cls):
    model = _small(cls, input_length=6)
    assert _predict(model, _rand(2, 6, 3)).shape == (2, 4, 2)
    with pytest.raises(ValueError, match=r"input_length.*x\.shape=\(2, 7, 3\)"):
        _predict(model, _rand(2, 7, 3))


def _check_stateful_batch_size(cls):
    model = cls(
        batch_input_shape=(4, 6, 3),
        hidden_dim=4,
        output_length=4,
        output_dim=2,
        stateful=True,
    )
    assert _predict(model, _rand(4, 6, 3), batch_size=4).shape == (4, 4, 2)
    with pytest.raises(ValueError, match=r"batch_size=4.*\b3\b"):
        _predict(model, _rand(3, 6, 3), batch_size=3)


def _check_x_y_without_teacher_force(cls):
    model = _small(cls)
    x, y = _rand(4, 6, 3), _rand(4, 4, 2)
    with pytest.raises(ValueError, match=r"`x`.*2 tensors"):
        _predict(model, [x, y])
    with pytest.raises(ValueError, match=r"`x`.*2 tensors"):
        model.fit([x, y], y, epochs=1, verbose=0)


BAD_DATA = {
    "predict-wrong-feature-size": _check_wrong_feature_size,
    "predict-wrong-rank": _check_wrong_rank,
    "fit-wrong-output_length": _check_wrong_target_length,
    "fit-wrong-output_dim": _check_wrong_target_dim,
    "fixed-input_length-other-length": _check_fixed_length,
    "stateful-other-batch-size": _check_stateful_batch_size,
    "x-y-without-teacher_force": _check_x_y_without_teacher_force,
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_raises_value_error(case):
    for cls in MODEL_CLASSES:
        BAD_DATA[case](cls)


@pytest.mark.parametrize(
    "target_shape, match",
    [
        ((4, 5, 2), r"output_length.*\(4, 5, 2\)"),
        ((4, 4, 3), r"output_dim.*\(4, 4, 3\)"),
    ],
    ids=["output_length", "output_dim"],
)
def test_teacher_forced_fit_rejects_wrong_targets(target_shape, match):
    model = Seq2Seq(
        input_dim=3, hidden_dim=4, output_length=4, output_dim=2, teacher_force=True
    )
    x, y = _rand(4, 6, 3), _rand(*target_shape)
    with pytest.raises(ValueError, match=match):
        model.fit([x, y], y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, epochs=1, verbose=0)
