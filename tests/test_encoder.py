import keras
import numpy as np
import pytest
import torch

from benchmarks import twins
from kseq2seq import RecurrentEncoder
from kseq2seq import ops as kernels
from kseq2seq.ops import generic

to_numpy = keras.ops.convert_to_numpy


def _torch_lstm_like(encoder, input_dim):
    """A torch.nn.LSTM holding a copy of the encoder's weights."""
    lstm = torch.nn.LSTM(
        input_dim,
        encoder.units,
        num_layers=encoder.depth,
        bidirectional=encoder.bidirectional,
        batch_first=True,
    )
    twins.copy_lstm(encoder.cells, lstm)
    return lstm


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_torch_lstm_with_copied_weights(depth, bidirectional):
    x = np.random.default_rng(0).normal(size=(4, 6, 3)).astype("float32")
    encoder = RecurrentEncoder(5, depth=depth, bidirectional=bidirectional)
    sequence, context, states = encoder(x)
    lstm = _torch_lstm_like(encoder, 3)
    expected, (h_n, c_n) = lstm(torch.as_tensor(x))
    expected = expected.detach().numpy()
    h_n = h_n.detach().numpy().reshape(depth, encoder.num_directions, 4, 5)
    c_n = c_n.detach().numpy().reshape(depth, encoder.num_directions, 4, 5)

    np.testing.assert_allclose(to_numpy(sequence), expected, atol=1e-5)
    assert len(states) == depth
    for layer, (h, c) in enumerate(states):
        np.testing.assert_allclose(
            to_numpy(h), np.concatenate(list(h_n[layer]), axis=-1), atol=1e-5
        )
        np.testing.assert_allclose(
            to_numpy(c), np.concatenate(list(c_n[layer]), axis=-1), atol=1e-5
        )
    np.testing.assert_allclose(to_numpy(context), to_numpy(states[-1][0]))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(bidirectional):
    rng = np.random.default_rng(1)
    lengths = [6, 2, 4]
    x = rng.normal(size=(3, 6, 3)).astype("float32")
    mask = np.arange(6)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 0.0
    encoder = RecurrentEncoder(4, depth=2, bidirectional=bidirectional)
    sequence, context, states = encoder(x, mask=mask)
    for i, length in enumerate(lengths):
        alone_sequence, alone_context, alone_states = encoder(x[i : i + 1, :length])
        np.testing.assert_allclose(
            to_numpy(sequence)[i, :length], to_numpy(alone_sequence)[0], atol=1e-5
        )
        np.testing.assert_allclose(
            to_numpy(context)[i], to_numpy(alone_context)[0], atol=1e-5
        )
        for state, alone_state in zip(states, alone_states):
            for tensor, alone_tensor in zip(state, alone_state):
                np.testing.assert_allclose(
                    to_numpy(tensor)[i], to_numpy(alone_tensor)[0], atol=1e-5
                )


def _numpy_lstm_step(cell, x, h, c):
    kernel, recurrent_kernel, bias = (to_numpy(w) for w in cell.get_weights())
    z = x @ kernel + h @ recurrent_kernel + bias
    i, f, g, o = np.split(z, 4, axis=-1)

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h, c


def test_shared_state_threads_one_state_through_the_stack():
    x = np.random.default_rng(2).normal(size=(2, 5, 3)).astype("float32")
    encoder = RecurrentEncoder(4, depth=3, shared_state=True)
    sequence, context, states = encoder(x)

    h = np.zeros((2, 4), "float32")
    c = np.zeros((2, 4), "float32")
    outputs = []
    for t in range(5):
        layer_input = x[:, t]
        for cell in encoder.cells:
            h, c = _numpy_lstm_step(cell, layer_input, h, c)
            layer_input = h
        outputs.append(h)
    np.testing.assert_allclose(to_numpy(sequence), np.stack(outputs, 1), atol=1e-5)
    assert len(states) == 1
    np.testing.assert_allclose(to_numpy(states[0][0]), h, atol=1e-5)
    np.testing.assert_allclose(to_numpy(states[0][1]), c, atol=1e-5)
    np.testing.assert_allclose(to_numpy(context), h, atol=1e-5)


def test_stateful_encoder_carries_state_until_reset():
    x = np.random.default_rng(3).normal(size=(2, 4, 3)).astype("float32")
    stateful = RecurrentEncoder(4, depth=2, stateful=True)
    stateful.build((2, 4, 3))
    stateless = RecurrentEncoder(4, depth=2)
    stateless.build((2, None, 3))
    for target, source in zip(stateless.cells, stateful.cells):
        target.set_weights(source.get_weights())

    first = to_numpy(stateful(x)[1])
    second = to_numpy(stateful(x)[1])
    whole = to_numpy(stateless(np.concatenate([x, x], axis=1))[1])
    np.testing.assert_allclose(second, whole, atol=1e-5)
    assert not np.allclose(first, second)

    stateful.reset_states()
    np.testing.assert_allclose(to_numpy(stateful(x)[1]), first, atol=1e-6)


def test_dropout_only_in_training_and_one_mask_per_sequence():
    x = np.ones((8, 5, 6), "float32")
    encoder = RecurrentEncoder(4, dropout=0.5, seed=0)
    inference = to_numpy(encoder(x)[0])
    np.testing.assert_array_equal(inference, to_numpy(encoder(x, training=False)[0]))
    trained = to_numpy(encoder(x, training=True)[0])
    assert not np.allclose(trained, inference)


def test_config_round_trip():
    encoder = RecurrentEncoder(
        6, depth=2, cell="gru", bidirectional=True, dropout=0.25, name="enc"
    )
    restored = RecurrentEncoder.from_config(encoder.get_config())
    assert restored.get_config() == encoder.get_config()
    restored = keras.layers.deserialize(keras.layers.serialize(encoder))
    assert isinstance(restored, RecurrentEncoder)


def test_bidirectional_shared_state_runs_one_stack_per_direction():
    x = np.random.default_rng(5).normal(size=(2, 5, 3)).astype("float32")
    encoder = RecurrentEncoder(4, depth=2, shared_state=True, bidirectional=True)
    sequence, context, states = encoder(x)
    halves = []
    for direction, inputs in ((0, x), (1, x[:, ::-1])):
        single = RecurrentEncoder(4, depth=2, shared_state=True)
        single.build(x.shape)
        for target, source in zip(single.cells, encoder.cells[direction::2]):
            target.set_weights(source.get_weights())
        halves.append(single(inputs))
    forward, backward = halves
    np.testing.assert_allclose(
        to_numpy(sequence),
        np.concatenate([to_numpy(forward[0]), to_numpy(backward[0])[:, ::-1]], axis=-1),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        to_numpy(context),
        np.concatenate([to_numpy(forward[1]), to_numpy(backward[1])], axis=-1),
        atol=1e-5,
    )
    assert len(states) == 1 and tuple(states[0][1].shape) == (2, 8)


def test_unknown_cell_is_rejected():
    with pytest.raises(ValueError, match="cell"):
        RecurrentEncoder(4, cell="transformer")


@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_other_cells_match_keras_layers(cell):
    x = np.random.default_rng(4).normal(size=(3, 5, 2)).astype("float32")
    encoder = RecurrentEncoder(4, cell=cell)
    sequence, _, _ = encoder(x)
    layer_class = {"gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}[cell]
    reference = layer_class(4, return_sequences=True)
    reference.build((3, 5, 2))
    reference.set_weights(encoder.cells[0].get_weights())
    np.testing.assert_allclose(to_numpy(sequence), to_numpy(reference(x)), atol=1e-5)


def _right_padded(seed, input_dim=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 6, input_dim)).astype("float32")
    mask = np.arange(6)[None, :] < np.array([6, 2, 4])[:, None]
    x[~mask] = 0.0
    return x, mask


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize(
    "depth, shared_state", [(1, True), (1, False), (2, False)], ids=str
)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_known_inputs_run_only_fused_layers(
    cell, bidirectional, depth, shared_state, masked
):
    x, mask = _right_padded(6)
    encoder = RecurrentEncoder(
        4,
        depth=depth,
        cell=cell,
        bidirectional=bidirectional,
        shared_state=shared_state,
        dropout=0.2,
    )
    encoder.build(x.shape)
    with kernels.count_runs() as counts:
        encoder(x, mask=mask if masked else None, training=True)
    assert counts == kernels.RunCounts(fused=depth)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_deeper_shared_state_runs_a_step_loop_per_direction(bidirectional):
    x, mask = _right_padded(7)
    encoder = RecurrentEncoder(
        4, depth=2, bidirectional=bidirectional, shared_state=True
    )
    encoder.build(x.shape)
    with kernels.count_runs() as counts:
        encoder(x, mask=mask)
    assert counts == kernels.RunCounts(loops=encoder.num_directions)


def _shared_stack_reference(encoder, x, mask):
    """A depth-1 shared-state encoder as a `keras.ops` step loop of a
    `SharedStateStack` per direction: `(sequence, states)`."""
    outputs, finals = [], []
    for direction in range(encoder.num_directions):
        kernel = generic.kernel_for(encoder.cells[direction])
        zeros = keras.ops.zeros((x.shape[0], encoder.units))
        output, state = generic.run_sequence(
            generic.SharedStateStack([kernel]),
            kernel.project(x),
            [zeros] * len(kernel.state_size),
            mask,
            reverse=direction == 1,
        )
        outputs.append(output)
        finals.append(state)
    sequence = keras.ops.concatenate(outputs, axis=-1)
    return sequence, [keras.ops.concatenate(parts, axis=-1) for parts in zip(*finals)]


def _outputs_and_gradients(encoder, sequence, states):
    tensors = [sequence, *states]
    loss = sum(
        (t * torch.linspace(-1, 1, t.numel()).reshape(t.shape)).sum() for t in tensors
    )
    gradients = torch.autograd.grad(
        loss, [v.value for v in encoder.trainable_variables]
    )
    return [to_numpy(t.detach()) for t in tensors], [to_numpy(g) for g in gradients]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_single_layer_shared_state_equals_the_step_loop(cell, bidirectional):
    x, mask = _right_padded(8)
    x = keras.ops.convert_to_tensor(x)
    mask = keras.ops.convert_to_tensor(mask)
    encoder = RecurrentEncoder(
        4, cell=cell, bidirectional=bidirectional, shared_state=True
    )
    sequence, context, states = encoder(x, mask=mask)
    assert len(states) == 1
    np.testing.assert_array_equal(to_numpy(context), to_numpy(states[0][0]))
    fast, fast_grads = _outputs_and_gradients(encoder, sequence, states[0])
    slow, slow_grads = _outputs_and_gradients(
        encoder, *_shared_stack_reference(encoder, x, mask)
    )
    for fast_tensor, slow_tensor in zip(fast, slow, strict=True):
        np.testing.assert_allclose(fast_tensor, slow_tensor, atol=2e-5)
    for variable, fast_grad, slow_grad in zip(
        encoder.trainable_variables, fast_grads, slow_grads
    ):
        np.testing.assert_allclose(
            fast_grad, slow_grad, atol=5e-5, err_msg=variable.path
        )
