"""Attention over the encoder's outputs: additive and multiplicative scores."""

import keras
from keras import ops

from kseq2seq import _validate
from kseq2seq import ops as kernels

# Added to the scores of padded positions: large enough that their softmax
# weight underflows to exactly zero in float32.
_MASKED_SCORE = -1e9

# The `attention` argument of `AttentionSeq2Seq`, by the layer each makes.
ATTENTION_SCORES = ("bahdanau", "luong", "luong_general")


class _Attention(keras.layers.Layer):
    """What every attention score shares: the decoder's one interface.

    A subclass computes the per-sequence keys in `project_keys(memory)` and
    the scores of one step in `score(query, keys)`; the masking, the softmax
    and the context are the same for every score, so the decoder calls
    `call(query, keys, memory, memory_mask)` whatever the kind.
    """

    def project_keys(self, memory):
        raise NotImplementedError

    def score(self, query, keys):
        raise NotImplementedError

    def call(self, query, keys, memory, memory_mask=None):
        scores = self.score(query, keys)
        if memory_mask is not None:
            scores = ops.where(
                ops.cast(memory_mask, "bool"),
                scores,
                ops.cast(_MASKED_SCORE, scores.dtype),
            )
        weights = ops.softmax(scores, axis=-1)
        context = ops.squeeze(ops.matmul(weights[:, None, :], memory), axis=1)
        return context, weights

    def compute_output_shape(self, query_shape, keys_shape, memory_shape):
        batch_size = query_shape[0]
        return (batch_size, memory_shape[-1]), (batch_size, memory_shape[1])


@keras.saving.register_keras_serializable(package="kseq2seq")
class BahdanauAttention(_Attention):
    """Additive attention: `score(s, h_j) = v . tanh(W h_j + U s + b)`.

    The decoder calls it once per output step with its previous state `s`
    (its top layer's previous output) as the query, so the weights change
    from step to step. The key term `W h_j` does not depend on the step:
    `project_keys` computes it once per sequence and every step reuses it.

    References:
        Bahdanau, Cho and Bengio, "Neural Machine Translation by Jointly
        Learning to Align and Translate", ICLR 2015.

    Args:
        units: int. Width of the hidden layer of the scoring network.
        **kwargs: base layer arguments.

    Call arguments:
        query: `(batch, query_dim)`, the decoder state.
        keys: `(batch, time, units)`, from `project_keys(memory)`.
        memory: `(batch, time, memory_dim)`, the encoder outputs.
        memory_mask: optional boolean `(batch, time)`. Padded positions get
            a weight of exactly zero.

    Returns:
        `(context, weights)`: `(batch, memory_dim)` and `(batch, time)`.

    Example:

        >>> attention = BahdanauAttention(6)
        >>> memory = np.random.rand(2, 5, 4).astype("float32")
        >>> attention.build((2, 3), (2, 5, 4))
        >>> keys = attention.project_keys(memory)
        >>> context, weights = attention(np.ones((2, 3)), keys, memory)
        >>> tuple(context.shape), tuple(weights.shape)
        ((2, 4), (2, 5))
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, query_shape, memory_shape):
        self.key_kernel = self.add_weight(
            shape=(memory_shape[-1], self.units),
            initializer="glorot_uniform",
            name="key_kernel",
        )
        self.query_kernel = self.add_weight(
            shape=(query_shape[-1], self.units),
            initializer="glorot_uniform",
            name="query_kernel",
        )
        self.bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="bias"
        )
        self.score_vector = self.add_weight(
            shape=(self.units,), initializer="glorot_uniform", name="score_vector"
        )

    def project_keys(self, memory):
        """`W h_j + b` for every position: once per sequence."""
        return ops.matmul(memory, self.key_kernel) + self.bias

    def score(self, query, keys):
        query_kernel = kernels.weight(self.query_kernel)
        hidden = ops.tanh(keys + ops.matmul(query, query_kernel)[:, None, :])
        return ops.sum(hidden * kernels.weight(self.score_vector), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


@keras.saving.register_keras_serializable(package="kseq2seq")
class LuongAttention(_Attention):
    """Multiplicative attention: a dot product of the query and each key.

    Two of the scores of Luong et al. (2015):

    - `score_mode="dot"`: `score(s, h_j) = s . h_j`. No weights; the query
      and the memory must be equally wide.
    - `score_mode="general"`: `score(s, h_j) = s . W h_j`, with `W` of shape
      `(memory_dim, query_dim)`, so any widths go.

    As with `BahdanauAttention`, the decoder calls it once per output step
    with its previous state `s` as the query. The keys do not depend on the
    step: `project_keys` returns `W h_j` for every position, once per
    sequence (the memory itself for `"dot"`), and each step's scores are
    one batched product of the query with them.

    References:
        Luong, Pham and Manning, "Effective Approaches to Attention-based
        Neural Machine Translation", EMNLP 2015.

    Args:
        score_mode: `"dot"` or `"general"`. Defaults to `"dot"`.
        **kwargs: base layer arguments.

    Call arguments:
        query: `(batch, query_dim)`, the decoder state.
        keys: `(batch, time, query_dim)`, from `project_keys(memory)`.
        memory: `(batch, time, memory_dim)`, the encoder outputs.
        memory_mask: optional boolean `(batch, time)`. Padded positions get
            a weight of exactly zero.

    Returns:
        `(context, weights)`: `(batch, memory_dim)` and `(batch, time)`.

    Example:

        >>> attention = LuongAttention("general")
        >>> memory = np.random.rand(2, 5, 4).astype("float32")
        >>> attention.build((2, 3), (2, 5, 4))
        >>> keys = attention.project_keys(memory)  # (2, 5, 3)
        >>> mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
        >>> context, weights = attention(np.ones((2, 3)), keys, memory, mask)
        >>> tuple(context.shape), tuple(weights.shape)
        ((2, 4), (2, 5))
        >>> keras.ops.convert_to_numpy(weights)[1, 3:]
        array([0., 0.], dtype=float32)
    """

    def __init__(self, score_mode="dot", **kwargs):
        super().__init__(**kwargs)
        self.score_mode = _validate.choice("score_mode", score_mode, ("dot", "general"))

    def build(self, query_shape, memory_shape):
        query_dim, memory_dim = query_shape[-1], memory_shape[-1]
        if self.score_mode == "general":
            self.kernel = self.add_weight(
                shape=(memory_dim, query_dim),
                initializer="glorot_uniform",
                name="kernel",
            )
        elif query_dim != memory_dim:
            raise ValueError(
                'The "dot" score multiplies the query with each memory '
                "position, so they must be equally wide. Received: "
                f"query_shape={tuple(query_shape)}, "
                f"memory_shape={tuple(memory_shape)}. Use "
                'score_mode="general" for different widths.'
            )

    def project_keys(self, memory):
        """`W h_j` for every position (`h_j` itself for `"dot"`): once per
        sequence."""
        if self.score_mode == "dot":
            return memory
        return ops.matmul(memory, self.kernel)

    def score(self, query, keys):
        return ops.squeeze(ops.matmul(keys, query[:, :, None]), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"score_mode": self.score_mode})
        return config


def make_attention(attention_score, units, **kwargs):
    """The attention layer of one of `ATTENTION_SCORES`.

    Args:
        attention_score: `"bahdanau"`, `"luong"` or `"luong_general"`.
        units: int. The hidden width of the additive score; the Luong
            scores have no hidden layer and ignore it.
        **kwargs: base layer arguments.
    """
    _validate.choice("attention_score", attention_score, ATTENTION_SCORES)
    if attention_score == "bahdanau":
        return BahdanauAttention(units, **kwargs)
    score_mode = "dot" if attention_score == "luong" else "general"
    return LuongAttention(score_mode, **kwargs)
