"""One step of the recurrent decoder: the math its loops and searches share."""

import contextlib
import functools

import numpy as np
import torch
from keras import ops
from keras.src.backend import AutocastScope

from kseq2seq import ops as kernels
from kseq2seq.layers.cells import state_size
from kseq2seq.ops import torch_kernels

# log(0): a never-emitted id can be neither chosen by an argmax nor drawn
# by sampling, at any temperature. Searches only add it to scores and
# compare them, which -inf survives.
NEVER_LOG_PROB = float("-inf")


class DecoderStep:
    """The step of `RecurrentDecoder`, which this class is a part of.

    Everything one time step needs: the bottom layer's input, split into
    parts (readout, peeked context, attention context) whose projections
    are added, so the parts that do not change over time are projected once
    per sequence; the stack of cells; the head; and the mixed-precision
    rules. `RecurrentDecoder` runs it in its step loop, and
    `decode_step` exposes it to the searches of `kseq2seq.decoding`.
    """

    @property
    def never_emitted_ids(self):
        """Ids no decoded sequence contains: the padding and the start id
        (unless one of them is also the end id)."""
        return sorted({0, self.start_id} - {self.end_id})

    @property
    def readout_width(self):
        return self.embedding_dim if self.tokens else self.output_dim

    def _input_segments(self, context_dim, memory_shape):
        """Row ranges of the bottom layer's kernel for each input part."""
        widths = []
        if self.feedback:
            widths.append(("readout", self.readout_width))
        if self.peek:
            widths.append(("context", context_dim))
        if self.attention is not None:
            widths.append(("attention", memory_shape[-1]))
        segments, start = {}, 0
        for name, width in widths:
            segments[name] = (start, start + width)
            start += width
        return segments

    def _input_width(self):
        return max(stop for _, stop in self._segments.values())

    def _initial_states(self, initial_state, batch_size, dtype):
        zeros = ops.zeros((batch_size, self.units), dtype=dtype)
        runs = 1 if self.shared_state else self.depth
        per_run = len(state_size(self.cell, self.units))
        initial_state = list(initial_state or [None] * runs)
        return [
            [zeros] * per_run if state is None else list(state)
            for state in initial_state
        ]

    def _kernels(self):
        return [kernels.kernel_for(cell) for cell in self.cells]

    def _autocast(self):
        """The variables in the compute dtype, as inside `call`.

        `call` runs in Keras' autocast scope; the decoding methods, which
        loops such as `generate` call outside it, open it themselves.
        """
        if not self._mixed:
            return contextlib.nullcontext()
        return AutocastScope(self.compute_dtype)

    def _compute(self, value):
        """`value` in the compute dtype (fed-back float32 outputs, when mixed)."""
        return ops.cast(value, self.compute_dtype) if self._mixed else value

    def _head(self, top):
        """The head's outputs (logits for a token decoder); float32 when mixed."""
        if not self._mixed:
            return kernels.dense(self.head, top)
        if self.tokens:
            return ops.cast(kernels.dense(self.head, top), self._output_dtype)
        # The float32 head reads its variables as they are, not autocast.
        with AutocastScope(None):
            return kernels.dense(self.head, ops.cast(top, self._output_dtype))

    def _outputs(self, top):
        """Head outputs: probabilities for a token decoder."""
        outputs = self._head(top)
        return ops.softmax(outputs, axis=-1) if self.tokens else outputs

    def _project_part(self, name, value, bottom_mask=None):
        """Projects one part of the bottom layer's input, without bias."""
        start, stop = self._segments[name]
        if bottom_mask is not None:
            value = value * bottom_mask[..., start:stop]
        bottom = kernels.kernel_for(self.cells[0])
        return bottom.project(value, start, stop, use_bias=False)

    def never_emitted_penalty(self, like):
        """`NEVER_LOG_PROB` at the never-emitted ids, 0 elsewhere.

        Added to a token decoder's log-probabilities (or logits) wherever it
        chooses a token: a model trained on padded targets can still give
        the padding or the start id some probability, but no sequence
        contains them. `like` gives the dtype and device.
        """
        key = (like.dtype, like.device)
        penalty = self._never_emitted_penalties.get(key)
        if penalty is None:
            values = np.zeros((self.output_dim,), "float32")
            values[self.never_emitted_ids] = NEVER_LOG_PROB
            penalty = torch.as_tensor(values, dtype=like.dtype, device=like.device)
            if torch_kernels.keepable(penalty):
                self._never_emitted_penalties[key] = penalty
        return penalty

    @functools.cached_property
    def _never_emitted_penalties(self):
        # Made once per dtype and device: decoding loops add it at every
        # step. (A cached property: Keras does not track the dict.)
        return {}

    def initial_decoding_state(
        self, context, initial_state=None, memory=None, memory_mask=None, masks=None
    ):
        """The state a decoding loop starts from.

        Returns a dict of batch-first tensors (and `None`s): the recurrent
        states, the attention query, the bottom layer's projection of the
        inputs that do not change over time (bias and peeked context) and,
        with attention, the encoder outputs, their mask and their keys.
        """
        with self._autocast():
            batch_size = ops.shape(context)[0]
            dtype = context.dtype
            bottom = kernels.kernel_for(self.cells[0])
            states = self._initial_states(initial_state, batch_size, dtype)
            static = ops.zeros((batch_size, bottom.cell.kernel.shape[-1]), dtype)
            if bottom.input_bias() is not None:
                static = static + bottom.input_bias()
            if self.peek:
                static = static + self._project_part(
                    "context", context, None if masks is None else masks[0]
                )
            state = {
                "states": states,
                # The attention query is the top layer's previous output,
                # which for these cells is the first entry of its state.
                "query": states[-1][0],
                "static": static,
            }
            if self.attention is not None:
                state["memory"] = memory
                state["memory_mask"] = memory_mask
                state["keys"] = self.attention.project_keys(memory)
            return state

    def start_readout(self, context):
        """The readout fed at step 0: start token embedding or start value.

        `None` for a decoder without feedback.
        """
        if not self.feedback:
            return None
        if self.tokens:
            batch_size = ops.shape(context)[0]
            start_ids = ops.full((batch_size,), self.start_id, "int32")
            return kernels.embed(self.embedding, start_ids)
        return kernels.dense(self.start_projection, context)

    def _step(self, projected_readout, state, masks=None):
        """One step from the projection of the readout. Returns
        `(top_output, new_state, attention_weights)`."""
        projected = state["static"]
        if projected_readout is not None:
            projected = projected + projected_readout
        weights = None
        if self.attention is not None:
            # Sub-layers inside the step loop are built: calling their
            # `call` directly skips Keras' per-call bookkeeping.
            attended, weights = self.attention.call(
                state["query"],
                state["keys"],
                state["memory"],
                memory_mask=state["memory_mask"],
            )
            projected = projected + self._project_part(
                "attention", attended, None if masks is None else masks[0]
            )
        states = state["states"]
        top, new_states = kernels.step_stack(
            self._kernels(),
            projected,
            states[0] if self.shared_state else states,
            self.shared_state,
            masks,
        )
        new_state = dict(state)
        new_state["states"] = [new_states] if self.shared_state else new_states
        new_state["query"] = top
        return top, new_state, weights

    def readout_table(self):
        """The bottom layer's projection of every token's embedding.

        `(output_dim, gates)`, for `decode_step`: a decoding step then
        looks up the projection of its previous token instead of computing
        it, `beam_width` times fewer rows to multiply per step of a beam
        search. Made from the current weights; `None` for a decoder without
        token feedback.
        """
        if not (self.tokens and self.feedback):
            return None
        with self._autocast():
            ids = ops.arange(self.output_dim, dtype="int32")
            return self._project_part("readout", kernels.embed(self.embedding, ids))

    def readout_table_pays(self, lookups):
        """Whether `readout_table` costs less than projecting `lookups`
        readouts one at a time: it projects `output_dim` embeddings, once."""
        return self.tokens and self.feedback and self.output_dim <= lookups

    def decode_step(self, previous, state, readout_table=None):
        """One inference step: the step function of `kseq2seq.decoding`.

        Args:
            previous: the previous token ids `(batch,)` of a token decoder,
                or the previous output `(batch, output_dim)` (the start
                value from `start_readout` at step 0).
            state: from `initial_decoding_state` or the previous step.
            readout_table: optional, `readout_table()` made once for a whole
                search, which saves a matrix product per step.

        Returns:
            `(output, new_state)`: for a token decoder, log-probabilities
            `(batch, output_dim)` of the next token, with the never-emitted
            ids ruled out; the output vector otherwise.
        """
        with self._autocast():
            projected = None
            if readout_table is not None:
                projected = readout_table.index_select(0, previous)
            elif self.feedback:
                if self.tokens:
                    readout = kernels.embed(self.embedding, previous)
                else:
                    readout = self._compute(previous)
                projected = self._project_part("readout", readout)
            top, new_state, _ = self._step(projected, state)
            outputs = self._head(top)
            if not self.tokens:
                return outputs, new_state
            log_probs = torch.log_softmax(outputs, dim=-1)
            return log_probs + self.never_emitted_penalty(log_probs), new_state

    def _true_readouts(self, context, ground_truth):
        """Readouts under teacher forcing: start, then the truth shifted."""
        start = self.start_readout(context)[:, None]
        if self.tokens:
            previous = kernels.embed(
                self.embedding, ops.cast(ground_truth[:, :-1], "int32")
            )
        else:
            previous = ground_truth[:, :-1]
        return ops.concatenate([start, ops.cast(previous, start.dtype)], axis=1)
