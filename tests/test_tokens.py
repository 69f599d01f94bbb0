"""Token models, variable lengths, decoding and the options every builder has."""

import keras
import numpy as np
import pytest
import torch

from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq

BUILDERS = {
    "simple": SimpleSeq2Seq,
    "seq2seq": Seq2Seq,
    "attention": AttentionSeq2Seq,
}
VOCAB = 9


def _token_model(builder, **kwargs):
    options = dict(
        input_vocab_size=VOCAB,
        output_vocab_size=VOCAB,
        output_length=5,
        hidden_dim=6,
        embedding_dim=4,
    )
    options.update(kwargs)
    return BUILDERS[builder](**options)


def _padded_batch():
    """Three right-padded id sequences (0 is padding) and their lengths."""
    ids = np.array(
        [[5, 4, 8, 6, 7, 4], [7, 8, 0, 0, 0, 0], [4, 4, 5, 6, 0, 0]], "int32"
    )
    return ids, [6, 2, 4]


def _targets(batch=3):
    rng = np.random.default_rng(0)
    y = rng.integers(4, VOCAB, size=(batch, 5)).astype("int32")
    y[:, 3] = 2  # the end id
    y[:, 4] = 0  # padding after it
    return y


@pytest.mark.parametrize(
    "builder, options",
    [
        ("simple", {}),
        ("simple", {"bidirectional": True, "reverse_input": True}),
        ("seq2seq", {"depth": 2, "peek": True}),
        ("seq2seq", {"bidirectional": True, "inner_broadcast_state": False}),
        ("seq2seq", {"bidirectional": True, "bridge": "dense", "cell": "gru"}),
        ("attention", {"depth": 2}),
        ("attention", {"reverse_input": True, "bridge": "concat"}),
    ],
)
def test_padded_batch_equals_each_sequence_alone(builder, options):
    model = _token_model(builder, **options)
    ids, lengths = _padded_batch()
    batch = model.predict(ids, verbose=0)
    for row, length in enumerate(lengths):
        alone = model.predict(ids[row : row + 1, :length], verbose=0)
        np.testing.assert_allclose(batch[row], alone[0], atol=1e-5)


def test_attention_weights_are_exactly_zero_on_padding():
    model = _token_model("attention")
    ids, lengths = _padded_batch()
    weights = model.attention_weights(ids)
    assert weights.shape == (3, 5, 6)
    for row, length in enumerate(lengths):
        assert (weights[row, :, length:] == 0).all()
        assert (weights[row, :, :length] > 0).all()
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_token_models_train_on_integer_targets_out_of_the_box(builder):
    teacher = {} if builder == "simple" else {"teacher_force": True}
    model = _token_model(builder, **teacher)
    ids, _ = _padded_batch()
    history = model.fit(ids, _targets(), epochs=2, verbose=0)
    assert set(history.history) == {"loss", "sparse_categorical_accuracy"}
    probabilities = model.predict(ids, verbose=0)
    assert probabilities.shape == (3, 5, VOCAB)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_compiling_with_metrics_none_drops_the_default_accuracy():
    # The constructor compiles with the defaults; Keras alone would keep
    # their metrics when a later compile passes none.
    model = _token_model("seq2seq", teacher_force=True)
    model.compile(optimizer="adam", metrics=None)
    ids, _ = _padded_batch()
    history = model.fit(ids, _targets(), epochs=1, verbose=0)
    assert set(history.history) == {"loss"}


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_padded_targets_count_in_neither_loss_nor_accuracy(builder):
    model = _token_model(builder)
    ids, _ = _padded_batch()
    y = _targets()
    loss, accuracy = model.evaluate(ids, y, verbose=0)
    probabilities = model.predict(ids, verbose=0)
    valid = y != 0
    picked = np.take_along_axis(probabilities, y[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(loss, -np.log(picked[valid]).mean(), rtol=1e-4)
    correct = probabilities.argmax(-1) == y
    np.testing.assert_allclose(accuracy, correct[valid].mean(), atol=1e-6)


@pytest.mark.parametrize("builder", ["seq2seq", "attention"])
def test_token_teacher_forcing_reads_the_previous_true_token(builder):
    model = _token_model(builder, teacher_force=True)
    ids, _ = _padded_batch()
    y = _targets()
    base = keras.ops.convert_to_numpy(model([ids, y], training=True))
    for t in range(4):
        changed = y.copy()
        changed[:, t] = np.where(changed[:, t] == 4, 5, 4)
        out = keras.ops.convert_to_numpy(model([ids, changed], training=True))
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        assert not np.allclose(out[:, t + 1], base[:, t + 1], atol=1e-6)


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_greedy_generation_follows_the_free_running_prediction(builder):
    model = _token_model(builder)
    ids, _ = _padded_batch()
    generated, scores = model.generate(ids)
    predicted = model.predict(ids, verbose=0)
    assert generated.shape == (3, 5) and scores.shape == (3,)
    # generate never emits the padding or the start id.
    predicted[..., [0, model.start_id]] = 0.0
    for row in range(3):
        expected = predicted[row].argmax(-1)
        ended = np.flatnonzero(expected == model.end_id)
        stop = ended[0] + 1 if len(ended) else 5
        np.testing.assert_array_equal(generated[row, :stop], expected[:stop])
        assert (generated[row, stop:] == 0).all()
        log_probability = np.log(predicted[row, np.arange(stop), expected[:stop]])
        np.testing.assert_allclose(scores[row], log_probability.sum(), rtol=1e-4)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_generation_never_emits_the_padding_or_start_id(method):
    model = _token_model("seq2seq")
    # Make padding, then the start id, by far the likeliest tokens.
    bias = np.zeros(VOCAB, "float32")
    bias[0], bias[model.start_id] = 60.0, 50.0
    model.decoder.head.bias.assign(bias)
    ids, _ = _padded_batch()
    generated, scores = model.generate(ids, method=method, max_length=6)
    for row in generated:
        ended = np.flatnonzero(row == model.end_id)
        tokens = row[: ended[0]] if len(ended) else row
        assert not np.isin(tokens, [0, model.start_id]).any()
        assert (row[len(tokens) + 1 :] == 0).all()  # padding after the end
    assert np.isfinite(scores).all()


def test_generation_stops_at_the_end_id():
    model = _token_model("seq2seq")
    # Make the end id by far the most likely token at every step.
    head = model.decoder.head
    bias = np.zeros(VOCAB, "float32")
    bias[model.end_id] = 50.0
    head.bias.assign(bias)
    ids, _ = _padded_batch()
    generated, _ = model.generate(ids, max_length=7)
    assert generated.shape == (3, 7)
    assert (generated[:, 0] == model.end_id).all()
    assert (generated[:, 1:] == 0).all()


@pytest.mark.parametrize("builder", ["seq2seq", "attention"])
def test_beam_search_of_width_one_equals_greedy(builder):
    model = _token_model(builder, depth=2)
    ids, _ = _padded_batch()
    greedy_ids, greedy_scores = model.generate(ids)
    beam_ids, beam_scores = model.generate(ids, method="beam", beam_width=1)
    np.testing.assert_array_equal(beam_ids, greedy_ids)
    np.testing.assert_allclose(beam_scores, greedy_scores, rtol=1e-5)


def test_wider_beams_never_score_worse_than_greedy():
    model = _token_model("attention")
    ids, _ = _padded_batch()
    _, greedy_scores = model.generate(ids)
    beam_ids, beam_scores = model.generate(
        ids, method="beam", beam_width=4, num_return_sequences=2
    )
    assert beam_ids.shape == (3, 2, 5) and beam_scores.shape == (3, 2)
    assert (beam_scores[:, 0] >= greedy_scores - 1e-5).all()
    assert (beam_scores[:, 0] >= beam_scores[:, 1]).all()


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_vector_models_run_free_for_any_number_of_steps(builder):
    model = BUILDERS[builder](input_dim=3, hidden_dim=5, output_length=4, output_dim=2)
    x = np.random.default_rng(1).normal(size=(2, 6, 3)).astype("float32")
    generated = model.generate(x, max_length=9)
    assert generated.shape == (2, 9, 2)
    np.testing.assert_allclose(generated[:, :4], model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("builder", sorted(BUILDERS))
@pytest.mark.parametrize("cell", ["gru", "simple_rnn", keras.layers.GRUCell])
def test_other_cells_build_train_and_round_trip(builder, cell, tmp_path):
    model = BUILDERS[builder](
        input_dim=3, hidden_dim=5, output_length=4, output_dim=2, cell=cell
    )
    expected = {"gru": "gru", "simple_rnn": "simple_rnn"}.get(cell, "gru")
    assert model.encoder.cell == expected and model.decoder.cell == expected
    x = np.random.default_rng(2).normal(size=(8, 6, 3)).astype("float32")
    y = np.random.default_rng(3).normal(size=(8, 4, 2)).astype("float32")
    before = model.predict(x, verbose=0)
    model.fit(x, y, epochs=1, verbose=0)
    after = model.predict(x, verbose=0)
    assert not np.allclose(before, after)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert type(restored) is type(model)
    np.testing.assert_allclose(restored.predict(x, verbose=0), after, atol=1e-6)


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_token_models_round_trip(builder, tmp_path):
    model = _token_model(builder, cell="gru")
    ids, _ = _padded_batch()
    model.fit(ids, _targets(), epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        restored.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=1e-6
    )
    np.testing.assert_array_equal(restored.generate(ids)[0], model.generate(ids)[0])


def test_pretrained_input_embeddings_are_used_and_saved(tmp_path):
    matrix = np.random.default_rng(4).normal(size=(VOCAB, 3)).astype("float32")
    model = Seq2Seq(
        input_embeddings=matrix, output_vocab_size=VOCAB, output_length=5, hidden_dim=4
    )
    assert model.input_embedding.output_dim == 3
    np.testing.assert_array_equal(model.input_embedding.get_weights()[0], matrix)
    assert model.get_config()["input_embeddings"] is None
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(restored.input_embedding.get_weights()[0], matrix)


@pytest.mark.parametrize(
    "bridge, units, projections", [("concat", 12, 0), ("dense", 6, 4)]
)
def test_bidirectional_state_transfer(bridge, units, projections):
    model = Seq2Seq(
        input_dim=3,
        hidden_dim=6,
        output_length=4,
        output_dim=2,
        depth=2,
        bidirectional=True,
        inner_broadcast_state=False,
        bridge=bridge,
    )
    assert model.encoder.output_width == 12
    assert model.decoder.units == units
    assert len(model.bridge.projections) == projections
    x = np.ones((2, 5, 3), "float32")
    assert model.predict(x, verbose=0).shape == (2, 4, 2)


def test_reverse_input_reverses_only_the_valid_steps():
    reversed_model = _token_model("seq2seq", reverse_input=True)
    plain = _token_model("seq2seq")
    plain.set_weights(reversed_model.get_weights())
    ids, lengths = _padded_batch()
    flipped = ids.copy()
    for row, length in enumerate(lengths):
        flipped[row, :length] = ids[row, :length][::-1]
    np.testing.assert_allclose(
        reversed_model.predict(ids, verbose=0),
        plain.predict(flipped, verbose=0),
        atol=1e-6,
    )


def test_scheduled_sampling_mixes_own_predictions_only_in_training():
    sampled = _token_model("seq2seq", teacher_force=True, scheduled_sampling=0.9)
    forced = _token_model("seq2seq", teacher_force=True)
    forced.set_weights(sampled.get_weights())
    ids, _ = _padded_batch()
    y = _targets()
    keras.utils.set_random_seed(0)
    mixed = keras.ops.convert_to_numpy(sampled([ids, y], training=True))
    truth = keras.ops.convert_to_numpy(forced([ids, y], training=True))
    np.testing.assert_allclose(mixed[:, 0], truth[:, 0], atol=1e-6)
    assert not np.allclose(mixed, truth, atol=1e-4)
    np.testing.assert_allclose(
        sampled.predict(ids, verbose=0), forced.predict(ids, verbose=0), atol=1e-6
    )


def test_encode_returns_the_context_and_states():
    model = _token_model("seq2seq", depth=2, inner_broadcast_state=False)
    ids, _ = _padded_batch()
    encoded = model.encode(ids)
    assert encoded["sequence"].shape == (3, 6, 6)
    assert encoded["context"].shape == (3, 6)
    assert [len(state) for state in encoded["states"]] == [2, 2]
    np.testing.assert_allclose(encoded["context"], encoded["states"][-1][0])


@pytest.mark.parametrize(
    "options, match",
    [
        ({"input_dim": 4}, "input_dim"),
        ({"start_id": 2, "end_id": 2}, "differ"),
        ({"start_id": 0}, "start_id"),
        ({"end_id": VOCAB}, "end_id"),
        ({"output_activation": "relu"}, "output_activation"),
        ({"output_dim": 3}, "output_dim"),
        ({"scheduled_sampling": 0.5}, "teacher_force"),
        ({"bridge": "sum"}, "bridge"),
        ({"cell": "lstm2"}, "cell"),
        ({"input_embeddings": np.ones((VOCAB + 1, 4))}, "input_embeddings"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"output_vocab_size": None, "output_dim": None}, "output_dim"),
        ({"output_length": None}, "output_length"),
    ],
)
def test_bad_token_arguments_raise_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        _token_model("seq2seq", **options)


def test_bad_generation_arguments_raise_value_error():
    vector_model = Seq2Seq(input_dim=3, output_length=4, output_dim=2)
    with pytest.raises(ValueError, match="Beam search"):
        vector_model.generate(np.ones((1, 5, 3)), method="beam")
    token_model = _token_model("seq2seq")
    with pytest.raises(ValueError, match="method"):
        token_model.generate(np.ones((1, 5), "int32"), method="nucleus")
    with pytest.raises(ValueError, match="max_length"):
        token_model.generate(np.ones((1, 5), "int32"), max_length=0)


@pytest.mark.parametrize("builder", ["seq2seq", "attention"])
def test_sampling_from_the_top_token_only_equals_greedy(builder):
    model = _token_model(builder, depth=2)
    ids, _ = _padded_batch()
    greedy_ids, greedy_scores = model.generate(ids)
    sampled_ids, sampled_scores = model.generate(ids, method="sample", top_k=1)
    np.testing.assert_array_equal(sampled_ids, greedy_ids)
    np.testing.assert_allclose(sampled_scores, greedy_scores, rtol=1e-6)


def test_sampled_scores_are_the_model_log_probabilities_of_the_drawn_ids():
    # Teacher forcing feeds the drawn ids back as the truth: the
    # probabilities it gives each step are the model's, given the ids drawn
    # before it.
    model = _token_model("attention", teacher_force=True)
    ids, _ = _padded_batch()
    drawn, scores = model.generate(ids, method="sample", temperature=2.0, seed=3)
    probabilities = keras.ops.convert_to_numpy(model([ids, drawn], training=True))
    for row in range(3):
        ended = np.flatnonzero(drawn[row] == model.end_id)
        stop = ended[0] + 1 if len(ended) else 5
        tokens = drawn[row, :stop]
        expected = np.log(probabilities[row, np.arange(stop), tokens]).sum()
        np.testing.assert_allclose(scores[row], expected, rtol=1e-4)


def test_sampling_with_a_seed_is_reproducible_across_batches():
    model = _token_model("seq2seq")
    # Four equal inputs, decoded one per batch.
    ids = np.repeat(_padded_batch()[0][:1], 4, axis=0)
    options = dict(method="sample", max_length=8, batch_size=1, seed=11)
    first, first_scores = model.generate(ids, **options)
    again, again_scores = model.generate(ids, **options)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_scores, again_scores)
    # Every batch draws from its own seed.
    assert len({tuple(row) for row in first}) > 1
    other, _ = model.generate(ids, **dict(options, seed=12))
    assert not np.array_equal(other, first)
    # In one batch as well.
    whole, _ = model.generate(ids, method="sample", max_length=8, seed=11)
    np.testing.assert_array_equal(
        whole, model.generate(ids, method="sample", max_length=8, seed=11)[0]
    )


@pytest.mark.parametrize(
    "options", [{}, {"temperature": 1e12}, {"top_p": 0.9}, {"top_k": 3}]
)
def test_sampling_never_draws_the_padding_or_start_id(options):
    model = _token_model("attention")
    # Make padding, then the start id, by far the likeliest tokens.
    bias = np.zeros(VOCAB, "float32")
    bias[0], bias[model.start_id] = 60.0, 50.0
    model.decoder.head.bias.assign(bias)
    ids = np.tile(_padded_batch()[0], (20, 1))
    drawn, scores = model.generate(
        ids, method="sample", max_length=10, seed=0, **options
    )
    for row in drawn:
        ended = np.flatnonzero(row == model.end_id)
        tokens = row[: ended[0]] if len(ended) else row
        assert not np.isin(tokens, [0, model.start_id]).any()
        assert (row[len(tokens) + 1 :] == 0).all()  # padding after the end
    assert np.isfinite(scores).all()
    # Every emittable token is drawn somewhere: the draws are not greedy.
    if options.get("temperature"):
        assert set(np.unique(drawn)) == set(range(VOCAB)) - {model.start_id}


@pytest.mark.parametrize(
    "options, match",
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**31}, "seed"),
        ({"seed": "7"}, "seed"),
    ],
)
def test_bad_sampling_arguments_raise_value_error(options, match):
    model = _token_model("seq2seq")
    with pytest.raises(ValueError, match=match):
        model.generate(_padded_batch()[0], method="sample", **options)


def test_sampling_needs_token_outputs():
    vector_model = Seq2Seq(input_dim=3, output_length=4, output_dim=2)
    with pytest.raises(ValueError, match="Sampling needs token outputs"):
        vector_model.generate(np.ones((1, 5, 3)), method="sample")


def test_attention_weights_of_reversed_inputs_refer_to_input_positions():
    reversed_model = _token_model("attention", reverse_input=True)
    plain = _token_model("attention")
    plain.set_weights(reversed_model.get_weights())
    ids, lengths = _padded_batch()
    flipped = ids.copy()
    for row, length in enumerate(lengths):
        flipped[row, :length] = ids[row, :length][::-1]
    weights = reversed_model.attention_weights(ids)
    expected = plain.attention_weights(flipped)
    for row, length in enumerate(lengths):
        np.testing.assert_allclose(
            weights[row, :, :length], expected[row, :, :length][:, ::-1], atol=1e-6
        )


def test_bridge_none_starts_the_seq2seq_decoder_from_zeros():
    model = Seq2Seq(
        input_dim=3, hidden_dim=4, output_length=2, output_dim=2, bridge=None
    )
    assert model.bridge is None


def test_token_models_default_to_a_fixed_hidden_width():
    for output_dim in (None, VOCAB):
        model = Seq2Seq(
            input_vocab_size=VOCAB,
            output_vocab_size=VOCAB,
            output_dim=output_dim,
            output_length=3,
        )
        assert model.encoder.units == 128


def _left_padded_batch():
    """The sequences of `_padded_batch`, padded on the left as
    `keras.utils.pad_sequences` does by default."""
    ids, lengths = _padded_batch()
    sequences = [list(row[:length]) for row, length in zip(ids, lengths)]
    return keras.utils.pad_sequences(sequences, maxlen=6), lengths


@pytest.mark.parametrize("reverse_input", [False, True])
@pytest.mark.parametrize(
    "builder, options",
    [
        ("simple", {}),
        ("seq2seq", {"depth": 2, "bidirectional": True}),
        ("attention", {"cell": "gru"}),
    ],
)
def test_left_padded_batch_equals_each_sequence_alone(builder, options, reverse_input):
    model = _token_model(builder, reverse_input=reverse_input, **options)
    ids, lengths = _left_padded_batch()
    assert (ids[1, :4] == 0).all()
    batch = model.predict(ids, verbose=0)
    for row, length in enumerate(lengths):
        alone = model.predict(ids[row : row + 1, 6 - length :], verbose=0)
        np.testing.assert_allclose(batch[row], alone[0], atol=1e-5)


@pytest.mark.parametrize("reverse_input", [False, True])
def test_padding_inside_a_sequence_is_skipped(reverse_input):
    """Id 0 is padding wherever it is: the model reads the sequence without it."""
    model = _token_model("attention", reverse_input=reverse_input)
    holes = np.array([[5, 0, 4, 8, 0, 6], [0, 7, 0, 8, 0, 0]], "int32")
    batch = model.predict(holes, verbose=0)
    for row, ids in enumerate(holes):
        alone = model.predict(ids[ids != 0][None], verbose=0)
        np.testing.assert_allclose(batch[row], alone[0], atol=1e-5)


def test_reverse_valid_steps_matches_numpy():
    from kseq2seq.ops import reverse_valid_steps

    rng = np.random.default_rng(0)
    sequences = rng.normal(size=(64, 7, 3)).astype("float32")
    mask = rng.random((64, 7)) < 0.6
    mask[0], mask[1] = False, True
    expected = sequences.copy()
    for row in range(len(mask)):
        valid = np.flatnonzero(mask[row])
        expected[row, valid] = sequences[row, valid[::-1]]
    reversed_ = keras.ops.convert_to_numpy(reverse_valid_steps(sequences, mask))
    np.testing.assert_array_equal(reversed_, expected)
    ids = keras.ops.convert_to_numpy(reverse_valid_steps(sequences[..., 0], mask))
    np.testing.assert_array_equal(ids, expected[..., 0])
    twice = reverse_valid_steps(reverse_valid_steps(sequences, mask), mask)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(twice), sequences)


def test_inference_records_no_autograd_graph(monkeypatch):
    # As `predict` does: a graph nobody differentiates costs time and memory.
    model = _token_model("attention")
    x, _ = _padded_batch()
    grad_enabled = []
    decode_step, encode = model.decoder.decode_step, model.encoder.call

    def recording(function):
        def wrapper(*args, **kwargs):
            grad_enabled.append(torch.is_grad_enabled())
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(model.decoder, "decode_step", recording(decode_step))
    monkeypatch.setattr(model.encoder, "call", recording(encode))
    for method in ("greedy", "beam", "sample"):
        model.generate(x, method, beam_width=2)
    model.encode(x)
    model.attention_weights(x)
    assert grad_enabled and not any(grad_enabled)
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("builder", ["seq2seq", "attention"])
def test_a_step_with_the_readout_table_equals_one_without(builder):
    model = _token_model(builder, teacher_force=True)
    x, _ = _padded_batch()
    decoder = model.decoder
    state = decoder.initial_decoding_state(**model._decoder_inputs(x))
    previous = keras.ops.convert_to_tensor(np.array([1, 5, 8], "int32"))
    table = decoder.readout_table()
    assert tuple(table.shape) == (VOCAB, 4 * 6)  # every id's LSTM gates
    looked_up, looked_up_state = decoder.decode_step(previous, state, table)
    computed, computed_state = decoder.decode_step(previous, state)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(looked_up),
        keras.ops.convert_to_numpy(computed),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(looked_up_state["query"]),
        keras.ops.convert_to_numpy(computed_state["query"]),
        atol=1e-6,
    )
    assert _token_model("simple").decoder.readout_table() is None  # no feedback


@pytest.mark.parametrize("builder", ["seq2seq", "attention"])
def test_running_free_on_the_readout_table_equals_projecting_each_readout(
    builder, monkeypatch
):
    """A free-running token decoder looks its readouts up in the readout
    table when that costs less; its outputs and gradients are those of
    embedding and projecting every readout."""
    model = _token_model(builder)  # not teacher-forced: training runs free too
    x, _ = _padded_batch()
    y = _targets()
    decoder = model.decoder
    assert decoder.readout_table_pays(len(x) * 5)  # 9 ids, 15 lookups
    tables = []
    make_table = decoder.readout_table
    monkeypatch.setattr(
        decoder, "readout_table", lambda: tables.append(1) or make_table()
    )

    def run():
        predicted = model.predict(x, verbose=0)
        probabilities = model(x, training=True)
        loss = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, probabilities)
        )
        weights = [w.value for w in model.trainable_weights]
        gradients = torch.autograd.grad(loss, weights, allow_unused=True)
        return predicted, [g if g is None else g.numpy() for g in gradients]

    looked_up, looked_up_gradients = run()
    assert len(tables) == 2  # once per sequence batch: predict, then training
    monkeypatch.setattr(decoder, "readout_table_pays", lambda lookups: False)
    projected, projected_gradients = run()
    assert len(tables) == 2
    np.testing.assert_allclose(looked_up, projected, atol=1e-6)
    for table_gradient, gradient in zip(looked_up_gradients, projected_gradients):
        assert (table_gradient is None) == (gradient is None)
        if gradient is not None:
            np.testing.assert_allclose(table_gradient, gradient, atol=1e-6)


def test_token_embeddings_start_from_a_standard_normal():
    """As PyTorch's `nn.Embedding`: Keras' default (uniform in +-0.05) feeds
    the recurrent layers inputs so small that a G2P model lost most of its
    first epoch (`benchmarks/g2p_race.py`)."""
    model = _token_model(
        "attention", input_vocab_size=400, output_vocab_size=400, embedding_dim=16
    )
    for layer in (model.input_embedding, model.decoder.embedding):
        values = keras.ops.convert_to_numpy(layer.embeddings)
        assert abs(values.std() - 1) < 0.05 and abs(values.mean()) < 0.05
