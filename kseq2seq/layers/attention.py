"""Additive (Bahdanau) attention over the encoder's outputs."""

import keras
from keras import ops

# Added to the scores of padded positions: large enough that their softmax
# weight underflows to exactly zero in float32.
_MASKED_SCORE = -1e9


@keras.saving.register_keras_serializable(package="kseq2seq")
class BahdanauAttention(keras.layers.Layer):
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

    def call(self, query, keys, memory, memory_mask=None):
        hidden = ops.tanh(keys + ops.matmul(query, self.query_kernel)[:, None, :])
        scores = ops.sum(hidden * self.score_vector, axis=-1)
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

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config
