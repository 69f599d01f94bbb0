"""
Title: RNN patterns with Keras: encoder, transducer, decoder
Description: What Keras' LSTM layers return, how to use them as an encoder
(one vector per sequence), a transducer (one output per step) and a decoder
(a sequence generated step by step), and how kseq2seq exposes the same parts.

Run `python examples/rnn_patterns.py` (a few seconds on a laptop CPU). Every
claim it prints is also asserted, so the script fails if one stops holding.
`--quick` is accepted for CI and runs the same; `--out DIR` sets where the
figure goes (default: the current directory).
"""

import argparse
import os

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from keras import ops  # noqa: E402

from kseq2seq import Seq2Seq  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a smoke run (the same)")
parser.add_argument("--out", default=".", help="directory for the figure")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
np.set_printoptions(precision=4, suppress=True)

"""## Checking a claim

Every claim below is checked numerically: `same` asserts that two tensors are
equal up to float32 rounding and prints how far apart they are.
"""


# --8<-- [start:same]
def same(claim, actual, expected):
    actual = ops.convert_to_numpy(actual)
    expected = ops.convert_to_numpy(expected)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    print(f"{claim}: max abs difference {np.abs(actual - expected).max():.1e}")


# --8<-- [end:same]

"""## Sample input

One sequence of three steps, each a vector of five features:
`(batch, time, features)`, the layout Keras' recurrent layers read.
"""

# --8<-- [start:input]
keras.utils.set_random_seed(42)
rng = np.random.default_rng(42)
x = rng.random((1, 3, 5), dtype="float32")  # (batch, time, features)
print("x:", x.shape)
# --8<-- [end:input]

"""## What an LSTM layer returns"""

# --8<-- [start:outputs]
lstm = keras.layers.LSTM(2, return_sequences=True, return_state=True)
output, h_n, c_n = lstm(x)
print("output:", tuple(output.shape))  # (batch, time, units)
print("h_n:   ", tuple(h_n.shape))  # (batch, units)
print("c_n:   ", tuple(c_n.shape))  # (batch, units)
print(ops.convert_to_numpy(output)[0])
same("last step of output == h_n", output[:, -1], h_n)

# A batch of seven sequences changes the first axis only.
output_7, h_7, c_7 = lstm(rng.random((7, 3, 5), dtype="float32"))
print("batch of 7:", tuple(output_7.shape), tuple(h_7.shape), tuple(c_7.shape))
assert tuple(output_7.shape) == (7, 3, 2) and tuple(h_7.shape) == (7, 2)
# --8<-- [end:outputs]

"""## The encoder pattern: one vector per sequence"""

# --8<-- [start:encoder]
encoder = keras.layers.LSTM(2)  # return_sequences=False: the last output only
encoder.build(x.shape)
encoder.set_weights(lstm.get_weights())
vector = encoder(x)
print("encoded:", tuple(vector.shape))
same("LSTM(2)(x) == h_n", vector, h_n)
# --8<-- [end:encoder]

"""## The transducer pattern: one output per step"""

# --8<-- [start:transducer]
tagger = keras.layers.Dense(4, activation="softmax")  # 4 tags, say
tags = tagger(output)  # Dense acts on the last axis, at every step
print("tag probabilities:", tuple(tags.shape))
same("each step's tags sum to 1", ops.sum(tags, axis=-1), np.ones((1, 3)))
# --8<-- [end:transducer]

"""## Stacked layers"""

# --8<-- [start:stacked]
stack = [
    keras.layers.LSTM(2, return_sequences=True, return_state=True) for _ in range(3)
]
sequence, final_h, final_c = x, [], []
for layer in stack:
    sequence, h, c = layer(sequence)  # each layer reads the one below
    final_h.append(h)
    final_c.append(c)
h_n_stack = ops.stack(final_h)  # torch.nn.LSTM's layout: (num_layers, batch, units)
print("top output:", tuple(sequence.shape), "h_n:", tuple(h_n_stack.shape))
same("last step of the top output == h_n[-1]", sequence[:, -1], h_n_stack[-1])
# --8<-- [end:stacked]

"""## Bidirectional layers"""

# --8<-- [start:bidirectional]
bidirectional = keras.layers.Bidirectional(
    keras.layers.LSTM(2, return_sequences=True, return_state=True)
)
output_bi, forward_h, forward_c, backward_h, backward_c = bidirectional(x)
print("output:", tuple(output_bi.shape), "each state:", tuple(forward_h.shape))
same("forward half of the LAST step == forward h_n", output_bi[:, -1, :2], forward_h)
same("backward half of the FIRST step == backward h_n", output_bi[:, 0, 2:], backward_h)
summary = ops.concatenate([forward_h, backward_h], axis=-1)  # the encoder vector
gap = np.abs(ops.convert_to_numpy(output_bi[:, -1] - summary)).max()
print(f"last step of output vs [forward h_n; backward h_n]: differ by {gap:.3f}")
assert gap > 1e-3
# --8<-- [end:bidirectional]

"""## Which inputs each output has read

The derivative of every output step with respect to every input step shows
what each direction has seen: it is exactly zero where an output cannot
depend on an input.
"""

# --8<-- [start:dependence]
x_long = torch.from_numpy(rng.random((1, 6, 5), dtype="float32"))
jacobian = torch.autograd.functional.jacobian(
    lambda inputs: bidirectional(inputs)[0], x_long
)  # (1, 6 output steps, 4 units, 1, 6 input steps, 5 features)
influence = jacobian.abs().amax(dim=(0, 3, 5)).numpy()  # (out step, unit, in step)
forward_influence = influence[:, :2].max(axis=1)  # (output step, input step)
backward_influence = influence[:, 2:].max(axis=1)
reads = np.tril(np.ones((6, 6), dtype=bool))  # row t: input steps 0..t
assert np.array_equal(forward_influence > 0, reads)
assert np.array_equal(backward_influence > 0, reads.T)  # row t: steps t..5
print("forward half at step t reads inputs 0..t; backward half reads t..5")
# --8<-- [end:dependence]

figure, axes = plt.subplots(1, 2, figsize=(8, 3.6), sharey=True)
for axis, values, title, final_step in zip(
    axes,
    (forward_influence, backward_influence),
    ("forward half", "backward half"),
    (5, 0),
):
    axis.imshow(values > 0, cmap="Blues", vmin=0, vmax=1.4)
    # The row of the final state h_n: the step that has read every input.
    axis.add_patch(
        Rectangle((-0.5, final_step - 0.5), 6, 1, fill=False, edgecolor="red", lw=2)
    )
    axis.set_title(f"{title}: h_n = output step {final_step}")
    axis.set_xlabel("input step")
    axis.set_xticks(range(6))
    axis.set_yticks(range(6))
axes[0].set_ylabel("output step")
figure.tight_layout()
figure.savefig(os.path.join(args.out, "rnn_patterns-dependence.png"), dpi=100)

"""## Manual unrolling"""

# --8<-- [start:unroll]
cell = keras.layers.LSTMCell(2)
cell.build((None, 5))
cell.set_weights(lstm.get_weights())  # kernel, recurrent_kernel, bias


def unroll(cell, x, state):
    outputs = []
    for t in range(x.shape[1]):
        output_t, state = cell(x[:, t], state)  # one step: (h, [h, c])
        outputs.append(output_t)
    return ops.stack(outputs, axis=1), state


zeros = ops.zeros((1, 2))
unrolled, (h, c) = unroll(cell, ops.convert_to_tensor(x), [zeros, zeros])
same("unrolled LSTMCell == LSTM layer (outputs)", unrolled, output)
same("unrolled LSTMCell == LSTM layer (h_n)", h, h_n)
same("unrolled LSTMCell == LSTM layer (c_n)", c, c_n)
# --8<-- [end:unroll]

"""## The same LSTM in PyTorch"""

# --8<-- [start:torch]
kernel, recurrent_kernel, bias = lstm.get_weights()
print("Keras kernel:", kernel.shape, "recurrent:", recurrent_kernel.shape)
torch_lstm = torch.nn.LSTM(5, 2, batch_first=True)
print("PyTorch weight_ih_l0:", tuple(torch_lstm.weight_ih_l0.shape))
with torch.no_grad():
    torch_lstm.weight_ih_l0.copy_(torch.from_numpy(kernel.T))
    torch_lstm.weight_hh_l0.copy_(torch.from_numpy(recurrent_kernel.T))
    torch_lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
    torch_lstm.bias_hh_l0.zero_()  # Keras has one bias, PyTorch two
    torch_output, (torch_h, torch_c) = torch_lstm(torch.from_numpy(x))
print("PyTorch h_n:", tuple(torch_h.shape))  # (num_layers * directions, batch, units)
same("torch.nn.LSTM == keras LSTM (outputs)", torch_output, output)
same("torch.nn.LSTM == keras LSTM (h_n)", torch_h[0], h_n)
# --8<-- [end:torch]

"""## The decoder pattern: generating from a state"""

# --8<-- [start:decoder]
decoder_cell = keras.layers.LSTMCell(2)
head = keras.layers.Dense(5)  # the state -> one output vector
start = keras.layers.Dense(5)  # the input of step 0, made from the context
output_length = 4

y = start(h_n)
state = [h_n, c_n]  # the encoder's final state starts the decoder
inputs, hidden, generated = [], [], []
for t in range(output_length):
    inputs.append(y)
    h, state = decoder_cell(y, state)
    y = head(h)  # this step's output is the next step's input
    hidden.append(h)
    generated.append(y)
generated = ops.stack(generated, axis=1)
print("generated:", tuple(generated.shape))

# Once the inputs are known (teacher forcing: the true previous outputs),
# a decoder is an ordinary LSTM layer run over them from the encoder's state.
teacher_forced = keras.layers.LSTM(2, return_sequences=True)
teacher_forced.build((None, output_length, 5))
teacher_forced.set_weights(decoder_cell.get_weights())
replayed = teacher_forced(ops.stack(inputs, axis=1), initial_state=[h_n, c_n])
same("LSTM layer over the fed-back inputs == the loop", replayed, ops.stack(hidden, 1))
# --8<-- [end:decoder]

"""## The same parts in kseq2seq"""

# --8<-- [start:kseq2seq]
model = Seq2Seq(input_dim=5, hidden_dim=2, output_length=output_length, output_dim=5)
model.encoder.cells[0].set_weights(lstm.get_weights())
model.decoder.cells[0].set_weights(decoder_cell.get_weights())
model.decoder.head.set_weights(head.get_weights())
model.decoder.start_projection.set_weights(start.get_weights())

sequence, context, states = model.encoder(x)
print("sequence:", tuple(sequence.shape), "context:", tuple(context.shape))
print("states:", [[tuple(s.shape) for s in layer] for layer in states])
same("encoder sequence == output (transducer)", sequence, output)
same("encoder context == h_n (encoder)", context, h_n)
same("encoder states == [h_n, c_n]", ops.stack(states[0]), ops.stack([h_n, c_n]))
same("model.predict(x) == our decoder loop", model.predict(x, verbose=0), generated)
# --8<-- [end:kseq2seq]
