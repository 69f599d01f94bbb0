"""Data-parallel training with torch.distributed (DDP over gloo, on the CPU).

Two processes training on halves of each global batch end with identical
weights, equal to one process training on the whole batches; and every
trainable weight of every builder, in every mode, gets a gradient, which DDP
needs with its default `find_unused_parameters=False`.

Run as a script (`python tests/test_distributed.py --worker OUT`) this file is
one of the processes, configured by torchrun's environment variables.
"""

import os
import socket
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import cases  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import distributed  # noqa: E402

from kseq2seq import AttentionSeq2Seq  # noqa: E402
from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq.distributed import train_step  # noqa: E402
from kseq2seq.distributed import wrap  # noqa: E402

VOCAB = 9
VECTOR = dict(input_dim=3, output_dim=4, output_length=4, hidden_dim=6)
TOKENS = dict(
    input_vocab_size=VOCAB,
    output_vocab_size=VOCAB,
    output_length=4,
    hidden_dim=6,
    embedding_dim=5,
)


def _data(tokens, batch, seed=0, padded=True):
    rng = np.random.default_rng(seed)
    if tokens:
        x = rng.integers(1, VOCAB, size=(batch, 6)).astype("int32")
        y = rng.integers(3, VOCAB, size=(batch, 4)).astype("int32")
        if padded:
            x[::2, 4:] = 0
            y[::2, 2] = 2  # the end id, then padding
            y[::2, 3] = 0
        return x, y
    x = rng.normal(size=(batch, 6, 3)).astype("float32")
    # Something to learn: the first input steps, and a constant.
    y = np.concatenate([x[:, :4], np.ones_like(x[:, :4, :1])], axis=-1)
    return x, y


# ---------------------------------------------------------------------------
# 1. Every weight gets a gradient, in every mode, under DDP itself.
# ---------------------------------------------------------------------------

MODES = [
    "simple",
    "simple_deeper_decoder_bidirectional_gru",
    "simple_rnn_dropout_reversed",
    "seq2seq",
    "seq2seq_teacher_forced",
    "seq2seq_sampling",
    "seq2seq_peek_teacher_forced_deeper_decoder",
    "seq2seq_per_layer_deeper_decoder",
    "seq2seq_bidirectional_dense_gru",
    "seq2seq_peek_zero_start_dropout",
    "seq2seq_peek_no_bridge",
    "attention",
    "attention_teacher_forced",
    "attention_sampling",
    "attention_deep_concat",
    "attention_unidirectional_dense_gru",
    "attention_dropout_reversed",
]
# With token outputs these are refused (see below): nothing reads the input.
VECTOR_MODES = ["seq2seq_zero_start", "seq2seq_no_bridge"]


def _param(name, tokens):
    builder, options = cases.MODELS[name]
    kind = "tokens" if tokens else "vectors"
    return pytest.param(name, tokens, id=f"{builder}-{kind}-{options}")


CASES = [
    _param(name, tokens)
    for name in MODES + VECTOR_MODES
    for tokens in (False, True)
    if not (tokens and name in VECTOR_MODES)
]


def _build(name, tokens):
    builder, options = cases.case(name, TOKENS if tokens else VECTOR)
    return builder(**options)


@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo group: DDP's reducer checks gradients as with N."""
    store = tmp_path / "store"
    distributed.init_process_group(
        "gloo", init_method=f"file://{store}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        distributed.destroy_process_group()


@pytest.mark.parametrize("name, tokens", CASES)
def test_every_weight_gets_a_gradient_under_ddp(process_group, name, tokens):
    model = _build(name, tokens)
    ddp_model = wrap(model)  # find_unused_parameters=False, DDP's default
    x, y = _data(tokens, batch=4)
    for _ in range(2):
        # DDP raises at the second step if the first left a weight without
        # a gradient; the check below names it.
        loss = train_step(ddp_model, x, y)
        missing = [v.path for v in model.trainable_variables if v.value.grad is None]
        assert not missing, f"weights without a gradient: {missing}"
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("options", [{"broadcast_state": False}, {"bridge": None}])
def test_token_seq2seq_that_would_ignore_its_input_is_refused(options):
    # Neither the encoder's states nor the context (`peek`) would reach a
    # token decoder, which starts from `start_id`: the encoder and the input
    # embedding would get no gradient, and the outputs ignore the input.
    with pytest.raises(ValueError, match="never read the input"):
        Seq2Seq(**TOKENS, **options)
    Seq2Seq(**VECTOR, **options)  # a vector decoder's start value reads it


def test_stateful_model_trains_under_ddp(process_group):
    model = Seq2Seq(batch_size=4, stateful=True, teacher_force=True, **VECTOR)
    ddp_model = wrap(model)
    x, y = _data(False, batch=4)
    for _ in range(2):
        train_step(ddp_model, x, y)
    assert all(v.value.grad is not None for v in model.trainable_variables)
    model.reset_states()


def test_wrap_needs_a_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        wrap(Seq2Seq(**VECTOR))


def test_train_step_equals_fit_on_one_batch():
    x, y = _data(True, batch=4)
    results = []
    for step in ("fit", "train_step"):
        keras.utils.set_random_seed(0)
        model = AttentionSeq2Seq(teacher_force=True, **TOKENS)
        if step == "fit":
            model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        else:
            for _ in range(2):
                train_step(model, x, y)
        results.append([v.numpy() for v in model.trainable_variables])
    for fitted, stepped in zip(*results):
        np.testing.assert_allclose(fitted, stepped, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# 2. Two gloo processes match one process on the same global batches.
# ---------------------------------------------------------------------------

# One per builder: vector outputs, teacher forcing, token models (unpadded
# targets, so each half of a batch weighs the same in the averaged loss).
TRAINED = [
    ("simple", False),
    ("seq2seq_deep_teacher_forced", False),
    ("attention_teacher_forced", True),
]
GLOBAL_BATCH, STEPS_PER_EPOCH, EPOCHS = 16, 4, 3


def _train(rank, world_size, ddp):
    """Trains every `TRAINED` model; returns its weights and epoch losses."""
    local = GLOBAL_BATCH // world_size
    results = {}
    for index, (name, tokens) in enumerate(TRAINED):
        builder = cases.MODELS[name][0]
        x, y = _data(tokens, GLOBAL_BATCH * STEPS_PER_EPOCH, seed=index, padded=False)
        keras.utils.set_random_seed(index)
        model = _build(name, tokens)
        # `train_step` uses what `compile` set.
        loss = "sparse_categorical_crossentropy" if tokens else "mse"
        model.compile(loss=loss, optimizer=keras.optimizers.Adam(0.01))
        trainer = wrap(model) if ddp else model
        epoch_losses = []
        for _ in range(EPOCHS):
            losses = []
            for step in range(STEPS_PER_EPOCH):
                start = step * GLOBAL_BATCH + rank * local
                rows = slice(start, start + local)
                losses.append(train_step(trainer, x[rows], y[rows]))
            loss = torch.stack(losses).mean()
            if ddp:
                distributed.all_reduce(loss)
                loss /= world_size
            epoch_losses.append(float(loss))
        results[f"{builder}_losses"] = np.array(epoch_losses)
        for number, variable in enumerate(model.trainable_variables):
            results[f"{builder}_{number}"] = variable.numpy()
    return results


def _worker(out):
    torch.set_num_threads(1)
    distributed.init_process_group("gloo")
    try:
        rank = distributed.get_rank()
        results = _train(rank, distributed.get_world_size(), ddp=True)
        np.savez(os.path.join(out, f"rank{rank}.npz"), **results)
    finally:
        distributed.destroy_process_group()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_match_one_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        WORLD_SIZE="2",
        OMP_NUM_THREADS="1",
    )
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(tmp_path)],
            env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    # Meanwhile, the same training in this process on the whole batches.
    expected = _train(rank=0, world_size=1, ddp=False)
    for worker in workers:
        output, _ = worker.communicate(timeout=240)
        assert worker.returncode == 0, output[-3000:]
    ranks = [dict(np.load(tmp_path / f"rank{rank}.npz")) for rank in range(2)]
    assert ranks[0].keys() == ranks[1].keys() == expected.keys()
    for name in expected:
        # The ranks agree exactly: same averaged gradients, same updates.
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)
        np.testing.assert_allclose(
            ranks[0][name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name
        )
    for name, _ in TRAINED:
        builder = cases.MODELS[name][0]
        losses = ranks[0][f"{builder}_losses"]
        assert losses[-1] < 0.97 * losses[0], (builder, losses)


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(sys.argv[2])
