"""`CachedGenerator`: bert4keras's search API (`AutoRegressiveDecoder`) on a `CachedModel`,
one compiled step per token, so a subclass can still reshape every step's scores on the host
(constrained decoding, as the reading-comprehension example does)."""
import numpy as np

from bert4keras_ext.decoding.cached_model import CachedModel, pad_rows
from bert4keras_ext.decoding.search import AutoRegressiveDecoder


class CachedGenerator(AutoRegressiveDecoder):
    """Fast decoding for `build_transformer_model(application='lm' | 'unilm', with_mlm=...)`.

    Inputs are `[token_ids, segment_ids]` of the prompts (`[CLS] source [SEP]` for UNILM; any
    prefix for an LM; `[token_ids]` alone for GPT-2 families), padded with 0 in a batch,
    followed by the model's other inputs (the condition of a Conditional LayerNorm model, one
    row per prompt). Padding may sit on either side, right as bert4keras's `sequence_padding`
    or left as transformers pads decoder-only batches: positions count the real tokens only,
    and the next token follows the last real one, so a padded prompt decodes exactly as it
    does alone. The prompt is encoded once (for UNILM bidirectionally) into a key/value cache
    per attention call; each step runs only the new token at its true position (segment 1 for
    UNILM, 0 for an LM) against the cache, whose slots keep their tokens' positions for
    relative position schemes.

    `start_id` (LM and UNILM): a token fed after every prompt before the first new one (with
    the new tokens' segment), as `AutoRegressiveDecoder` starts its outputs with it; it is not
    part of the outputs. It must be a real token, not the padding id 0. `end_id` must be a
    token the generator can produce: the padding id 0 never is (its logit is -inf), so an
    `end_id` of 0 is refused rather than decoding `maxlen` tokens every time.

    The generator runs the model's own graph (`keras.Model` nodes in order): attention layers
    receive `cache=` and `cache_index=`, position layers the new tokens' positions, the
    `AttentionMask` is replaced by the cache's validity and the final activation is skipped to
    get logits. Nothing of the model is re-expressed, so any model of this package's layers
    decodes, and results are exactly those of re-running the whole model on `prompt + output`
    at every step. The padding id 0 is never generated. Steps are compiled (XLA through
    `tf.function` on TensorFlow, `jax.jit` on JAX) once per (rows, cache length) shape.

    Encoder-decoder models (T5): pass the object `build_transformer_model(...,
    return_keras_model=False)` returns (it has `.encoder` and `.decoder`); inputs are then the
    encoder's token ids (right-padded with 0), encoded once, and the decoder starts from
    `start_id` (default 0, T5's). Each cross-attention call caches the encoder's keys and
    values at the first step and masks the encoder's padding.

    Example:
    ```python
    generator = CachedGenerator(model, end_id=tokenizer.token_to_id("[SEP]"), maxlen=64)
    outputs = generator.batch_beam_search([token_ids, segment_ids], topk=3)
    ```
    """

    def __init__(self, model, end_id, maxlen, minlen=1, start_id=None):
        self.cached = CachedModel(model, maxlen, start_id)
        super().__init__(self.cached.start_id, end_id, maxlen, minlen)
        self.cached.check_token("end_id", self.end_id)
        self.encoder, self.model = self.cached.encoder, self.cached.model
        self._rows = 0

    def next_logits(self, inputs, output_ids, states):
        """Next-token logits [rows, vocab] and new states: the hook for constrained decoding.

        Subclasses that restrict or merge distributions write their own `predict` (decorated
        with `AutoRegressiveDecoder.wraps(default_rtype='logits', use_states=True)`) on top of
        this method, as the reading-comprehension example does.
        """
        # Steps keep the largest row count of the search (padding with copies of row 0) so
        # the compiled step is not rebuilt as hypotheses finish; padded rows are dropped.
        count = len(output_ids)
        if states is None:
            logits, *states = self.cached.prefill(*self.cached.prefill_inputs(inputs))
            self._rows = 0
        else:
            pending, *state = states
            self._rows = max(self._rows, count)
            tokens = pad_rows(np.asarray(output_ids[:, -1], "int32"), self._rows)
            logits, *states = self.cached.step(tokens, pad_rows(pending, self._rows), *state)
        logits = np.array(logits[:count], dtype="float64")
        logits[:, 0] = -np.inf  # never the padding id
        return logits, [np.arange(count, dtype="int32"), *states]

    predict = AutoRegressiveDecoder.wraps(default_rtype="logits", use_states=True)(next_logits)


    def reorder_states(self, states, rows):
        # The cache is gathered inside the next compiled step; here only the rows compose.
        pending, *state = states
        return [pending[np.asarray(rows)], *state]

