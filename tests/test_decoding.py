"""Greedy search, sampling and beam search, checked on hand-made step functions."""

import itertools

import keras
import numpy as np
import pytest
import scipy.stats
from keras import ops

from kseq2seq.decoding import beam_search
from kseq2seq.decoding import greedy_search
from kseq2seq.decoding import sample_search

to_numpy = ops.convert_to_numpy

PAD, END = 0, 1


def normalized_log(probabilities):
    probabilities = np.asarray(probabilities, "float64")
    probabilities = probabilities / probabilities.sum(-1, keepdims=True)
    return np.log(probabilities).astype("float32")


class TableStep:
    """Next-token log-probabilities read from `table[step, previous_token]`.

    The step count travels in the state as an int tensor `(N,)`, so the
    function works on any number of rows and follows beam reordering.
    Counts its calls.
    """

    def __init__(self, table):
        self.table = np.asarray(table, "float32")
        self.calls = 0

    def initial_state(self, batch):
        return {"step": np.zeros((batch,), "int32")}

    def __call__(self, ids, state):
        self.calls += 1
        steps, vocab = self.table.shape[0], self.table.shape[1]
        step = ops.minimum(state["step"], steps - 1)
        flat = ops.reshape(self.table, (steps * vocab, vocab))
        log_probs = ops.take(flat, step * vocab + ids, axis=0)
        return log_probs, {"step": state["step"] + 1}


class ToyRNN:
    """A random recurrent model: `logits = h W + E[ids]`, softmaxed, and
    `h' = tanh(h U + F[ids])`. Also runs in NumPy, one sequence at a time."""

    def __init__(self, seed, vocab=6, units=4, scale=1.5):
        rng = np.random.default_rng(seed)
        self.vocab, self.units = vocab, units
        self.W = (scale * rng.normal(size=(units, vocab))).astype("float32")
        self.U = rng.normal(size=(units, units)).astype("float32")
        self.E = (scale * rng.normal(size=(vocab, vocab))).astype("float32")
        self.F = rng.normal(size=(vocab, units)).astype("float32")
        self.calls = 0

    def initial_state(self, batch, seed=0):
        rng = np.random.default_rng(seed + 100)
        return rng.normal(size=(batch, self.units)).astype("float32")

    def __call__(self, ids, h):
        self.calls += 1
        logits = ops.matmul(h, self.W) + ops.take(self.E, ids, axis=0)
        new_h = ops.tanh(ops.matmul(h, self.U) + ops.take(self.F, ids, axis=0))
        return ops.log_softmax(logits, axis=-1), new_h

    def numpy_step(self, token, h):
        logits = h @ self.W + self.E[token]
        log_probs = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        return log_probs, np.tanh(h @ self.U + self.F[token])


def numpy_greedy(model, h, start, end_id, max_length, pad_id=PAD):
    ids, score, token = [], 0.0, start
    for _ in range(max_length):
        log_probs, h = model.numpy_step(token, h)
        token = int(np.argmax(log_probs))
        ids.append(token)
        score += log_probs[token]
        if token == end_id:
            break
    return ids + [pad_id] * (max_length - len(ids)), score


def exhaustive(model, h, start, end_id, max_length, length_penalty=0.0):
    """Every distinct output (ended at `end_id`, padded), best first."""
    found = {}
    for tokens in itertools.product(range(model.vocab), repeat=max_length):
        state, previous, score, out = h, start, 0.0, []
        for token in tokens:
            log_probs, state = model.numpy_step(previous, state)
            score += log_probs[token]
            out.append(token)
            previous = token
            if token == end_id:
                break
        key = tuple(out + [PAD] * (max_length - len(out)))
        penalty = ((5 + len(out)) / 6) ** length_penalty
        found[key] = (score / penalty, score)
    return sorted(found.items(), key=lambda item: -item[1][0])


# 1. Greedy picks the argmax at every step and sums its log-probabilities.


def test_greedy_follows_the_argmax_and_sums_log_probs():
    model = ToyRNN(seed=0)
    h = model.initial_state(4)
    start = np.array([2, 3, 4, 5])
    ids, scores = greedy_search(model, h, start, end_id=None, max_length=6)
    assert tuple(ids.shape) == (4, 6) and tuple(scores.shape) == (4,)
    assert keras.backend.standardize_dtype(ids.dtype) == "int32"
    for i in range(4):
        expected_ids, expected_score = numpy_greedy(model, h[i], start[i], None, 6)
        np.testing.assert_array_equal(to_numpy(ids)[i], expected_ids)
        np.testing.assert_allclose(to_numpy(scores)[i], expected_score, rtol=1e-5)
    assert model.calls == 6


# 2. End-of-sequence handling and early stopping.


def end_table():
    """Input 0 (start 2) ends at the 2nd step, input 1 (start 3) at the 4th.

    Rows are indexed by `(step, previous token)`; vocabulary of 5.
    """
    table = np.full((6, 5, 5), 0.05)
    table[:, :, 4] = 0.8  # By default the next token is 4.
    table[0, 2, :] = [0.05, 0.05, 0.8, 0.05, 0.05]  # Step 0, after 2: 2.
    table[1, 2, :] = [0.05, 0.8, 0.05, 0.05, 0.05]  # Step 1, after 2: end.
    table[3, 4, :] = [0.05, 0.8, 0.05, 0.05, 0.05]  # Step 3, after 4: end.
    # Once input 0 has ended it is fed the pad; whatever the table then says
    # must not reach its output or score.
    table[2:, PAD, :] = [0.05, 0.05, 0.05, 0.8, 0.05]
    return normalized_log(table)


def test_greedy_stops_at_the_end_token_and_pads_after_it():
    log_table = end_table()
    step_fn = TableStep(log_table)
    ids, scores = greedy_search(
        step_fn, step_fn.initial_state(2), np.array([2, 3]), END, max_length=6
    )
    np.testing.assert_array_equal(
        to_numpy(ids), [[2, 1, 0, 0, 0, 0], [4, 4, 4, 1, 0, 0]]
    )
    np.testing.assert_allclose(
        to_numpy(scores),
        [
            log_table[0, 2, 2] + log_table[1, 2, 1],
            log_table[0, 3, 4]
            + log_table[1, 4, 4]
            + log_table[2, 4, 4]
            + log_table[3, 4, 1],
        ],
        rtol=1e-6,
    )
    # Both ended after 4 steps, so the last 2 of max_length were skipped.
    assert step_fn.calls == 4


@pytest.mark.parametrize("pad_id", [0, 3])
def test_beam_search_stops_at_the_end_token_and_pads_after_it(pad_id):
    log_table = end_table()
    step_fn = TableStep(log_table)
    ids, scores = beam_search(
        step_fn,
        step_fn.initial_state(2),
        np.array([2, 3]),
        END,
        max_length=6,
        beam_width=3,
        pad_id=pad_id,
    )
    p = pad_id
    np.testing.assert_array_equal(
        to_numpy(ids), [[2, 1, p, p, p, p], [4, 4, 4, 1, p, p]]
    )
    np.testing.assert_allclose(
        to_numpy(scores)[0], log_table[0, 2, 2] + log_table[1, 2, 1], rtol=1e-6
    )
    assert step_fn.calls < 6


def test_without_end_id_every_step_runs():
    step_fn = TableStep(end_table())
    ids, _ = greedy_search(
        step_fn, step_fn.initial_state(2), np.array([2, 3]), None, max_length=6
    )
    assert step_fn.calls == 6
    np.testing.assert_array_equal(to_numpy(ids)[1], [4, 4, 4, 1, 4, 4])


# 3. A beam of one is greedy search.


@pytest.mark.parametrize("end_id", [None, END])
def test_beam_of_width_one_equals_greedy(end_id):
    model = ToyRNN(seed=3)
    h = model.initial_state(5)
    start = np.array([0, 2, 3, 4, 5])
    greedy_ids, greedy_scores = greedy_search(model, h, start, end_id, 8)
    beam_ids, beam_scores = beam_search(model, h, start, end_id, 8, beam_width=1)
    np.testing.assert_array_equal(to_numpy(beam_ids), to_numpy(greedy_ids))
    np.testing.assert_array_equal(to_numpy(beam_scores), to_numpy(greedy_scores))
    if end_id is not None:
        # The model does end some sequences early: the case is exercised.
        assert (to_numpy(greedy_ids) == END).any()


# 4. Beam search beats greedy where greedy is short-sighted.

A, B = 2, 3


def greedy_trap_table():
    """Vocabulary {pad, end, a, b}; rows indexed by `(step, previous)`."""
    table = np.full((3, 4, 4), 0.25)
    table[0, PAD] = [0.0005, 0.0005, 0.6, 0.399]  # a 0.6, b 0.4
    table[1, A] = [0.01, 0.34, 0.33, 0.32]  # after a: nothing likely
    table[1, B] = [0.01, 0.95, 0.02, 0.02]  # after b: the end, surely
    return normalized_log(table)


def test_beam_search_finds_a_better_sequence_than_greedy():
    log_table = greedy_trap_table()
    step_fn = TableStep(log_table)
    start = np.array([PAD])
    greedy_ids, greedy_scores = greedy_search(
        step_fn, step_fn.initial_state(1), start, END, max_length=3
    )
    beam_ids, beam_scores = beam_search(
        step_fn, step_fn.initial_state(1), start, END, max_length=3, beam_width=2
    )
    np.testing.assert_array_equal(to_numpy(greedy_ids), [[A, END, PAD]])
    np.testing.assert_array_equal(to_numpy(beam_ids), [[B, END, PAD]])
    np.testing.assert_allclose(
        to_numpy(beam_scores), [log_table[0, PAD, B] + log_table[1, B, END]], rtol=1e-6
    )
    assert to_numpy(beam_scores)[0] > to_numpy(greedy_scores)[0] + 0.5


# A beam that holds every prefix is an exhaustive search: compare with one.


@pytest.mark.parametrize("length_penalty", [0.0, 1.5])
def test_a_beam_holding_every_prefix_matches_exhaustive_search(length_penalty):
    model = ToyRNN(seed=7, vocab=4, scale=0.8)
    h = model.initial_state(2, seed=7)
    start = np.array([2, 3])
    max_length = 3
    ids, scores = beam_search(
        model,
        h,
        start,
        END,
        max_length,
        beam_width=model.vocab ** (max_length - 1),
        length_penalty=length_penalty,
        num_return_sequences=5,
    )
    for i in range(2):
        best = exhaustive(model, h[i], start[i], END, max_length, length_penalty)[:5]
        np.testing.assert_array_equal(to_numpy(ids)[i], [key for key, _ in best])
        np.testing.assert_allclose(
            to_numpy(scores)[i], [raw for _, (_, raw) in best], rtol=1e-5
        )


# 5. Inputs of a batch do not interact.


def test_batched_beam_search_equals_one_input_at_a_time():
    model = ToyRNN(seed=11)
    h = model.initial_state(3, seed=11)
    start = np.array([2, 4, 5])
    ids, scores = beam_search(
        model,
        h,
        start,
        END,
        7,
        beam_width=3,
        length_penalty=0.6,
        num_return_sequences=2,
    )
    assert tuple(ids.shape) == (3, 2, 7) and tuple(scores.shape) == (3, 2)
    for i in range(3):
        alone_ids, alone_scores = beam_search(
            model,
            h[i : i + 1],
            start[i : i + 1],
            END,
            7,
            beam_width=3,
            length_penalty=0.6,
            num_return_sequences=2,
        )
        np.testing.assert_array_equal(to_numpy(ids)[i], to_numpy(alone_ids)[0])
        np.testing.assert_allclose(
            to_numpy(scores)[i], to_numpy(alone_scores)[0], rtol=1e-5
        )
    # The inputs do differ, so the comparison is not vacuous.
    assert len({tuple(row) for row in to_numpy(ids)[:, 0]}) > 1


# 6. Several hypotheses per input.


def test_num_return_sequences_returns_distinct_hypotheses_best_first():
    model = ToyRNN(seed=5)
    h = model.initial_state(2, seed=5)
    start = np.array([2, 3])
    ids, scores = beam_search(
        model, h, start, END, 6, beam_width=4, num_return_sequences=3
    )
    best_ids, best_scores = beam_search(model, h, start, END, 6, beam_width=4)
    ids, scores = to_numpy(ids), to_numpy(scores)
    assert ids.shape == (2, 3, 6) and scores.shape == (2, 3)
    assert ids.dtype == np.int32
    for i in range(2):
        assert len({tuple(row) for row in ids[i]}) == 3
        assert np.all(np.diff(scores[i]) <= 0)
        assert np.isfinite(scores[i]).all()
    np.testing.assert_array_equal(ids[:, 0], to_numpy(best_ids))
    np.testing.assert_array_equal(scores[:, 0], to_numpy(best_scores))


# 7. The length penalty.


def length_table():
    """From the start: end 0.36, a 0.4 (others small); after a: end 0.85."""
    table = np.full((3, 4, 4), 0.25)
    table[0, PAD] = [0.04, 0.36, 0.4, 0.2]
    table[1, A] = [0.01, 0.85, 0.07, 0.07]
    return normalized_log(table)


def test_length_penalty_can_favour_the_longer_hypothesis():
    log_table = length_table()
    short = log_table[0, PAD, END]  # log 0.36 = -1.02, 1 token
    long = log_table[0, PAD, A] + log_table[1, A, END]  # log 0.34 = -1.08, 2
    assert short > long
    assert long / ((5 + 2) / 6) > short / ((5 + 1) / 6)
    step_fn = TableStep(log_table)

    def search(length_penalty):
        return beam_search(
            step_fn,
            step_fn.initial_state(1),
            np.array([PAD]),
            END,
            3,
            beam_width=2,
            length_penalty=length_penalty,
            num_return_sequences=2,
        )

    ids, scores = search(0.0)
    np.testing.assert_array_equal(to_numpy(ids)[0], [[END, PAD, PAD], [A, END, PAD]])
    np.testing.assert_allclose(to_numpy(scores)[0], [short, long], rtol=1e-6)

    ids, scores = search(1.0)
    np.testing.assert_array_equal(to_numpy(ids)[0], [[A, END, PAD], [END, PAD, PAD]])
    # Still the raw log-probabilities, only ranked differently.
    np.testing.assert_allclose(to_numpy(scores)[0], [long, short], rtol=1e-6)


def test_length_penalty_applies_while_searching():
    """A finished hypothesis competes for its place in the beam with the
    running ones by `score / lp(L)`, each at its current length."""
    table = np.full((2, 4, 4), 0.25)
    table[0, PAD] = [0.01, 0.3, 0.65, 0.04]
    table[1, A] = [0.005, 0.42, 0.125, 0.45]
    log_table = normalized_log(table)
    end = log_table[0, PAD, END]  # -1.20, 1 token
    a_b = log_table[0, PAD, A] + log_table[1, A, B]  # -1.23, 2 tokens
    a_end = log_table[0, PAD, A] + log_table[1, A, END]  # -1.30, 2 tokens
    step_fn = TableStep(log_table)

    def search(length_penalty):
        return beam_search(
            step_fn,
            step_fn.initial_state(1),
            np.array([PAD]),
            END,
            2,
            beam_width=2,
            length_penalty=length_penalty,
            num_return_sequences=2,
        )

    ids, scores = search(0.0)
    np.testing.assert_array_equal(to_numpy(ids)[0], [[END, PAD], [A, B]])
    np.testing.assert_allclose(to_numpy(scores)[0], [end, a_b], rtol=1e-6)
    # Penalized, both 2-token candidates outrank the 1-token one, which
    # leaves the beam at the last step.
    ids, scores = search(1.0)
    np.testing.assert_array_equal(to_numpy(ids)[0], [[A, B], [A, END]])
    np.testing.assert_allclose(to_numpy(scores)[0], [a_b, a_end], rtol=1e-6)


# 8. Nested states, `None` entries, tensors of rank 3.


class AttentiveToy(ToyRNN):
    """`ToyRNN` plus a memory `(N, T, D)` read through softmax attention.

    `structured(...)` keeps the state as `{"h": (N, 2, 2), "memory": (None,
    memory), "none": None}`; `flat(...)` packs the same numbers into one
    `(N, 4 + T * D)` tensor. Both compute exactly the same function, so a
    search must give the same answer with either: only the rank-3 tensors'
    expansion and reordering differ.
    """

    def __init__(self, seed, time=3, depth=2):
        super().__init__(seed)
        rng = np.random.default_rng(seed + 1)
        self.time, self.depth = time, depth
        self.Q = rng.normal(size=(self.units, depth)).astype("float32")
        self.C = (1.5 * rng.normal(size=(depth, self.vocab))).astype("float32")

    def compute(self, ids, h, memory):
        memory = ops.convert_to_tensor(memory)
        attention = ops.softmax(
            ops.sum(memory * ops.matmul(h, self.Q)[:, None, :], axis=-1), axis=-1
        )
        context = ops.sum(attention[:, :, None] * memory, axis=1)
        log_probs, new_h = ToyRNN.__call__(self, ids, h)
        return ops.log_softmax(log_probs + ops.matmul(context, self.C)), new_h

    def structured(self, ids, state):
        assert isinstance(state, dict) and state["none"] is None
        assert isinstance(state["memory"], tuple) and state["memory"][0] is None
        memory = state["memory"][1]
        assert len(memory.shape) == 3 and memory.shape[0] == ids.shape[0]
        h = ops.reshape(state["h"], (-1, self.units))
        log_probs, new_h = self.compute(ids, h, memory)
        new_state = {
            "h": ops.reshape(new_h, (-1, 2, 2)),
            "memory": (None, memory),
            "none": None,
        }
        return log_probs, new_state

    def flat(self, ids, state):
        h = state[:, : self.units]
        memory = ops.reshape(state[:, self.units :], (-1, self.time, self.depth))
        log_probs, new_h = self.compute(ids, h, memory)
        return log_probs, ops.concatenate([new_h, state[:, self.units :]], axis=1)


def test_nested_state_with_none_and_rank_3_tensors():
    model = AttentiveToy(seed=21)
    rng = np.random.default_rng(21)
    batch = 3
    h = rng.normal(size=(batch, 4)).astype("float32")
    memory = rng.normal(size=(batch, model.time, model.depth)).astype("float32")
    start = np.array([2, 3, 4])
    structured_state = {
        "h": h.reshape(batch, 2, 2),
        "memory": (None, memory),
        "none": None,
    }
    flat_state = np.concatenate([h, memory.reshape(batch, -1)], axis=1)
    kwargs = dict(end_id=END, max_length=6, beam_width=3, num_return_sequences=3)
    ids, scores = beam_search(model.structured, structured_state, start, **kwargs)
    flat_ids, flat_scores = beam_search(model.flat, flat_state, start, **kwargs)
    np.testing.assert_array_equal(to_numpy(ids), to_numpy(flat_ids))
    np.testing.assert_allclose(to_numpy(scores), to_numpy(flat_scores), rtol=1e-5)
    # Each input reads its own memory: alone, it finds the same hypotheses.
    for i in range(batch):
        alone_state = {
            "h": h[i : i + 1].reshape(1, 2, 2),
            "memory": (None, memory[i : i + 1]),
            "none": None,
        }
        alone_ids, _ = beam_search(
            model.structured, alone_state, start[i : i + 1], **kwargs
        )
        np.testing.assert_array_equal(to_numpy(ids)[i], to_numpy(alone_ids)[0])
    # Greedy passes the same structure through untouched.
    greedy_ids, _ = greedy_search(model.structured, structured_state, start, END, 6)
    flat_greedy_ids, _ = greedy_search(model.flat, flat_state, start, END, 6)
    np.testing.assert_array_equal(to_numpy(greedy_ids), to_numpy(flat_greedy_ids))


def test_the_state_is_expanded_beam_major_and_reordered_by_beam():
    """Rows `i * beam_width ...` hold input `i`; a per-row record of the
    tokens emitted, kept in the state, always matches the row's input."""
    width, vocab = 3, 5
    log_table = normalized_log(
        np.random.default_rng(2).uniform(0.1, 1.0, size=(4, vocab, vocab))
    )
    table_step = TableStep(log_table)
    seen = []

    def step_fn(ids, state):
        seen.append(to_numpy(state["input"]))
        log_probs, counter = table_step(ids, state["counter"])
        # The input index, shifted so that a wrong row could never hit the
        # pad, biases every row towards a token of its own.
        bias = ops.one_hot(state["input"][:, 0, 0] + 2, vocab) * 3.0
        new_state = dict(state, counter=counter)
        return ops.log_softmax(log_probs + bias), new_state

    inputs = np.arange(3, dtype="int32")
    state = {
        "counter": table_step.initial_state(3),
        "input": np.broadcast_to(inputs[:, None, None], (3, 2, 2)).copy(),
    }
    ids, _ = beam_search(step_fn, state, inputs + 2, None, 4, beam_width=width)
    expected_rows = np.repeat(inputs, width)
    for rows in seen:
        np.testing.assert_array_equal(rows[:, 0, 0], expected_rows)
        assert rows.shape == (3 * width, 2, 2)
    # The bias wins: every input emits its own token at every step.
    np.testing.assert_array_equal(to_numpy(ids), np.repeat(inputs[:, None] + 2, 4, 1))


# 9. Argument validation.


def constant_step(ids, state):
    return ops.log_softmax(ops.zeros_like(ops.one_hot(ids, 4))), state


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(max_length=0), "max_length"),
        (dict(max_length=2.5), "max_length"),
        (dict(max_length=True), "max_length"),
        (dict(end_id=-1), "end_id"),
        (dict(end_id=1.0), "end_id"),
        (dict(pad_id=None), "pad_id"),
        (dict(start_ids=np.zeros((2, 2), "int32")), "start_ids"),
        (dict(step_fn="not callable"), "step_fn"),
    ],
)
@pytest.mark.parametrize("search", [greedy_search, beam_search, sample_search])
def test_bad_arguments_raise(search, kwargs, name):
    arguments = dict(
        step_fn=constant_step,
        state=None,
        start_ids=np.zeros((2,), "int32"),
        end_id=END,
        max_length=3,
    )
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=f"`{name}` must be .*Received: {name}"):
        search(**arguments)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(beam_width=0), "beam_width"),
        (dict(beam_width="2"), "beam_width"),
        (dict(num_return_sequences=0), "num_return_sequences"),
        (dict(beam_width=2, num_return_sequences=3), "num_return_sequences"),
        (dict(length_penalty=-0.5), "length_penalty"),
        (dict(length_penalty="1"), "length_penalty"),
        (dict(length_penalty=float("nan")), "length_penalty"),
    ],
)
def test_bad_beam_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be .*Received: {name}"):
        beam_search(constant_step, None, np.zeros((2,), "int32"), END, 3, **kwargs)


# 10. Sampling.


def numpy_sampling_probabilities(log_probs, temperature=1.0, top_k=None, top_p=None):
    """The distribution `sample_search` draws from, recomputed in float64."""
    logits = np.asarray(log_probs, "float64") / temperature
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities, kind="stable")
    if top_k is not None:
        probabilities[order[top_k:]] = 0.0
        probabilities /= probabilities.sum()
    if top_p is not None:
        cumulative = np.cumsum(probabilities[order])
        assert not np.isclose(cumulative, top_p, atol=1e-5).any(), "too close to call"
        # The smallest number of most probable tokens whose total reaches top_p.
        size = min(int(np.searchsorted(cumulative, top_p)) + 1, len(order))
        probabilities[order[size:]] = 0.0
        probabilities /= probabilities.sum()
    return probabilities


@pytest.mark.parametrize("end_id", [None, END])
def test_sampling_with_top_k_of_one_is_greedy_search(end_id):
    model = ToyRNN(seed=3)
    h = model.initial_state(5)
    start = np.array([0, 2, 3, 4, 5])
    greedy_ids, greedy_scores = greedy_search(model, h, start, end_id, 8)
    ids, scores = sample_search(model, h, start, end_id, 8, top_k=1, seed=0)
    np.testing.assert_array_equal(to_numpy(ids), to_numpy(greedy_ids))
    np.testing.assert_array_equal(to_numpy(scores), to_numpy(greedy_scores))


def test_sampling_at_a_tiny_temperature_is_greedy_search():
    model = ToyRNN(seed=3)
    h = model.initial_state(6, seed=3)
    start = np.array([0, 2, 3, 4, 5, 1])
    # No near-tie on the greedy path, so a temperature of 1e-4 leaves the
    # runner-up a probability below exp(-30).
    for i in range(6):
        state, token = h[i], start[i]
        for _ in range(8):
            log_probs, state = model.numpy_step(token, state)
            runner_up, best = np.sort(log_probs)[-2:]
            assert best - runner_up > 3e-3
            token = int(np.argmax(log_probs))
    ids, scores = sample_search(model, h, start, END, 8, temperature=1e-4, seed=0)
    greedy_ids, greedy_scores = greedy_search(model, h, start, END, 8)
    np.testing.assert_array_equal(to_numpy(ids), to_numpy(greedy_ids))
    np.testing.assert_allclose(to_numpy(scores), to_numpy(greedy_scores), rtol=1e-6)


SAMPLES = 20000


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [
        (1.0, None, None),
        (0.5, None, None),
        (2.0, None, None),
        (1.0, 3, None),
        (1.0, None, 0.8),
        (1.5, 4, 0.85),
    ],
)
def test_first_tokens_follow_the_tempered_and_filtered_distribution(
    temperature, top_k, top_p
):
    probabilities = [0.04, 0.08, 0.12, 0.16, 0.25, 0.35]
    log_table = normalized_log(np.tile(probabilities, (1, 6, 1)))
    step_fn = TableStep(log_table)
    ids, scores = sample_search(
        step_fn,
        step_fn.initial_state(SAMPLES),
        np.full((SAMPLES,), PAD),
        None,
        1,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=1,
    )
    first = to_numpy(ids)[:, 0]
    expected = numpy_sampling_probabilities(
        log_table[0, PAD], temperature, top_k, top_p
    )
    counts = np.bincount(first, minlength=6)
    support = expected > 0
    assert counts[~support].sum() == 0
    assert support.sum() > 1
    _, p_value = scipy.stats.chisquare(counts[support], SAMPLES * expected[support])
    assert p_value > 0.001, (counts, SAMPLES * expected)
    # Scores are the step function's log-probabilities, untempered.
    np.testing.assert_allclose(to_numpy(scores), log_table[0, PAD, first], rtol=1e-6)


def test_each_token_is_drawn_given_the_one_before():
    vocab = 6
    log_table = normalized_log(
        np.random.default_rng(0).uniform(0.1, 1.0, size=(2, vocab, vocab))
    )
    step_fn = TableStep(log_table)
    ids, scores = sample_search(
        step_fn,
        step_fn.initial_state(SAMPLES),
        np.full((SAMPLES,), PAD),
        None,
        2,
        seed=2,
    )
    ids = to_numpy(ids)
    joint = np.exp(log_table[0, PAD][:, None] + log_table[1]).astype("float64")
    counts = np.bincount(ids[:, 0] * vocab + ids[:, 1], minlength=vocab * vocab)
    expected = SAMPLES * joint.ravel() / joint.sum()
    _, p_value = scipy.stats.chisquare(counts, expected)
    assert p_value > 0.001
    np.testing.assert_allclose(
        to_numpy(scores),
        log_table[0, PAD, ids[:, 0]] + log_table[1, ids[:, 0], ids[:, 1]],
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [
        (1.0, 3, None),
        (1.0, None, 0.6),
        (2.0, None, 0.9),
        (0.7, 5, 0.8),
    ],
)
def test_sampling_never_leaves_the_top_k_or_the_nucleus(temperature, top_k, top_p):
    steps, vocab, batch = 4, 8, 3000
    log_table = normalized_log(
        np.random.default_rng(1).uniform(0.05, 1.0, size=(steps, vocab, vocab))
    )
    allowed = np.array(
        [
            [
                numpy_sampling_probabilities(row, temperature, top_k, top_p) > 0
                for row in log_table[step]
            ]
            for step in range(steps)
        ]
    )
    assert not allowed.all(), "the filter must leave tokens out"
    step_fn = TableStep(log_table)
    ids, _ = sample_search(
        step_fn,
        step_fn.initial_state(batch),
        np.full((batch,), PAD),
        None,
        steps,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=3,
    )
    ids = to_numpy(ids)
    previous = np.concatenate([np.full((batch, 1), PAD), ids[:, :-1]], axis=1)
    assert allowed[np.arange(steps), previous, ids].all()
    # Not too few either: from the common start every allowed token shows up.
    np.testing.assert_array_equal(np.unique(ids[:, 0]), np.flatnonzero(allowed[0, PAD]))


def test_no_limit_is_the_same_as_limits_that_keep_every_token():
    model = ToyRNN(seed=4)
    h = model.initial_state(32, seed=4)
    start = np.full((32,), 2)
    ids, scores = sample_search(model, h, start, END, 8, seed=5)
    same_ids, same_scores = sample_search(
        model, h, start, END, 8, top_k=model.vocab + 10, top_p=1.0, seed=5
    )
    np.testing.assert_array_equal(to_numpy(same_ids), to_numpy(ids))
    np.testing.assert_array_equal(to_numpy(same_scores), to_numpy(scores))


def test_the_seed_decides_the_draws():
    model = ToyRNN(seed=4)
    h = model.initial_state(64, seed=4)
    start = np.full((64,), 2)

    def sample(seed):
        ids, scores = sample_search(model, h, start, END, 8, temperature=1.5, seed=seed)
        return to_numpy(ids), to_numpy(scores)

    ids, scores = sample(7)
    again_ids, again_scores = sample(7)
    other_ids, _ = sample(8)
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_array_equal(again_scores, scores)
    assert not np.array_equal(other_ids, ids)
    assert ids.dtype == np.int32 and ids.shape == (64, 8)
    # The draws do vary from row to row.
    assert len({tuple(row) for row in ids}) > 10


@pytest.mark.parametrize("pad_id", [0, 3])
def test_sampling_ends_and_pads_as_greedy_search(pad_id):
    vocab, batch, max_length = 5, 300, 12
    table = np.random.default_rng(4).uniform(0.2, 1.0, size=(4, vocab, vocab))
    table[:, :, END] = 4.0
    log_table = normalized_log(table)
    table_step = TableStep(log_table)
    fed = []

    def step_fn(ids, state):
        fed.append(to_numpy(ids))
        return table_step(ids, state)

    start = np.random.default_rng(5).integers(2, vocab, size=batch)
    ids, scores = sample_search(
        step_fn,
        table_step.initial_state(batch),
        start,
        END,
        max_length,
        pad_id=pad_id,
        seed=6,
    )
    ids, scores = to_numpy(ids), to_numpy(scores)
    lengths = []
    for i, row in enumerate(ids):
        ends = np.flatnonzero(row == END)
        assert ends.size, "every row ends here"
        length = ends[0] + 1
        lengths.append(length)
        assert (row[length:] == pad_id).all()
        previous = [start[i], *row[: length - 1]]
        expected = sum(log_table[min(t, 3), previous[t], row[t]] for t in range(length))
        np.testing.assert_allclose(scores[i], expected, rtol=1e-5)
        # Each row is fed its previous token, so the pad once it has ended.
        fed_to_row = [fed[t][i] for t in range(len(fed))]
        np.testing.assert_array_equal(fed_to_row, [start[i], *row[: len(fed) - 1]])
    # The search stops once the longest row has ended.
    assert len(fed) == max(lengths) < max_length

    every_step = TableStep(log_table)
    sample_search(every_step, every_step.initial_state(4), start[:4], None, 9, seed=0)
    assert every_step.calls == 9


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(temperature=0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature="1"), "temperature"),
        (dict(temperature=True), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=2.0), "top_k"),
        (dict(top_k=True), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=-0.1), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_p="0.5"), "top_p"),
        (dict(top_p=float("nan")), "top_p"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(seed="0"), "seed"),
        (dict(seed=2**31), "seed"),
    ],
)
def test_bad_sampling_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be .*Received: {name}"):
        sample_search(constant_step, None, np.zeros((2,), "int32"), END, 3, **kwargs)
