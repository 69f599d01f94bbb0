"""The PyTorch kernels and the keras.ops kernels give the same results.

Every builder and option, masked and unmasked: same outputs and same
gradients for every weight, so the fast path never changes what a model
computes.
"""

import collections
import contextlib

import cases
import keras
import numpy as np
import pytest
import torch
from keras.src.backend import AutocastScope

from kseq2seq import ops as kernels
from kseq2seq.ops import generic
from kseq2seq.ops import torch_kernels

CASES = {
    "simple": cases.vector("simple_deep"),
    "simple_bidirectional_gru": cases.vector("simple_bidirectional_gru"),
    "seq2seq_shared_state": cases.vector("seq2seq_deep_teacher_forced"),
    "seq2seq_peek_per_layer": cases.vector("seq2seq_peek_per_layer"),
    "seq2seq_bidirectional_dense": cases.vector("seq2seq_bidirectional_dense"),
    "seq2seq_simple_rnn_dropout": cases.vector("seq2seq_simple_rnn_dropout"),
    "attention": cases.vector("attention_deep_teacher_forced"),
    "attention_gru_bridge": cases.vector("attention_gru_concat"),
    "tokens_seq2seq": cases.tokens("seq2seq_deep_teacher_forced"),
    "tokens_attention_sampling": cases.tokens("attention_sampling_dropout"),
    "tokens_simple_reversed": cases.tokens("simple_reversed"),
}


def _inputs(options, masked):
    rng = np.random.default_rng(0)
    if "input_vocab_size" in options:
        x = rng.integers(1, 9, size=(3, 6)).astype("int32")
        y = rng.integers(1, 9, size=(3, 4)).astype("int32")
        if masked:
            x[1, 3:] = 0
            x[2, 5:] = 0
        return x, y
    x = rng.normal(size=(3, 6, 3)).astype("float32")
    y = rng.normal(size=(3, 4, 2)).astype("float32")
    return x, y


def _run(model, x, y, training, seed_states, mask=None):
    for generator, state in seed_states:
        generator.state.assign(state)
    keras.utils.set_random_seed(7)
    inputs = [x, y] if model.spec.teacher_force else x
    if mask is not None:
        output = model(inputs, training=training, mask=mask)
    else:
        output = model(inputs, training=training)
    weights = torch.linspace(-1, 1, output.numel()).reshape(output.shape)
    loss = (output * weights).sum()
    variables = [v.value for v in model.trainable_variables]
    gradients = torch.autograd.grad(loss, variables, allow_unused=True)
    return output.detach().numpy(), [
        None if g is None else g.detach().numpy() for g in gradients
    ]


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_and_generic_kernels_agree(case, training, masked):
    builder, options = CASES[case]
    model = builder(**options)
    x, y = _inputs(options, masked)
    mask = None
    if masked and "input_dim" in options:
        # Right-padded vector inputs, with the padding given as a mask.
        mask = np.ones((3, 6), bool)
        mask[1, 3:] = False
        mask[2, 5:] = False
        x[~mask] = 0.0
    generators = [model.encoder.seed_generator, model.decoder.seed_generator]
    seed_states = [(g, g.state.value.clone()) for g in generators]

    fast_out, fast_grads = _run(model, x, y, training, seed_states, mask)
    with kernels.fast_kernels(False):
        slow_out, slow_grads = _run(model, x, y, training, seed_states, mask)

    np.testing.assert_allclose(fast_out, slow_out, atol=2e-5)
    for variable, fast, slow in zip(model.trainable_variables, fast_grads, slow_grads):
        assert (fast is None) == (slow is None), variable.path
        if fast is not None:
            np.testing.assert_allclose(fast, slow, atol=5e-5, err_msg=variable.path)


def test_the_fast_path_is_taken_for_standard_cells_only():
    lstm = keras.layers.LSTMCell(4)
    lstm.build((None, 3))
    assert isinstance(kernels.kernel_for(lstm), torch_kernels.TorchLSTMKernel)
    relu = keras.layers.LSTMCell(4, activation="relu")
    relu.build((None, 3))
    kernel = kernels.kernel_for(relu)
    assert type(kernel) is generic.LSTMKernel
    with kernels.fast_kernels(False):
        assert type(kernels.kernel_for(lstm)) is generic.LSTMKernel
    assert isinstance(kernels.kernel_for(lstm), torch_kernels.TorchLSTMKernel)


def test_masks_with_holes_fall_back_and_agree():
    cell = keras.layers.LSTMCell(4)
    cell.build((None, 3))
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(1).normal(size=(2, 5, 3)).astype("float32")
    )
    mask = keras.ops.convert_to_tensor(
        np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    )
    states = [[keras.ops.zeros((2, 4))] * 2]
    fast, fast_states = kernels.run_layer([kernels.kernel_for(cell)], x, states, mask)
    slow, slow_states = generic.run_layer([generic.kernel_for(cell)], x, states, mask)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fast), keras.ops.convert_to_numpy(slow), atol=1e-6
    )


def _built_cell(cell_class, units, input_dim):
    cell = cell_class(units)
    cell.build((None, input_dim))
    return cell


def test_count_runs_tells_fused_layers_from_step_loops():
    cell = _built_cell(keras.layers.LSTMCell, 4, 3)
    upper = _built_cell(keras.layers.LSTMCell, 4, 4)
    kernel, upper_kernel = kernels.kernel_for(cell), kernels.kernel_for(upper)
    x = np.random.default_rng(2).normal(size=(2, 5, 3)).astype("float32")
    states = [[keras.ops.zeros((2, 4))] * 2]
    holes = keras.ops.convert_to_tensor(
        np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    )
    stack = kernels.SharedStateStack([kernel, upper_kernel])
    with kernels.count_runs() as counts:
        kernels.run_layer([kernel], x, states)
        kernels.run_layer([kernel, kernel], x, states * 2)
        # A mask with holes cannot be packed: a step loop per direction.
        kernels.run_layer([kernel, kernel], x, states * 2, holes)
        # The steps inside a loop are the loop's, not single steps.
        kernels.run_sequence(stack, kernel.project(x), states[0])
        kernels.step_stack([kernel], kernel.project(x[:, 0]), states)
    assert counts == kernels.RunCounts(fused=2, loops=3, steps=1)


def test_count_runs_without_fast_kernels_counts_loops():
    cell = _built_cell(keras.layers.GRUCell, 4, 3)
    x = np.ones((2, 5, 3), "float32")
    with kernels.fast_kernels(False), kernels.count_runs() as counts:
        kernels.run_layer([kernels.kernel_for(cell)], x, [[keras.ops.zeros((2, 4))]])
    assert counts == kernels.RunCounts(loops=1)


def test_count_runs_blocks_nest_and_record_nothing_outside():
    cell = _built_cell(keras.layers.SimpleRNNCell, 4, 3)
    kernel = kernels.kernel_for(cell)
    x = np.ones((2, 5, 3), "float32")
    states = [[keras.ops.zeros((2, 4))]]
    with kernels.count_runs() as outer:
        kernels.run_layer([kernel], x, states)
        with kernels.count_runs() as inner:
            kernels.step_stack([kernel], kernel.project(x[:, 0]), states)
        kernels.run_sequence(kernel, kernel.project(x), states[0])
    kernels.run_layer([kernel], x, states)
    assert outer == kernels.RunCounts(fused=1, loops=1, steps=1)
    assert inner == kernels.RunCounts(steps=1)
    assert kernels._recording is None


@pytest.mark.parametrize(
    "cell_class",
    [keras.layers.LSTMCell, keras.layers.GRUCell, keras.layers.SimpleRNNCell],
    ids=lambda c: c.__name__,
)
def test_fused_layers_follow_weight_updates_and_grad_modes(cell_class):
    """Nothing the fused path keeps between calls goes stale or leaks out of
    inference mode: after a call in inference mode, and after every weight
    update, it gives the outputs and gradients of the keras.ops path."""
    cell = _built_cell(cell_class, 4, 3)
    rng = np.random.default_rng(3)
    x = keras.ops.convert_to_tensor(rng.normal(size=(2, 5, 3)).astype("float32"))
    mask = keras.ops.convert_to_tensor(
        np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    )
    states = [[keras.ops.zeros((2, 4))] * len(kernels.kernel_for(cell).state_size)]

    def run(kernel):
        outputs, finals = kernels.run_layer([kernel], x, states, mask)
        loss = (
            outputs * torch.linspace(-1, 1, outputs.numel()).reshape(outputs.shape)
        ).sum()
        loss = loss + sum(state.sum() for state in finals[0])
        variables = [v.value for v in cell.trainable_variables]
        gradients = torch.autograd.grad(loss, variables)
        return [outputs.detach().numpy()] + [g.numpy() for g in gradients]

    with torch.inference_mode():
        kernels.run_layer([kernels.kernel_for(cell)], x, states, mask)
    for update in range(3):
        fast = run(kernels.kernel_for(cell))
        slow = run(generic.kernel_for(cell))
        for fast_array, slow_array in zip(fast, slow, strict=True):
            np.testing.assert_allclose(fast_array, slow_array, atol=5e-5)
        for variable in cell.trainable_variables:
            variable.assign(variable * 0.5 + 0.1 * (update + 1))


@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_dense_and_embed_equal_the_keras_layers(dtype, activation):
    rng = np.random.default_rng(0)
    dense = keras.layers.Dense(5, activation=activation, dtype=dtype)
    embedding = keras.layers.Embedding(9, 4, dtype=dtype)
    dense.build((None, 3))
    embedding.build((None,))
    ids = torch.as_tensor(rng.integers(0, 9, size=(6,)), dtype=torch.int32)
    # Inside the layers' call, as the decoder's step calls them.
    scope = AutocastScope(dense.compute_dtype if dtype != "float32" else None)
    with torch.no_grad(), scope:
        for inputs in (rng.normal(size=(6, 3)), rng.normal(size=(2, 6, 3))):
            inputs = torch.as_tensor(inputs, dtype=getattr(torch, dense.compute_dtype))
            ours, theirs = torch_kernels.dense(dense, inputs), dense.call(inputs)
            assert ours.dtype == theirs.dtype
            np.testing.assert_allclose(ours.float(), theirs.float(), atol=1e-3)
        ours, theirs = torch_kernels.embed(embedding, ids), embedding.call(ids)
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours.float(), theirs.float())


@pytest.mark.parametrize("method", ["greedy", "beam"])
@pytest.mark.parametrize("case", ["tokens_seq2seq", "tokens_attention_sampling"])
def test_fast_and_generic_kernels_decode_alike(case, method):
    builder, options = CASES[case]
    model = builder(**options)
    x, _ = _inputs(options, masked=True)
    fast_ids, fast_scores = model.generate(x, method, beam_width=3)
    with kernels.fast_kernels(False):
        slow_ids, slow_scores = model.generate(x, method, beam_width=3)
    np.testing.assert_array_equal(fast_ids, slow_ids)
    np.testing.assert_allclose(fast_scores, slow_scores, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
def test_weights_read_once_reads_each_variable_once_per_autocast_dtype(dtype):
    dense = keras.layers.Dense(3, dtype=dtype)
    dense.build((2, 4))
    inputs = torch.ones((2, 4), dtype=getattr(torch, dense.compute_dtype))
    reads = []
    variable_type = type(dense.kernel)
    value = variable_type.value

    def counted(variable):
        reads.append(variable.path)
        return value.fget(variable)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(variable_type, "value", property(counted))
        with kernels.weights_read_once(), AutocastScope(dense.compute_dtype):
            first = torch_kernels.dense(dense, inputs)
            again = torch_kernels.dense(dense, inputs)
            with AutocastScope(None):  # another dtype, another read
                float32_kernel = torch_kernels._tensor(dense.kernel)
        assert len(reads) == 3  # kernel and bias once, then the float32 kernel
        with AutocastScope(dense.compute_dtype):
            torch_kernels.dense(dense, inputs)  # outside the block: read again
        assert len(reads) == 5
    np.testing.assert_array_equal(first.detach().float(), again.detach().float())
    assert float32_kernel.dtype == torch.float32
    dense.kernel.assign(np.zeros((4, 3)))  # a new block reads the new values
    with kernels.weights_read_once(), AutocastScope(dense.compute_dtype):
        zeroed = torch_kernels.dense(dense, inputs)
    np.testing.assert_allclose(
        zeroed.detach().float(), dense.call(inputs).detach().float(), atol=1e-3
    )


@pytest.mark.parametrize("method", ["greedy", "beam", "sample"])
def test_decoding_reading_weights_once_equals_reading_them_every_step(
    method, monkeypatch
):
    builder, options = CASES["tokens_attention_sampling"]
    model = builder(**options)
    x, _ = _inputs(options, masked=True)
    once = model.generate(x, method, beam_width=3, seed=1)
    monkeypatch.setattr(kernels, "weights_read_once", contextlib.nullcontext)
    every_step = model.generate(x, method, beam_width=3, seed=1)
    np.testing.assert_array_equal(once[0], every_step[0])
    np.testing.assert_allclose(once[1], every_step[1], atol=1e-6)


@pytest.mark.parametrize(
    "builder, options",
    [
        cases.vector("attention_deep_teacher_forced"),
        cases.tokens("attention_deep_teacher_forced"),
        cases.tokens("seq2seq_deep_teacher_forced"),  # a shared-state loop
    ],
)
def test_a_forward_pass_reads_each_weight_once_and_computes_alike(
    builder, options, monkeypatch
):
    """The step loops of a training forward pass read every weight at every
    step; inside the model's `call` the kernels read each once, and the
    outputs and gradients are those of reading it every time."""
    model = builder(**options)
    x, y = _inputs(options, masked=True)
    variable_type = type(model.weights[0])
    value = variable_type.value

    def forward():
        reads = collections.Counter()

        def counted(variable):
            reads[variable.path] += 1
            return value.fget(variable)

        with monkeypatch.context() as patch:
            patch.setattr(variable_type, "value", property(counted))
            outputs = model([x, y], training=True)
        loss = keras.ops.sum(outputs**2)
        weights = [w.value for w in model.trainable_weights]
        gradients = torch.autograd.grad(loss, weights, allow_unused=True)
        gradients = [g if g is None else g.numpy() for g in gradients]
        return outputs.detach().numpy(), gradients, reads

    outputs, gradients, reads = forward()
    assert max(reads.values()) == 1, reads.most_common(3)
    monkeypatch.setattr(kernels, "weights_read_once", contextlib.nullcontext)
    every_time, every_time_gradients, reads = forward()
    assert max(reads.values()) > 1  # the step loop reads at every step
    np.testing.assert_allclose(outputs, every_time, atol=1e-6)
    for once_gradient, gradient in zip(gradients, every_time_gradients):
        assert (once_gradient is None) == (gradient is None)
        if gradient is not None:
            np.testing.assert_allclose(once_gradient, gradient, atol=1e-6)
