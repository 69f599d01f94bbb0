import keras
import numpy as np

from kseq2seq import AttentionSeq2Seq
from kseq2seq import BahdanauAttention

to_numpy = keras.ops.convert_to_numpy


def test_scores_follow_the_additive_formula():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(2, 3)).astype("float32")
    memory = rng.normal(size=(2, 5, 4)).astype("float32")
    attention = BahdanauAttention(6)
    attention.build(query.shape, memory.shape)
    for weight in attention.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    keys = attention.project_keys(memory)
    context, weights = attention(query, keys, memory)

    key_kernel, query_kernel, bias, v = (to_numpy(w) for w in attention.weights)
    scores = np.tanh(memory @ key_kernel + (query @ query_kernel)[:, None] + bias) @ v
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(to_numpy(weights), expected, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(context), np.einsum("bt,btd->bd", expected, memory), atol=1e-5
    )


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
