"""
Title: A two-layer bidirectional encoder feeding a decoder
Description: Build a two-layer bidirectional LSTM encoder by hand, turn its
final states into the initial states of a two-layer decoder twice as wide,
check the result against PyTorch and against kseq2seq's
`Seq2Seq(depth=2, bidirectional=True)`, then train that model.

Run `python examples/bidirectional_encoder.py` (about a minute on a laptop
CPU), or `python examples/bidirectional_encoder.py --quick` for a
seconds-long smoke run. Every claim it prints is also asserted. This tutorial
draws no figure; `--out DIR` is accepted like in the other tutorials.
"""

import argparse
import os

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from keras import ops  # noqa: E402

from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq.data import reverse_task  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
parser.add_argument("--out", default=".", help="directory for figures (none here)")
args = parser.parse_args()


# --8<-- [start:same]
def same(claim, actual, expected):
    """Asserts two tensors are equal up to float32 rounding; prints the gap."""
    actual = ops.convert_to_numpy(actual)
    expected = ops.convert_to_numpy(expected)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    print(f"{claim}: max abs difference {np.abs(actual - expected).max():.1e}")


def shape(tensor):
    return tuple(tensor.shape)


# --8<-- [end:same]


"""## The encoder

Two stacked bidirectional LSTM layers. Each returns its output sequence and
the final `(h, c)` of both directions; zeros are the initial states.
"""

# --8<-- [start:encoder]
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
embedding_dim, hidden_dim, num_layers = 10, 20, 2
batch_size, sequence_length = 3, 5
x = rng.normal(size=(batch_size, sequence_length, embedding_dim)).astype("float32")

encoder_layers = [
    keras.layers.Bidirectional(
        keras.layers.LSTM(hidden_dim, return_sequences=True, return_state=True),
        name=f"encoder_layer_{i}",
    )
    for i in range(num_layers)
]
sequence, final_h, final_c = x, [], []
for layer in encoder_layers:
    sequence, forward_h, forward_c, backward_h, backward_c = layer(sequence)
    print(f"{layer.name}: output {shape(sequence)}, each state {shape(forward_h)}")
    final_h += [forward_h, backward_h]
    final_c += [forward_c, backward_c]
print("encoder output:", shape(sequence))  # (batch, time, 2 * hidden_dim)
# --8<-- [end:encoder]

"""## The same encoder in PyTorch

`torch.nn.LSTM(num_layers=2, bidirectional=True)` computes the same thing,
but returns only the top layer's outputs and stacks the final states into
`(num_layers * 2, batch, hidden)`.
"""


# --8<-- [start:torch]
def copy_to_torch(keras_lstm, torch_lstm, suffix):
    """Copies a Keras LSTM's weights into one layer and direction of torch's."""
    kernel, recurrent_kernel, bias = keras_lstm.get_weights()
    weights = {
        "weight_ih": kernel.T,  # Keras: (input, 4 * units); same gate order
        "weight_hh": recurrent_kernel.T,
        "bias_ih": bias,
        "bias_hh": np.zeros_like(bias),  # Keras has one bias, PyTorch two
    }
    for name, value in weights.items():
        torch_lstm.get_parameter(name + suffix).copy_(torch.from_numpy(value))


torch_encoder = torch.nn.LSTM(
    embedding_dim, hidden_dim, num_layers, bidirectional=True, batch_first=True
)
with torch.no_grad():
    for i, layer in enumerate(encoder_layers):
        copy_to_torch(layer.forward_layer, torch_encoder, f"_l{i}")
        copy_to_torch(layer.backward_layer, torch_encoder, f"_l{i}_reverse")
    torch_output, (h_n, c_n) = torch_encoder(torch.from_numpy(x))
print("PyTorch output:", shape(torch_output), "h_n:", shape(h_n), "c_n:", shape(c_n))
same("PyTorch output == Keras output", torch_output, sequence)
same("PyTorch h_n == Keras h, stacked", h_n, ops.stack(final_h))
same("PyTorch c_n == Keras c, stacked", c_n, ops.stack(final_c))
# --8<-- [end:torch]

"""## From encoder states to decoder states

Layer `i` of the decoder starts from layer `i` of the encoder, its forward
and backward states concatenated.
"""

# --8<-- [start:reshape]
# PyTorch: h_n is (num_layers * 2, batch, hidden), layer by layer, and
# forward then backward within a layer.
per_direction = h_n.view(num_layers, 2, batch_size, hidden_dim)
print("PyTorch view(num_layers, 2, batch, hidden):", shape(per_direction))
decoder_h = torch.cat([per_direction[:, 0], per_direction[:, 1]], dim=-1)
print("PyTorch cat(forward, backward):", shape(decoder_h))

# keras.ops has the same operations for states stacked the same way.
stacked = ops.stack(final_h)
print("Keras stack:", shape(stacked))
per_direction_k = ops.reshape(stacked, (num_layers, 2, batch_size, hidden_dim))
print("Keras reshape(num_layers, 2, batch, hidden):", shape(per_direction_k))
decoder_h_k = ops.concatenate([per_direction_k[:, 0], per_direction_k[:, 1]], -1)
print("Keras concatenate(forward, backward):", shape(decoder_h_k))
same("Keras reshape + concatenate == PyTorch view + cat", decoder_h_k, decoder_h)

# A Keras LSTM layer takes its initial state as a list [h, c]: one per layer.
decoder_states = [
    [
        ops.concatenate(final_h[2 * i : 2 * i + 2], axis=-1),
        ops.concatenate(final_c[2 * i : 2 * i + 2], axis=-1),
    ]
    for i in range(num_layers)
]
print("decoder states:", [[shape(s) for s in pair] for pair in decoder_states])
for i, (h, _) in enumerate(decoder_states):
    same(f"decoder_states[{i}][0] == PyTorch's decoder_h[{i}]", h, decoder_h[i])

# A tempting shortcut mixes up directions and batch entries:
wrong = h_n.reshape(num_layers, batch_size, 2 * hidden_dim)
mixed = (wrong - decoder_h).abs().max().item()
print(f"h_n.reshape(num_layers, batch, 2 * hidden) is wrong: off by {mixed:.2f}")
assert mixed > 0.1
# --8<-- [end:reshape]

"""## The decoder

Two LSTM layers, `2 * hidden_dim` wide, unidirectional, run on an example
sequence `y` from the encoder's states.
"""

# --8<-- [start:decoder]
decoder_layers = [
    keras.layers.LSTM(2 * hidden_dim, return_sequences=True, name=f"decoder_layer_{i}")
    for i in range(num_layers)
]
y = rng.normal(size=(batch_size, 9, embedding_dim)).astype("float32")
decoded = y
for layer, state in zip(decoder_layers, decoder_states):
    decoded = layer(decoded, initial_state=state)
    print(f"{layer.name}: output {shape(decoded)}")
assert shape(decoded) == (batch_size, 9, 2 * hidden_dim)
# --8<-- [end:decoder]

"""## All together"""


# --8<-- [start:model]
class Seq2seqLSTM(keras.Model):
    """A stacked (optionally bidirectional) LSTM encoder and LSTM decoder."""

    def __init__(self, hidden_dim, num_layers, bidirectional=True, **kwargs):
        super().__init__(**kwargs)
        width = 2 * hidden_dim if bidirectional else hidden_dim
        self.encoder_layers = []
        for _ in range(num_layers):
            lstm = keras.layers.LSTM(
                hidden_dim, return_sequences=True, return_state=True
            )
            self.encoder_layers.append(
                keras.layers.Bidirectional(lstm) if bidirectional else lstm
            )
        self.decoder_layers = [
            keras.layers.LSTM(width, return_sequences=True) for _ in range(num_layers)
        ]

    def encode(self, x):
        """Returns the top layer's outputs and one [h, c] per layer."""
        states = []
        for layer in self.encoder_layers:
            x, *final = layer(x)  # [h, c], or [forward h, c, backward h, c]
            h = ops.concatenate(final[0::2], axis=-1)
            c = ops.concatenate(final[1::2], axis=-1)
            states.append([h, c])
        return x, states

    def call(self, inputs):
        x, y = inputs
        _, states = self.encode(x)
        for layer, state in zip(self.decoder_layers, states):
            y = layer(y, initial_state=state)
        return y


seq2seq = Seq2seqLSTM(hidden_dim, num_layers)
outputs = seq2seq((np.ones((2, 10, embedding_dim)), np.ones((2, 9, embedding_dim))))
print("Seq2seqLSTM output:", shape(outputs))  # (batch, 9, 2 * hidden_dim)
assert shape(outputs) == (2, 9, 2 * hidden_dim)
# --8<-- [end:model]

"""## The same model in kseq2seq"""

# --8<-- [start:kseq2seq]
model = Seq2Seq(
    input_dim=embedding_dim,
    hidden_dim=hidden_dim,
    output_length=9,
    output_dim=embedding_dim,
    depth=2,
    bidirectional=True,
    inner_broadcast_state=False,  # one state per layer, handed over layer by layer
    teacher_force=True,  # reads y(t - 1) in training (used further down)
)
print("encoder and decoder widths:", model.encoder.output_width, model.decoder.units)
assert model.decoder.units == 2 * hidden_dim

# Give kseq2seq's cells the weights of our hand-built encoder and decoder.
cells = model.encoder.cells  # layer_0_forward, layer_0_backward, layer_1_forward...
for i, layer in enumerate(encoder_layers):
    cells[2 * i].set_weights(layer.forward_layer.get_weights())
    cells[2 * i + 1].set_weights(layer.backward_layer.get_weights())
for cell, layer in zip(model.decoder.cells, decoder_layers):
    cell.set_weights(layer.get_weights())

encoded, context, states = model.encoder(x)
print("sequence:", shape(encoded), "context:", shape(context))
print("states:", [[shape(s) for s in pair] for pair in states])
same("sequence == our encoder's output", encoded, sequence)
for i in range(num_layers):
    same(
        f"kseq2seq layer {i} [h, c] == ours",
        ops.stack(states[i]),
        ops.stack(decoder_states[i]),
    )
same("context == top layer's [forward h; backward h]", context, decoder_states[-1][0])
# --8<-- [end:kseq2seq]

"""## The decoder starts from exactly those states"""

# --8<-- [start:start]
predicted = model.predict(x, verbose=0)
from_ours = model.decoder(context, initial_state=decoder_states)
from_zeros = model.decoder(context)
same("predict(x) == decoder started from our states", predicted, from_ours)
gap = np.abs(predicted - ops.convert_to_numpy(from_zeros)).max()
print(f"predict(x) vs decoder started from zeros: differ by {gap:.3f}")
assert gap > 1e-3

# Under teacher forcing the decoder reads [start value, y(0), ..., y(7)]:
# our two decoder layers plus kseq2seq's output head give the same outputs.
y_true = rng.normal(size=(batch_size, 9, embedding_dim)).astype("float32")
forced = model([x, y_true], training=True)
start = model.decoder.start_projection(context)[:, None]  # the input of step 0
decoder_inputs = ops.concatenate([start, y_true[:, :-1]], axis=1)
hidden = decoder_inputs
for layer, state in zip(decoder_layers, decoder_states):
    hidden = layer(hidden, initial_state=state)
same("teacher-forced model == our decoder + head", forced, model.decoder.head(hidden))
# --8<-- [end:start]

"""## The default: one shared state per stack"""

# --8<-- [start:shared]
shared = Seq2Seq(
    input_dim=embedding_dim,
    hidden_dim=hidden_dim,
    output_length=9,
    output_dim=embedding_dim,
    depth=2,
    bidirectional=True,
)
_, _, shared_states = shared.encoder(x)
print("one shared state:", [[shape(s) for s in pair] for pair in shared_states])
assert len(shared_states) == 1 and shared.decoder.units == 2 * hidden_dim
# --8<-- [end:shared]

"""## Training it

The same architecture learns to reverse sequences of digits.
"""

# --8<-- [start:train]
num_train, epochs = (256, 1) if args.quick else (10000, 8)
x_train, y_train = reverse_task(num_train, length=8, num_symbols=10, seed=0)
x_test, y_test = reverse_task(500, length=8, num_symbols=10, seed=1)
reverser = Seq2Seq(
    input_dim=10,
    input_length=8,
    hidden_dim=32,
    output_length=8,
    output_dim=10,
    depth=2,
    bidirectional=True,
    inner_broadcast_state=False,
    teacher_force=True,
    output_activation="softmax",
)
reverser.compile(
    loss="categorical_crossentropy",
    optimizer=keras.optimizers.Adam(3e-3, clipnorm=1.0),
    metrics=["categorical_accuracy"],
)
reverser.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=2)
predicted_digits = reverser.predict(x_test, verbose=0).argmax(-1)
correct = predicted_digits == y_test.argmax(-1)
accuracy = correct.mean()
print(f"held-out digit accuracy:    {accuracy:.3f} (chance: 0.100)")
print(f"held-out sequence accuracy: {correct.all(axis=1).mean():.3f}")
for digits, reversed_digits in zip(x_test[:3].argmax(-1), predicted_digits[:3]):
    print("".join(map(str, digits)), "->", "".join(map(str, reversed_digits)))
# --8<-- [end:train]
assert args.quick or accuracy > 0.8
