"""
Title: Reverse a sequence with Seq2Seq
Description: Train kseq2seq's Seq2Seq to reverse sequences of digits, then
check it on sequences it has never seen.

Run `python examples/quickstart.py` (about half a minute on a laptop CPU), or
`python examples/quickstart.py --quick` for a seconds-long smoke run.
"""

import argparse
import os

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402

from kseq2seq import Seq2Seq  # noqa: E402
from kseq2seq.data import reverse_task  # noqa: E402

"""## Data

Each input is 8 digits, one-hot encoded; the target is the same digits in
reverse order.
"""

parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
args = parser.parse_args()

# --8<-- [start:data]
keras.utils.set_random_seed(0)
num_train, epochs = (1000, 1) if args.quick else (12000, 6)
x_train, y_train = reverse_task(num_train, length=8, num_symbols=10, seed=0)
x_test, y_test = reverse_task(1000, length=8, num_symbols=10, seed=1)
# --8<-- [end:data]

"""## Model

The encoder's final state starts the decoder, which feeds back its previous
output (Sutskever et al. 2014). With `teacher_force=True` it reads the true
previous digit during training, and its own prediction at inference.
"""

# --8<-- [start:model]
model = Seq2Seq(
    input_dim=10,
    input_length=8,
    hidden_dim=128,
    output_length=8,
    output_dim=10,
    teacher_force=True,
    output_activation="softmax",
)
model.compile(
    loss="categorical_crossentropy",
    optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
    metrics=["categorical_accuracy"],
)
model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=2)
# --8<-- [end:model]

"""## Evaluation on unseen sequences"""

# --8<-- [start:evaluate]
predicted = model.predict(x_test, verbose=0).argmax(-1)
expected = y_test.argmax(-1)
token_accuracy = (predicted == expected).mean()
sequence_accuracy = (predicted == expected).all(axis=1).mean()
print(f"held-out digit accuracy:    {token_accuracy:.3f}")
print(f"held-out sequence accuracy: {sequence_accuracy:.3f}")
for digits, reversed_digits in zip(x_test[:3].argmax(-1), predicted[:3]):
    print("".join(map(str, digits)), "->", "".join(map(str, reversed_digits)))
# --8<-- [end:evaluate]
