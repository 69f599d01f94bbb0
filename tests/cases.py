"""The catalog of model cases the tests build: each builder with its options.

A case is named by what its options do, and holds no data shape: each test
file adds the shape of its data, so the same case can run on vectors and on
tokens. `vector(name)` and `tokens(name)` return the `(builder, options)`
pair to build it with, on the shapes below unless a file gives its own
(`case(name, shape)` takes any shape):

```python
builder, options = vector("seq2seq_deep_teacher_forced", dict(VECTOR, hidden_dim=6))
model = builder(**options)
```
"""

from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq

BUILDERS = {
    "simple": SimpleSeq2Seq,
    "seq2seq": Seq2Seq,
    "attention": AttentionSeq2Seq,
}

# The default shapes: vectors of 3 features in and 2 out, or ids of a
# vocabulary of 9; 4 output steps; hidden width 5.
VECTOR = dict(input_dim=3, hidden_dim=5, output_length=4, output_dim=2)
TOKENS = dict(input_vocab_size=9, output_vocab_size=9, output_length=4, hidden_dim=5)

# name: (builder, options).
MODELS = {
    "simple": ("simple", {}),
    "simple_deep": ("simple", {"depth": 2}),
    "simple_deep_bidirectional": ("simple", {"depth": 2, "bidirectional": True}),
    "simple_bidirectional_gru": ("simple", {"bidirectional": True, "cell": "gru"}),
    "simple_deeper_decoder_bidirectional_gru": (
        "simple",
        {"depth": (2, 3), "bidirectional": True, "cell": "gru"},
    ),
    "simple_reversed": ("simple", {"reverse_input": True}),
    "simple_rnn_reversed": ("simple", {"cell": "simple_rnn", "reverse_input": True}),
    "simple_rnn_dropout_reversed": (
        "simple",
        {"dropout": 0.2, "reverse_input": True, "cell": "simple_rnn"},
    ),
    "seq2seq": ("seq2seq", {}),
    "seq2seq_deep": ("seq2seq", {"depth": 2}),
    "seq2seq_teacher_forced": ("seq2seq", {"teacher_force": True}),
    # Shared state (inner_broadcast_state, the default) through 2 layers.
    "seq2seq_deep_teacher_forced": ("seq2seq", {"teacher_force": True, "depth": 2}),
    "seq2seq_deep_teacher_forced_dropout": (
        "seq2seq",
        {"depth": 2, "teacher_force": True, "dropout": 0.1},
    ),
    "seq2seq_deep_per_layer_teacher_forced": (
        "seq2seq",
        {"depth": 2, "inner_broadcast_state": False, "teacher_force": True},
    ),
    "seq2seq_per_layer_deeper_decoder": (
        "seq2seq",
        {"depth": (2, 3), "inner_broadcast_state": False},
    ),
    "seq2seq_peek_per_layer": (
        "seq2seq",
        {"depth": (2, 3), "peek": True, "inner_broadcast_state": False},
    ),
    "seq2seq_peek_teacher_forced_deeper_decoder": (
        "seq2seq",
        {"teacher_force": True, "peek": True, "depth": (2, 3)},
    ),
    "seq2seq_sampling": (
        "seq2seq",
        {"teacher_force": True, "scheduled_sampling": 0.5},
    ),
    "seq2seq_bidirectional_dense": (
        "seq2seq",
        {
            "depth": 2,
            "bidirectional": True,
            "inner_broadcast_state": False,
            "bridge": "dense",
            "teacher_force": True,
        },
    ),
    "seq2seq_bidirectional_dense_gru": (
        "seq2seq",
        {"bidirectional": True, "bridge": "dense", "cell": "gru"},
    ),
    "seq2seq_peek_bidirectional_gru": (
        "seq2seq",
        {
            "cell": "gru",
            "peek": True,
            "bidirectional": True,
            "inner_broadcast_state": False,
            "bridge": "dense",
        },
    ),
    "seq2seq_simple_rnn_dropout": (
        "seq2seq",
        {"cell": "simple_rnn", "dropout": 0.3, "teacher_force": True},
    ),
    "seq2seq_peek_zero_start_dropout": (
        "seq2seq",
        {"broadcast_state": False, "peek": True, "dropout": 0.2},
    ),
    "seq2seq_peek_no_bridge": (
        "seq2seq",
        {"bridge": None, "peek": True, "teacher_force": True},
    ),
    # A token decoder that neither starts from the encoder's states nor
    # peeks would never read the input: these two are refused with tokens.
    "seq2seq_zero_start": ("seq2seq", {"broadcast_state": False}),
    "seq2seq_no_bridge": ("seq2seq", {"bridge": None, "teacher_force": True}),
    "attention": ("attention", {}),
    "attention_teacher_forced": ("attention", {"teacher_force": True}),
    "attention_deep_teacher_forced": (
        "attention",
        {"depth": 2, "teacher_force": True},
    ),
    "attention_softmax": (
        "attention",
        {"teacher_force": True, "output_activation": "softmax"},
    ),
    "attention_sampling": (
        "attention",
        {"teacher_force": True, "scheduled_sampling": 0.5},
    ),
    "attention_sampling_dropout": (
        "attention",
        {"teacher_force": True, "scheduled_sampling": 0.5, "dropout": 0.2},
    ),
    "attention_sampling_dense": (
        "attention",
        {"teacher_force": True, "scheduled_sampling": 0.3, "bridge": "dense"},
    ),
    "attention_concat": ("attention", {"bridge": "concat"}),
    "attention_deep_concat": (
        "attention",
        {"depth": 2, "bridge": "concat", "teacher_force": True},
    ),
    "attention_gru_concat": ("attention", {"cell": "gru", "bridge": "concat"}),
    "attention_unidirectional_dense_gru": (
        "attention",
        {"bidirectional": False, "bridge": "dense", "cell": "gru"},
    ),
    "attention_dropout_reversed": (
        "attention",
        {"dropout": 0.2, "reverse_input": True},
    ),
}


def case(name, shape):
    """`(builder, options)` of case `name` on data of `shape`."""
    builder, options = MODELS[name]
    return BUILDERS[builder], dict(shape, **options)


def vector(name, shape=VECTOR):
    """`(builder, options)` of case `name` on vectors."""
    return case(name, shape)


def tokens(name, shape=TOKENS):
    """`(builder, options)` of case `name` on token ids."""
    return case(name, shape)
