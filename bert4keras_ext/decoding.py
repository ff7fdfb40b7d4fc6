"""Autoregressive decoding: beam search and sampling.

Source: bert4keras's `snippets.AutoRegressiveDecoder` (https://github.com/bojone/bert4keras);
nucleus sampling from "The Curious Case of Neural Text Degeneration" (Holtzman et al., 2019,
https://arxiv.org/abs/1904.09751).

`AutoRegressiveDecoder` is bert4keras's API for users who write `predict(inputs, output_ids,
states)` themselves (with the `wraps` decorator); it runs batches of inputs. `CachedGenerator`
is the fast path for models made by `build_transformer_model(application='lm' | 'unilm',
with_mlm=...)`: the prompt (the UNILM source) is encoded once, and each new token attends to a
key/value cache, in one compiled step function per (rows, cache length) shape.

Beam search keeps `topk` live hypotheses per input; a hypothesis that reaches `min_ends` end
tokens is finished and set aside. Scores are summed log-probabilities, divided by
`length ** length_penalty` when comparing finished hypotheses. An input stops when no live
hypothesis can beat its best finished one (exact when `length_penalty == 0`, as scores only
fall), or after `maxlen` new tokens; the result is the best-scoring hypothesis among the
finished ones and those still live at `maxlen` (as in bert4keras and transformers), so a beam as
wide as all prefixes finds the exhaustive optimum. The end token is not allowed before `minlen`
new tokens.

Counts and rates (`topk`, `n`, `maxlen`, `temperature`, ...) may be Python or NumPy numbers;
`bool`, NaN and out-of-range values are refused by name (`bert4keras_ext.arguments`). A
`predict` must return one row of scores per hypothesis; NaN scores (a diverged model), +inf
ones, negative probabilities or a row in which no token is possible are refused at the step
they appear, as no search result would mean anything after them. A logit of -inf is a blocked
token (constrained decoding).
"""
import functools

import keras
import numpy as np
from keras import ops

from bert4keras_ext import arguments, masks
from bert4keras_ext.layers import (
    AttentionMask,
    Lambda,
    MultiHeadAttention,
    PerformerAttention,
    RelativePositionBias,
)
from bert4keras_ext.layers.embeddings import PositionEmbedding, PositionEmbeddingBase


def softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


class AutoRegressiveDecoder:
    """Beam search and random sampling around a user-written `predict`.

    Subclass it and define `predict(self, inputs, output_ids, states)` decorated with
    `@AutoRegressiveDecoder.wraps(default_rtype='probas' | 'logits', use_states=...)`: it
    receives `inputs` (a list of arrays, one row per hypothesis), `output_ids` ([rows, t], the
    tokens so far) and `states`, and returns next-token probabilities (or logits) [rows, vocab],
    plus new states if `use_states`. States are reordered with the hypotheses by
    `reorder_states` (rows of every array by default).

    Example:
    ```python
    class Reverser(AutoRegressiveDecoder):
        @AutoRegressiveDecoder.wraps(default_rtype="logits")
        def predict(self, inputs, output_ids, states):
            token_ids, segment_ids = inputs
            token_ids = np.concatenate([token_ids, output_ids], 1)
            segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
            return model.predict([token_ids, segment_ids], verbose=0)[:, -1]

    decoder = Reverser(start_id=None, end_id=sep_id, maxlen=32)
    output_ids = decoder.beam_search([token_ids, segment_ids], topk=3)
    ```
    """

    def __init__(self, start_id, end_id, maxlen, minlen=1):
        maxlen = arguments.integer(maxlen, "maxlen", minimum=1)
        minlen = arguments.integer(minlen, "minlen", minimum=0)
        if minlen > maxlen:
            raise ValueError(f"`minlen` must be an integer in [0, maxlen={maxlen}]; received "
                             f"{minlen}.")
        self.start_id = None if start_id is None else arguments.integer(start_id, "start_id",
                                                                        minimum=0)
        self.end_id = None if end_id is None else arguments.integer(end_id, "end_id", minimum=0)
        self.maxlen, self.minlen = maxlen, minlen
        start = [] if start_id is None else [self.start_id]
        self.first_output_ids = np.array([start], dtype="int64").reshape(1, len(start))

    @staticmethod
    def wraps(default_rtype="probas", use_states=False):
        """Adapts a `predict` returning `default_rtype` to the decoder's calling convention."""
        if default_rtype not in ("probas", "logits"):
            raise ValueError(f"`default_rtype` must be 'probas' or 'logits'; received "
                             f"{default_rtype!r}.")

        def decorator(predict):
            @functools.wraps(predict)
            def wrapped(self, inputs, output_ids, states, temperature=1.0, rtype="probas"):
                result = predict(self, inputs, output_ids, states)
                scores, states = result if use_states else (result, None)
                probas = distribution(scores, default_rtype, temperature, len(output_ids))
                if rtype == "probas":
                    return probas, states
                return np.log(probas + 1e-12), states

            return wrapped

        return decorator

    def last_token(self, model):
        """`model` with each output cut to its last position (bert4keras's helper for
        `predict`); made once per model. Its `predict` prints no progress bar."""
        cache = self.__dict__.setdefault("_last_token_models", {})
        if id(model) not in cache:
            outputs = [Lambda(lambda x: x[:, -1])(output)
                       for output in model.outputs]
            cache[id(model)] = _QuietModel(model.inputs, outputs,
                                           name=f"{model.name}_last_token")
        return cache[id(model)]

    def predict(self, inputs, output_ids, states, temperature=1.0, rtype="probas"):
        raise NotImplementedError(
            f"{type(self).__name__} must define `predict`, decorated with "
            "`AutoRegressiveDecoder.wraps`."
        )

    def reorder_states(self, states, rows):
        """States for the hypotheses `rows` (indices into the previous rows)."""
        if states is None:
            return None
        return [np.asarray(state)[rows] for state in states]

    def _allowed(self, log_probs, generated):
        """Forbids the end token before `minlen` new tokens."""
        if self.end_id is not None and not 0 <= self.end_id < log_probs.shape[1]:
            raise ValueError(f"`end_id` must be a token id in [0, {log_probs.shape[1]}) (the "
                             f"model's vocabulary); received {self.end_id}.")
        if generated + 1 < self.minlen:
            log_probs = log_probs.copy()
            log_probs[:, self.end_id] = -np.inf
        return log_probs

    # Beam search.
    def beam_search(self, inputs, topk, states=None, temperature=1.0, min_ends=1,
                    length_penalty=0.0):
        """The best output ids for one input (a list of 1-D arrays), as in bert4keras."""
        batch = [np.asarray(x)[None] for x in inputs]
        return self.batch_beam_search(batch, topk, states, temperature, min_ends,
                                      length_penalty)[0]

    def batch_beam_search(self, inputs, topk, states=None, temperature=1.0, min_ends=1,
                          length_penalty=0.0):
        """Output ids (arrays) for a batch: `inputs` arrays have one row per input."""
        topk = arguments.integer(topk, "topk", minimum=1)
        temperature = check_temperature(temperature)
        min_ends = arguments.integer(min_ends, "min_ends", minimum=1)
        length_penalty = arguments.real(length_penalty, "length_penalty")
        inputs = [np.asarray(x) for x in inputs]
        count = len(inputs[0])
        if count == 0:
            return []
        owner = np.arange(count)  # which input each row belongs to
        output_ids = np.repeat(self.first_output_ids, count, axis=0)
        scores = np.zeros(count)
        finished = [[] for _ in range(count)]  # (normalized score, ids)
        start = self.first_output_ids.shape[1]

        def normalized(score, ids):
            return score / max(1, ids.shape[-1] - start) ** length_penalty

        for step in range(self.maxlen):
            log_probs, states = self.predict(inputs, output_ids, states, temperature, "logits")
            candidates = scores[:, None] + self._allowed(log_probs, step)
            vocab = candidates.shape[1]
            rows, tokens, new_scores = [], [], []
            for sample in np.unique(owner):
                own = np.flatnonzero(owner == sample)
                flat = candidates[own].ravel()
                best = top_indices(flat, topk)
                rows += list(own[best // vocab])
                tokens += list(best % vocab)
                new_scores += list(flat[best])
            rows, tokens, scores = np.array(rows), np.array(tokens), np.array(new_scores)
            output_ids = np.concatenate([output_ids[rows], tokens[:, None]], axis=1)
            owner = owner[rows]
            ends = (output_ids[:, start:] == self.end_id).sum(axis=1) >= min_ends
            ended_now = ends & (tokens == self.end_id)
            for row in np.flatnonzero(ended_now):
                finished[owner[row]].append((normalized(scores[row], output_ids[row]),
                                             output_ids[row]))
            keep = ~ended_now
            for sample in np.unique(owner):
                live = keep & (owner == sample)
                if finished[sample] and (
                    not live.any()
                    or max(f[0] for f in finished[sample]) >= max(
                        normalized(scores[r], output_ids[r]) for r in np.flatnonzero(live)
                    )
                ):
                    keep &= owner != sample
            output_ids, scores, owner = output_ids[keep], scores[keep], owner[keep]
            if not keep.any():
                break
            kept = rows[keep]
            inputs = [x[kept] for x in inputs]
            states = self.reorder_states(states, kept)

        results = []
        for sample in range(count):
            # Hypotheses still live at `maxlen` compete with the finished ones by score.
            options = list(finished[sample]) + [
                (normalized(scores[r], output_ids[r]), output_ids[r])
                for r in np.flatnonzero(owner == sample)]
            best = max(range(len(options)), key=lambda i: options[i][0])
            results.append(options[best][1][start:])
        return results

    # Random sampling.
    def random_sample(self, inputs, n, topk=None, topp=None, states=None, temperature=1.0,
                      min_ends=1, seed=None):
        """`n` sampled outputs for one input (a list of 1-D arrays), as in bert4keras."""
        batch = [np.asarray(x)[None] for x in inputs]
        return self.batch_random_sample(batch, n, topk, topp, states, temperature, min_ends,
                                        seed)[0]

    def batch_random_sample(self, inputs, n, topk=None, topp=None, states=None,
                            temperature=1.0, min_ends=1, seed=None):
        """For each input, `n` outputs sampled from the (top-k / top-p filtered) model.

        `topk` None keeps every token; `topp` None or >= 1 keeps every token (as in
        bert4keras)."""
        n = arguments.integer(n, "n", minimum=1)
        topk = None if topk is None else arguments.integer(topk, "topk", minimum=1)
        topp = None if topp is None else arguments.real(topp, "topp", above=0)
        temperature = check_temperature(temperature)
        min_ends = arguments.integer(min_ends, "min_ends", minimum=1)
        rng = np.random.default_rng(seed)
        inputs = [np.asarray(x) for x in inputs]
        count = len(inputs[0])
        if count == 0:
            return []
        owner = np.arange(count)
        output_ids = np.repeat(self.first_output_ids, count, axis=0)
        start = self.first_output_ids.shape[1]
        results = [[] for _ in range(count)]
        for step in range(self.maxlen):
            probas, states = self.predict(inputs, output_ids, states, temperature, "probas")
            probas = np.exp(self._allowed(np.log(probas + 1e-300), step))
            if step == 0:  # one prediction per input, then n samples of it
                rows = np.repeat(np.arange(count), n)
                probas, owner = probas[rows], owner[rows]
                inputs = [x[rows] for x in inputs]
                states = self.reorder_states(states, rows)
                output_ids = output_ids[rows]
            tokens = sample_tokens(filter_probas(probas, topk, topp), rng)
            output_ids = np.concatenate([output_ids, tokens[:, None]], axis=1)
            done = ((output_ids[:, start:] == self.end_id).sum(axis=1) >= min_ends) & (
                tokens == self.end_id
            )
            for row in np.flatnonzero(done):
                results[owner[row]].append(output_ids[row, start:])
            keep = np.flatnonzero(~done)
            if not len(keep):
                break
            inputs = [x[keep] for x in inputs]
            states = self.reorder_states(states, keep)
            output_ids, owner = output_ids[keep], owner[keep]
        else:
            for row in range(len(owner)):
                results[owner[row]].append(output_ids[row, start:])
        return results


class _QuietModel(keras.Model):
    """A functional model whose `predict` runs its input as one batch, without a progress
    bar: decoding calls it once per step on a few rows, where `fit`-style batching, callbacks
    and the bar cost more than the model."""

    def predict(self, x, *args, **kwargs):
        if args or kwargs:
            return super().predict(x, *args, **{"verbose": 0, **kwargs})
        return self.predict_on_batch(x)


def check_temperature(temperature):
    """`temperature` as a float > 0 (1 samples the model's own distribution)."""
    return arguments.real(temperature, "temperature", above=0)


def distribution(scores, kind, temperature, rows):
    """Next-token probabilities from the `kind` ('probas' or 'logits') scores a `predict`
    returned for `rows` hypotheses, after `temperature`; refuses scores no search can use."""
    scores = np.asarray(scores, dtype="float64")
    if scores.ndim != 2 or scores.shape[0] != rows:
        raise ValueError(f"`predict` must return {kind} of shape [rows={rows}, vocab_size] (one "
                         f"row per hypothesis of `output_ids`); received shape {scores.shape}.")
    if kind == "logits":  # -inf blocks a token; NaN and +inf come from a broken model
        broken = np.isnan(scores) | (scores == np.inf)
    else:
        broken = ~np.isfinite(scores) | (scores < 0)
    if broken.any():
        where = np.flatnonzero(broken.any(axis=1)).tolist()
        raise ValueError(f"`predict` returned {kind} that are "
                         f"{'NaN or +inf' if kind == 'logits' else 'NaN, infinite or < 0'} in rows "
                         f"{where}, e.g. {float(scores[broken][0])}: a diverged model or a bug in "
                         f"`predict`; no token can be chosen from them.")
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "logits":
            probas = softmax(scores / temperature)
        else:
            probas = scores ** (1.0 / temperature)
            probas = probas / probas.sum(axis=-1, keepdims=True)
    empty = np.flatnonzero(~np.isfinite(probas).all(axis=1))
    if len(empty):
        raise ValueError(f"`predict` gave rows {empty.tolist()} no possible token (every "
                         f"{'logit -inf' if kind == 'logits' else 'probability 0'}).")
    return probas


def top_indices(values, k):
    """Indices of the k largest values, largest first, ties to the lower index."""
    k = min(k, len(values))
    part = np.argpartition(-values, k - 1)[:k]
    # argpartition may pick any of several equal values at the boundary: take them all.
    part = np.flatnonzero(values >= values[part].min())
    return part[np.lexsort((part, -values[part]))][:k]


def filter_probas(probas, topk=None, topp=None):
    """Keeps the `topk` most likely tokens and the smallest set reaching mass `topp`."""
    probas = np.array(probas, dtype="float64")
    order = np.argsort(-probas, axis=1, kind="stable")
    ranked = np.take_along_axis(probas, order, axis=1)
    allowed = np.ones_like(ranked, dtype=bool)
    if topk is not None:
        allowed[:, topk:] = False
    if topp is not None:
        mass_before = np.cumsum(ranked, axis=1) - ranked
        allowed &= mass_before < topp * ranked.sum(axis=1, keepdims=True)
    ranked = np.where(allowed, ranked, 0.0)
    filtered = np.zeros_like(probas)
    np.put_along_axis(filtered, order, ranked, axis=1)
    return filtered / filtered.sum(axis=1, keepdims=True)


def sample_tokens(probas, rng):
    """One token per row, drawn from each row's distribution."""
    cumulative = np.cumsum(probas, axis=1)
    draws = rng.random(len(probas))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative <= draws).sum(axis=1), probas.shape[1] - 1)


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
        self.encoder = getattr(model, "encoder", None)
        if self.encoder is not None:
            model = model.decoder
            start_id = 0 if start_id is None else start_id
        super().__init__(start_id, end_id, maxlen, minlen)
        mask_layers = [layer for layer in model.layers if isinstance(layer, AttentionMask)]
        self.application = mask_layers[0].application if len(mask_layers) == 1 else None
        if self.application not in ("lm", "unilm"):
            raise ValueError("CachedGenerator needs a model built with application='lm' or "
                             f"'unilm'; this one's attention mask is {self.application!r}.")
        if any(isinstance(layer, PerformerAttention) for layer in model.layers):
            raise ValueError("CachedGenerator needs softmax attention; PerformerAttention has "
                             "no key/value cache.")
        if not any(isinstance(layer, MultiHeadAttention) for layer in model.layers):
            raise ValueError("CachedGenerator found no MultiHeadAttention layer in the model.")
        if len(model.outputs) != 1:
            raise ValueError("CachedGenerator needs a model with one output, the token "
                             f"distribution (with_mlm); this one has {len(model.outputs)}.")
        self.output_activation = model.outputs[0]._keras_history.operation
        if getattr(self.output_activation, "activation", None) not in (
                keras.activations.softmax, keras.activations.linear):
            raise ValueError("CachedGenerator needs a model whose output is the token "
                             "distribution, ending in a softmax or linear Activation "
                             "(build it with `with_mlm`).")
        self.model = model
        # The compiled steps clamp out-of-range gathers (XLA), so prompts are checked first.
        self.vocab_size = model.outputs[0].shape[-1]
        # 0 is the padding id: never generated, and not attended to in an LM's prompt.
        for name, token, first in (("end_id", self.end_id, 1),
                                   ("start_id", self.start_id, 0 if self.encoder else 1)):
            if token is not None and not first <= token < self.vocab_size:
                raise ValueError(
                    f"`{name}` must be a token id in [{first}, {self.vocab_size}) (the model's "
                    f"vocabulary{'' if first == 0 else ' without the padding id 0'}); "
                    f"received {token}.")
        learned = [layer.input_dim for layer in model.layers
                   if isinstance(layer, PositionEmbedding)]
        self.max_positions = min(learned) if learned else None
        # GPT-2 families and T5 take token ids alone; the others token and segment ids.
        self.id_inputs = 2 if any(x.name == "Input-Segment" for x in model.inputs) else 1
        # Per-row tensors every step needs besides the caches: T5's encoder output and its
        # validity, or the model's inputs after the ids (a Conditional LayerNorm condition).
        self.extras = 2 if self.encoder else len(model.inputs) - self.id_inputs
        self.new_segment = 1 if self.application == "unilm" else 0
        variables = _unique(model.variables + (self.encoder.variables if self.encoder else []))
        self._prefill = _compile(self._prefill_graph, variables)
        self._step = _compile(self._step_graph, variables)
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
            ids = [np.asarray(x, "int32") for x in inputs[:self.id_inputs]]
            self._check_prompts(ids[0])
            if self.start_id is not None and not self.encoder:
                ids = _after_prompts(ids, [self.start_id, self.new_segment])
            extras = [np.asarray(x) for x in inputs[self.id_inputs:]]
            logits, *states = self._prefill(*ids, *extras)
            self._rows = 0
        else:
            pending, *state = states
            self._rows = max(self._rows, count)
            tokens = _pad_rows(np.asarray(output_ids[:, -1], "int32"), self._rows)
            logits, *states = self._step(tokens, _pad_rows(pending, self._rows), *state)
        logits = np.array(logits[:count], dtype="float64")
        logits[:, 0] = -np.inf  # never the padding id
        return logits, [np.arange(count, dtype="int32"), *states]

    predict = AutoRegressiveDecoder.wraps(default_rtype="logits", use_states=True)(next_logits)

    def _check_prompts(self, token_ids):
        if token_ids.ndim != 2 or token_ids.shape[1] == 0:
            raise ValueError(f"Prompts must be token ids of shape [rows, length >= 1]; "
                             f"received shape {token_ids.shape}.")
        empty = np.flatnonzero(~token_ids.any(axis=1))
        if len(empty):
            raise ValueError(f"Prompt rows {empty.tolist()} are all padding (id 0); each "
                             f"prompt needs at least one token.")
        if token_ids.min() < 0 or token_ids.max() >= self.vocab_size:
            raise ValueError(f"Prompt token ids must be in [0, {self.vocab_size}) (the model's "
                             f"vocabulary); received ids from {token_ids.min()} to "
                             f"{token_ids.max()}.")
        if self.encoder is None and self.max_positions is not None:
            # Positions count real tokens (and the start token fed after them).
            longest = int(np.count_nonzero(token_ids, axis=1).max()) + (self.start_id is not None)
            if longest + self.maxlen > self.max_positions:
                raise ValueError(f"A prompt of length {longest} plus `maxlen` {self.maxlen} "
                                 f"new tokens exceeds the model's {self.max_positions} "
                                 f"positions (max_position_embeddings); shorten the prompt or "
                                 f"lower `maxlen`.")

    def reorder_states(self, states, rows):
        # The cache is gathered inside the next compiled step; here only the rows compose.
        pending, *state = states
        return [pending[np.asarray(rows)], *state]

    def _run_model(self, ids, extras, visible, positions, key_positions, caches, cache_index):
        """The model's graph on token `ids` and `extras` with attention over `caches` (None:
        new ones: empty self-attention caches of the prompt length plus `maxlen`, and the
        encoder's keys and values for cross-attention) whose self-attention rows hold tokens
        at `key_positions`. Returns logits [rows, length, vocab] and the updated caches, in the
        order of the attention calls."""
        rows, length = ops.shape(ids[0])
        if self.encoder:
            (context, context_visible), inputs = extras, [extras[0], *ids]
        else:
            inputs = [*ids, *extras]
        new_caches = []

        def call(operation, *args, **kwargs):
            if isinstance(operation, AttentionMask):
                return visible
            if operation is self.output_activation:
                return args[0]
            if isinstance(operation, PositionEmbeddingBase):
                return operation(*args, position_ids=positions, **kwargs)
            if isinstance(operation, RelativePositionBias):
                queries, keys = args[0]
                # Cross-attention keys are the encoder's tokens, at 0, 1, ...
                slots = key_positions if keys is queries else None
                return operation(*args, positions=positions, key_positions=slots)
            if isinstance(operation, MultiHeadAttention):
                queries, keys, _ = args[0]
                index, size = cache_index, length + self.maxlen
                if keys is not queries:  # cross-attention: filled once, then read
                    kwargs["attention_mask"] = context_visible
                    index, size = (0, ops.shape(context)[1]) if caches is None else (None, 0)
                if caches is None:
                    shape = (rows, size, operation.heads)
                    cache = (ops.zeros((*shape, operation.key_size), operation.compute_dtype),
                             ops.zeros((*shape, operation.head_size), operation.compute_dtype))
                else:
                    cache = caches[len(new_caches)]
                output, cache = operation(*args, cache=cache, cache_index=index,
                                          positions=positions, key_positions=key_positions,
                                          **kwargs)
                new_caches.append(cache)
                return output
            return operation(*args, **kwargs)

        # Functional models expose no public way to run their nodes with other arguments.
        logits = self.model._run_through_graph(inputs, call_fn=call)
        if isinstance(logits, (list, tuple)):
            (logits,) = logits
        return ops.cast(logits, "float32"), new_caches

    def _prefill_graph(self, token_ids, *rest):
        if self.encoder:
            # The prompt is the decoder's start token; the encoder runs once, here.
            context = self.encoder(token_ids if not rest else [token_ids, *rest])
            extras = (context, ops.not_equal(token_ids, 0)[:, None, None, :])
            token_ids = ops.full((ops.shape(token_ids)[0], 1), self.start_id, "int32")
            ids, valid = [token_ids], ops.ones_like(token_ids, dtype="bool")
            visible = masks.attention_mask("lm", token_ids, pad_id=None)
        else:
            ids, extras = [token_ids, *rest[:self.id_inputs - 1]], rest[self.id_inputs - 1:]
            valid = ops.not_equal(token_ids, 0)
            visible = masks.attention_mask(self.application, *ids)
        room = [(0, 0), (0, 0), (0, 0), (0, self.maxlen)]
        rows, length = ops.shape(token_ids)
        # Real tokens take positions 0, 1, ... wherever the padding is (padding takes 0 and is
        # never attended to); step t writes slot `length + t` (see _step_graph).
        counted = ops.cumsum(ops.cast(valid, "int32"), axis=1)
        positions = ops.maximum(counted - 1, 0)
        key_positions = ops.pad(positions, [(0, 0), (0, self.maxlen)])
        logits, caches = self._run_model(ids, extras, ops.pad(visible, room), positions,
                                         key_positions, None, 0)
        lengths = counted[:, -1]
        # The next token follows the last real one: the first slot whose count is the total.
        last_index = ops.argmax(ops.cast(ops.equal(counted, lengths[:, None]), "int32"), axis=1)
        last = ops.take_along_axis(logits, last_index[:, None, None], axis=1)[:, 0]
        cache_valid = ops.pad(valid, [(0, 0), (0, self.maxlen)])
        index = ops.convert_to_tensor(length, "int32")
        return (last, cache_valid, key_positions, lengths, index, *extras,
                *(tensor for cache in caches for tensor in cache))

    def _step_graph(self, tokens, rows, cache_valid, key_positions, lengths, index, *state):
        # Reorder the hypotheses first (beam search picks new parents every step).
        cache_valid, key_positions, lengths, *state = [
            ops.take(tensor, rows, axis=0)
            for tensor in (cache_valid, key_positions, lengths, *state)]
        new_slot = ops.one_hot(index, ops.shape(cache_valid)[1], dtype="bool")[None]
        cache_valid = ops.logical_or(cache_valid, new_slot)
        key_positions = ops.where(new_slot, lengths[:, None], key_positions)
        ids = [tokens[:, None]]
        if self.id_inputs == 2:
            ids.append(ops.full_like(tokens, self.new_segment)[:, None])
        extras, state = state[:self.extras], state[self.extras:]
        caches = list(zip(state[::2], state[1::2]))
        logits, caches = self._run_model(
            ids, extras, cache_valid[:, None, None, :], lengths[:, None], key_positions, caches,
            index,
        )
        return (logits[:, 0], cache_valid, key_positions, lengths + 1, index + 1,
                *extras, *(tensor for cache in caches for tensor in cache))


def _unique(variables):
    seen = set()
    return [v for v in variables if not (id(v) in seen or seen.add(id(v)))]


def _compile(function, variables):
    """`function` compiled with XLA for the backend: `tf.function(jit_compile=True)` on
    TensorFlow, `jax.jit` over the values of the model's `variables` on JAX, eager
    elsewhere."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(function, jit_compile=True, autograph=False)
        concrete = {}

        def call_tensorflow(*arguments):
            # Concrete functions skip tf.function's per-call argument matching.
            arguments = [tf.convert_to_tensor(argument) for argument in arguments]
            key = tuple((tuple(argument.shape), argument.dtype) for argument in arguments)
            if key not in concrete:
                concrete[key] = compiled.get_concrete_function(*arguments)
            return concrete[key](*arguments)

        return call_tensorflow
    if backend == "jax":
        import jax

        def stateless(values, *arguments):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return function(*arguments)

        compiled = jax.jit(stateless)
        return lambda *arguments: compiled([v.value for v in variables], *arguments)
    return function


def _after_prompts(ids, values):
    """`ids` (token ids first) with one column more: `values[i]` written into `ids[i]` just
    after each row's last real token (id != 0), the columns after it shifted right."""
    token_ids = ids[0]
    width = token_ids.shape[1]
    slot = width - np.argmax(token_ids[:, ::-1] != 0, axis=1)
    columns = np.arange(width + 1)[None]
    source = np.minimum(columns - (columns > slot[:, None]), width - 1)
    return [np.where(columns == slot[:, None], value, np.take_along_axis(x, source, axis=1))
            .astype(x.dtype) for x, value in zip(ids, values)]


def _pad_rows(array, rows):
    """`array` with copies of row 0 appended up to `rows` rows."""
    missing = rows - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[:1], missing, axis=0)], axis=0)
