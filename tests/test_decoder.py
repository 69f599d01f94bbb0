import keras
import numpy as np
import pytest
import torch

from benchmarks import twins
from kseq2seq import AttentionSeq2Seq
from kseq2seq import RecurrentDecoder
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq

to_numpy = keras.ops.convert_to_numpy


def _data(batch=3, input_length=5, input_dim=4, output_length=6, output_dim=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, input_length, input_dim)).astype("float32")
    y = rng.normal(size=(batch, output_length, output_dim)).astype("float32")
    return x, y


TEACHER_FORCED = {
    "seq2seq": lambda: Seq2Seq(
        input_dim=4, hidden_dim=5, output_length=6, output_dim=3, teacher_force=True
    ),
    "seq2seq_peek_deep": lambda: Seq2Seq(
        input_dim=4,
        hidden_dim=5,
        output_length=6,
        output_dim=3,
        depth=(2, 3),
        peek=True,
        inner_broadcast_state=False,
        teacher_force=True,
    ),
    "seq2seq_shared_state": lambda: Seq2Seq(
        input_dim=4,
        hidden_dim=5,
        output_length=6,
        output_dim=3,
        depth=3,
        teacher_force=True,
    ),
    "attention": lambda: AttentionSeq2Seq(
        input_dim=4,
        hidden_dim=5,
        output_length=6,
        output_dim=3,
        depth=2,
        teacher_force=True,
    ),
}


@pytest.mark.parametrize("builder", sorted(TEACHER_FORCED))
def test_teacher_forcing_feeds_the_previous_target_not_the_current_one(builder):
    model = TEACHER_FORCED[builder]()
    x, y = _data()
    base = to_numpy(model([x, y], training=True))
    for t in range(6):
        changed = y.copy()
        changed[:, t] += 1.0
        out = to_numpy(model([x, changed], training=True))
        # Steps up to t never see y[t]: no leak of the current target.
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        # Step t + 1 reads y[t].
        if t + 1 < 6:
            assert not np.allclose(out[:, t + 1], base[:, t + 1], atol=1e-6)


@pytest.mark.parametrize("builder", sorted(TEACHER_FORCED))
def test_teacher_forced_on_own_outputs_equals_free_running(builder):
    # If the ground truth is what the model itself would emit, forcing it
    # changes nothing: step t reads y(t-1), and step 0 the same start value.
    model = TEACHER_FORCED[builder]()
    x, _ = _data()
    free = to_numpy(model(x, training=False))
    forced = to_numpy(model([x, free], training=True))
    np.testing.assert_allclose(forced, free, atol=1e-5)


def test_ground_truth_is_ignored_outside_training():
    model = TEACHER_FORCED["seq2seq"]()
    x, y = _data()
    np.testing.assert_allclose(
        to_numpy(model([x, y], training=False)), to_numpy(model(x)), atol=1e-6
    )


def test_fit_x_y_uses_teacher_forcing(monkeypatch):
    model = TEACHER_FORCED["seq2seq"]()
    x, y = _data(batch=4)
    seen = []
    original = RecurrentDecoder.call

    def spy(self, *args, **kwargs):
        seen.append((kwargs.get("ground_truth") is not None, kwargs.get("training")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RecurrentDecoder, "call", spy)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert (True, True) in seen
    seen.clear()
    prediction = model.predict(x, verbose=0)
    assert prediction.shape == (4, 6, 3)
    assert all(not has_truth for has_truth, _ in seen)


def test_simple_seq2seq_decoder_is_an_lstm_over_the_repeated_context():
    x, _ = _data()
    model = SimpleSeq2Seq(input_dim=4, hidden_dim=5, output_length=6, output_dim=3)
    _, context, _ = model.encoder(x)
    context = to_numpy(context)

    lstm = torch.nn.LSTM(5, 5, batch_first=True)
    twins.copy_lstm(model.decoder.cells, lstm)
    repeated = torch.as_tensor(np.repeat(context[:, None], 6, axis=1))
    hidden = lstm(repeated)[0].detach().numpy()
    head_kernel, head_bias = model.decoder.head.get_weights()
    expected = hidden @ head_kernel + head_bias

    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)


def test_free_running_feeds_back_the_previous_output():
    # Seq2Seq: y(t) = head(LSTM(s(t-1), y(t-1))), y(-1) = start projection of C.
    x, _ = _data()
    model = Seq2Seq(input_dim=4, hidden_dim=5, output_length=6, output_dim=3)
    _, context, states = model.encoder(x)
    context = to_numpy(context)
    h, c = (to_numpy(s) for s in states[0])
    start_kernel, start_bias = model.decoder.start_projection.get_weights()
    kernel, recurrent_kernel, bias = model.decoder.cells[0].get_weights()
    head_kernel, head_bias = model.decoder.head.get_weights()

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    y = context @ start_kernel + start_bias
    outputs = []
    for _ in range(6):
        z = y @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        y = h @ head_kernel + head_bias
        outputs.append(y)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), np.stack(outputs, axis=1), atol=1e-5
    )


def test_output_activation_reaches_targets_outside_minus_one_one():
    model = SimpleSeq2Seq(input_dim=2, hidden_dim=8, output_length=3, output_dim=1)
    x = np.random.default_rng(0).normal(size=(64, 4, 2)).astype("float32")
    y = np.full((64, 3, 1), 5.0, "float32")
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(0.02))
    model.fit(x, y, epochs=100, batch_size=64, verbose=0)
    prediction = model.predict(x, verbose=0)
    assert prediction.min() > 2.0
    assert abs(prediction.mean() - 5.0) < 0.5


def test_softmax_output_activation_gives_distributions():
    model = Seq2Seq(
        input_dim=2, output_length=3, output_dim=4, output_activation="softmax"
    )
    out = model.predict(np.ones((2, 5, 2), "float32"), verbose=0)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    assert (out > 0).all()


def test_decoder_needs_an_input():
    with pytest.raises(ValueError, match="feedback"):
        RecurrentDecoder(4, 2, 3, feedback=False)


def test_decoder_config_round_trip():
    decoder = RecurrentDecoder(
        4, 2, 3, depth=2, peek=True, attention_units=5, output_activation="softmax"
    )
    config = decoder.get_config()
    assert RecurrentDecoder.from_config(config).get_config() == config


KNOWN_INPUTS = {
    # (builder, options, training, with ground truth): every decoder input is
    # known before the first step.
    "simple_seq2seq": (SimpleSeq2Seq, dict(depth=2), False),
    "simple_seq2seq_gru": (SimpleSeq2Seq, dict(cell="gru"), False),
    "seq2seq_teacher_forced": (Seq2Seq, dict(teacher_force=True), True),
    "seq2seq_layerwise_peek": (
        Seq2Seq,
        dict(depth=3, peek=True, inner_broadcast_state=False, teacher_force=True),
        True,
    ),
    "seq2seq_dropout": (Seq2Seq, dict(teacher_force=True, dropout=0.3), True),
}


@pytest.mark.parametrize("case", sorted(KNOWN_INPUTS))
def test_a_decoder_whose_inputs_are_known_runs_fused_layers_only(case):
    from kseq2seq import ops as kernels

    builder, options, teacher_forced = KNOWN_INPUTS[case]
    model = builder(input_dim=4, hidden_dim=5, output_length=6, output_dim=3, **options)
    x, y = _data()
    inputs = [x, y] if teacher_forced else x
    with kernels.count_runs() as counts:
        model(inputs, training=True)
    layers = model.encoder.depth + model.decoder.depth
    assert counts == kernels.RunCounts(fused=layers)


def test_a_deeper_shared_state_decoder_runs_one_step_loop():
    from kseq2seq import ops as kernels

    model = Seq2Seq(
        input_dim=4,
        hidden_dim=5,
        output_length=6,
        output_dim=3,
        depth=(1, 2),
        teacher_force=True,
    )
    x, y = _data()
    with kernels.count_runs() as counts:
        model([x, y], training=True)
    assert counts == kernels.RunCounts(fused=1, loops=1)


def test_attention_keys_are_projected_once_per_sequence(monkeypatch):
    model = AttentionSeq2Seq(input_dim=4, hidden_dim=5, output_length=6, output_dim=3)
    attention = model.decoder.attention
    calls = []
    original = attention.project_keys

    def counting(memory):
        calls.append(memory.shape)
        return original(memory)

    monkeypatch.setattr(attention, "project_keys", counting)
    x, _ = _data()
    model(x)
    assert len(calls) == 1  # Not once per output step.
