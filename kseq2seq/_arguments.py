"""The builders' arguments, validated once and resolved into a `ModelSpec`.

`resolve(builder, arguments)` is the public edge: every argument of
`SimpleSeq2Seq`, `Seq2Seq` and `AttentionSeq2Seq` is checked here, defaults
that depend on other arguments are filled in, and how the builder wires its
decoder (feedback, peek, attention, state transfer) is decided. The model
and its layers only read the frozen result.
"""

import dataclasses
import warnings

import keras
import numpy as np

from kseq2seq import _validate
from kseq2seq.layers.attention import ATTENTION_SCORES
from kseq2seq.layers.cells import CELL_CLASSES
from kseq2seq.layers.cells import check_cell

# A vocabulary's size is no guide to a layer's width.
DEFAULT_TOKEN_HIDDEN_DIM = 128

BUILDERS = ("SimpleSeq2Seq", "Seq2Seq", "AttentionSeq2Seq")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything a kseq2seq model is made from, validated.

    `bridge` is `None` when the decoder starts from zeros; `shared_state`
    is the reference project's `inner_broadcast_state`; `attention_score`
    is the kind of score of a decoder with `attention`.
    """

    batch_input_shape: tuple
    output_dim: int
    output_length: int
    hidden_dim: int
    encoder_depth: int
    decoder_depth: int
    cell: str
    bidirectional: bool
    dropout: float
    stateful: bool
    output_activation: object
    feedback: bool
    peek: bool
    attention: bool
    shared_state: bool
    bridge: object
    teacher_force: bool
    scheduled_sampling: float
    reverse_input: bool
    check_inputs: bool
    input_vocab_size: object = None
    output_vocab_size: object = None
    embedding_dim: object = None
    input_embeddings: object = dataclasses.field(default=None, compare=False)
    start_id: int = 1
    end_id: int = 2
    attention_score: str = "bahdanau"

    @property
    def token_inputs(self):
        return self.input_vocab_size is not None

    @property
    def token_outputs(self):
        return self.output_vocab_size is not None

    @property
    def decoder_units(self):
        """The decoder's width: states handed over as they are keep theirs."""
        if self.bridge == "concat" and self.bidirectional:
            return 2 * self.hidden_dim
        return self.hidden_dim

    @property
    def encoder_width(self):
        """The width of the encoder's outputs, the attention's memory."""
        return 2 * self.hidden_dim if self.bidirectional else self.hidden_dim


def resolve(builder, arguments):
    """Validates a builder's arguments and resolves them.

    Args:
        builder: `"SimpleSeq2Seq"`, `"Seq2Seq"` or `"AttentionSeq2Seq"`.
        arguments: the builder's arguments by name, as given.

    Returns:
        A `ModelSpec`.
    """
    get = arguments.get
    tokens = _token_settings(arguments)
    output_dim = _output_dim(arguments, tokens["output_vocab_size"])
    hidden_dim = _validate.positive_int("hidden_dim", get("hidden_dim"), True)
    if hidden_dim is None:
        hidden_dim = (
            DEFAULT_TOKEN_HIDDEN_DIM if tokens["output_vocab_size"] else output_dim
        )
    if tokens["embedding_dim"] is None and (
        tokens["input_vocab_size"] or tokens["output_vocab_size"]
    ):
        tokens["embedding_dim"] = hidden_dim
    encoder_depth, decoder_depth = depth_pair(get("depth", 1))
    activation("output_activation", get("output_activation"))
    spec = ModelSpec(
        batch_input_shape=input_batch_shape(
            get("batch_input_shape"),
            get("input_shape"),
            get("batch_size"),
            get("input_dim"),
            get("input_length"),
            tokens=tokens["input_vocab_size"] is not None,
        ),
        output_dim=output_dim,
        output_length=_validate.positive_int("output_length", get("output_length")),
        hidden_dim=hidden_dim,
        encoder_depth=encoder_depth,
        decoder_depth=decoder_depth,
        cell=cell(get("cell", "lstm")),
        dropout=_validate.rate("dropout", get("dropout", 0.0)),
        stateful=_validate.boolean("stateful", get("stateful", False)),
        output_activation=get("output_activation"),
        check_inputs=_validate.boolean("check_inputs", get("check_inputs", False)),
        reverse_input=_validate.boolean("reverse_input", get("reverse_input", False)),
        **_wiring(builder, arguments),
        **tokens,
    )
    _check_combinations(spec, arguments)
    _check_attention_widths(spec, arguments)
    return spec


def _wiring(builder, arguments):
    """How each builder's decoder reads the encoder, and its training feed."""
    _validate.choice("builder", builder, BUILDERS)
    flags = {
        name: _validate.boolean(name, arguments.get(name, default))
        for name, default in (
            ("bidirectional", builder == "AttentionSeq2Seq"),
            ("teacher_force", False),
            ("peek", False),
            ("broadcast_state", True),
            ("inner_broadcast_state", True),
        )
    }
    bridge = _validate.choice(
        "bridge", arguments.get("bridge"), (None, "concat", "dense")
    )
    if builder == "Seq2Seq" and not flags["broadcast_state"]:
        bridge = None
    return dict(
        bidirectional=flags["bidirectional"],
        feedback=builder != "SimpleSeq2Seq",
        # SimpleSeq2Seq's decoder reads the repeated context and nothing else.
        peek=builder == "SimpleSeq2Seq" or (builder == "Seq2Seq" and flags["peek"]),
        attention=builder == "AttentionSeq2Seq",
        attention_score=_validate.choice(
            "attention", arguments.get("attention", "bahdanau"), ATTENTION_SCORES
        ),
        shared_state=builder == "Seq2Seq" and flags["inner_broadcast_state"],
        bridge=bridge,
        teacher_force=flags["teacher_force"],
        scheduled_sampling=_validate.rate(
            "scheduled_sampling", arguments.get("scheduled_sampling", 0.0)
        ),
    )


def _output_dim(arguments, output_vocab_size):
    output_dim = arguments.get("output_dim")
    if arguments.get("output_length") is None:
        raise ValueError("`output_length`, the number of output steps, is required.")
    if output_dim is None and output_vocab_size is None:
        raise ValueError(
            "`output_dim`, the width of each output step, is required (or "
            "`output_vocab_size` for token outputs)."
        )
    output_dim = _validate.positive_int(
        "output_dim", output_dim, allow_none=output_vocab_size is not None
    )
    if output_vocab_size is None:
        return output_dim
    if output_dim not in (None, output_vocab_size):
        raise ValueError(
            "With `output_vocab_size` the outputs are probabilities over "
            "the vocabulary: leave `output_dim` unset or equal to it. "
            f"Received: output_dim={output_dim!r}, "
            f"output_vocab_size={output_vocab_size!r}"
        )
    if arguments.get("output_activation") not in (None, "softmax"):
        raise ValueError(
            "With `output_vocab_size` the output activation is a softmax. "
            f"Received: output_activation={arguments['output_activation']!r}"
        )
    return output_vocab_size


def _check_combinations(spec, arguments):
    """Rules that tie several arguments together."""
    batch, length = spec.batch_input_shape[:2]
    if spec.scheduled_sampling and not spec.teacher_force:
        raise ValueError(
            "`scheduled_sampling` mixes the model's own predictions into "
            "teacher forcing: it needs `teacher_force=True`. Received: "
            f"scheduled_sampling={arguments.get('scheduled_sampling')!r}, "
            "teacher_force=False"
        )
    if spec.stateful and batch is None:
        raise ValueError(
            "`stateful=True` needs a fixed batch size: pass `batch_size` or "
            "`batch_input_shape=(batch_size, input_length, input_dim)`. "
            f"Received an input shape of {spec.batch_input_shape}."
        )
    unroll = _validate.boolean("unroll", arguments.get("unroll", False))
    if unroll and length is None:
        raise ValueError(
            "`unroll=True` needs a fixed input length: pass `input_length` or "
            "a full `input_shape`. Received an input shape of "
            f"{spec.batch_input_shape}."
        )
    if spec.token_outputs and spec.feedback and not (spec.bridge or spec.peek):
        if spec.attention:
            return  # Attention reads the input at every step.
        # A vector decoder still reads the input through its start value; a
        # token decoder starts from `start_id`.
        raise ValueError(
            "This token decoder would never read the input: it starts from "
            "zeros and `start_id`. Hand it the encoder's states "
            '(`broadcast_state=True`, `bridge="concat"` or `"dense"`) or '
            "set `peek=True`. Received: "
            f"broadcast_state={arguments.get('broadcast_state')!r}, "
            f"bridge={arguments.get('bridge')!r}, peek={arguments.get('peek')!r}"
        )


def _check_attention_widths(spec, arguments):
    """The dot-product score multiplies two vectors: their widths must match."""
    if not spec.attention or spec.attention_score != "luong":
        return
    if spec.decoder_units == spec.encoder_width:
        return
    raise ValueError(
        '`attention="luong"` scores each encoder output by its dot product '
        "with the decoder state, so the decoder must be as wide as the "
        f"encoder's outputs. Received: a decoder of width {spec.decoder_units} "
        f"and encoder outputs of width {spec.encoder_width} (hidden_dim="
        f"{spec.hidden_dim}, bidirectional={spec.bidirectional}, "
        f"bridge={arguments.get('bridge')!r}). Set bidirectional=False, or "
        'bridge="concat" to make the decoder 2 * hidden_dim wide, or use '
        '`attention="luong_general"`, whose score works with any widths.'
    )


def depth_pair(depth):
    """`depth` as `(encoder_depth, decoder_depth)`."""
    message = (
        "`depth` must be a positive int or a pair (encoder_depth, "
        f"decoder_depth) of positive ints. Received: depth={depth!r}"
    )
    if _validate.is_int(depth):
        depth = (depth, depth)
    if not isinstance(depth, (tuple, list)) or len(depth) != 2:
        raise ValueError(message)
    if not all(_validate.is_int(d) and d > 0 for d in depth):
        raise ValueError(message)
    return int(depth[0]), int(depth[1])


def _shape(name, value, rank):
    if not isinstance(value, (tuple, list)) or len(value) != rank:
        raise ValueError(
            f"`{name}` must be a tuple of {rank} entries. Received: {name}={value!r}"
        )
    return tuple(value)


def input_batch_shape(
    batch_input_shape=None,
    input_shape=None,
    batch_size=None,
    input_dim=None,
    input_length=None,
    tokens=False,
):
    """Resolves the five shape arguments into `(batch, length, input_dim)`.

    Precedence as in farizrahman4u/seq2seq: `batch_input_shape`, then
    `input_shape` (with `batch_size`), then `input_dim` (with `input_length`
    and `batch_size`). `None` stands for a dimension that may vary.

    With `tokens`, inputs are ids `(batch, length)`: the shape is
    `(batch, length)`, given as `batch_input_shape=(batch, length)`,
    `input_shape=(length,)` or `input_length`, or not at all.
    """
    if tokens and input_dim is not None:
        raise ValueError(
            "`input_dim` is the feature size of vector inputs; with "
            "`input_vocab_size` the inputs are token ids of shape (batch, "
            "input_length) and `embedding_dim` sets the embedding width. "
            f"Received: input_dim={input_dim!r}"
        )
    rank = 2 if tokens else 3
    # The arguments that lose to the one that wins, with the value it sets.
    if batch_input_shape is not None:
        values = _shape("batch_input_shape", batch_input_shape, rank)
        names = [f"batch_input_shape[{i}]" for i in range(rank)]
        winner = ("batch_input_shape", batch_input_shape)
        losers = [("batch_size", batch_size, values[0])]
        losers += [("input_shape", input_shape, values[1:])]
        losers += [("input_length", input_length, values[1])]
        losers += [("input_dim", input_dim, values[-1])]
    elif input_shape is not None:
        values = (batch_size,) + _shape("input_shape", input_shape, rank - 1)
        names = ["batch_size"] + [f"input_shape[{i}]" for i in range(rank - 1)]
        winner = ("input_shape", input_shape)
        losers = [("input_length", input_length, values[1])]
        losers += [("input_dim", input_dim, values[-1])]
    elif tokens or input_dim is not None:
        values = (batch_size, input_length, input_dim)[:rank]
        names = ["batch_size", "input_length", "input_dim"][:rank]
        losers = []
    else:
        raise ValueError(
            "The model needs the shape of its input. Pass `input_dim` (and "
            "optionally `input_length`), `input_shape=(input_length, "
            "input_dim)` or `batch_input_shape=(batch_size, input_length, "
            "input_dim)`. Received none of them."
        )
    for name, given, used in losers:
        if isinstance(given, list):
            given = tuple(given)
        if given is not None and given != used:
            warnings.warn(
                f"`{winner[0]}={winner[1]!r}` takes precedence over "
                f"`{name}={given!r}`, which is ignored. Pass only one of them.",
                UserWarning,
                # Raised for the call of the builder.
                stacklevel=4,
            )
    # The batch size and the length may vary; the feature size may not.
    return tuple(
        _validate.positive_int(name, value, allow_none=axis < 2)
        for axis, (name, value) in enumerate(zip(names, values))
    )


def activation(name, value):
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"`{name}` must be None, a Keras activation name such as "
            f"'softmax', or a callable. Received: {name}={value!r}"
        ) from error


def cell(value):
    """A cell name or Keras cell class, as its name."""
    try:
        hash(value)
    except TypeError:
        # `check_cell` looks names up in a dict, which fails with a TypeError
        # on an unhashable value such as a list.
        raise ValueError(
            f"`cell` must be one of {sorted(CELL_CLASSES)} or one of the "
            "classes keras.layers.LSTMCell, GRUCell, SimpleRNNCell. "
            f"Received: cell={value!r}"
        ) from None
    return check_cell(value)


def _token_settings(arguments):
    """Vocabularies, embeddings and the start and end ids, validated."""
    get = arguments.get
    input_vocab_size = _validate.positive_int(
        "input_vocab_size", get("input_vocab_size"), allow_none=True
    )
    output_vocab_size = _validate.positive_int(
        "output_vocab_size", get("output_vocab_size"), allow_none=True
    )
    embedding_dim = _validate.positive_int(
        "embedding_dim", get("embedding_dim"), allow_none=True
    )
    embeddings = get("input_embeddings")
    if embeddings is not None:
        embeddings = _embedding_matrix(embeddings, input_vocab_size, embedding_dim)
        input_vocab_size, embedding_dim = embeddings.shape
    start_id, end_id = get("start_id", 1), get("end_id", 2)
    if output_vocab_size is not None:
        _check_special_ids(start_id, end_id, output_vocab_size)
    return dict(
        input_vocab_size=input_vocab_size,
        output_vocab_size=output_vocab_size,
        embedding_dim=embedding_dim,
        input_embeddings=embeddings,
        start_id=start_id,
        end_id=end_id,
    )


def _embedding_matrix(embeddings, input_vocab_size, embedding_dim):
    try:
        embeddings = np.asarray(embeddings, dtype="float32")
    except (TypeError, ValueError) as error:
        raise ValueError(
            "`input_embeddings` must be a matrix of numbers (input_vocab_size, "
            f"embedding_dim). Received a {type(embeddings).__name__} that "
            f"NumPy cannot convert: {error}"
        ) from None
    if embeddings.ndim != 2 or 0 in embeddings.shape:
        raise ValueError(
            "`input_embeddings` must be a matrix (input_vocab_size, "
            f"embedding_dim) with at least one row and one column. "
            f"Received an array of shape {embeddings.shape}."
        )
    if not np.isfinite(embeddings).all():
        row, column = np.argwhere(~np.isfinite(embeddings))[0]
        raise ValueError(
            "`input_embeddings` must hold finite numbers. Received "
            f"{int((~np.isfinite(embeddings)).sum())} NaN or inf values, the "
            f"first at [{row}, {column}]: {embeddings[row, column]}."
        )
    if input_vocab_size is None:
        input_vocab_size = embeddings.shape[0]
    if embeddings.shape[0] != input_vocab_size or embedding_dim not in (
        None,
        embeddings.shape[1],
    ):
        raise ValueError(
            "`input_embeddings` must have shape (input_vocab_size, "
            f"embedding_dim) = ({input_vocab_size}, "
            f"{embedding_dim or 'embedding_dim'}). Received an array of "
            f"shape {embeddings.shape}."
        )
    return embeddings


def _check_special_ids(start_id, end_id, output_vocab_size):
    for name, value in (("start_id", start_id), ("end_id", end_id)):
        if not _validate.is_int(value) or not 0 < value < output_vocab_size:
            raise ValueError(
                f"`{name}` must be an id in [1, output_vocab_size) = [1, "
                f"{output_vocab_size}); 0 is the padding id. Received: "
                f"{name}={value!r}"
            )
    if start_id == end_id:
        raise ValueError(
            "`start_id` and `end_id` must differ. Received: "
            f"start_id={start_id!r}, end_id={end_id!r}"
        )
