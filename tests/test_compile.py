"""`compile(jit_compile=True)`: `torch.compile` trains every builder.

The fused recurrent calls run eagerly inside the compiled step (TorchDynamo
cannot trace oneDNN's fused RNN); the rest is compiled. Training must give
what eager training gives.
"""

import keras
import numpy as np
import pytest

from kseq2seq import AttentionSeq2Seq
from kseq2seq import Seq2Seq
from kseq2seq import SimpleSeq2Seq

VECTOR = dict(input_dim=3, hidden_dim=6, output_length=4, output_dim=2)
CASES = {
    "simple_seq2seq": (SimpleSeq2Seq, VECTOR),
    "seq2seq_layerwise": (Seq2Seq, dict(VECTOR, inner_broadcast_state=False)),
    "seq2seq_teacher_forced": (Seq2Seq, dict(VECTOR, teacher_force=True)),
    "attention_seq2seq": (AttentionSeq2Seq, VECTOR),
}


def _trained_weights(builder, options, jit_compile):
    keras.utils.set_random_seed(3)
    model = builder(**options)
    model.compile(loss="mse", optimizer="adam", jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5, 3)).astype("float32")
    y = rng.normal(size=(16, 4, 2)).astype("float32")
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"], model.get_weights()


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_jit_compiled_training_equals_eager_training(case):
    builder, options = CASES[case]
    eager_loss, eager = _trained_weights(builder, options, jit_compile=False)
    compiled_loss, compiled = _trained_weights(builder, options, jit_compile=True)
    np.testing.assert_allclose(compiled_loss, eager_loss, rtol=1e-4)
    for a, b in zip(compiled, eager):
        np.testing.assert_allclose(a, b, atol=1e-4)
