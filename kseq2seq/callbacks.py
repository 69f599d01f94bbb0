"""Keras callbacks that work on the PyTorch backend without TensorFlow."""

import os

import keras

from kseq2seq import _validate


class TensorBoard(keras.callbacks.Callback):
    """Logs training metrics for TensorBoard, without TensorFlow.

    `keras.callbacks.TensorBoard` writes its logs with TensorFlow, which the
    PyTorch backend does not need and usually lacks. This callback writes
    the same scalars with PyTorch's `torch.utils.tensorboard.SummaryWriter`,
    which needs only the `tensorboard` package (`pip install tensorboard`).
    As with Keras' callback, the metrics of every epoch go to
    `log_dir/train` as `epoch_<metric>`, and the validation metrics, their
    `val_` prefix dropped, to `log_dir/validation`, so that TensorBoard
    draws `loss` and `val_loss` on one chart. Histograms, graphs and
    profiling are not written. Run `tensorboard --logdir log_dir` to see
    them.

    Args:
        log_dir: str or path. Where the event files go. Defaults to
            `"logs"`.
        update_freq: `"epoch"`, or an int: also log the training metrics
            (as `batch_<metric>`) every this many batches. Defaults to
            `"epoch"`.

    Raises:
        ImportError: if the `tensorboard` package is not installed.

    Example:

    ```python
    from kseq2seq.callbacks import TensorBoard

    model.fit(x, y, epochs=10, validation_split=0.1,
              callbacks=[TensorBoard(log_dir="logs/run-1")])
    ```
    """

    def __init__(self, log_dir="logs", update_freq="epoch"):
        super().__init__()
        if update_freq != "epoch":
            update_freq = _validate.positive_int("update_freq", update_freq)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                "kseq2seq.callbacks.TensorBoard writes its logs with "
                "torch.utils.tensorboard, which needs the `tensorboard` "
                "package: `pip install tensorboard`. Without it, "
                "keras.callbacks.CSVLogger records the same metrics in a CSV "
                "file."
            ) from error
        self.log_dir = os.fspath(log_dir)
        self.update_freq = update_freq
        self._summary_writer = SummaryWriter
        self._writers = {}
        self._batches = 0

    def _writer(self, run):
        """The writer of `run` (`"train"` or `"validation"`), opened once."""
        if run not in self._writers:
            self._writers[run] = self._summary_writer(os.path.join(self.log_dir, run))
        return self._writers[run]

    def _write(self, run, prefix, logs, step):
        for name, value in logs.items():
            self._writer(run).add_scalar(f"{prefix}_{name}", float(value), step)

    def on_train_begin(self, logs=None):
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self.update_freq != "epoch" and self._batches % self.update_freq == 0:
            self._write("train", "batch", logs or {}, self._batches)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        validation = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        self._write("train", "epoch", train, epoch)
        if validation:
            self._write("validation", "epoch", validation, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
