"""Greedy search, sampling and beam search over any step function.

The searches only see a step function `step_fn(ids, state) ->
(log_probs, new_state)`, so any decoder can plug in by writing one: `ids`
is an int32 tensor `(N,)` of the previous tokens, `state` a nested structure
(list, tuple or dict, possibly nested, possibly holding `None`) of tensors
whose first axis is `N`, and `log_probs` a float tensor `(N, vocab_size)` of
log-probabilities of the next token.

What runs at every step (the loop of greedy search and sampling, and beam
search's expansion and reordering) is written in PyTorch operations:
kseq2seq runs on Keras' PyTorch backend, so the step function's tensors are
PyTorch tensors, and at small batches Keras' dispatch of each operation
would cost more than the operation. The rest uses `keras.ops`.
The tensors stay on the device the step function computes on; nothing here
moves data to the CPU except the one boolean per step that decides whether
to stop early.
"""

import collections

import keras
import torch
from keras import ops

from kseq2seq import _validate


def _check_common(step_fn, start_ids, end_id, max_length, pad_id):
    if not callable(step_fn):
        raise ValueError(
            "`step_fn` must be a callable `step_fn(ids, state) -> "
            f"(log_probs, new_state)`. Received: step_fn={step_fn!r}"
        )
    end_id = _validate.non_negative_int("end_id", end_id, allow_none=True)
    max_length = _validate.positive_int("max_length", max_length)
    pad_id = _validate.non_negative_int("pad_id", pad_id)
    ids = ops.convert_to_tensor(start_ids, "int32")
    if len(ids.shape) != 1:
        raise ValueError(
            "`start_ids` must be a 1D int tensor or array of shape (N,). "
            f"Received: start_ids with shape {tuple(ids.shape)}"
        )
    return ids, end_id, max_length, pad_id


def _map_state(fn, state):
    """Applies `fn` to every tensor of a nested state; `None` stays `None`."""
    return keras.tree.map_structure(lambda x: None if x is None else fn(x), state)


def _all(flags):
    # The only host synchronisation of a step: the loop length is decided in
    # Python, which is what lets an early stop save the remaining steps.
    return bool(flags.all())


def _pad_to(ids, max_length, pad_id):
    missing = max_length - ids.shape[-1]
    if missing == 0:
        return ids
    widths = [[0, 0]] * (len(ids.shape) - 1) + [[0, missing]]
    return ops.pad(ids, widths, constant_values=pad_id)


def greedy_search(step_fn, state, start_ids, end_id, max_length, pad_id=0):
    """Picks the most probable token at every step.

    Args:
        step_fn: callable `step_fn(ids, state) -> (log_probs, new_state)`.
            `ids` is an int32 tensor `(N,)` of the previous tokens, `state`
            a nested structure (list, tuple or dict, possibly nested,
            possibly containing `None`) of tensors whose first axis is `N`,
            and `log_probs` a float tensor `(N, vocab_size)` of
            log-probabilities of the next token.
        state: the initial state, passed to the first call of `step_fn`.
        start_ids: int tensor or array `(N,)`, the tokens fed at the first
            step.
        end_id: int or `None`. A sequence that emits `end_id` is finished:
            `end_id` is kept in the output, every later position is `pad_id`
            (which is also what `step_fn` is fed for it), and its score
            stops changing. `None` never finishes a sequence early.
        max_length: positive int, the number of steps at most. The search
            stops early once every sequence has finished.
        pad_id: non-negative int, the token after the end of a sequence.

    Returns:
        `(ids, scores)`: `ids` an int32 tensor `(N, max_length)`, padded
        with `pad_id` after the end; `scores` a float tensor `(N,)` of the
        dtype of `log_probs`, the sum of the log-probabilities of the
        emitted tokens up to and including `end_id`.

    Example:

        >>> from kseq2seq.decoding import greedy_search
        >>> # Token 0 pads, 1 ends; row `i` holds the next-token
        >>> # log-probabilities after token `i`.
        >>> table = np.log(np.array(
        ...     [[0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3]], "float32"))
        >>> def step_fn(ids, state):
        ...     return keras.ops.take(table, ids, axis=0), state
        >>> ids, scores = greedy_search(step_fn, None, np.array([0, 2]),
        ...                             end_id=1, max_length=4)
        >>> keras.ops.convert_to_numpy(ids)
        array([[2, 1, 0, 0],
               [1, 0, 0, 0]], dtype=int32)
        >>> np.round(keras.ops.convert_to_numpy(scores), 3)  # log(.7*.6), log(.6)
        array([-0.868, -0.511], dtype=float32)
    """
    ids, end_id, max_length, pad_id = _check_common(
        step_fn, start_ids, end_id, max_length, pad_id
    )
    return _decode_token_by_token(
        step_fn, state, ids, end_id, max_length, pad_id, _most_probable
    )


def _most_probable(log_probs):
    token_log_prob, token = torch.max(log_probs, dim=-1)
    return token.int(), token_log_prob


def _decode_token_by_token(step_fn, state, ids, end_id, max_length, pad_id, choose):
    """The loop of greedy search and sampling, which differ in `choose`.

    `choose(log_probs)` returns the next token of every row, int32 `(N,)`,
    and its log-probability `(N,)`, read from `log_probs`.
    """
    emitted = []
    for step in range(max_length):
        log_probs, state = step_fn(ids, state)
        token, token_log_prob = choose(log_probs)
        if step == 0:
            # Created from the first output so that they share its device
            # and dtype, whatever the step function computes in.
            scores = torch.zeros_like(token_log_prob)
            finished = torch.zeros_like(token, dtype=torch.bool)
        token = token.masked_fill(finished, pad_id)
        scores = scores + token_log_prob.masked_fill(finished, 0)
        emitted.append(token)
        if end_id is None:
            ids = token
            continue
        finished = finished | (token == end_id)
        if _all(finished):
            break
        ids = token
    ids = _pad_to(torch.stack(emitted, dim=1), max_length, pad_id)
    return ids, scores


def sample_search(
    step_fn,
    state,
    start_ids,
    end_id,
    max_length,
    temperature=1.0,
    top_k=None,
    top_p=None,
    seed=None,
    pad_id=0,
):
    """Draws every token at random from the step function's distribution.

    Batched ancestral sampling: at every step each row draws its next token
    from `softmax(log_probs / temperature)`, restricted to the `top_k` most
    probable tokens and then to the nucleus of probability `top_p` (Holtzman
    et al., 2020) when they are given. End and pad handling, the early stop
    and the returned scores are those of `greedy_search`.

    Args:
        step_fn: callable `step_fn(ids, state) -> (log_probs, new_state)`,
            as for `greedy_search`.
        state: the initial state, passed to the first call of `step_fn`.
        start_ids: int tensor or array `(N,)`, the tokens fed at the first
            step.
        end_id: int or `None`. A sequence that emits `end_id` is finished:
            `end_id` is kept in the output, every later position is `pad_id`
            (which is also what `step_fn` is fed for it), and its score
            stops changing. `None` never finishes a sequence early.
        max_length: positive int, the number of steps at most. The search
            stops early once every sequence has finished.
        temperature: real > 0. The log-probabilities are divided by it
            before sampling: below 1 sharpens the distribution (towards
            greedy search), above 1 flattens it.
        top_k: positive int or `None`. Only the `top_k` most probable tokens
            can be drawn (all of them if `top_k` is at least the vocabulary
            size). `None` for no limit.
        top_p: real in (0, 1] or `None`. Only the smallest set of most
            probable tokens whose total probability reaches `top_p` can be
            drawn; the most probable token always can. Computed after the
            temperature and after `top_k`, on the probabilities renormalized
            over the tokens `top_k` keeps. `None` (or 1) for no limit.
        seed: int in [0, 2**31 - 1] or `None`. The same seed draws the same
            tokens (on the same device); `None` draws a fresh seed.
        pad_id: non-negative int, the token after the end of a sequence.

    Returns:
        `(ids, scores)`: `ids` an int32 tensor `(N, max_length)`, padded
        with `pad_id` after the end; `scores` a float tensor `(N,)` of the
        dtype of `log_probs`, the sum of the log-probabilities `step_fn`
        gave the drawn tokens up to and including `end_id` (before the
        temperature and the filtering).

    Example:

        >>> from kseq2seq.decoding import sample_search
        >>> # Token 0 pads, 1 ends; row `i` holds the next-token
        >>> # log-probabilities after token `i`.
        >>> table = np.log(np.array(
        ...     [[0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3]], "float32"))
        >>> def step_fn(ids, state):
        ...     return keras.ops.take(table, ids, axis=0), state
        >>> start = np.zeros((8,), "int32")
        >>> ids, scores = sample_search(step_fn, None, start, end_id=1,
        ...                             max_length=5, seed=42)
        >>> tuple(ids.shape), tuple(scores.shape)
        ((8, 5), (8,))
        >>> again, _ = sample_search(step_fn, None, start, end_id=1,
        ...                          max_length=5, seed=42)
        >>> bool(keras.ops.all(ids == again))
        True
        >>> # Half the probability is reached by one token after 0 and after
        >>> # 2, so with `top_p=0.5` sampling follows the greedy path.
        >>> ids, scores = sample_search(step_fn, None, np.array([0, 2]),
        ...                             end_id=1, max_length=4, top_p=0.5)
        >>> keras.ops.convert_to_numpy(ids)
        array([[2, 1, 0, 0],
               [1, 0, 0, 0]], dtype=int32)
        >>> np.round(keras.ops.convert_to_numpy(scores), 3)  # log(.7*.6), log(.6)
        array([-0.868, -0.511], dtype=float32)
    """
    ids, end_id, max_length, pad_id = _check_common(
        step_fn, start_ids, end_id, max_length, pad_id
    )
    temperature = _validate.real(
        "temperature", temperature, minimum=0, include_minimum=False
    )
    top_k = _validate.positive_int("top_k", top_k, allow_none=True)
    if top_p is not None:
        top_p = _validate.real(
            "top_p",
            top_p,
            0,
            1,
            include_minimum=False,
            expected="a real number in (0, 1] or None",
        )
    seed = _validate.integer("seed", seed, 0, 2**31 - 1, allow_none=True)
    choose = _sampler(temperature, top_k, top_p, keras.random.SeedGenerator(seed))
    return _decode_token_by_token(
        step_fn, state, ids, end_id, max_length, pad_id, choose
    )


def _sampler(temperature, top_k, top_p, seed_generator):
    """The `choose` of `_decode_token_by_token` that samples."""

    def choose(log_probs):
        # Shifted so that the most probable token has logit 0: a tiny
        # temperature then sends the others to -inf, never all of them.
        logits = log_probs - ops.max(log_probs, axis=-1, keepdims=True)
        logits, token_ids = _most_probable_logits(logits / temperature, top_k, top_p)
        drawn = keras.random.categorical(logits, 1, dtype="int32", seed=seed_generator)
        if token_ids is not None:
            drawn = ops.take_along_axis(token_ids, drawn, axis=-1)
        return drawn[:, 0], ops.take_along_axis(log_probs, drawn, axis=-1)[:, 0]

    return choose


def _most_probable_logits(logits, top_k, top_p):
    """The logits of the tokens `top_k` and `top_p` keep, and their ids.

    Returns:
        `(logits, ids)`: without a limit, the logits unchanged and `None`.
        Otherwise `(N, k)` logits sorted in descending order, -inf for the
        tokens outside the nucleus, and `(N, k)` int32 ids of their tokens.
    """
    vocab_size = logits.shape[-1]
    nucleus = top_p is not None and top_p < 1
    if top_k is None or top_k >= vocab_size:
        if not nucleus:
            return logits, None
        top_k = vocab_size
    logits, ids = ops.top_k(logits, top_k, sorted=True)
    if nucleus:
        probs = ops.softmax(logits, axis=-1)
        # The probability of the more probable tokens: 0 for the first, so
        # the nucleus is never empty.
        before = ops.cumsum(probs, axis=-1) - probs
        logits = ops.where(before < top_p, logits, ops.full_like(logits, float("-inf")))
    return logits, ops.cast(ids, "int32")


class _Beams(
    collections.namedtuple("_Beams", ["sequences", "scores", "finished", "lengths"])
):
    """The hypotheses of a beam search, `N * beam_width` rows, beam-major.

    `sequences` holds the tokens emitted so far `(rows, steps)`, `scores`
    their total log-probabilities, `finished` whether each has emitted
    `end_id`, and `lengths` its tokens up to and including `end_id`.
    """

    __slots__ = ()


def _check_beam_arguments(beam_width, length_penalty, num_return_sequences):
    beam_width = _validate.positive_int("beam_width", beam_width)
    num_return_sequences = _validate.positive_int(
        "num_return_sequences", num_return_sequences
    )
    if num_return_sequences > beam_width:
        raise ValueError(
            "`num_return_sequences` must be at most `beam_width` "
            f"({beam_width}). Received: "
            f"num_return_sequences={num_return_sequences}"
        )
    length_penalty = _validate.real("length_penalty", length_penalty, minimum=0)
    return beam_width, length_penalty, num_return_sequences


def _rank(scores, lengths, length_penalty):
    """`scores / lp(L)`, GNMT's `lp(L) = ((5 + L) / 6) ** length_penalty`."""
    if length_penalty == 0:
        return scores
    return scores / ((5.0 + lengths.to(scores.dtype)) / 6.0) ** length_penalty


def _rows(beam_indices, beam_width):
    """The state rows of beams `(N, k)` indexed within their input, flattened."""
    # Row `i * beam_width` is the first beam of input `i`.
    first_rows = torch.arange(
        beam_indices.shape[0], dtype=beam_indices.dtype, device=beam_indices.device
    )
    return (first_rows[:, None] * beam_width + beam_indices).reshape(-1)


def _initial_beams(ids, log_probs, beam_width):
    """`N * beam_width` empty hypotheses of which only each input's first is alive.

    The beams of an input start identical: expanding them all would fill the
    beam with copies of one hypothesis. The copies score -inf instead, and
    lose every top-k against a real candidate.
    """
    negative_inf = ops.full_like(log_probs[:, 0], float("-inf"))
    is_first = ops.equal(ops.arange(ids.shape[0], dtype="int32") % beam_width, 0)
    return _Beams(
        sequences=ops.zeros_like(ids)[:, None][:, :0],
        scores=ops.where(is_first, ops.zeros_like(negative_inf), negative_inf),
        finished=ops.zeros_like(ids, dtype="bool"),
        lengths=ops.zeros_like(ids),
    )


def _only_pad_after_end(log_probs, finished, pad_id):
    """Gives a finished hypothesis one continuation, `pad_id` at log-prob 0.

    It then survives unchanged and competes with the running ones by its
    final score.
    """
    pad_only = torch.full_like(log_probs[0], float("-inf"))
    pad_only[pad_id] = 0.0
    return torch.where(finished[:, None], pad_only, log_probs)


def _advance_beams(beams, log_probs, step, beam_width, length_penalty, end_id, pad_id):
    """Extends every hypothesis by every token and keeps the best per input.

    Returns:
        `(beams, rows)`: the new hypotheses and, for each, the row of the
        hypothesis it extends, by which the caller reorders the state.
    """
    rows_total, vocab_size = log_probs.shape
    candidates = beams.scores[:, None] + _only_pad_after_end(
        log_probs, beams.finished, pad_id
    )
    candidate_lengths = beams.lengths.masked_fill(~beams.finished, step + 1)
    ranking = _rank(candidates, candidate_lengths[:, None], length_penalty)
    # Flattened per input, beam-major: index `k * vocab_size + v` is token
    # `v` after beam `k` of that input.
    per_input = (rows_total // beam_width, beam_width * vocab_size)
    top = torch.topk(ranking.reshape(per_input), beam_width, dim=1).indices
    scores = candidates.reshape(per_input).gather(1, top)
    rows = _rows(top // vocab_size, beam_width)
    token = (top % vocab_size).reshape(rows_total).to(beams.sequences.dtype)
    finished = beams.finished[rows]
    # A finished hypothesis whose score is -inf (an initial copy) ties on
    # every token; force the pad it would have chosen otherwise.
    token = token.masked_fill(finished, pad_id)
    if end_id is not None:
        finished = finished | (token == end_id)
    beams = _Beams(
        sequences=torch.cat([beams.sequences[rows], token[:, None]], dim=1),
        scores=scores.reshape(rows_total),
        finished=finished,
        lengths=candidate_lengths[rows],
    )
    return beams, rows


def _best_hypotheses(beams, beam_width, num_return_sequences, length_penalty):
    """The `num_return_sequences` best hypotheses of each input, best first."""
    # `lengths` of a hypothesis still running is the number of steps taken,
    # which is `max_length` here: the loop only stops early when none runs.
    ranking = _rank(beams.scores, beams.lengths, length_penalty)
    _, order = ops.top_k(ops.reshape(ranking, (-1, beam_width)), num_return_sequences)
    rows = _rows(ops.cast(order, "int32"), beam_width)
    return ops.take(beams.sequences, rows, axis=0), ops.take(beams.scores, rows, axis=0)


def beam_search(
    step_fn,
    state,
    start_ids,
    end_id,
    max_length,
    beam_width=5,
    length_penalty=0.0,
    pad_id=0,
    num_return_sequences=1,
):
    """Batched beam search.

    Keeps the `beam_width` best hypotheses of every input. Each step expands
    every hypothesis with every token and keeps, per input, the
    `beam_width` best of the `beam_width * vocab_size` candidates.

    Scores are total log-probabilities. A hypothesis that emitted `end_id`
    is finished: it keeps its place and its score, and only extends with
    `pad_id` at log-probability 0. Hypotheses are ranked by
    `score / lp(L)`, with GNMT's length penalty
    `lp(L) = ((5 + L) / 6) ** length_penalty` (Wu et al., 2016), where `L`
    counts the tokens up to and including `end_id` (the steps taken so far
    for a hypothesis still running, `max_length` at the end). With
    `length_penalty=0` the ranking is by plain total log-probability.

    The state is expanded to `N * beam_width` rows, beam-major within each
    input: rows `i * beam_width` to `i * beam_width + beam_width - 1` belong
    to input `i` (`ops.repeat(x, beam_width, axis=0)` on every tensor).
    After each step the rows of every tensor of the state are gathered
    along axis 0 with the chosen beams, so tensors of any rank (encoder
    outputs `(N, T, D)` for attention, say) follow their hypothesis.

    Args:
        step_fn: callable `step_fn(ids, state) -> (log_probs, new_state)`,
            as for `greedy_search`; it is called with `N * beam_width` rows.
        state: the initial state: a nested structure (list, tuple or dict,
            possibly nested, possibly containing `None`) of tensors whose
            first axis is `N`. `None` entries stay `None`.
        start_ids: int tensor or array `(N,)`, the tokens fed at the first
            step.
        end_id: int or `None`, the token that finishes a hypothesis.
        max_length: positive int, the number of steps at most. The search
            stops early once every hypothesis of every input has finished.
        beam_width: positive int, the hypotheses kept per input.
        length_penalty: real >= 0, the exponent of the length penalty.
            Larger values favour longer hypotheses.
        pad_id: non-negative int, the token after the end of a hypothesis.
        num_return_sequences: positive int, at most `beam_width`, the
            hypotheses returned per input.

    Returns:
        `(ids, scores)`, best first by the length-penalized ranking. With
        `num_return_sequences=1`: `ids` an int32 tensor `(N, max_length)`
        and `scores` a float tensor `(N,)`; otherwise `(N,
        num_return_sequences, max_length)` and `(N, num_return_sequences)`.
        `scores` are the raw total log-probabilities (not divided by the
        length penalty); `ids` are padded with `pad_id` after the end.
        Where an input has fewer distinct hypotheses than asked for (a
        vocabulary smaller than the beam), the extra ones score `-inf`.

    Example:

        >>> from kseq2seq.decoding import beam_search
        >>> # Token 0 pads, 1 ends. Greedy takes 2 (0.6) then ends (0.35);
        >>> # the beam finds 3 (0.4) then the end (0.9), which is likelier.
        >>> table = np.log(np.array(
        ...     [[0.0, 0.0, 0.6, 0.4], [1.0, 0.0, 0.0, 0.0],
        ...      [0.1, 0.35, 0.3, 0.25], [0.0, 0.9, 0.05, 0.05]], "float32") + 1e-9)
        >>> def step_fn(ids, state):
        ...     return keras.ops.take(table, ids, axis=0), state
        >>> ids, scores = beam_search(step_fn, None, np.array([0]), end_id=1,
        ...                           max_length=3, beam_width=2)
        >>> keras.ops.convert_to_numpy(ids)
        array([[3, 1, 0]], dtype=int32)
        >>> ids, scores = beam_search(step_fn, None, np.array([0]), end_id=1,
        ...                           max_length=3, beam_width=2,
        ...                           num_return_sequences=2)
        >>> tuple(ids.shape), tuple(scores.shape)
        ((1, 2, 3), (1, 2))
        >>> np.round(np.exp(keras.ops.convert_to_numpy(scores)), 2)
        array([[0.36, 0.21]], dtype=float32)
    """
    ids, end_id, max_length, pad_id = _check_common(
        step_fn, start_ids, end_id, max_length, pad_id
    )
    beam_width, length_penalty, num_return_sequences = _check_beam_arguments(
        beam_width, length_penalty, num_return_sequences
    )
    batch = ids.shape[0]
    ids = ops.repeat(ids, beam_width, axis=0)
    state = _map_state(lambda x: ops.repeat(x, beam_width, axis=0), state)
    for step in range(max_length):
        log_probs, state = step_fn(ids, state)
        if step == 0:
            beams = _initial_beams(ids, log_probs, beam_width)
        beams, rows = _advance_beams(
            beams, log_probs, step, beam_width, length_penalty, end_id, pad_id
        )
        if step == max_length - 1 or (end_id is not None and _all(beams.finished)):
            break
        state = _map_state(lambda x: x.index_select(0, rows), state)
        ids = beams.sequences[:, -1]
    sequences, scores = _best_hypotheses(
        beams, beam_width, num_return_sequences, length_penalty
    )
    sequences = _pad_to(sequences, max_length, pad_id)
    if num_return_sequences == 1:
        return sequences, scores
    return (
        ops.reshape(sequences, (batch, num_return_sequences, max_length)),
        ops.reshape(scores, (batch, num_return_sequences)),
    )
