"""bert4keras's search API: beam search and sampling around a user-written `predict`.

Source: bert4keras's `snippets.AutoRegressiveDecoder` (https://github.com/bojone/bert4keras);
nucleus sampling from "The Curious Case of Neural Text Degeneration" (Holtzman et al., 2019,
https://arxiv.org/abs/1904.09751).

The search runs on the host, one `predict` call per step, as in bert4keras, so a subclass may
compute its scores any way it likes (constrained decoding, merged distributions).

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

from bert4keras_ext import arguments
from bert4keras_ext.layers import Lambda


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

