"""How a `ModelSpec` becomes the layers of a model."""

import keras

from kseq2seq.layers.bridge import StateBridge
from kseq2seq.layers.decoder import RecurrentDecoder
from kseq2seq.layers.embedding import token_embedding
from kseq2seq.layers.encoder import RecurrentEncoder


def make_layers(spec, policy):
    """The layers of a model: `(bridge, input_embedding, encoder, decoder)`,
    `None` where the spec has no such part."""
    bridge = None
    if spec.bridge is not None:
        bridge = StateBridge(
            spec.decoder_depth,
            shared_state=spec.shared_state,
            units=spec.hidden_dim if spec.bridge == "dense" else None,
            name="bridge",
            dtype=policy,
        )
    input_embedding = None
    if spec.token_inputs:
        initializer = None
        if spec.input_embeddings is not None:
            initializer = keras.initializers.Constant(spec.input_embeddings)
        input_embedding = token_embedding(
            spec.input_vocab_size,
            spec.embedding_dim,
            name="input_embedding",
            dtype=policy,
            initializer=initializer,
        )
    encoder = RecurrentEncoder(
        spec.hidden_dim,
        depth=spec.encoder_depth,
        cell=spec.cell,
        bidirectional=spec.bidirectional,
        shared_state=spec.shared_state,
        dropout=spec.dropout,
        stateful=spec.stateful,
        name="encoder",
        dtype=policy,
    )
    return bridge, input_embedding, encoder, _make_decoder(spec, policy)


def _make_decoder(spec, policy):
    return RecurrentDecoder(
        spec.decoder_units,
        spec.output_dim,
        spec.output_length,
        depth=spec.decoder_depth,
        cell=spec.cell,
        feedback=spec.feedback,
        peek=spec.peek,
        attention_units=spec.hidden_dim if spec.attention else None,
        shared_state=spec.shared_state,
        dropout=spec.dropout,
        output_activation=spec.output_activation,
        embedding_dim=spec.embedding_dim if spec.token_outputs else None,
        start_id=spec.start_id,
        end_id=spec.end_id,
        sampling_probability=spec.scheduled_sampling,
        attention_score=spec.attention_score,
        name="decoder",
        dtype=policy,
    )
