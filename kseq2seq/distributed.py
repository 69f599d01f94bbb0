"""Data-parallel training with `torch.distributed` (one process per device).

Keras 3.15 implements `keras.distribution` for JAX only: on the PyTorch
backend `keras.distribution.list_devices()` fails, and `fit` does not
synchronise gradients between processes. The two functions here follow the
keras.io guide "Multi-GPU distributed training with PyTorch" instead: the
model, which is a `torch.nn.Module`, is wrapped in
`torch.nn.parallel.DistributedDataParallel` (DDP), and each process runs a
training step on its share of the global batch through the wrapper, which
averages the gradients over the processes before the model's own optimizer
applies them. Every process therefore keeps identical weights.

The step uses what `compile` set: the model's loss (with its masking of
padded target ids) and its optimizer. It feeds the targets to the decoder of
a teacher-forced model, as `fit(x, y)` does.

Every trainable weight of a kseq2seq model receives a gradient at every
training step, so DDP's default `find_unused_parameters=False` holds.

See the "Distributed training" guide for the launch recipe
(`torchrun --nproc_per_node=N`) and `examples/distributed.py`.
"""

import torch
from keras import ops
from torch import distributed
from torch.nn.parallel import DistributedDataParallel

__all__ = ["train_step", "wrap"]


def wrap(model, **kwargs):
    """Wraps a kseq2seq model in `DistributedDataParallel`.

    Call it once the process group is initialised and the model is built
    (the builders build their models) on this process's device: on a GPU,
    call `torch.cuda.set_device(local_rank)` before creating the model.

    Args:
        model: a built kseq2seq model (any `keras.Model` on PyTorch).
        **kwargs: passed on to `DistributedDataParallel`. `device_ids`
            defaults to the model's GPU when its weights are on one.

    Returns:
        The `DistributedDataParallel` wrapper. Train through it with
        `train_step`; the model itself stays available as `.module`, for
        `predict`, `generate` and `save`.

    Example:

    ```python
    torch.distributed.init_process_group("gloo")  # "nccl" on GPUs
    model = Seq2Seq(input_dim=5, hidden_dim=32, output_length=8,
                    output_dim=5, teacher_force=True)
    ddp_model = wrap(model)
    ```
    """
    if not distributed.is_available() or not distributed.is_initialized():
        raise RuntimeError(
            "`wrap` needs an initialised process group: call "
            "`torch.distributed.init_process_group` first (torchrun sets the "
            "environment it reads)."
        )
    if not model.built:
        raise ValueError("`wrap` needs a built model: call it on some data first.")
    device = next(model.parameters()).device
    if device.type == "cuda":
        kwargs.setdefault("device_ids", [device.index])
    return DistributedDataParallel(model, **kwargs)


def train_step(model, x, y, sample_weight=None):
    """One training step with the model's compiled loss and optimizer.

    The same step as `fit`'s, on one batch: a teacher-forced model reads
    `[x, y]`, the loss is the compiled one, and the optimizer applies the
    gradients. Through a `wrap`ped model the gradients are averaged over the
    processes first, so each process passes its own share of the global
    batch and all end with the same weights.

    Args:
        model: a kseq2seq model, or the `DistributedDataParallel` wrapper of
            one (from `wrap`).
        x: this process's inputs, as for `fit`: arrays or tensors.
        y: this process's targets.
        sample_weight: optional per-sample weights.

    Returns:
        The loss of this process's batch, a scalar `torch.Tensor` (detached;
        `float(loss)` for a number). Other processes see their own.

    Example:

        >>> model = Seq2Seq(input_dim=3, hidden_dim=8, output_length=4,
        ...                 output_dim=3, teacher_force=True)
        >>> x, y = np.ones((2, 5, 3)), np.ones((2, 4, 3))
        >>> losses = [float(train_step(model, x, y)) for _ in range(3)]
        >>> losses[-1] < losses[0]
        True
    """
    wrapper = model
    if isinstance(model, DistributedDataParallel):
        model = model.module
    if model.optimizer is None:
        raise ValueError("`train_step` needs a compiled model: call `compile`.")
    x = ops.convert_to_tensor(x)
    y = ops.convert_to_tensor(y)
    if sample_weight is not None:
        sample_weight = ops.convert_to_tensor(sample_weight)
    inputs = model.training_inputs(x, y) if hasattr(model, "training_inputs") else x
    model.zero_grad(set_to_none=True)
    y_pred = wrapper(inputs, training=True)
    loss = model.compute_loss(
        x=inputs, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
    )
    model.optimizer.scale_loss(loss).backward()
    variables = model.trainable_variables
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in variables], variables)
    return loss.detach()
