"""Hand-written PyTorch twins of kseq2seq's models, and copies of their weights.

Each twin computes what one kseq2seq model computes, written the way a
PyTorch engineer would write it:

- one `nn.LSTM` call over the whole sequence wherever a layer's inputs are
  known in advance: every encoder, `SimpleSeq2Seq`'s decoder over the
  repeated context, and a teacher-forced decoder over the shifted targets
  (concatenated with the context when it peeks);
- an `nn.LSTMCell` loop only where the next input depends on the last
  output (free-running decoding, attention), or where one state is threaded
  through the whole stack at every step (kseq2seq's shared state,
  `inner_broadcast_state=True`, at depth > 1).

Keras' LSTM cells have one bias per gate where PyTorch's have two: every
twin freezes `bias_hh` at zero (`single_bias`), so that its trainable
parameters are exactly kseq2seq's.

The `copy_*` functions copy Keras weights into `torch.nn` modules: a Keras
LSTM `kernel` `(in, 4 * units)` is `weight_ih.T`, and the gate order (input,
forget, cell, output) is the same in both libraries. Every twin has a
`copy_from(model)` that copies a whole kseq2seq model.

Every twin has the same interface:

- `forward(x, y=None)`: what training computes; `y` (the targets) is read
  under teacher forcing and ignored by a twin that is not teacher-forced.
  Token twins return logits, others the outputs.
- `predict(x)`: free-running outputs, probabilities for token twins.
- `teacher_forced`: whether training reads `y`.

Example:

```python
model = kseq2seq.SimpleSeq2Seq(input_dim=3, hidden_dim=8, output_length=4,
                               output_dim=2)
twin = TorchSimpleSeq2Seq(input_dim=3, hidden=8, output_dim=2,
                          output_length=4)
twin.copy_from(model)
twin.predict(torch.ones(5, 6, 3))  # == model.predict(np.ones((5, 6, 3)))
```
"""

import keras
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# --- building blocks ---------------------------------------------------------


def single_bias(module):
    """Freezes every `bias_hh` of `module` at zero: Keras cells have one bias."""
    for name, parameter in module.named_parameters():
        if name.startswith("bias_hh"):
            parameter.requires_grad_(False)
            with torch.no_grad():
                parameter.zero_()
    return module


def lstm(input_size, hidden, depth=1, bidirectional=False):
    """A batch-first `nn.LSTM` with a single bias."""
    return single_bias(
        nn.LSTM(
            input_size, hidden, depth, batch_first=True, bidirectional=bidirectional
        )
    )


def lstm_cells(input_size, hidden, depth):
    """`depth` stacked `nn.LSTMCell`s with a single bias, bottom first."""
    widths = [input_size] + [hidden] * (depth - 1)
    return nn.ModuleList(single_bias(nn.LSTMCell(width, hidden)) for width in widths)


def cells_sharing(module):
    """One `nn.LSTMCell` per layer of a one-directional `nn.LSTM`, sharing its
    parameters: the same weights, stepped one input at a time."""
    cells = nn.ModuleList()
    for layer in range(module.num_layers):
        width = module.input_size if layer == 0 else module.hidden_size
        cell = nn.LSTMCell(width, module.hidden_size)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(cell, name, getattr(module, f"{name}_l{layer}"))
        cells.append(cell)
    return cells


class LSTMStack(nn.Module):
    """Stacked LSTM layers that run over a sequence or step by step.

    With `shared_state=False` every layer keeps its own state: the sequence
    runs through one `nn.LSTM` call and steps through `nn.LSTMCell`s sharing
    its parameters. With `shared_state=True` (and `depth > 1`) one state is
    threaded through the stack at every step, the state layer `k` produces
    being layer `k + 1`'s previous state, which only a loop over `nn.LSTMCell`s
    computes.

    States are lists of `(h, c)`, one per layer (a single one when shared).

    Args:
        input_size: int. Width of the bottom layer's input.
        hidden: int. Width of every layer.
        depth: int. Number of layers.
        shared_state: bool. Thread one state through the stack.
    """

    def __init__(self, input_size, hidden, depth=1, shared_state=False):
        super().__init__()
        self.hidden = hidden
        self.depth = depth
        self.shared_state = shared_state and depth > 1
        self.lstm = None
        if self.shared_state:
            self.cells = lstm_cells(input_size, hidden, depth)
        else:
            self.lstm = lstm(input_size, hidden, depth)
            self.cells = cells_sharing(self.lstm)

    def forward(self, inputs, state=None):
        """Runs over `inputs` `(batch, time, input_size)`; returns the top
        layer's outputs `(batch, time, hidden)` and the final state."""
        if self.lstm is not None:
            if state is not None:
                state = tuple(torch.stack(parts) for parts in zip(*state))
            outputs, (h_n, c_n) = self.lstm(inputs, state)
            return outputs, list(zip(h_n, c_n))
        if state is None:
            zeros = inputs.new_zeros(len(inputs), self.hidden)
            state = [(zeros, zeros)]
        outputs = []
        for step in inputs.unbind(1):
            output, state = self.step(step, state)
            outputs.append(output)
        return torch.stack(outputs, dim=1), state

    def step(self, inputs, state):
        """One step from `inputs` `(batch, input_size)`; returns the top
        layer's output and the new state."""
        if self.shared_state:
            ((h, c),) = state
            for cell in self.cells:
                h, c = cell(inputs, (h, c))
                inputs = h
            return h, [(h, c)]
        new_state = []
        for cell, layer_state in zip(self.cells, state):
            h, c = cell(inputs, layer_state)
            new_state.append((h, c))
            inputs = h
        return inputs, new_state


def best_token(logits, never_emitted):
    """The most probable token other than `never_emitted` (padding and the
    start id), as kseq2seq feeds back and emits: no sequence contains them."""
    return logits.index_fill(1, never_emitted.to(logits.device), -1e9).argmax(-1)


# --- the twins ---------------------------------------------------------------


class TorchSimpleSeq2Seq(nn.Module):
    """`SimpleSeq2Seq`: an LSTM encoder; its last output, repeated, feeds an
    LSTM decoder in one call; a linear head.

    Args:
        input_dim: int. Input features.
        hidden: int. Width of every LSTM layer.
        output_dim: int. Output features.
        output_length: int. Output steps.
        depth: int. Layers of the encoder and of the decoder.
    """

    teacher_forced = False

    def __init__(self, input_dim, hidden, output_dim, output_length, depth=1):
        super().__init__()
        self.output_length = output_length
        self.encoder = LSTMStack(input_dim, hidden, depth)
        self.decoder = LSTMStack(hidden, hidden, depth)
        self.head = nn.Linear(hidden, output_dim)

    def forward(self, x, y=None):
        encoded, _ = self.encoder(x)
        context = encoded[:, -1:].expand(-1, self.output_length, -1)
        decoded, _ = self.decoder(context)
        return self.head(decoded)

    def predict(self, x):
        return self(x)

    @torch.no_grad()
    def copy_from(self, model):
        copy_stack(model.encoder.cells, self.encoder)
        copy_stack(model.decoder.cells, self.decoder)
        copy_dense(model.decoder.head, self.head)


class VectorReadout(nn.Module):
    """What a vector decoder reads of its previous output: the output itself,
    and at step 0 the start value `start(context)`."""

    def __init__(self, context_size, output_dim):
        super().__init__()
        self.width = output_dim
        self.start = nn.Linear(context_size, output_dim)

    def first(self, context):
        return self.start(context)

    def shifted(self, y):
        """The readouts of steps 1 and later under teacher forcing."""
        return y[:, :-1]

    def feedback(self, output):
        return output


class TokenReadout(nn.Module):
    """What a token decoder reads of its previous output: the embedding of a
    token, `start_id` at step 0, then the true previous token or, running
    free, the most probable one other than padding and `start_id`."""

    def __init__(self, vocab_size, embedding_dim, start_id, end_id):
        super().__init__()
        self.width = embedding_dim
        self.start_id = start_id
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.register_buffer(
            "never_emitted", torch.tensor(sorted({0, start_id} - {end_id}))
        )

    def first(self, context):
        ids = torch.full((len(context),), self.start_id, device=context.device)
        return self.embedding(ids)

    def shifted(self, y):
        return self.embedding(y[:, :-1])

    def best_token(self, logits):
        return best_token(logits, self.never_emitted)

    def feedback(self, logits):
        return self.embedding(self.best_token(logits))


class TorchSeq2Seq(nn.Module):
    """`Seq2Seq` with vector outputs: the encoder's final states start the
    decoder, which reads its previous output (and, with `peek`, the context).

    The output fed back at step 0 is a projection of the context.
    Teacher-forced training with one state per layer runs the decoder over
    the shifted targets in one `nn.LSTM` call; otherwise the decoder steps
    through `nn.LSTMCell`s, feeding back each output.

    Args:
        input_dim: int. Input features.
        hidden: int. Width of every LSTM layer.
        output_dim: int. Output features.
        output_length: int. Output steps.
        depth: int. Layers of the encoder and of the decoder.
        peek: bool. The decoder also reads the context at every step.
        shared_state: bool. One state threaded through each stack
            (`inner_broadcast_state=True`).
        teacher_forced: bool. Training reads the true previous output.
        readout: the decoder's `VectorReadout` or `TokenReadout`. Defaults
            to a `VectorReadout`.
    """

    def __init__(
        self,
        input_dim,
        hidden,
        output_dim,
        output_length,
        depth=1,
        peek=False,
        shared_state=True,
        teacher_forced=False,
        readout=None,
    ):
        super().__init__()
        self.output_length = output_length
        self.peek = peek
        self.teacher_forced = teacher_forced
        self.encoder = LSTMStack(input_dim, hidden, depth, shared_state)
        self.readout = readout or VectorReadout(hidden, output_dim)
        width = self.readout.width + (hidden if peek else 0)
        self.decoder = LSTMStack(width, hidden, depth, shared_state)
        self.head = nn.Linear(hidden, output_dim)

    def encode(self, x):
        """The context (the top layer's last output) and the final state."""
        encoded, state = self.encoder(x)
        return encoded[:, -1], state

    def forward(self, x, y=None):
        context, state = self.encode(x)
        first = self.readout.first(context)
        if not (self.teacher_forced and y is not None):
            return self._run_free(context, state, first)
        readouts = torch.cat([first[:, None], self.readout.shifted(y)], dim=1)
        if self.peek:
            repeated = context[:, None].expand(-1, self.output_length, -1)
            readouts = torch.cat([readouts, repeated], dim=-1)
        decoded, _ = self.decoder(readouts, state)
        return self.head(decoded)

    def _run_free(self, context, state, readout):
        """Feeds back each output; returns the head's outputs of every step."""
        outputs = []
        for _ in range(self.output_length):
            inputs = torch.cat([readout, context], dim=-1) if self.peek else readout
            top, state = self.decoder.step(inputs, state)
            outputs.append(self.head(top))
            readout = self.readout.feedback(outputs[-1])
        return torch.stack(outputs, dim=1)

    def predict(self, x):
        return self(x)

    @torch.no_grad()
    def copy_from(self, model):
        copy_stack(model.encoder.cells, self.encoder)
        copy_stack(model.decoder.cells, self.decoder)
        copy_dense(model.decoder.head, self.head)
        copy_dense(model.decoder.start_projection, self.readout.start)


class TorchTokenSeq2Seq(TorchSeq2Seq):
    """`Seq2Seq` over token ids: embeddings in, logits out (see
    `TokenReadout` for what the decoder reads).

    Args:
        vocab_size: int. Input and output vocabulary.
        hidden: int. Width of every LSTM layer and of the embeddings.
        output_length: int. Output steps.
        depth: int. Layers of the encoder and of the decoder.
        shared_state: bool. One state threaded through each stack.
        teacher_forced: bool. Training reads the true previous token.
        start_id: int. The token fed at step 0.
        end_id: int. The token that ends a sequence in `greedy`.
    """

    def __init__(
        self,
        vocab_size,
        hidden,
        output_length,
        depth=1,
        shared_state=False,
        teacher_forced=True,
        start_id=1,
        end_id=2,
    ):
        super().__init__(
            hidden,
            hidden,
            vocab_size,
            output_length,
            depth=depth,
            shared_state=shared_state,
            teacher_forced=teacher_forced,
            readout=TokenReadout(vocab_size, hidden, start_id, end_id),
        )
        self.end_id = end_id
        self.input_embedding = nn.Embedding(vocab_size, hidden)

    def encode(self, x):
        return super().encode(self.input_embedding(x))

    def predict(self, x):
        """Probabilities, feeding back the most probable token."""
        return F.softmax(self(x), dim=-1)

    def greedy(self, x):
        """Token ids until every sequence has emitted `end_id`; 0 after it."""
        context, state = self.encode(x)
        readout = self.readout.first(context)
        finished = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        emitted = []
        for _ in range(self.output_length):
            top, state = self.decoder.step(readout, state)
            ids = self.readout.best_token(self.head(top)).masked_fill(finished, 0)
            emitted.append(ids)
            finished = finished | (ids == self.end_id)
            if finished.all():
                break
            readout = self.readout.embedding(ids)
        ids = torch.stack(emitted, dim=1)
        return F.pad(ids, (0, self.output_length - ids.shape[1]))

    @torch.no_grad()
    def copy_from(self, model):
        copy_stack(model.encoder.cells, self.encoder)
        copy_stack(model.decoder.cells, self.decoder)
        copy_dense(model.decoder.head, self.head)
        copy_embedding(model.input_embedding, self.input_embedding)
        copy_embedding(model.decoder.embedding, self.readout.embedding)


class TorchBahdanauAttention(nn.Module):
    """Additive attention with the names of PyTorch's translation tutorial:
    `Va(tanh(Wa(query) + Ua(keys)))`.

    kseq2seq's bias is `Ua`'s; the query projection has none. `forward`
    projects the keys at every call, as the tutorial does; `attend` takes
    keys projected once per sequence by `project_keys`.
    """

    def __init__(self, query_size, key_size, units):
        super().__init__()
        self.Wa = nn.Linear(query_size, units, bias=False)
        self.Ua = nn.Linear(key_size, units)
        self.Va = nn.Linear(units, 1, bias=False)

    def project_keys(self, keys):
        return self.Ua(keys)

    def attend(self, query, projected_keys, keys):
        """The attention context `(batch, key_size)`."""
        scores = self.Va(torch.tanh(self.Wa(query)[:, None] + projected_keys))
        weights = F.softmax(scores.squeeze(2).unsqueeze(1), dim=-1)
        return torch.bmm(weights, keys)[:, 0]

    def forward(self, query, keys):
        return self.attend(query, self.project_keys(keys), keys)


class TorchAttentionSeq2Seq(nn.Module):
    """`AttentionSeq2Seq`: a bidirectional LSTM encoder; a stack of
    `nn.LSTMCell`s that attends over the encoder's outputs at every step.

    The decoder starts from zeros; the attention query is the top cell's
    previous output, and the bottom cell reads `[y(t-1); attention]`, where
    `y(-1) = start(context)`.

    Args:
        input_dim: int. Input features.
        hidden: int. Width of every LSTM layer (per encoder direction) and
            of the attention's hidden layer.
        output_dim: int. Output features.
        output_length: int. Output steps.
        depth: int. Layers of the encoder and of the decoder.
        teacher_forced: bool. Training reads the true previous output.
        project_keys_once: bool. Project the encoder's outputs once per
            sequence, as kseq2seq does, instead of at every step as in
            PyTorch's translation tutorial.
    """

    def __init__(
        self,
        input_dim,
        hidden,
        output_dim,
        output_length,
        depth=1,
        teacher_forced=True,
        project_keys_once=True,
    ):
        super().__init__()
        self.hidden = hidden
        self.output_length = output_length
        self.teacher_forced = teacher_forced
        self.project_keys_once = project_keys_once
        self.encoder = lstm(input_dim, hidden, depth, bidirectional=True)
        self.start = nn.Linear(2 * hidden, output_dim)
        self.attention = TorchBahdanauAttention(hidden, 2 * hidden, hidden)
        self.cells = lstm_cells(output_dim + 2 * hidden, hidden, depth)
        self.head = nn.Linear(hidden, output_dim)

    def forward(self, x, y=None):
        keys, (h_n, _) = self.encoder(x)
        # The context: the top layer's final forward and backward outputs.
        previous = self.start(torch.cat([h_n[-2], h_n[-1]], dim=-1))
        projected = (
            self.attention.project_keys(keys) if self.project_keys_once else None
        )
        zeros = keys.new_zeros(len(x), self.hidden)
        states = [(zeros, zeros)] * len(self.cells)
        forced = self.teacher_forced and y is not None
        outputs = []
        for t in range(self.output_length):
            query = states[-1][0]
            if projected is None:
                attended = self.attention(query, keys)
            else:
                attended = self.attention.attend(query, projected, keys)
            inputs = torch.cat([previous, attended], dim=-1)
            for layer, cell in enumerate(self.cells):
                states[layer] = cell(inputs, states[layer])
                inputs = states[layer][0]
            outputs.append(self.head(inputs))
            previous = y[:, t] if forced else outputs[-1]
        return torch.stack(outputs, dim=1)

    def predict(self, x):
        return self(x)

    @torch.no_grad()
    def copy_from(self, model):
        copy_stack(model.encoder.cells, self.encoder)
        copy_cells(model.decoder.cells, self.cells)
        copy_dense(model.decoder.head, self.head)
        copy_dense(model.decoder.start_projection, self.start)
        copy_attention(model.decoder.attention, self.attention)


# --- copying Keras weights ---------------------------------------------------


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable)


def _copy(parameter, array):
    parameter.copy_(torch.as_tensor(np.ascontiguousarray(array)))


@torch.no_grad()
def copy_lstm_cell(cell, weight_ih, weight_hh, bias_ih, bias_hh):
    """Copies a Keras `LSTMCell` into PyTorch's four LSTM parameters.

    Args:
        cell: a built `keras.layers.LSTMCell`.
        weight_ih, weight_hh, bias_ih, bias_hh: the PyTorch parameters of
            one LSTM layer (and direction); `bias_hh` is zeroed.
    """
    _copy(weight_ih, _numpy(cell.kernel).T)
    _copy(weight_hh, _numpy(cell.recurrent_kernel).T)
    _copy(bias_ih, _numpy(cell.bias))
    bias_hh.zero_()


@torch.no_grad()
def copy_lstm(cells, module):
    """Copies Keras `LSTMCell`s into an `nn.LSTM`.

    Args:
        cells: one cell per layer and direction, layer by layer, the forward
            direction first (as `RecurrentEncoder.cells` and
            `RecurrentDecoder.cells` hold them).
        module: an `nn.LSTM` of as many layers and directions.
    """
    directions = 2 if module.bidirectional else 1
    for index, cell in enumerate(cells):
        layer, direction = divmod(index, directions)
        suffix = f"l{layer}_reverse" if direction else f"l{layer}"
        copy_lstm_cell(
            cell,
            *(
                getattr(module, f"{name}_{suffix}")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ),
        )


@torch.no_grad()
def copy_cells(cells, torch_cells):
    """Copies Keras `LSTMCell`s into as many `nn.LSTMCell`s."""
    for cell, torch_cell in zip(cells, torch_cells, strict=True):
        copy_lstm_cell(
            cell,
            torch_cell.weight_ih,
            torch_cell.weight_hh,
            torch_cell.bias_ih,
            torch_cell.bias_hh,
        )


@torch.no_grad()
def copy_stack(cells, module):
    """Copies Keras `LSTMCell`s into an `nn.LSTM` or an `LSTMStack`."""
    if isinstance(module, nn.LSTM):
        copy_lstm(cells, module)
    elif module.lstm is not None:
        copy_lstm(cells, module.lstm)
    else:
        copy_cells(cells, module.cells)


@torch.no_grad()
def copy_dense(dense, linear):
    """Copies a Keras `Dense` into an `nn.Linear`."""
    _copy(linear.weight, _numpy(dense.kernel).T)
    _copy(linear.bias, _numpy(dense.bias))


@torch.no_grad()
def copy_embedding(embedding, torch_embedding):
    """Copies a Keras `Embedding` into an `nn.Embedding`."""
    _copy(torch_embedding.weight, _numpy(embedding.embeddings))


@torch.no_grad()
def copy_attention(attention, torch_attention):
    """Copies kseq2seq's `BahdanauAttention` into `TorchBahdanauAttention`."""
    _copy(torch_attention.Wa.weight, _numpy(attention.query_kernel).T)
    _copy(torch_attention.Ua.weight, _numpy(attention.key_kernel).T)
    _copy(torch_attention.Ua.bias, _numpy(attention.bias))
    _copy(torch_attention.Va.weight, _numpy(attention.score_vector)[None])
