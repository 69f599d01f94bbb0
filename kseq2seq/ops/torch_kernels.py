"""PyTorch implementations of the recurrent kernels: the fast path.

They compute exactly what `generic.py` computes, with the same Keras
weights, but call PyTorch directly:

- a whole layer (one or both directions) runs in one fused
  `torch._VF.lstm` / `gru` / `rnn_tanh` call, the loop over time in C++ (or
  cuDNN on a GPU), with packed sequences for right-padded masks;
- single steps (decoders, shared-state stacks) use a handful of PyTorch
  operations without Keras' per-operation dispatch.

Only cells with their standard activations (tanh, sigmoid) and biases take
this path; anything else is left to the `keras.ops` implementation.
"""

import contextlib
import threading

import keras
import torch
from keras.src.backend import get_autocast_scope

from kseq2seq.ops import generic

_TANH = keras.activations.get("tanh")
_SIGMOID = keras.activations.get("sigmoid")


# Inside `weights_read_once()`: the values read so far, by variable and
# autocast dtype, for the current thread.
_reads = threading.local()


@contextlib.contextmanager
def weights_read_once():
    """Reads each Keras variable's value once inside the block.

    A decoding search reads every weight at every step, and a Keras
    variable's `value` costs a few microseconds of scope checks per read,
    the time of a small step's arithmetic. Only for blocks in which no
    weight is assigned: the values kept are those first read. Compiled and
    exported code reads as usual: the compiler sees no Python overhead.
    """
    if (
        getattr(_reads, "values", None) is not None  # the outer block's values
        or torch.compiler.is_compiling()
    ):
        yield
        return
    _reads.values = {}
    try:
        yield
    finally:
        _reads.values = None


def _tensor(variable):
    # Not `hasattr(variable, "value")`, which would read the value.
    if not isinstance(variable, keras.Variable):
        return variable
    values = getattr(_reads, "values", None)
    if values is None:
        return variable.value
    scope = get_autocast_scope()
    key = (id(variable), None if scope is None else scope.dtype)
    value = values.get(key)
    if value is None:
        value = values[key] = variable.value
    return value


def dense(layer, inputs):
    """`Dense.call` in PyTorch operations: `inputs @ kernel + bias`, then the
    activation."""
    kernel = _tensor(layer.kernel)
    if layer.bias is None:
        outputs = torch.matmul(inputs, kernel)
    elif inputs.dim() == 2:
        outputs = torch.addmm(_tensor(layer.bias), inputs, kernel)
    else:
        outputs = torch.matmul(inputs, kernel) + _tensor(layer.bias)
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


def embed(layer, ids):
    """`Embedding.call` in PyTorch operations."""
    embeddings = _tensor(layer.embeddings)
    outputs = torch.nn.functional.embedding(ids, embeddings)
    return outputs.to(getattr(torch, layer.compute_dtype))


def supports(cell):
    """Whether `cell` can run on the PyTorch kernels."""
    if keras.backend.backend() != "torch" or not getattr(cell, "use_bias", False):
        return False
    if type(cell) is keras.layers.SimpleRNNCell:
        return cell.activation is _TANH
    if type(cell) is keras.layers.GRUCell and not cell.reset_after:
        return False
    return (
        type(cell) in (keras.layers.LSTMCell, keras.layers.GRUCell)
        and cell.activation is _TANH
        and cell.recurrent_activation is _SIGMOID
    )


# Zero tensors by shape, dtype and device, see `_zeros_like`.
_zeros = {}


def _zeros_like(bias):
    """Zeros like `bias`, made once per shape, dtype and device.

    They stand in for the second bias of PyTorch's fused kernels, which
    Keras' cells lack. Nothing is ever written into them and they depend on
    no weight, so they cannot go stale. Zeros made in inference mode, while
    compiling, tracing or exporting, or under a tensor subclass mode (fake
    tensors) are not kept: they must not leak out of it.
    """
    key = (tuple(bias.shape), bias.dtype, bias.device)
    zeros = _zeros.get(key)
    if zeros is not None:
        return zeros
    zeros = torch.zeros(key[0], dtype=bias.dtype, device=bias.device)
    if keepable(zeros):
        _zeros[key] = zeros
    return zeros


def keepable(tensor):
    """Whether a constant tensor just made may be kept for later calls: not
    one made in inference mode, while compiling, tracing or exporting, or
    under a tensor subclass mode (fake tensors), which must not leak out."""
    return (
        type(tensor) is torch.Tensor
        and not torch.is_inference_mode_enabled()
        and not torch.compiler.is_compiling()
        and not _exporting()
    )


class _TorchProjection:
    def fused_weights(self):
        """`[w_ih, w_hh, b_ih, b_hh]` as `torch._VF` expects them.

        Keras keeps a single bias, so PyTorch's second bias is zero.
        """
        cell = self.cell
        bias = _tensor(cell.bias)
        return [
            _tensor(cell.kernel).t(),
            _tensor(cell.recurrent_kernel).t(),
            bias,
            _zeros_like(bias),
        ]

    def project(self, inputs, start=0, stop=None, use_bias=True):
        kernel = _tensor(self.cell.kernel)
        if start != 0 or stop is not None:
            kernel = kernel[start:stop]
        inputs = torch.as_tensor(inputs, dtype=kernel.dtype, device=kernel.device)
        bias = self.input_bias() if use_bias else None
        if bias is None:
            return torch.matmul(inputs, kernel)
        if inputs.dim() == 2:
            return torch.addmm(_tensor(bias), inputs, kernel)
        return torch.matmul(inputs, kernel) + _tensor(bias)


class TorchLSTMKernel(_TorchProjection, generic.LSTMKernel):
    def step(self, projected, states):
        h_tm1, c_tm1 = states
        z = torch.addmm(projected, h_tm1, _tensor(self.cell.recurrent_kernel))
        i, f, g, o = z.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c_tm1 + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, [h, c]


def _reorder_gru_gates(weight, units):
    """Keras orders GRU gates [z, r, h], PyTorch [r, z, n]."""
    return torch.cat(
        [weight[..., units : 2 * units], weight[..., :units], weight[..., 2 * units :]],
        dim=-1,
    )


class TorchGRUKernel(_TorchProjection, generic.GRUKernel):
    def step(self, projected, states):
        units = self.units
        (h_tm1,) = states
        inner = torch.addmm(
            _tensor(self.cell.bias)[1], h_tm1, _tensor(self.cell.recurrent_kernel)
        )
        x_z, x_r, x_h = projected.split(units, dim=-1)
        h_z, h_r, h_h = inner.split(units, dim=-1)
        z = torch.sigmoid(x_z + h_z)
        r = torch.sigmoid(x_r + h_r)
        hh = torch.tanh(x_h + r * h_h)
        h = z * h_tm1 + (1 - z) * hh
        return h, [h]

    def fused_weights(self):
        # Reordered at every call: the weights change at every training step.
        cell = self.cell
        input_bias, recurrent_bias = _reorder_gru_gates(_tensor(cell.bias), self.units)
        return [
            _reorder_gru_gates(_tensor(cell.kernel), self.units).t(),
            _reorder_gru_gates(_tensor(cell.recurrent_kernel), self.units).t(),
            input_bias,
            recurrent_bias,
        ]


class TorchSimpleRNNKernel(_TorchProjection, generic.SimpleRNNKernel):
    def step(self, projected, states):
        (h_tm1,) = states
        h = torch.tanh(
            torch.addmm(projected, h_tm1, _tensor(self.cell.recurrent_kernel))
        )
        return h, [h]


_KERNELS = {
    keras.layers.LSTMCell: TorchLSTMKernel,
    keras.layers.GRUCell: TorchGRUKernel,
    keras.layers.SimpleRNNCell: TorchSimpleRNNKernel,
}

_FUSED = {
    TorchLSTMKernel: torch._VF.lstm,
    TorchGRUKernel: torch._VF.gru,
    TorchSimpleRNNKernel: torch._VF.rnn_tanh,
}


FUSABLE = tuple(_FUSED)


def kernel_for(cell):
    return _KERNELS[type(cell)](cell)


def _exporting():
    """Whether this call is traced (`torch.jit.trace`, the TorchScript ONNX
    exporter) or exported (`torch.export`) rather than run."""
    if torch.jit.is_tracing():
        return True
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting is not None and is_exporting())


def _hx(states):
    """The `hx` argument of `torch._VF`: `(h, c)` for an LSTM, `h` otherwise."""
    return tuple(states) if len(states) == 2 else states[0]


def _run_unpadded(fused, inputs, hx, params, bidirectional=False):
    """One fused call over whole sequences. Returns `(outputs, finals)`,
    `finals` holding one `(directions, batch, units)` tensor per state."""
    result = fused(
        inputs, hx, params, True, 1, 0.0, torch.is_grad_enabled(), bidirectional, True
    )
    return result[0], list(result[1:])


def _right_padded_lengths(mask):
    """Sequence lengths if `mask` is right-padded with no empty sequence.

    They are computed on the CPU, where packing needs them: one copy of the
    mask instead of a synchronisation for every length read.
    """
    mask = torch.as_tensor(mask, dtype=torch.bool).cpu()
    lengths = mask.sum(dim=1)
    positions = torch.arange(mask.shape[1], device=mask.device)
    right_padded = torch.equal(mask, positions[None, :] < lengths[:, None])
    if not right_padded or int(lengths.min()) == 0:
        return None
    return lengths


def _run_right_padded(fused, params, inputs, hx, lengths):
    """One direction over right-padded sequences of lengths `lengths`.

    The steps every sequence has run in one unpacked call (oneDNN's fused
    kernel on a CPU); only the rest is packed, because PyTorch's packed
    kernel is several times slower per step. Outputs are zero after each
    sequence's end; final states are those of its last step.
    """
    shortest = int(lengths.min())
    outputs, finals = _run_unpadded(fused, inputs[:, :shortest], hx, params)
    remaining = inputs.shape[1] - shortest
    if remaining == 0:
        return outputs, finals
    if int(lengths.max()) == shortest:
        # Every sequence has ended: only padding is left.
        padding = outputs.new_zeros((inputs.shape[0], remaining, outputs.shape[-1]))
        return torch.cat([outputs, padding], dim=1), finals
    rows = torch.nonzero(lengths > shortest).squeeze(1)
    device_rows = rows.to(inputs.device)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        inputs.index_select(0, device_rows)[:, shortest:],
        lengths.index_select(0, rows) - shortest,
        batch_first=True,
        enforce_sorted=False,
    )
    tail_hx = [
        f.index_select(1, device_rows).index_select(1, packed.sorted_indices)
        for f in finals
    ]
    tail = fused(
        packed.data,
        packed.batch_sizes,
        _hx(tail_hx),
        params,
        True,
        1,
        0.0,
        torch.is_grad_enabled(),
        False,
    )
    tail_outputs, _ = torch.nn.utils.rnn.pad_packed_sequence(
        torch.nn.utils.rnn.PackedSequence(
            tail[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        ),
        batch_first=True,
        total_length=remaining,
    )
    padded_tail = outputs.new_zeros((inputs.shape[0], remaining, outputs.shape[-1]))
    outputs = torch.cat(
        [outputs, padded_tail.index_copy(0, device_rows, tail_outputs)], dim=1
    )
    finals = [
        f.index_copy(1, device_rows, t.index_select(1, packed.unsorted_indices))
        for f, t in zip(finals, tail[1:])
    ]
    return outputs, finals


def _run_padded_directions(fused, params, inputs, hx, lengths, mask):
    """Each direction on its own over right-padded sequences.

    The backward direction reads each sequence's valid steps reversed, so
    it starts at the sequence's true end. Returns `(outputs, finals)` as
    `_run_unpadded` does.
    """
    mask = torch.as_tensor(mask, dtype=torch.bool, device=inputs.device)
    directions = []
    for direction in range(len(params) // 4):
        direction_inputs = inputs
        if direction == 1:
            direction_inputs = generic.reverse_valid_steps(inputs, mask)
        output, direction_finals = _run_right_padded(
            fused,
            params[4 * direction : 4 * direction + 4],
            direction_inputs,
            _hx([h[direction : direction + 1] for h in hx]),
            lengths,
        )
        if direction == 1:
            output = generic.reverse_valid_steps(output, mask)
        directions.append((output, direction_finals))
    outputs = torch.cat([output for output, _ in directions], dim=-1)
    finals = [torch.cat([d[1][i] for d in directions], dim=0) for i in range(len(hx))]
    # Keras' convention, kept by the generic path: a forward direction
    # carries its last valid output over the padding.
    units = directions[0][0].shape[-1]
    forward = torch.where(
        mask[..., None], outputs[..., :units], finals[0][0][:, None, :]
    )
    return torch.cat([forward, outputs[..., units:]], dim=-1), finals


def _stacked_states(initial_states, dtype, device):
    """PyTorch's initial states: `(directions, batch, units)` per state."""
    stacked = []
    for parts in zip(*initial_states):
        parts = [torch.as_tensor(p, dtype=dtype, device=device) for p in parts]
        stacked.append(parts[0][None] if len(parts) == 1 else torch.stack(parts))
    return stacked


def run_layer(layer_kernels, inputs, initial_states, mask=None):
    """One layer, one or both directions, in fused calls; see `_run_layer`.

    Under `torch.compile` (Keras' `jit_compile=True`) the fused call runs
    eagerly with the compiled graph broken around it: TorchDynamo cannot
    trace oneDNN's fused RNN (`aten.mkldnn_rnn_layer` fails on its fake
    tensors), and the fused kernel is what makes the layer fast anyway.
    """
    if _compiling() and not _exporting():
        return _run_layer_eagerly(layer_kernels, inputs, initial_states, mask)
    return _run_layer(layer_kernels, inputs, initial_states, mask)


def _compiling():
    is_compiling = getattr(torch.compiler, "is_compiling", None)
    return bool(is_compiling is not None and is_compiling())


def _run_layer(layer_kernels, inputs, initial_states, mask=None):
    """One layer, one or both directions, in fused calls.

    Without padding, both directions run in one fused call. With a
    right-padded mask each direction runs on its own, see
    `_run_padded_directions`.

    Returns `(outputs, final_states)` as `generic.run_layer` does, or `None`
    when the fused calls cannot reproduce it (a mask with holes or an empty
    sequence, or any mask while the call is traced or exported), so the
    caller falls back.
    """
    if mask is not None and _exporting():
        # Packing needs the sequence lengths as Python values, which a
        # traced or exported graph would freeze at those of the example
        # input; the caller's step loop handles any mask with tensor ops.
        return None
    fused = _FUSED[type(layer_kernels[0])]
    params = [w for k in layer_kernels for w in k.fused_weights()]
    dtype = params[0].dtype
    inputs = torch.as_tensor(inputs, dtype=dtype, device=params[0].device)
    hx = _stacked_states(initial_states, dtype, inputs.device)
    lengths = None
    if mask is not None:
        lengths = _right_padded_lengths(mask)
        if lengths is None:
            return None
        if int(lengths.min()) == inputs.shape[1]:
            lengths = None  # Nothing is padded.
    if lengths is None:
        bidirectional = len(layer_kernels) == 2
        outputs, finals = _run_unpadded(fused, inputs, _hx(hx), params, bidirectional)
    else:
        outputs, finals = _run_padded_directions(
            fused, params, inputs, hx, lengths, mask
        )
    final_states = [
        [f[direction] for f in finals] for direction in range(len(layer_kernels))
    ]
    return outputs, final_states


_run_layer_eagerly = torch.compiler.disable(_run_layer)
