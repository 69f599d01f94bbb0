"""Greedy and beam search over an exported decoding, with ONNX Runtime.

This module imports NumPy alone, and ONNX Runtime when a `Decoder` is made:
no Keras, PyTorch or kseq2seq. `export_decoding` copies it next to the
graphs it writes, as `kseq2seq_runtime.py`, so an exported folder serves
where kseq2seq is not installed: put the folder on `sys.path` and
`from kseq2seq_runtime import Decoder` (the Serving page shows it end to
end).

The searches are those of `kseq2seq.decoding` in NumPy, with the same
semantics: the end id is kept, the padding id follows it, a search stops
early once every sequence has ended, beam search ranks its hypotheses with
GNMT's length penalty. Where two candidates score exactly the same, the one
of lower index comes first here; `torch.topk` breaks such ties in no
documented order.
"""

import collections
import functools
import json
import numbers
import os

import numpy as np

FORMAT = "kseq2seq-decoding"
FORMAT_VERSION = 1


def next_name(name):
    """The name of the step graph's output that replaces state `name`."""
    return f"next_{name}"


class Decoder:
    """Decodes with the graphs `kseq2seq.serving.export_decoding` wrote.

    Args:
        directory: the folder `export_decoding` wrote.
        providers: ONNX Runtime execution providers, in order of
            preference. Defaults to `["CPUExecutionProvider"]`.
        session_options: an `onnxruntime.SessionOptions` for both graphs,
            or `None`.

    Example:

        >>> import tempfile
        >>> from kseq2seq.serving import Decoder, export_decoding
        >>> model = AttentionSeq2Seq(input_vocab_size=9, output_vocab_size=9,
        ...                          output_length=4, hidden_dim=6)
        >>> directory = tempfile.mkdtemp()
        >>> # The TorchScript exporter is the quicker one, for an example.
        >>> _ = export_decoding(model, directory, input_length=5,
        ...                     exporter="torchscript")
        >>> decoder = Decoder(directory)
        >>> ids, scores = decoder.generate([[5, 4, 8], [7, 8, 0]], method="beam",
        ...                                beam_width=3, num_return_sequences=2)
        >>> ids.shape, scores.shape
        ((2, 2, 4), (2, 2))
    """

    def __init__(self, directory, providers=None, session_options=None):
        import onnxruntime  # Only here: the searches run without it.

        with open(os.path.join(directory, "manifest.json")) as file:
            manifest = json.load(file)
        found = (manifest.get("format"), manifest.get("format_version"))
        if found != (FORMAT, FORMAT_VERSION):
            raise ValueError(
                f"`directory` must hold a decoding exported in format {FORMAT} "
                f"version {FORMAT_VERSION}. Received: a manifest of format "
                f"{found[0]!r} version {found[1]!r}"
            )
        self.manifest = manifest
        providers = providers or ["CPUExecutionProvider"]

        def session(name):
            return onnxruntime.InferenceSession(
                os.path.join(directory, manifest[name]),
                sess_options=session_options,
                providers=providers,
            )

        self._encoder = session("encoder")
        self._step = session("step")
        state = manifest["state"]
        self._names = [entry["name"] for entry in state]
        self._carried = [entry["name"] for entry in state if entry["carried"]]
        self._outputs = ["log_probs", *[next_name(name) for name in self._carried]]
        # An exporter may leave out the inputs a step does not read (the
        # previous ids of a decoder without feedback, say).
        self._step_inputs = {value.name for value in self._step.get_inputs()}

    @property
    def input_length(self):
        """The length the encoder was exported for."""
        return self.manifest["inputs"]["shape"][1]

    @property
    def output_length(self):
        """The model's `output_length`, the default `max_length`."""
        return self.manifest["output_length"]

    def encode(self, inputs):
        """The state a search starts from.

        Args:
            inputs: ids `(batch, length)`, `length` at most `input_length`,
                padded with 0 after each sequence's end (or vectors
                `(batch, input_length, input_dim)` for a model with vector
                inputs).

        Returns:
            A dict of NumPy arrays by state name, batch first.
        """
        return self._encode(self._checked_inputs(inputs))

    def _encode(self, inputs):
        values = self._encoder.run(self._names, {"inputs": inputs})
        return dict(zip(self._names, values))

    def _checked_inputs(self, inputs):
        described = self.manifest["inputs"]
        vocab_size = self.manifest["input_vocab_size"]
        inputs = np.asarray(inputs)
        expected = (
            f"(batch, length <= {self.input_length}) ids"
            if vocab_size
            else f"(batch, {', '.join(map(str, described['shape'][1:]))}) vectors"
        )
        shape = inputs.shape
        if (
            inputs.ndim != len(described["shape"])
            or 0 in shape
            or shape[2:] != tuple(described["shape"][2:])
            or shape[1] > self.input_length
            or (not vocab_size and shape[1] != self.input_length)
        ):
            raise ValueError(
                f"`inputs` must have shape {expected}. Received: inputs.shape={shape}"
            )
        if not vocab_size:
            return inputs.astype(described["dtype"])
        if not np.issubdtype(inputs.dtype, np.integer) or (
            inputs.min() < 0 or inputs.max() >= vocab_size
        ):
            raise ValueError(
                f"`inputs` must be integer ids in [0, {vocab_size}). Received: "
                f"inputs of dtype {inputs.dtype}, from {inputs.min()} to "
                f"{inputs.max()}"
            )
        missing = self.input_length - shape[1]
        # Padding is masked: a shorter input is served at the exported length.
        return np.pad(inputs.astype("int32"), [(0, 0), (0, missing)])

    def generate(
        self,
        inputs,
        method="greedy",
        beam_width=5,
        length_penalty=0.0,
        max_length=None,
        num_return_sequences=1,
        batch_size=None,
    ):
        """Greedy or beam search, as `Seq2SeqModel.generate` runs them.

        Args:
            inputs: as for `encode`.
            method: `"greedy"` or `"beam"`.
            beam_width: int. Hypotheses kept per input by beam search.
            length_penalty: float >= 0. GNMT length penalty for ranking beam
                hypotheses; 0 ranks by total log-probability.
            max_length: int. Steps to decode. Defaults to `output_length`.
            num_return_sequences: int. Best hypotheses returned per input by
                beam search.
            batch_size: int or `None`. Inputs decoded together. Defaults to
                all of them.

        Returns:
            `(ids, scores)`: int32 ids `(batch, max_length)` (or `(batch,
            num_return_sequences, max_length)`), the end id kept and 0
            after it, and their total log-probabilities, float32 `(batch,)`
            (or `(batch, num_return_sequences)`).
        """
        if max_length is None:
            max_length = self.output_length
        options = dict(
            end_id=self.manifest["end_id"],
            max_length=_positive_int("max_length", max_length),
            pad_id=self.manifest["pad_id"],
        )
        batch_size = _positive_int("batch_size", batch_size, allow_none=True)
        search, rows_per_input = greedy_search, 1
        if _choice("method", method, ("greedy", "beam")) == "beam":
            beam = _check_beam_arguments(
                beam_width, length_penalty, num_return_sequences
            )
            search = functools.partial(beam_search, **beam)
            rows_per_input = beam["beam_width"]
        inputs = self._checked_inputs(inputs)
        batch_size = batch_size or len(inputs)
        results = [
            self._search(
                inputs[start : start + batch_size], rows_per_input, search, options
            )
            for start in range(0, len(inputs), batch_size)
        ]
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*results))

    def _search(self, inputs, rows_per_input, search, options):
        """`(ids, scores)` of one batch of checked inputs."""
        state = self._encode(inputs)
        # What a step does not change is the same for every hypothesis of an
        # input: repeated once for the beams, never reordered.
        constants = {
            name: np.repeat(value, rows_per_input, axis=0)
            for name, value in state.items()
            if name not in self._carried and name in self._step_inputs
        }

        def step_fn(previous, carried):
            feed = {"previous": previous, **constants, **carried}
            feed = {name: feed[name] for name in self._step_inputs}
            log_probs, *values = self._step.run(self._outputs, feed)
            return log_probs, dict(zip(self._carried, values))

        start_ids = np.full((len(inputs),), self.manifest["start_id"], "int32")
        carried = {name: state[name] for name in self._carried}
        return search(step_fn, carried, start_ids, **options)


def _positive_int(name, value, allow_none=False):
    """`value` as an int >= 1: `kseq2seq._validate`'s check, which this
    module cannot import (its package imports Keras)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        expected = "a positive int" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return int(value)


def _choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )
    return value


def _check_beam_arguments(beam_width, length_penalty, num_return_sequences):
    beam_width = _positive_int("beam_width", beam_width)
    num_return_sequences = _positive_int("num_return_sequences", num_return_sequences)
    if num_return_sequences > beam_width:
        raise ValueError(
            "`num_return_sequences` must be at most `beam_width` "
            f"({beam_width}). Received: "
            f"num_return_sequences={num_return_sequences}"
        )
    if (
        not isinstance(length_penalty, numbers.Real)
        or isinstance(length_penalty, bool)
        or not np.isfinite(length_penalty)
        or length_penalty < 0
    ):
        raise ValueError(
            "`length_penalty` must be a real number >= 0. "
            f"Received: length_penalty={length_penalty!r}"
        )
    return dict(
        beam_width=beam_width,
        length_penalty=float(length_penalty),
        num_return_sequences=num_return_sequences,
    )


def _pad_to(ids, max_length, pad_id):
    missing = max_length - ids.shape[-1]
    widths = [(0, 0)] * (ids.ndim - 1) + [(0, missing)]
    return np.pad(ids, widths, constant_values=pad_id)


def greedy_search(step_fn, state, start_ids, end_id, max_length, pad_id=0):
    """Picks the most probable token at every step: `kseq2seq.decoding`'s
    `greedy_search` in NumPy.

    Args:
        step_fn: callable `step_fn(ids, state) -> (log_probs, new_state)`
            on NumPy arrays: int32 ids `(N,)`, log-probabilities
            `(N, vocab_size)`.
        state: the initial state, passed to the first call of `step_fn`.
        start_ids: int array `(N,)`, the tokens fed at the first step.
        end_id: int or `None`. A sequence that emits it is finished: it is
            kept, every later position is `pad_id`, and the score stops
            changing. `None` never finishes a sequence early.
        max_length: positive int, the number of steps at most; the search
            stops early once every sequence has finished.
        pad_id: non-negative int, the token after the end of a sequence.

    Returns:
        `(ids, scores)`: int32 ids `(N, max_length)` and the total
        log-probabilities `(N,)` of the emitted tokens, `end_id` included.

    Example:

        >>> from kseq2seq.serving.runtime import greedy_search
        >>> # Token 0 pads, 1 ends; row `i` holds the next-token
        >>> # log-probabilities after token `i`.
        >>> table = np.log(np.array(
        ...     [[0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3]], "float32"))
        >>> ids, scores = greedy_search(lambda ids, state: (table[ids], state),
        ...                             None, np.array([0, 2]), end_id=1,
        ...                             max_length=4)
        >>> ids
        array([[2, 1, 0, 0],
               [1, 0, 0, 0]], dtype=int32)
        >>> np.round(scores, 3)  # log(.7*.6), log(.6)
        array([-0.868, -0.511], dtype=float32)
    """
    ids = np.asarray(start_ids, "int32")
    emitted = []
    for step in range(max_length):
        log_probs, state = step_fn(ids, state)
        token = np.argmax(log_probs, axis=-1).astype("int32")
        token_log_prob = np.max(log_probs, axis=-1)
        if step == 0:
            scores = np.zeros_like(token_log_prob)
            finished = np.zeros(token.shape, bool)
        token = np.where(finished, np.int32(pad_id), token)
        scores = scores + np.where(finished, 0, token_log_prob).astype(scores.dtype)
        emitted.append(token)
        if end_id is not None:
            finished = finished | (token == end_id)
            if finished.all():
                break
        ids = token
    return _pad_to(np.stack(emitted, axis=1), max_length, pad_id), scores


class _Beams(
    collections.namedtuple("_Beams", ["sequences", "scores", "finished", "lengths"])
):
    """The hypotheses of a beam search, `N * beam_width` rows, beam-major:
    the tokens so far, their total log-probabilities, whether each has
    emitted the end id, and its tokens up to and including the end id."""

    __slots__ = ()


def _top_k(values, k):
    """`(N, k)` indices of the `k` largest values of each row, largest first,
    equal values in the order of their indices."""
    if k < values.shape[-1]:
        kth = -np.partition(-values, k - 1, axis=-1)[:, k - 1 : k]
        above, tied = values > kth, values == kth
        # The places left after the larger values go to the first of the
        # values equal to the k-th largest.
        room = k - above.sum(axis=-1, keepdims=True)
        kept = above | (tied & (np.cumsum(tied, axis=-1) <= room))
        candidates = np.nonzero(kept)[1].reshape(len(values), k)
    else:
        candidates = np.broadcast_to(np.arange(values.shape[-1]), values.shape)
    chosen = np.take_along_axis(values, candidates, axis=-1)
    order = np.argsort(-chosen, axis=-1, kind="stable")
    return np.take_along_axis(candidates, order, axis=-1)


def _rank(scores, lengths, length_penalty):
    """`scores / lp(L)`, GNMT's `lp(L) = ((5 + L) / 6) ** length_penalty`."""
    if length_penalty == 0:
        return scores
    lengths = lengths.astype(scores.dtype)
    return scores / ((5.0 + lengths) / 6.0) ** length_penalty


def _rows(beam_indices, beam_width):
    """The state rows of beams `(N, k)` indexed within their input, flattened."""
    first_rows = np.arange(len(beam_indices), dtype="int32") * beam_width
    return (first_rows[:, None] + beam_indices).reshape(-1).astype("int32")


def _initial_beams(rows, beam_width, dtype):
    """`rows` empty hypotheses of which only each input's first is alive: the
    copies score -inf, and lose every top-k against a real candidate."""
    is_first = np.arange(rows) % beam_width == 0
    return _Beams(
        sequences=np.zeros((rows, 0), "int32"),
        scores=np.where(is_first, 0, -np.inf).astype(dtype),
        finished=np.zeros((rows,), bool),
        lengths=np.zeros((rows,), "int32"),
    )


def _advance_beams(beams, log_probs, step, beam_width, length_penalty, end_id, pad_id):
    """Extends every hypothesis by every token and keeps the best per input.

    Returns `(beams, rows)`: the new hypotheses and, for each, the row of
    the hypothesis it extends.
    """
    rows_total, vocab_size = log_probs.shape
    # A finished hypothesis has one continuation, the padding at log-prob 0.
    pad_only = np.full((vocab_size,), -np.inf, log_probs.dtype)
    pad_only[pad_id] = 0
    extensions = np.where(beams.finished[:, None], pad_only, log_probs)
    candidates = beams.scores[:, None] + extensions
    lengths = np.where(beams.finished, beams.lengths, np.int32(step + 1))
    ranking = _rank(candidates, lengths[:, None], length_penalty)
    per_input = (rows_total // beam_width, beam_width * vocab_size)
    top = _top_k(ranking.reshape(per_input), beam_width)
    scores = np.take_along_axis(candidates.reshape(per_input), top, axis=1)
    rows = _rows(top // vocab_size, beam_width)
    token = (top % vocab_size).reshape(rows_total).astype("int32")
    finished = beams.finished[rows]
    # An initial copy (score -inf) ties on every token: it takes the pad.
    token = np.where(finished, np.int32(pad_id), token)
    if end_id is not None:
        finished = finished | (token == end_id)
    beams = _Beams(
        sequences=np.concatenate([beams.sequences[rows], token[:, None]], axis=1),
        scores=scores.reshape(rows_total),
        finished=finished,
        lengths=lengths[rows],
    )
    return beams, rows


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
    """Batched beam search: `kseq2seq.decoding`'s `beam_search` in NumPy.

    Keeps the `beam_width` best hypotheses of every input, ranked by
    `score / lp(L)` with `lp(L) = ((5 + L) / 6) ** length_penalty`, `L` the
    tokens up to and including `end_id`. A finished hypothesis keeps its
    place and its score and only extends with `pad_id`.

    Args:
        step_fn: callable `step_fn(ids, state) -> (log_probs, new_state)`,
            as for `greedy_search`, called with `N * beam_width` rows.
        state: the initial state: a dict of arrays whose first axis is `N`.
            They are repeated to `N * beam_width` rows, beam-major within
            each input, and their rows follow the hypotheses they belong to.
        start_ids: int array `(N,)`, the tokens fed at the first step.
        end_id: int or `None`, the token that finishes a hypothesis.
        max_length: positive int, the number of steps at most.
        beam_width: positive int, the hypotheses kept per input.
        length_penalty: real >= 0, the exponent of the length penalty.
        pad_id: non-negative int, the token after the end of a hypothesis.
        num_return_sequences: positive int, at most `beam_width`, the
            hypotheses returned per input.

    Returns:
        `(ids, scores)`, best first: int32 ids `(N, max_length)` and scores
        `(N,)`, or `(N, num_return_sequences, max_length)` and
        `(N, num_return_sequences)`. Scores are total log-probabilities.

    Example:

        >>> from kseq2seq.serving.runtime import beam_search
        >>> # Greedy takes 2 (0.6) then ends (0.35); the beam finds 3 (0.4)
        >>> # then the end (0.9), which is likelier.
        >>> table = np.log(np.array(
        ...     [[0.0, 0.0, 0.6, 0.4], [1.0, 0.0, 0.0, 0.0],
        ...      [0.1, 0.35, 0.3, 0.25], [0.0, 0.9, 0.05, 0.05]], "float32") + 1e-9)
        >>> ids, scores = beam_search(lambda ids, state: (table[ids], state), {},
        ...                           np.array([0]), end_id=1, max_length=3,
        ...                           beam_width=2)
        >>> ids
        array([[3, 1, 0]], dtype=int32)
    """
    checked = _check_beam_arguments(beam_width, length_penalty, num_return_sequences)
    beam_width = checked["beam_width"]
    length_penalty = checked["length_penalty"]
    num_return_sequences = checked["num_return_sequences"]
    batch = len(start_ids)
    ids = np.repeat(np.asarray(start_ids, "int32"), beam_width)
    state = {
        name: np.repeat(value, beam_width, axis=0) for name, value in state.items()
    }
    for step in range(max_length):
        log_probs, state = step_fn(ids, state)
        if step == 0:
            beams = _initial_beams(len(ids), beam_width, log_probs.dtype)
        beams, rows = _advance_beams(
            beams, log_probs, step, beam_width, length_penalty, end_id, pad_id
        )
        if step == max_length - 1 or (end_id is not None and beams.finished.all()):
            break
        state = {name: value[rows] for name, value in state.items()}
        ids = beams.sequences[:, -1]
    ranking = _rank(beams.scores, beams.lengths, length_penalty)
    order = _top_k(ranking.reshape(-1, beam_width), num_return_sequences)
    rows = _rows(order, beam_width)
    sequences = _pad_to(beams.sequences[rows], max_length, pad_id)
    scores = beams.scores[rows]
    if num_return_sequences == 1:
        return sequences, scores
    return (
        sequences.reshape(batch, num_return_sequences, max_length),
        scores.reshape(batch, num_return_sequences),
    )
