"""How the encoder's final states become the decoder's initial states."""

import keras

from kseq2seq import ops as kernels


@keras.saving.register_keras_serializable(package="kseq2seq")
class StateBridge(keras.layers.Layer):
    """Hands the encoder's final states to the decoder, layer by layer.

    The stacks are aligned at the top: the top encoder layer's state starts
    the top decoder layer, the one below it the decoder layer below, and so
    on. When the decoder is deeper than the encoder, its lowest extra layers
    start from zeros (`None`); when it is shallower, the encoder's lowest
    extra layers are not transferred. A shared-state encoder (one state for
    the whole stack) hands its state to a shared-state decoder as it is.

    Aligning the tops keeps the most abstract summary of the input, the top
    encoder layer's state, where Sutskever et al. (2014) put it, and makes
    equal depths the usual layer `i` to layer `i` transfer.

    States are handed over as they are (a bidirectional encoder's are the
    forward and backward states concatenated, so the decoder must be twice
    as wide), or, with `units`, each through its own
    `Dense(units, activation="tanh")`, so a decoder of any width can start
    from them.

    Args:
        decoder_depth: int. Number of decoder layers to produce states for.
        shared_state: bool. Both stacks keep one shared state. Defaults to
            `False`.
        units: int or `None`. Project every state to this width. Defaults to
            `None` (no projection).
        **kwargs: base layer arguments.

    Call arguments:
        states: the encoder's final states, one list of tensors per layer
            (one entry when `shared_state`).

    Returns:
        One entry per decoder layer (a single entry when `shared_state`):
        a list of tensors, or `None` for a layer that starts from zeros.

    Example:

        >>> bridge = StateBridge(decoder_depth=3)
        >>> h = [np.full((2, 4), float(i)) for i in range(2)]
        >>> mapped = bridge([[h[0], h[0]], [h[1], h[1]]])
        >>> [None if s is None else float(s[0][0, 0]) for s in mapped]
        [None, 0.0, 1.0]
    """

    def __init__(self, decoder_depth, shared_state=False, units=None, **kwargs):
        super().__init__(**kwargs)
        self.decoder_depth = decoder_depth
        self.shared_state = shared_state
        self.units = units
        self.projections = []
        if units is None:
            self.built = True

    def _align(self, states):
        states = list(states)
        if self.shared_state:
            return [states[-1]]
        missing = max(self.decoder_depth - len(states), 0)
        transferred = states[len(states) - (self.decoder_depth - missing) :]
        return [None] * missing + transferred

    def build(self, states_shape):
        if self.units is None:
            return
        for layer_states in self._align(states_shape):
            for shape in layer_states or []:
                projection = keras.layers.Dense(
                    self.units,
                    activation="tanh",
                    name=f"projection_{len(self.projections)}",
                    dtype=self.dtype_policy,
                )
                projection.build(tuple(shape))
                self.projections.append(projection)

    def call(self, states):
        aligned = self._align(states)
        if self.units is None:
            return aligned
        projections = iter(self.projections)
        return [
            None
            if layer_states is None
            else [kernels.dense(next(projections), state) for state in layer_states]
            for layer_states in aligned
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "decoder_depth": self.decoder_depth,
                "shared_state": self.shared_state,
                "units": self.units,
            }
        )
        return config
