"""What the recurrent decoder's step loop feeds back at every step."""

import keras
from keras import ops

from kseq2seq import ops as kernels


class ReadoutFeeds:
    """The feeds of `RecurrentDecoder`, which this class is a part of.

    At every step the step loop asks a *feed* for the projection of the
    readout, the previous output fed to the bottom layer: the truth under
    teacher forcing, a coin flip between the truth and the model's own
    output under scheduled sampling, or the model's own output when running
    free. A feed is made once per sequence by `_feed`.
    """

    def _feed(self, context, ground_truth, masks):
        """How the step loop gets each step's readout.

        Returns `(feed, own_readout)`. `feed(t, own)` gives the projected
        readout of step `t` (or `None` without feedback), where `own` is
        what `own_readout(logits, outputs, penalty)` made of the previous
        step's outputs; `own_readout` is `None` when the feed never reads
        it.
        """
        if not self.feedback:
            return (lambda t, own: None), None
        bottom_mask = None if masks is None else masks[0]
        if ground_truth is None:
            batch_size = ops.shape(context)[0]
            if bottom_mask is None and self.readout_table_pays(
                batch_size * self.output_length
            ):
                return self._free_token_feed(batch_size)
            start = self.start_readout(context)

            def free(t, own):
                readout = start if t == 0 else own
                return self._project_part("readout", readout, bottom_mask)

            return free, self._own_readout
        truth = self._true_readouts(context, ground_truth)
        if self.sampling_probability == 0:
            # Known in advance: projected for all steps at once, and
            # unstacked once (per-step indexing costs a full-size buffer per
            # step in the backward pass).
            readout_mask = None if bottom_mask is None else bottom_mask[:, None, :]
            projected = ops.unstack(
                self._project_part("readout", truth, readout_mask), axis=1
            )
            return (lambda t, own: projected[t]), None
        truth = ops.unstack(truth, axis=1)
        shape = (ops.shape(context)[0], 1)

        def sampled(t, own):
            readout = truth[t]
            if t > 0:
                coins = keras.random.uniform(shape, seed=self.seed_generator)
                readout = ops.where(coins < self.sampling_probability, own, readout)
            return self._project_part("readout", readout, bottom_mask)

        return sampled, self._own_readout

    def _free_token_feed(self, batch_size):
        """A free-running token decoder's feed: the rows of `readout_table`
        for the start id, then for each step's most probable emittable
        token. One lookup per step instead of an embedding and its
        projection."""
        table = self.readout_table()
        start_ids = ops.full((batch_size,), self.start_id, "int32")

        def free(t, own_ids):
            return table.index_select(0, start_ids if t == 0 else own_ids)

        def own_ids(logits, outputs, penalty):
            return ops.argmax(logits + penalty, axis=-1)

        return free, own_ids

    def _own_readout(self, logits, outputs, penalty):
        """What a free-running step feeds back: the most probable emittable
        token's embedding, or the output vector itself."""
        if self.tokens:
            return kernels.embed(self.embedding, ops.argmax(logits + penalty, axis=-1))
        return self._compute(outputs)
