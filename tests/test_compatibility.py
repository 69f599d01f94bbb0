"""Files saved by earlier versions keep loading, and the public API holds.

`tests/data/saved_models/` holds models saved by kseq2seq at commit 821df43
(`make.py` beside them wrote them), with their inputs and outputs. Each must
load with `safe_mode=True` and predict and decode exactly as it did.
"""

import inspect
import pathlib

import keras
import numpy as np
import pytest

import kseq2seq

SAVED = pathlib.Path(__file__).parent / "data" / "saved_models"
NAMES = sorted(path.stem for path in SAVED.glob("*.keras"))


def test_every_builder_has_a_saved_model():
    assert len(NAMES) == 7
    for builder in ("simple_seq2seq", "seq2seq", "attention_seq2seq"):
        assert builder in NAMES and f"{builder}_tokens" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_saved_models_load_and_predict_as_before(name):
    model = keras.models.load_model(SAVED / f"{name}.keras", safe_mode=True)
    record = np.load(SAVED / f"{name}.npz")
    np.testing.assert_allclose(
        model.predict(record["x"], verbose=0), record["predict"], rtol=0, atol=1e-6
    )
    if "greedy_ids" not in record:
        return
    for method in ("greedy", "beam"):
        ids, scores = model.generate(record["x"], method=method, beam_width=3)
        np.testing.assert_array_equal(ids, record[f"{method}_ids"])
        np.testing.assert_allclose(scores, record[f"{method}_scores"], atol=1e-5)


def test_public_names():
    assert sorted(kseq2seq.__all__) == [
        "AttentionSeq2Seq",
        "BahdanauAttention",
        "LuongAttention",
        "RecurrentDecoder",
        "RecurrentEncoder",
        "Seq2Seq",
        "Seq2SeqModel",
        "SimpleSeq2Seq",
        "StateBridge",
        "Vocabulary",
        "__version__",
    ]


# The reference project's positional order comes first in each builder; the
# arguments kseq2seq adds follow it.
SIGNATURES = {
    "SimpleSeq2Seq": (
        "output_dim output_length hidden_dim input_shape batch_size "
        "batch_input_shape input_dim input_length depth dropout unroll stateful "
        "output_activation cell bidirectional input_vocab_size output_vocab_size "
        "embedding_dim input_embeddings start_id end_id reverse_input check_inputs"
    ),
    "Seq2Seq": (
        "output_dim output_length batch_input_shape input_shape batch_size "
        "input_dim input_length hidden_dim depth broadcast_state unroll stateful "
        "inner_broadcast_state teacher_force peek dropout output_activation cell "
        "bidirectional bridge input_vocab_size output_vocab_size embedding_dim "
        "input_embeddings start_id end_id scheduled_sampling reverse_input "
        "check_inputs"
    ),
    "AttentionSeq2Seq": (
        "output_dim output_length batch_input_shape batch_size input_shape "
        "input_length input_dim hidden_dim depth bidirectional unroll stateful "
        "dropout teacher_force output_activation cell bridge input_vocab_size "
        "output_vocab_size embedding_dim input_embeddings start_id end_id "
        "scheduled_sampling reverse_input check_inputs attention"
    ),
}

DEFAULTS = {
    "SimpleSeq2Seq": dict(depth=1, dropout=0.0, unroll=False, stateful=False),
    "Seq2Seq": dict(
        depth=1,
        broadcast_state=True,
        inner_broadcast_state=True,
        teacher_force=False,
        peek=False,
        bridge="concat",
        bidirectional=False,
    ),
    "AttentionSeq2Seq": dict(
        depth=1, bidirectional=True, bridge=None, attention="bahdanau"
    ),
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_builder_signatures(name):
    parameters = inspect.signature(getattr(kseq2seq, name)).parameters
    names = [p for p in parameters if p != "kwargs"]
    assert names == SIGNATURES[name].split()
    assert parameters["kwargs"].kind is inspect.Parameter.VAR_KEYWORD
    for argument, default in DEFAULTS[name].items():
        assert parameters[argument].default == default, argument
