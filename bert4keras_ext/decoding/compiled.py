"""`CompiledGenerator`: beam search and sampling as one compiled program per call.

The search semantics are bert4keras's `AutoRegressiveDecoder` (`snippets.py` in
https://github.com/bojone/bert4keras), as `search.py` implements them on the host; here the
prefill, every step, the beam bookkeeping (or the sampling) and the stopping test run inside one
`keras.ops.while_loop`, compiled with XLA (`tf.function(jit_compile=True)` on TensorFlow,
`jax.jit` on JAX). Shapes are fixed for the whole search: `rows = inputs * beam` hypotheses (or
`inputs * n` samples), an output buffer of `[rows, maxlen]` tokens, and the key/value caches
that `CachedModel.step_graph` updates in place. Finished hypotheses and finished inputs are not
removed as on the host: their scores become -inf ("dead" slots) and they keep their row.

Beam search returns exactly the tokens of `CachedGenerator.batch_beam_search` (hence of the
host search), up to float32 rounding of the scores (the host sums them in float64):

- each input has `topk` slots; at the first step only slot 0 is live, so the first top-k is
  drawn from one row, as the host draws it from the single row of each input;
- a candidate's score is its parent's plus `log_softmax(logits / temperature)`, with the
  padding id 0 at -inf and the end id at -inf before `minlen` new tokens;
- each input keeps the top-k of its `topk * vocab` candidates flattened, ties to the lower
  flat index; the host compacts dead rows keeping their order, so it ranks the live
  candidates in the same order and makes the same picks;
- a hypothesis whose `min_ends`-th end token is the one just chosen is finished; each input
  keeps only its best finished one by normalized score (`score / new_tokens **
  length_penalty`), replaced only by a strictly greater one, the lowest slot first among
  equals in a step (the host's list order, whose `max` picks the first);
- an input is done when it has a finished hypothesis that no live one's normalized score
  beats (>=), and its live ones are dropped; after `maxlen` steps the live ones compete with
  the finished best (strictly greater wins, in slot order).
"""
import math
from typing import NamedTuple

import numpy as np
from keras import ops

from bert4keras_ext import arguments
from bert4keras_ext.decoding.cached_model import CachedModel, compile_function
from bert4keras_ext.decoding.search import check_temperature


class _Beams(NamedTuple):
    """The beam search's loop state besides the model's caches; rows are `input * topk +
    slot`. `tokens` and `parents` are the last step's picks, fed to the next model step."""
    generated: object    # scalar: new tokens so far (the next step's index)
    tokens: object       # [rows] the token each hypothesis just took
    parents: object      # [rows] the row each hypothesis came from
    scores: object       # [rows] summed log-probabilities; -inf for a dead slot
    outputs: object      # [rows, maxlen] new tokens of each hypothesis
    ends: object         # [rows] end tokens in each hypothesis
    best_scores: object  # [inputs] normalized score of the best finished one; -inf if none
    best_outputs: object  # [inputs, maxlen]
    best_lengths: object  # [inputs]
    done: object         # [inputs] no live hypothesis can beat the finished best


class _Samples(NamedTuple):
    """The sampling loop state besides the model's caches; rows are `input * n + sample`."""
    generated: object  # scalar: new tokens so far
    tokens: object     # [rows] the last sampled token
    outputs: object    # [rows, maxlen]
    ends: object       # [rows] end tokens so far
    lengths: object    # [rows] the output's length once it ended; 0 while it runs


class CompiledGenerator:
    """Beam search and sampling for the models `CachedGenerator` decodes, each call one compiled
    program: UNILM and LM applications (learned, rotary or relative positions, Conditional
    LayerNorm conditions as extra inputs), GPT-2 families (token ids alone) and T5 builder
    objects (with `.encoder` and `.decoder`; inputs are the encoder's token ids).

    Inputs, padding (either side), `start_id`, `end_id` and the outputs are those of
    `CachedGenerator` (see its docstring); the padding id 0 is never generated. Unlike it, no
    step can be reshaped on the host (no `predict` hook): use `CachedGenerator` for constrained
    decoding. A program is compiled once per search option that fixes a shape (`topk`; `n`,
    `topk` and whether `topp` is set for sampling) and per input shape; `temperature`,
    `min_ends`, `length_penalty` and `topp` are values of the program, so changing them does
    not recompile.

    Example:
    ```python
    generator = CompiledGenerator(model, end_id=tokenizer.token_to_id("[SEP]"), maxlen=64)
    outputs = generator.batch_beam_search([token_ids, segment_ids], topk=3)
    ```
    """

    def __init__(self, model, end_id, maxlen, minlen=1, start_id=None):
        self.cached = CachedModel(model, maxlen, start_id)
        self.maxlen = self.cached.maxlen
        self.minlen = arguments.integer(minlen, "minlen", minimum=0)
        if self.minlen > self.maxlen:
            raise ValueError(f"`minlen` must be an integer in [0, maxlen={self.maxlen}]; "
                             f"received {minlen}.")
        self.end_id = arguments.integer(end_id, "end_id", minimum=0)
        self.cached.check_token("end_id", self.end_id)
        self.start_id = self.cached.start_id
        self._programs = {}

    # Beam search.
    def beam_search(self, inputs, topk, temperature=1.0, min_ends=1, length_penalty=0.0):
        """The best output ids for one input (a list of 1-D arrays)."""
        batch = [np.asarray(x)[None] for x in inputs]
        return self.batch_beam_search(batch, topk, temperature, min_ends, length_penalty)[0]

    def batch_beam_search(self, inputs, topk, temperature=1.0, min_ends=1, length_penalty=0.0):
        """The best output ids (1-D int32 arrays, without the start token) of each input:
        `inputs` arrays have one row per input."""
        topk = arguments.integer(topk, "topk", minimum=1)
        options = (np.float32(check_temperature(temperature)),
                   np.int32(arguments.integer(min_ends, "min_ends", minimum=1)),
                   np.float32(arguments.real(length_penalty, "length_penalty")))
        if len(inputs[0]) == 0:
            return []
        inputs = self.cached.prefill_inputs(inputs)
        program = self._program(("beam", topk), self._beam_graph, topk)
        outputs, lengths = program(*options, *inputs)
        return [row[:length] for row, length in zip(np.asarray(outputs), np.asarray(lengths))]

    def _beam_graph(self, topk, temperature, min_ends, length_penalty, *inputs):
        logits, *state = self.cached.prefill_graph(*inputs)
        count = ops.shape(logits)[0]
        # Every slot starts from its input's prompt; only slot 0 is live at the first step.
        rows = ops.repeat(ops.arange(count, dtype="int32"), topk)
        logits, state = ops.take(logits, rows, axis=0), _take_rows(state, rows)
        first = ops.tile(ops.arange(topk, dtype="int32"), [count]) == 0
        empty = ops.zeros((count * topk, self.maxlen), "int32")
        beams = _Beams(
            generated=ops.convert_to_tensor(0, "int32"), tokens=rows, parents=rows,
            scores=ops.cast(ops.where(first, 0.0, -math.inf), "float32"), outputs=empty,
            ends=ops.zeros((count * topk,), "int32"),
            best_scores=ops.full((count,), -math.inf, "float32"),
            best_outputs=ops.zeros((count, self.maxlen), "int32"),
            best_lengths=ops.zeros((count,), "int32"), done=ops.zeros((count,), "bool"))
        options = (topk, temperature, min_ends, length_penalty)
        beams = self._beam_step(beams, logits, *options)

        def running(beams, state):
            return ops.logical_and(beams.generated < self.maxlen,
                                   ops.logical_not(ops.all(beams.done)))

        def step(beams, state):
            # Greedy search never reorders its rows: the caches need no gather.
            parents = None if topk == 1 else beams.parents
            logits, *state = self.cached.step_graph(beams.tokens, parents, *state,
                                                    beams_of_inputs=True)
            return self._beam_step(beams, logits, *options), tuple(state)

        beams, _ = ops.while_loop(running, step, (beams, tuple(state)))
        # Hypotheses still live at `maxlen` compete with the finished best, after it.
        live = beams.scores > -math.inf
        normalized = beams.scores / ops.cast(beams.generated, "float32") ** length_penalty
        final = _keep_better(beams, ops.where(live, normalized, -math.inf), topk,
                             beams.generated)
        return final.best_outputs, final.best_lengths

    def _beam_step(self, beams, logits, topk, temperature, min_ends, length_penalty):
        """`beams` after choosing each input's `topk` best continuations from `logits`
        [rows, vocab], the model's output for each hypothesis."""
        step = beams.generated
        vocab = ops.shape(logits)[1]
        padding = ops.arange(vocab) == 0
        log_probs = ops.log_softmax(ops.where(padding, -math.inf, logits) / temperature)
        # As the host: the end token is blocked after normalizing, not renormalized without it.
        too_early = ops.logical_and(ops.arange(vocab) == self.end_id, step + 1 < self.minlen)
        log_probs = ops.where(too_early, -math.inf, log_probs)
        candidates = ops.reshape(beams.scores[:, None] + log_probs, (-1, topk * vocab))
        scores, picks = ops.top_k(candidates, topk)  # sorted, ties to the lower index
        scores, picks = ops.reshape(scores, (-1,)), ops.reshape(picks, (-1,))
        first_slot = ops.arange(ops.shape(picks)[0], dtype="int32") // topk * topk
        parents = first_slot + ops.cast(picks // vocab, "int32")
        tokens = ops.cast(picks % vocab, "int32")
        column = ops.arange(self.maxlen) == step
        outputs = ops.where(column, tokens[:, None], ops.take(beams.outputs, parents, axis=0))
        is_end = tokens == self.end_id
        ends = ops.take(beams.ends, parents, axis=0) + ops.cast(is_end, "int32")
        live = scores > -math.inf
        finished = live & is_end & (ends >= min_ends)
        normalized = scores / ops.cast(step + 1, "float32") ** length_penalty
        beams = beams._replace(generated=step + 1, tokens=tokens, parents=parents,
                               outputs=outputs, ends=ends)
        beams = _keep_better(beams, ops.where(finished, normalized, -math.inf), topk, step + 1)
        live = live & ~finished
        best_live = ops.max(ops.reshape(ops.where(live, normalized, -math.inf), (-1, topk)),
                            axis=1)
        done = (beams.best_scores > -math.inf) & (beams.best_scores >= best_live)
        scores = ops.where(live & ~ops.repeat(done, topk), scores, -math.inf)
        return beams._replace(scores=scores, done=done)

    # Random sampling.
    def random_sample(self, inputs, n, topk=None, topp=None, temperature=1.0, min_ends=1,
                      seed=None):
        """`n` sampled outputs for one input (a list of 1-D arrays)."""
        batch = [np.asarray(x)[None] for x in inputs]
        return self.batch_random_sample(batch, n, topk, topp, temperature, min_ends, seed)[0]

    def batch_random_sample(self, inputs, n, topk=None, topp=None, temperature=1.0,
                            min_ends=1, seed=None):
        """For each input, `n` outputs (1-D int32 arrays) sampled from the model's distribution
        after `temperature`, kept to its `topk` most likely tokens and to the smallest set of
        them whose mass reaches `topp` (None or >= 1 keeps every token), as `filter_probas`.
        An output ends at its `min_ends`-th end token or after `maxlen` tokens; the outputs of
        an input are listed as the host lists them, in the order they ended, the unended last.

        `seed` (an integer, or None for fresh randomness) fixes the draws: the uniform numbers
        the samples are read from come from `numpy.random.default_rng(seed)`, so a seed gives
        the same outputs on every backend and machine."""
        n = arguments.integer(n, "n", minimum=1)
        topk = None if topk is None else arguments.integer(topk, "topk", minimum=1)
        topp = None if topp is None else arguments.real(topp, "topp", above=0)
        options = (np.float32(check_temperature(temperature)),
                   np.float32(1.0 if topp is None else topp),
                   np.int32(arguments.integer(min_ends, "min_ends", minimum=1)))
        if seed is not None:
            seed = arguments.integer(seed, "seed", minimum=0)
        count = len(inputs[0])
        if count == 0:
            return []
        inputs = self.cached.prefill_inputs(inputs)
        draws = np.random.default_rng(seed).random((self.maxlen, count * n), dtype="float32")
        program = self._program(("sample", n, topk, topp is not None), self._sample_graph, n,
                                topk, topp is not None)
        outputs, lengths = (np.asarray(x) for x in program(*options, draws, *inputs))
        # The host appends outputs as they end: by length, the unended (length 0) last.
        ended_last = np.where(lengths == 0, self.maxlen + 1, lengths)
        results = []
        for index in range(count):
            rows = np.arange(index * n, (index + 1) * n)
            rows = rows[np.argsort(ended_last[rows], kind="stable")]
            results.append([outputs[row, :lengths[row] or self.maxlen] for row in rows])
        return results

    def _sample_graph(self, n, topk, nucleus, temperature, topp, min_ends, draws, *inputs):
        logits, *state = self.cached.prefill_graph(*inputs)
        count = ops.shape(logits)[0]
        # One prefill per input, then its n samples go their own ways.
        rows = ops.repeat(ops.arange(count, dtype="int32"), n)
        logits, state = ops.take(logits, rows, axis=0), _take_rows(state, rows)
        samples = _Samples(
            generated=ops.convert_to_tensor(0, "int32"), tokens=rows,
            outputs=ops.zeros((count * n, self.maxlen), "int32"),
            ends=ops.zeros((count * n,), "int32"), lengths=ops.zeros((count * n,), "int32"))
        options = (topk, nucleus, temperature, topp, min_ends, draws)
        samples = self._sample_step(samples, logits, *options)

        def running(samples, state):
            return ops.logical_and(samples.generated < self.maxlen,
                                   ops.any(samples.lengths == 0))

        def step(samples, state):
            # Samples never change rows: the caches need no gather.
            logits, *state = self.cached.step_graph(samples.tokens, None, *state)
            return self._sample_step(samples, logits, *options), tuple(state)

        samples, _ = ops.while_loop(running, step, (samples, tuple(state)))
        return samples.outputs, samples.lengths

    def _sample_step(self, samples, logits, topk, nucleus, temperature, topp, min_ends,
                     draws):
        """`samples` after drawing one token per row from `logits` [rows, vocab]."""
        step = samples.generated
        vocab = ops.shape(logits)[1]
        padding = ops.arange(vocab) == 0
        probas = ops.softmax(ops.where(padding, -math.inf, logits) / temperature)
        # As the host: the end token's mass is removed, the others are not renormalized.
        too_early = ops.logical_and(ops.arange(vocab) == self.end_id, step + 1 < self.minlen)
        probas = ops.where(too_early, 0.0, probas)
        uniform = draws[step]
        if topk is None and not nucleus:
            tokens = _draw(probas, uniform)
        else:
            # filter_probas's rule, on the tokens ranked by probability (ties to the lower id).
            ranked, order = ops.top_k(probas, vocab if topk is None else min(topk, vocab))
            if nucleus:
                mass_before = ops.cumsum(ranked, axis=-1) - ranked
                total = ops.sum(probas, axis=-1, keepdims=True)
                ranked = ops.where(mass_before < topp * total, ranked, 0.0)
            tokens = ops.take_along_axis(order, _draw(ranked, uniform)[:, None], axis=1)[:, 0]
        tokens = ops.cast(tokens, "int32")
        running = samples.lengths == 0
        column = ops.arange(self.maxlen) == step
        outputs = ops.where(column & running[:, None], tokens[:, None], samples.outputs)
        is_end = running & (tokens == self.end_id)
        ends = samples.ends + ops.cast(is_end, "int32")
        lengths = ops.where(is_end & (ends >= min_ends), step + 1, samples.lengths)
        return _Samples(step + 1, tokens, outputs, ends, lengths)

    # Shared.
    def _program(self, key, graph, *static):
        """The compiled `graph` for the shape-fixing options `static`, made once per `key`
        (the compiled function itself keeps one program per input shape)."""
        if key not in self._programs:
            def program(*tensors):
                return graph(*static, *tensors)

            self._programs[key] = compile_function(program, self.cached.variables)
        return self._programs[key]


def _take_rows(state, rows):
    """The per-row tensors of a prefill's `state` gathered by `rows`; the write index (a
    scalar, shared by all rows) as it is."""
    return [ops.take(x, rows, axis=0) if len(x.shape) else x for x in state]


def _keep_better(beams, candidates, topk, length):
    """`beams` whose best finished hypotheses are replaced where an input's best of
    `candidates` [rows] (normalized scores, -inf where not a candidate) is strictly greater;
    among equal candidates the lowest slot wins. `length`: their number of new tokens."""
    candidates = ops.reshape(candidates, (-1, topk))
    best = ops.max(candidates, axis=1)
    slots = ops.arange(topk, dtype="int32")[None]
    # The first slot holding the maximum (argmax does not promise the first on every backend).
    first = ops.min(ops.where(candidates == best[:, None], slots, topk), axis=1)
    count = ops.shape(candidates)[0]
    winners = ops.arange(count, dtype="int32") * topk + first
    better = best > beams.best_scores
    return beams._replace(
        best_scores=ops.where(better, best, beams.best_scores),
        best_outputs=ops.where(better[:, None], ops.take(beams.outputs, winners, axis=0),
                               beams.best_outputs),
        best_lengths=ops.where(better, length, beams.best_lengths))


def _draw(probas, uniform):
    """One index per row of `probas` [rows, k] (unnormalized, >= 0), read from `uniform`
    [rows] in [0, 1) as `sample_tokens` does: the first index whose cumulative mass exceeds
    `uniform * total`. Clamped to the last index of positive mass, which float32 rounding of
    `uniform * total` up to the total would otherwise pass."""
    cumulative = ops.cumsum(probas, axis=-1)
    threshold = uniform[:, None] * cumulative[:, -1:]
    index = ops.sum(ops.cast(cumulative <= threshold, "int32"), axis=-1)
    positions = ops.arange(ops.shape(probas)[1], dtype="int32")[None]
    last_positive = ops.max(ops.where(probas > 0, positions, 0), axis=1)
    return ops.minimum(index, last_positive)

