import keras
import numpy as np
import pytest

from kseq2seq import AttentionSeq2Seq
from kseq2seq import BahdanauAttention
from kseq2seq import LuongAttention
from kseq2seq import RecurrentDecoder
from kseq2seq.layers.attention import make_attention

to_numpy = keras.ops.convert_to_numpy

KINDS = ("bahdanau", "luong", "luong_general")


def _softmax(scores, mask=None):
    """Softmax over the valid positions only; 0 at the others."""
    if mask is None:
        mask = np.ones(scores.shape, bool)
    shifted = np.where(mask, scores, -np.inf)
    weights = np.exp(shifted - shifted.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


def _numpy_keys_and_scores(kind, layer, query, memory):
    """The keys and scores of one step, re-computed from the layer's weights."""
    values = [to_numpy(w) for w in layer.weights]
    if kind == "bahdanau":
        key_kernel, query_kernel, bias, v = values
        keys = memory @ key_kernel + bias
        return keys, np.tanh(keys + (query @ query_kernel)[:, None]) @ v
    keys = memory if kind == "luong" else memory @ values[0]
    return keys, np.einsum("bd,btd->bt", query, keys)


def _layer(kind, query_dim, memory_shape, rng):
    layer = make_attention(kind, 6)
    layer.build((memory_shape[0], query_dim), memory_shape)
    # Weights of unit scale keep the weights far from uniform.
    for weight in layer.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return layer


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("masked", [False, True])
def test_scores_weights_and_contexts_follow_the_formulas(kind, masked):
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(3, 5, 4)).astype("float32")
    query_dim = 4 if kind == "luong" else 3
    query = rng.normal(size=(3, query_dim)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    mask = mask if masked else None
    layer = _layer(kind, query_dim, memory.shape, rng)

    keys = layer.project_keys(memory)
    context, weights = layer(query, keys, memory, memory_mask=mask)

    expected_keys, scores = _numpy_keys_and_scores(kind, layer, query, memory)
    expected = _softmax(scores, mask)
    np.testing.assert_allclose(to_numpy(keys), expected_keys, atol=1e-5)
    np.testing.assert_allclose(to_numpy(weights), expected, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(context), np.einsum("bt,btd->bd", expected, memory), atol=1e-5
    )
    if masked:
        assert (to_numpy(weights)[~mask] == 0).all()


def test_padding_gets_exactly_zero_weight():
    rng = np.random.default_rng(1)
    memory = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    attention = BahdanauAttention(3)
    attention.build((2, 3), memory.shape)
    _, weights = attention(
        np.ones((2, 3), "float32"),
        attention.project_keys(memory),
        memory,
        memory_mask=mask,
    )
    weights = to_numpy(weights)
    assert (weights[0, 3:] == 0).all()
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)


def test_luong_dot_keys_are_the_memory_itself():
    memory = keras.ops.convert_to_tensor(np.ones((2, 5, 4), "float32"))
    attention = LuongAttention()
    attention.build((2, 4), (2, 5, 4))
    assert attention.project_keys(memory) is memory
    assert attention.weights == []


@pytest.mark.parametrize("score_mode", ["dot", "general"])
def test_luong_layer_config_round_trip(score_mode):
    layer = LuongAttention(score_mode, name="attention")
    config = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is LuongAttention
    assert restored.get_config() == layer.get_config()
    assert restored.score_mode == score_mode


def test_bad_attention_arguments_raise_value_error():
    with pytest.raises(ValueError, match="score_mode"):
        LuongAttention("concat")
    with pytest.raises(ValueError, match=r"query_shape=\(2, 3\)"):
        LuongAttention("dot").build((2, 3), (2, 5, 4))
    with pytest.raises(ValueError, match="attention_score"):
        make_attention("additive", 4)
    common = dict(input_dim=3, hidden_dim=4, output_length=2, output_dim=2)
    with pytest.raises(ValueError, match="`attention` must be one of"):
        AttentionSeq2Seq(attention="dot", **common)
    # A bidirectional encoder is twice as wide as a decoder started from
    # zeros or through a dense bridge.
    for bridge in (None, "dense"):
        with pytest.raises(ValueError, match="width 4 and encoder outputs of width 8"):
            AttentionSeq2Seq(attention="luong", bridge=bridge, **common)


# ---------------------------------------------------------------------------
# In a model.
# ---------------------------------------------------------------------------

VOCAB = 9

MODEL_OPTIONS = {
    "bahdanau": {},
    "luong": {"bidirectional": False},
    "luong_general": {},
}


def _token_model(kind, **options):
    options = dict(MODEL_OPTIONS[kind], **options)
    return AttentionSeq2Seq(
        input_vocab_size=VOCAB,
        output_vocab_size=VOCAB,
        output_length=4,
        hidden_dim=6,
        embedding_dim=4,
        attention=kind,
        **options,
    )


def _padded_ids():
    ids = np.array([[5, 4, 8, 6, 7], [7, 8, 0, 0, 0], [4, 4, 5, 0, 0]], "int32")
    return ids, [5, 2, 3]


def test_model_attention_changes_from_step_to_step():
    model = AttentionSeq2Seq(input_dim=3, hidden_dim=8, output_length=5, output_dim=2)
    rng = np.random.default_rng(2)
    # Weights of unit scale make the query's influence visible at a glance.
    for weight in model.decoder.attention.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    x = rng.normal(size=(4, 7, 3)).astype("float32")
    weights = model.attention_weights(x)
    assert weights.shape == (4, 5, 7)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    for t in range(1, 5):
        assert np.abs(weights[:, t] - weights[:, t - 1]).max() > 1e-3


def test_model_attention_ignores_padding_under_a_mask():
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 3, mask_zero=True)(inputs)
    seq2seq = AttentionSeq2Seq(input_dim=3, hidden_dim=6, output_length=4, output_dim=2)
    model = keras.Model(inputs, seq2seq(embedded))
    short = np.array([[4, 5, 6]])
    padded = np.array([[4, 5, 6, 0, 0]])
    np.testing.assert_allclose(
        model.predict(padded, verbose=0), model.predict(short, verbose=0), atol=1e-5
    )


@pytest.mark.parametrize("kind", KINDS)
def test_model_weights_sum_to_one_and_are_zero_on_padding(kind):
    model = _token_model(kind)
    ids, lengths = _padded_ids()
    weights = model.attention_weights(ids)
    assert weights.shape == (3, 4, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    for row, length in enumerate(lengths):
        assert (weights[row, :, length:] == 0).all()
        assert (weights[row, :, :length] > 0).all()
    # Padding changes nothing: each sequence alone decodes the same.
    batch = model.predict(ids, verbose=0)
    for row, length in enumerate(lengths):
        alone = model.predict(ids[row : row + 1, :length], verbose=0)
        np.testing.assert_allclose(batch[row], alone[0], atol=1e-5)


@pytest.mark.parametrize("kind", ["luong", "luong_general"])
def test_model_first_step_scores_the_encoder_state(kind):
    """With the encoder's states handed over, the first query is the top
    encoder layer's final output: step 0's weights re-computed from
    `encode` check the wiring of the score into the model."""
    model = _token_model(kind, bidirectional=False, bridge="concat")
    ids, lengths = _padded_ids()
    encoded = model.encode(ids)
    query, memory = encoded["states"][-1][0], encoded["sequence"]
    keys = memory
    if kind == "luong_general":
        keys = memory @ to_numpy(model.decoder.attention.kernel)
    mask = np.arange(5)[None, :] < np.array(lengths)[:, None]
    expected = _softmax(np.einsum("bd,btd->bt", query, keys), mask)
    np.testing.assert_allclose(model.attention_weights(ids)[:, 0], expected, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_keys_are_projected_once_per_sequence(kind):
    model = _token_model(kind)
    attention = model.decoder.attention
    calls = []
    project_keys = attention.project_keys
    attention.project_keys = lambda memory: calls.append(1) or project_keys(memory)
    ids, _ = _padded_ids()
    model.attention_weights(ids)
    model.generate(ids, max_length=6)
    assert len(calls) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_saves_and_loads(kind, tmp_path):
    model = _token_model(kind, teacher_force=True)
    ids, _ = _padded_ids()
    targets = np.array([[4, 5, 2, 0], [6, 2, 0, 0], [7, 7, 8, 2]], "int32")
    model.fit(ids, targets, epochs=1, verbose=0)
    assert model.get_config()["attention"] == kind
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    assert restored.get_config() == model.get_config()
    assert type(restored.decoder.attention) is type(model.decoder.attention)
    assert len(restored.weights) == len(model.weights)
    np.testing.assert_allclose(
        restored.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=1e-6
    )
    np.testing.assert_allclose(
        restored.attention_weights(ids), model.attention_weights(ids), atol=1e-6
    )
    clone = AttentionSeq2Seq.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize(
    "options, width",
    [({"bidirectional": False}, 6), ({"bridge": "concat"}, 12)],
)
def test_luong_dot_works_wherever_the_widths_match(options, width):
    model = AttentionSeq2Seq(
        input_dim=3,
        hidden_dim=6,
        output_length=3,
        output_dim=2,
        attention="luong",
        **options,
    )
    assert model.decoder.units == model.encoder.output_width == width
    assert model.predict(np.ones((2, 4, 3), "float32"), verbose=0).shape == (2, 3, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_decoder_config_keeps_the_score(kind):
    decoder = RecurrentDecoder(4, 2, 3, attention_units=5, attention_score=kind)
    decoder.build((2, 4), (2, 6, 4))
    config = decoder.get_config()
    assert config["attention_score"] == kind
    restored = RecurrentDecoder.from_config(config)
    assert restored.get_config() == config
    assert type(restored.attention) is type(decoder.attention)
