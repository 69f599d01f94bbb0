"""A `fit` whose process of rank 1 dies or hangs in its third step.

`python stop.py kill` or `python stop.py hang`, in each process of a group
described by torchrun's environment variables. Rank 1 prints the time at
which it stops, then kills itself (SIGKILL) or sleeps for an hour; the
others should stop with an error instead of waiting for it.
"""

import os
import signal
import sys
import time

# kseq2seq runs on Keras' PyTorch backend, chosen before Keras is imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kseq2seq import SimpleSeq2Seq  # noqa: E402


class Stop(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if batch == 2 and os.environ["RANK"] == "1":
            print(f"stopping at {time.time()}", flush=True)
            if sys.argv[1] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)


if __name__ == "__main__":
    model = SimpleSeq2Seq(input_dim=2, hidden_dim=4, output_length=3, output_dim=2)
    x = np.zeros((64, 5, 2), "float32")
    y = np.zeros((64, 3, 2), "float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Stop()])
