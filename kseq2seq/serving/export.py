"""Exports a token model's decoding: its encoder and one decoder step."""

import json
import os
import shutil
import warnings

import keras
import numpy as np
import torch

from kseq2seq import _validate
from kseq2seq.serving import runtime
from kseq2seq.version import __version__

ENCODER_FILE = "encoder.onnx"
STEP_FILE = "step.onnx"
MANIFEST_FILE = "manifest.json"
RUNTIME_FILE = "kseq2seq_runtime.py"


def export_decoding(model, directory, input_length=None, exporter="auto"):
    """Exports what `generate` runs, for serving with ONNX Runtime.

    Writes a token model's decoding to `directory` as two ONNX graphs, the
    pieces `generate` runs with the model's own layers:

    - `encoder.onnx`: the inputs `(batch, input_length)` (ids, int32; or
      vectors `(batch, input_length, input_dim)`, float32) to the state a
      search starts from, the decoder's `initial_decoding_state` flattened
      into named tensors (recurrent states, attention query, the projection
      of the inputs that do not change over time and, with attention, the
      encoder outputs, their mask and their keys).
    - `step.onnx`: the previous ids `(N,)` and that state to the
      log-probabilities `(N, vocab_size)` of the next token, with the
      padding and start ids ruled out as `decode_step` rules them out, and
      the parts of the state a step changes.

    Beside them it writes `manifest.json` (the state's names, dtypes and
    shapes, the start, end and padding ids, the vocabulary size,
    `output_length`, the exporter used) and `kseq2seq_runtime.py`, a copy of
    `kseq2seq.serving.runtime`: its `Decoder` runs greedy and beam search
    over the two graphs with NumPy and ONNX Runtime alone, so the directory
    serves without Keras, PyTorch or kseq2seq.

    The batch size of both graphs is free: a graph that would hold for the
    example's batch size only fails to export instead (a token model with
    `reverse_input=True` does). The input length is not: the encoder's
    masked step loop is unrolled for `input_length` steps. Token inputs
    shorter than that are served padded with 0, which the graph masks as
    the model does.

    Args:
        model: a float32 `Seq2SeqModel` with token outputs
            (`output_vocab_size`), not stateful.
        directory: path of the folder to write; created if missing.
        input_length: positive int. The length the encoder is exported for.
            Defaults to the model's `input_length`, which a model built for
            any length does not have: then it must be given.
        exporter: `"auto"`, `"dynamo"` or `"torchscript"`. `"dynamo"` is
            PyTorch's `torch.export`-based ONNX exporter (it needs the
            `onnxscript` package), `"torchscript"` its deprecated
            TorchScript-based one. `"auto"` uses `"dynamo"`, and
            `"torchscript"` for a graph the other fails on (with a
            warning). Defaults to `"auto"`.

    Returns:
        The manifest, a dict, as written to `manifest.json`.

    Example:

        >>> import tempfile
        >>> from kseq2seq.serving import Decoder, export_decoding
        >>> model = Seq2Seq(input_vocab_size=9, output_vocab_size=9,
        ...                 output_length=4, hidden_dim=6)
        >>> directory = tempfile.mkdtemp()
        >>> # The TorchScript exporter is the quicker one, for an example.
        >>> manifest = export_decoding(model, directory, input_length=5,
        ...                            exporter="torchscript")
        >>> x = np.array([[5, 4, 8, 3, 3], [7, 8, 0, 0, 0]])
        >>> ids, scores = Decoder(directory).generate(x)
        >>> bool((ids == model.generate(x)[0]).all())
        True
    """
    _check_model(model)
    input_length = _input_length(model, input_length)
    _validate.choice("exporter", exporter, ("auto", "dynamo", "torchscript"))
    os.makedirs(directory, exist_ok=True)
    inputs = _example_inputs(model, input_length)
    with torch.no_grad():
        state = _initial_state(model, inputs)
        names = list(_flatten(state))
        carried = _carried_names(model, state, names)
    encoder = _EncoderGraph(model, names)
    step = _StepGraph(model, state, names, carried)
    exporters = {
        "encoder": _export(
            encoder,
            (inputs,),
            os.path.join(directory, ENCODER_FILE),
            ["inputs"],
            names,
            exporter,
        ),
        "step": _export(
            step,
            (_start_ids(model, inputs), *_distinct(_flatten(state).values())),
            os.path.join(directory, STEP_FILE),
            ["previous", *names],
            ["log_probs", *[runtime.next_name(name) for name in carried]],
            exporter,
        ),
    }
    manifest = _manifest(model, inputs, state, carried, exporters)
    with open(os.path.join(directory, MANIFEST_FILE), "w") as file:
        json.dump(manifest, file, indent=2)
    shutil.copyfile(runtime.__file__, os.path.join(directory, RUNTIME_FILE))
    return manifest


def _check_model(model):
    spec = getattr(model, "spec", None)
    if spec is None or not spec.token_outputs:
        raise ValueError(
            "`model` must be a kseq2seq model with token outputs "
            "(`output_vocab_size`): a vector model serves its `predict` "
            "through `model.export`. Received: "
            f"model={type(model).__name__}"
            + ("" if spec is None else " without output_vocab_size")
        )
    if spec.stateful:
        raise ValueError(
            "`model` must not be stateful: the states it carries across "
            "batches are variables, which the graphs would read as constants. "
            "Received: a model with stateful=True"
        )
    if model.dtype_policy.name != "float32":
        raise ValueError(
            "`model` must compute in float32, which ONNX Runtime's CPU "
            "kernels need; export a float32 copy of a mixed precision model "
            "(see the Serving page). Received: a model with dtype policy "
            f"{model.dtype_policy.name!r}"
        )


def _input_length(model, input_length):
    fixed = model.spec.batch_input_shape[1]
    if input_length is None:
        if fixed is None:
            raise ValueError(
                "`input_length` must be a positive int for a model built for "
                "inputs of any length: the encoder is exported for one "
                "length. Received: input_length=None"
            )
        return fixed
    input_length = _validate.positive_int("input_length", input_length)
    if fixed is not None and input_length != fixed:
        raise ValueError(
            f"`input_length` must be the model's input length, {fixed}, or "
            f"None. Received: input_length={input_length}"
        )
    return input_length


def _example_inputs(model, input_length):
    """Two inputs to trace with, the second padded when the inputs are ids:
    a batch of 2 keeps the batch size free in both exporters."""
    rng = np.random.default_rng(0)
    spec = model.spec
    if not spec.token_inputs:
        shape = (2, input_length, spec.batch_input_shape[2])
        return torch.as_tensor(rng.normal(size=shape).astype("float32"))
    ids = rng.integers(1, spec.input_vocab_size, size=(2, input_length))
    ids[1, (input_length + 1) // 2 :] = 0
    return torch.as_tensor(ids.astype("int32"))


def _distinct(tensors):
    """Copies of `tensors`: a state can hold one tensor twice (zero initial
    states, the query that is the top layer's output), and `torch.export`
    would take two inputs that alias as one."""
    return [tensor.clone() for tensor in tensors]


def _start_ids(model, inputs):
    return torch.full(
        (inputs.shape[0],), model.start_id, dtype=torch.int32, device=inputs.device
    )


def _initial_state(model, inputs):
    """The decoder's `initial_decoding_state` for `inputs`, as `generate`
    starts its searches."""
    return model.decoder.initial_decoding_state(**model._decoder_inputs(inputs))


def _flatten(state):
    """The tensors of a nested decoding state by name, `None`s left out.

    A tensor's name is its path in the state: `states_0_1` is the second
    tensor of the first layer's recurrent state.
    """
    return {
        "_".join(str(key) for key in path): value
        for path, value in keras.tree.flatten_with_path(state)
        if value is not None
    }


def _unflatten(template, values):
    """The state shaped like `template`, with the tensors of `values`."""
    leaves = [
        None if value is None else values["_".join(str(key) for key in path)]
        for path, value in keras.tree.flatten_with_path(template)
    ]
    return keras.tree.pack_sequence_as(template, leaves)


def _carried_names(model, state, names):
    """The names of the tensors a step changes, in the order of `names`.

    The others (the encoder outputs, their keys and mask, the static
    projection) come back from `decode_step` as the very tensors it was
    given: the step graph takes them and does not return them.
    """
    device = next(iter(model.decoder.weights)).value.device
    start = torch.full((2,), model.start_id, dtype=torch.int32, device=device)
    _, new_state = model.decoder.decode_step(start, state)
    before, after = _flatten(state), _flatten(new_state)
    return [name for name in names if after[name] is not before[name]]


class _EncoderGraph(torch.nn.Module):
    """The model's inputs to its initial decoding state, flattened."""

    def __init__(self, model, names):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, inputs):
        state = _flatten(_initial_state(self.model, inputs))
        return tuple(state[name] for name in self.names)


class _StepGraph(torch.nn.Module):
    """One `decode_step`: the previous ids and the flattened state to the
    log-probabilities and the carried part of the new state."""

    def __init__(self, model, template, names, carried):
        super().__init__()
        self.model = model
        self.template = template
        self.names = names
        self.carried = carried

    def forward(self, previous, *values):
        state = _unflatten(self.template, dict(zip(self.names, values)))
        log_probs, new_state = self.model.decoder.decode_step(previous, state)
        new_state = _flatten(new_state)
        return (log_probs, *[new_state[name] for name in self.carried])


def _export(module, args, path, input_names, output_names, exporter):
    """Writes `module` to `path` as ONNX with a free first axis on every
    input and output. Returns the exporter used."""
    module.eval()
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(module, args, path, input_names, output_names)
            return "dynamo"
        except Exception as error:  # Any failure of the exporter falls back.
            if exporter == "dynamo":
                raise
            warnings.warn(
                f"PyTorch's dynamo ONNX exporter failed on {os.path.basename(path)} "
                f"({type(error).__name__}: {str(error).splitlines()[0]}); "
                "exporting it with the TorchScript-based exporter instead.",
                stacklevel=3,
            )
    _export_torchscript(module, args, path, input_names, output_names)
    return "torchscript"


def _export_dynamo(module, args, path, input_names, output_names):
    batch = torch.export.Dim("batch")
    # `forward(previous, *values)` takes its values as one nested tuple.
    dynamic_shapes = ({0: batch},)
    if len(args) > 1:
        dynamic_shapes += (tuple({0: batch} for _ in args[1:]),)
    # Exported here rather than by `torch.onnx.export`, which, when the batch
    # size cannot stay free, retries until it gets a graph for the example's
    # batch size alone; `torch.export` raises instead.
    program = torch.export.export(
        module, args, dynamic_shapes=dynamic_shapes, strict=False
    )
    torch.onnx.export(
        program,
        args,
        path,
        dynamo=True,
        input_names=input_names,
        output_names=output_names,
        external_data=False,
        verbose=False,
    )


def _export_torchscript(module, args, path, input_names, output_names):
    with warnings.catch_warnings():
        # The trace reads shapes as Python numbers, which is what freezes
        # the input length; the batch axis is made free by `dynamic_axes`.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            args,
            path,
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes={name: {0: "batch"} for name in input_names + output_names},
        )


def _manifest(model, inputs, state, carried, exporters):
    spec = model.spec
    return {
        "format": runtime.FORMAT,
        "format_version": runtime.FORMAT_VERSION,
        "kseq2seq_version": __version__,
        "model": type(model).__name__,
        "exporters": exporters,
        "encoder": ENCODER_FILE,
        "step": STEP_FILE,
        "inputs": _describe(inputs),
        "input_vocab_size": spec.input_vocab_size,
        "vocab_size": spec.output_vocab_size,
        "output_length": spec.output_length,
        "start_id": spec.start_id,
        "end_id": spec.end_id,
        "pad_id": 0,
        "never_emitted_ids": model.decoder.never_emitted_ids,
        "state": [
            dict(name=name, carried=name in carried, **_describe(value))
            for name, value in _flatten(state).items()
        ],
    }


def _describe(tensor):
    """dtype and shape, the batch axis `None`."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    return {"dtype": dtype, "shape": [None, *tensor.shape[1:]]}
