"""Inference beyond `predict`: `encode` and `generate`."""

import functools

import numpy as np
import torch
from keras import ops

from kseq2seq import _validate
from kseq2seq import decoding
from kseq2seq import ops as kernels


class Inference:
    """`encode` and `generate` of `Seq2SeqModel`, which this class is a part of.

    They run the model's encoder and decoder outside `predict`: the encoder
    alone, and the decoder free-running for any number of steps, token by
    token through the searches of `kseq2seq.decoding`.
    """

    def _batches(self, x, batch_size):
        batch_size = _validate.positive_int("batch_size", batch_size, allow_none=True)
        x = np.asarray(x)
        self._checks.input(x)
        batch_size = batch_size or self.spec.batch_input_shape[0] or 32
        for start in range(0, len(x), batch_size):
            yield ops.convert_to_tensor(x[start : start + batch_size])

    # Inference records no autograd graph, as `predict` does not.
    @torch.no_grad()
    def encode(self, x, batch_size=None):
        """Runs the encoder alone.

        Args:
            x: inputs, as for `predict`.
            batch_size: int. Defaults to the model's fixed batch size, or 32.

        Returns:
            A dict of NumPy arrays: `sequence` `(batch, input_length, width)`,
            the encoder's top-layer outputs; `context` `(batch, width)`, the
            context vector; `states`, one list of `(batch, width)` arrays per
            encoder layer (one in all with `inner_broadcast_state`).
        """
        parts = [self._encode(batch)[:3] for batch in self._batches(x, batch_size)]

        def join(tensors):
            return np.concatenate([ops.convert_to_numpy(t) for t in tensors], axis=0)

        return {
            "sequence": join([p[0] for p in parts]),
            "context": join([p[1] for p in parts]),
            "states": [
                [join([p[2][layer][i] for p in parts]) for i in range(len(state))]
                for layer, state in enumerate(parts[0][2])
            ],
        }

    @torch.no_grad()
    def generate(
        self,
        x,
        method="greedy",
        beam_width=5,
        length_penalty=0.0,
        max_length=None,
        num_return_sequences=1,
        batch_size=None,
        temperature=1.0,
        top_k=None,
        top_p=None,
        seed=None,
    ):
        """Decodes free-running, token by token or step by step.

        For token outputs, greedy search, beam search or sampling from
        `start_id` until `end_id` (kept in the output; later positions are
        0, the padding id) or `max_length` tokens; the padding and start ids
        are never emitted as tokens. For vector outputs, the decoder runs
        free for `max_length` steps, any number, feeding back its own
        outputs.

        Args:
            x: inputs, as for `predict`.
            method: `"greedy"`, `"beam"` or `"sample"` (the last two for
                token outputs only).
            beam_width: int. Hypotheses kept per input by beam search.
            length_penalty: float >= 0. GNMT length penalty for ranking beam
                hypotheses; 0 ranks by total log-probability.
            max_length: int. Steps to decode. Defaults to `output_length`.
            num_return_sequences: int. Best hypotheses returned per input by
                beam search.
            batch_size: int. Defaults to the model's fixed batch size, or 32.
            temperature: float > 0. Sampling draws from the distribution
                sharpened (below 1) or flattened (above 1) by this
                temperature. Defaults to `1.0`.
            top_k: int or `None`. Sampling draws from the `top_k` most
                probable tokens only. Defaults to `None` (no limit).
            top_p: float in (0, 1] or `None`. Sampling draws from the
                smallest set of most probable tokens whose probability
                reaches `top_p` (nucleus sampling). Defaults to `None`.
            seed: int in `[0, 2**31 - 1]` or `None`. Makes sampling
                reproducible: the same seed, inputs and `batch_size` give
                the same ids on the same device. `x` is decoded in batches
                of `batch_size`, and the seed starts a generator that
                draws one seed per batch, in order: the batches draw
                independently of each other (equal inputs in two batches
                need not get equal ids), and a different `batch_size` may
                draw different ids. `None` draws fresh ids at every call.

        Returns:
            For token outputs `(ids, scores)`: int32 ids
            `(batch, max_length)` (or `(batch, num_return_sequences,
            max_length)`) and their total log-probabilities `(batch,)` (or
            `(batch, num_return_sequences)`), under the model's
            distribution (before the temperature and the filtering of
            sampling). For vector outputs, the outputs
            `(batch, max_length, output_dim)`.

        Example:

            >>> model = Seq2Seq(input_vocab_size=9, output_vocab_size=9,
            ...                 output_length=5, hidden_dim=6)
            >>> x = np.array([[5, 4, 8], [7, 8, 0]])
            >>> ids, scores = model.generate(x, method="sample", top_k=3, seed=7)
            >>> ids.shape, scores.shape
            ((2, 5), (2,))
            >>> again, _ = model.generate(x, method="sample", top_k=3, seed=7)
            >>> bool((ids == again).all())
            True
        """
        if max_length is None:
            max_length = self.spec.output_length
        max_length = _validate.positive_int("max_length", max_length)
        _validate.choice("method", method, ("greedy", "beam", "sample"))
        if method != "greedy" and not self.token_outputs:
            name = "Beam search" if method == "beam" else "Sampling"
            raise ValueError(
                f"{name} needs token outputs (`output_vocab_size`). "
                f"Received: method={method!r}"
            )
        if not self.token_outputs:
            return np.concatenate(
                [
                    ops.convert_to_numpy(
                        self.decoder.run_free(
                            **self._decoder_inputs(batch), steps=max_length
                        )
                    )
                    for batch in self._batches(x, batch_size)
                ],
                axis=0,
            )
        search = _searches(
            method,
            max_length,
            beam=dict(
                beam_width=beam_width,
                length_penalty=length_penalty,
                num_return_sequences=num_return_sequences,
            ),
            sample=dict(temperature=temperature, top_k=top_k, top_p=top_p),
            seed=_validate.integer("seed", seed, 0, 2**31 - 1, allow_none=True),
        )
        rows_per_input = 1
        if method == "beam":
            rows_per_input = _validate.positive_int("beam_width", beam_width)
        results = [
            self._search_tokens(batch, search, max_length * rows_per_input)
            for batch in self._batches(x, batch_size)
        ]
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*results))

    def _search_tokens(self, batch, search, lookups_per_input):
        """`(ids, scores)` of one batch, as NumPy arrays.

        `lookups_per_input`: the readouts the search looks up per input (its
        steps times the hypotheses it keeps), which decides whether the
        readout table pays.
        """
        decoder = self.decoder
        state = decoder.initial_decoding_state(**self._decoder_inputs(batch))
        start_ids = ops.full((ops.shape(batch)[0],), self.start_id, "int32")
        lookups = ops.shape(batch)[0] * lookups_per_input
        table = decoder.readout_table() if decoder.readout_table_pays(lookups) else None
        step_fn = functools.partial(decoder.decode_step, readout_table=table)
        with kernels.weights_read_once():
            ids, scores = search(step_fn, state, start_ids, self.end_id)
        return ops.convert_to_numpy(ids), ops.convert_to_numpy(scores)


def _searches(method, max_length, beam, sample, seed):
    """The search `generate` runs on every batch:
    `search(step_fn, state, start_ids, end_id) -> (ids, scores)`.

    `beam` and `sample` are the options of beam search and of sampling.
    Sampling seeds each batch from one generator seeded with `seed`, in
    the order of the batches.
    """
    if method == "greedy":
        return functools.partial(decoding.greedy_search, max_length=max_length)
    if method == "beam":
        return functools.partial(decoding.beam_search, max_length=max_length, **beam)
    seeds = None if seed is None else np.random.default_rng(seed)

    def search(step_fn, state, start_ids, end_id):
        batch_seed = None if seeds is None else int(seeds.integers(2**31))
        return decoding.sample_search(
            step_fn,
            state,
            start_ids,
            end_id,
            max_length,
            seed=batch_seed,
            **sample,
        )

    return search
