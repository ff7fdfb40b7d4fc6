"""Decoding: beam search against exhaustive search, cached == uncached, sampling filters,
min_ends / maxlen / minlen."""
import functools
import itertools

import keras
import numpy as np
import pytest

from bert4keras_ext.decoding import (
    AutoRegressiveDecoder,
    CachedGenerator,
    CompiledGenerator,
    filter_probas,
    softmax,
)
from bert4keras_ext.models import build_transformer_model

pytestmark = pytest.mark.backend_neutral

END = 2


def tiny_model(application, vocab_size=30, seed=0, model="bert", condition_size=None, layers=2):
    keras.utils.set_random_seed(seed)
    config = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers,
                  num_attention_heads=4, intermediate_size=64, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, initializer_range=0.5)
    if model.startswith("gpt"):
        return build_transformer_model(config, model=model, application=application,
                                       final_activation="linear")
    return build_transformer_model(config, model=model, application=application,
                                   with_mlm="linear", layer_norm_cond=condition_size)


class Uncached(AutoRegressiveDecoder):
    """Re-runs the whole model on prompt + output at every step (bert4keras's way)."""

    def __init__(self, model, segment, start_id=None, **kwargs):
        super().__init__(start_id=start_id, **kwargs)
        self.model, self.segment = model, segment

    @AutoRegressiveDecoder.wraps(default_rtype="logits")
    def predict(self, inputs, output_ids, states):
        if len(self.model.inputs) == 1:  # GPT-2 families: token ids alone
            ids = [np.concatenate([inputs[0], output_ids], axis=1)]
            extras = []
        else:
            token_ids, segment_ids, *extras = inputs
            ids = [np.concatenate([token_ids, output_ids], axis=1),
                   np.concatenate([segment_ids, np.full_like(output_ids, self.segment)], 1)]
        # Padded to one width (padding keys are masked, later ones unseen), so the model is
        # traced once per row count rather than once per length (slow on JAX).
        length = ids[0].shape[1]
        width = max(length, 32)
        ids = [np.pad(x, [(0, 0), (0, width - length)]) for x in ids]
        inputs = [*ids, *extras]
        logits = np.array(self.model(inputs if len(inputs) > 1 else inputs[0])[:, length - 1],
                          dtype="float64")
        logits[:, 0] = -np.inf
        return logits


PROMPTS = [np.array([1, 5, 6, 7, 2]), np.array([1, 8, 2]), np.array([1, 9, 9, 4, 11, 3, 2])]


def tensorflow_only(*case):
    """A case run on TensorFlow only: on JAX each case compiles for ~3x as long, and one
    case per position scheme and input layout covers that backend."""
    return pytest.param(*case, marks=pytest.mark.tensorflow_only)


@pytest.mark.parametrize("family,application,condition_size", [
    # Each position scheme, mask and input layout at least once (the CI time budget keeps
    # the list short): learned / rotary / relative positions, lm / unilm, with and without a
    # Conditional LayerNorm condition, shared blocks, token-only inputs.
    ("bert", "unilm", None), tensorflow_only("bert", "lm", None), ("bert", "unilm", 6),
    ("roformer", "lm", None), tensorflow_only("roformer_v2", "unilm", None),
    ("nezha", "unilm", None), tensorflow_only("nezha", "lm", 6),
    ("albert", "unilm", 6), ("gpt2", "lm", None), tensorflow_only("gpt2_ml", "lm", None),
    tensorflow_only("gpt", "unilm", None),
])
def test_cached_equals_uncached_greedy_and_beam_in_batches(family, application, condition_size):
    """The generator runs the model's own graph with caches for every decoder-capable family:
    learned, rotary or relative positions, shared blocks (ALBERT), token-only inputs (GPT-2),
    and Conditional LayerNorm (the condition rows follow their hypotheses). The second prompt
    is left-padded (transformers' convention; reliability probe 2, D02), the first right-padded:
    each decodes as it does alone. CompiledGenerator's beams equal the cached ones."""
    model = tiny_model(application, model=family, condition_size=condition_size)
    cached = CachedGenerator(model, end_id=END, maxlen=8)
    uncached = Uncached(model, 1 if application == "unilm" else 0, end_id=END, maxlen=8)
    width = max(len(p) for p in PROMPTS)
    token_ids = np.array([np.pad(p, (width - len(p), 0) if index == 1 else (0, width - len(p)))
                          for index, p in enumerate(PROMPTS)])
    segment_ids = np.zeros_like(token_ids)
    extras = [] if condition_size is None else [
        np.random.default_rng(1).normal(size=(len(PROMPTS), condition_size)).astype("float32")]
    ids = [token_ids] if family.startswith("gpt2") else [token_ids, segment_ids]
    for topk in (1, 3):
        batch = cached.batch_beam_search([*ids, *extras], topk)
        for index, (prompt, output) in enumerate(zip(PROMPTS, batch)):
            own = [extra[index] for extra in extras]
            prompt_ids = [prompt] if family.startswith("gpt2") else [prompt, np.zeros_like(prompt)]
            expected = uncached.beam_search([*prompt_ids, *own], topk)
            np.testing.assert_array_equal(output, expected)
            assert len(output) > 0
    # The whole search as one compiled program gives the same beams (the model's steps are
    # compiled already; test_compiled_decoding.py varies the search options).
    compiled = CompiledGenerator(model, end_id=END, maxlen=8)
    for expected, received in zip(batch, compiled.batch_beam_search([*ids, *extras], 3)):
        np.testing.assert_array_equal(received, expected)


def test_constraint_hook_restricts_the_cached_generator():
    allowed = [2, 7, 11, 13]

    class Restricted(CachedGenerator):
        @AutoRegressiveDecoder.wraps(default_rtype="logits", use_states=True)
        def predict(self, inputs, output_ids, states):
            logits, states = self.next_logits(inputs, output_ids, states)
            blocked = np.ones(logits.shape[1], bool)
            blocked[allowed] = False
            logits[:, blocked] = -np.inf
            return logits, states

    generator = Restricted(tiny_model("unilm"), end_id=END, maxlen=6)
    prompt = PROMPTS[0]
    for output in (generator.beam_search([prompt, np.zeros_like(prompt)], 3),
                   *generator.random_sample([prompt, np.zeros_like(prompt)], 4, seed=0)):
        assert set(output.tolist()) <= set(allowed)


def test_beam_as_wide_as_all_prefixes_finds_the_exhaustive_best():
    """Vocabulary 5 (0 is padding, never generated), 3 new tokens, beam 16 >= 4^2 prefixes."""
    model = tiny_model("unilm", vocab_size=5, seed=3)
    prompt = np.array([1, 3, 4, 2])
    uncached = Uncached(model, 1, end_id=END, maxlen=3)

    @functools.cache
    def next_log_probs(prefix):
        output = np.array([prefix], "int64").reshape(1, len(prefix))
        log_probs, _ = uncached.predict([prompt[None], np.zeros((1, 4), "int64")], output,
                                        None, 1.0, "logits")
        return log_probs[0]

    def log_prob(sequence):
        return sum(next_log_probs(tuple(sequence[:i]))[token] for i, token in enumerate(sequence))

    candidates = []
    for length in (1, 2, 3):
        for body in itertools.product([1, 3, 4], repeat=length - 1):
            candidates.append(body + (END,))
        if length == 3:
            candidates += list(itertools.product([1, 3, 4], repeat=3))
    best = max(candidates, key=log_prob)
    cached = CachedGenerator(model, end_id=END, maxlen=3)
    for decoder in (uncached, cached):
        output = decoder.beam_search([prompt, np.zeros_like(prompt)], topk=16)
        assert tuple(output) == best


class FixedDistribution(AutoRegressiveDecoder):
    """Every step predicts the same distribution (vocabulary 6, end id 5)."""

    def __init__(self, probas, **kwargs):
        super().__init__(start_id=None, end_id=5, **kwargs)
        self.probas = np.asarray(probas, "float64")

    @AutoRegressiveDecoder.wraps(default_rtype="probas")
    def predict(self, inputs, output_ids, states):
        return np.repeat(self.probas[None], len(output_ids), axis=0)


def test_top_k_and_top_p_never_leave_the_allowed_set():
    decoder = FixedDistribution([0.05, 0.4, 0.3, 0.15, 0.1, 0.0], maxlen=30)
    dummy = [np.zeros(1)]
    for topk, topp, allowed in ((2, None, {1, 2}), (None, 0.75, {1, 2, 3}),
                                (3, 0.5, {1, 2}), (None, None, {0, 1, 2, 3, 4})):
        samples = decoder.random_sample(dummy, n=20, topk=topk, topp=topp, seed=1)
        assert len(samples) == 20 and all(len(s) == 30 for s in samples)
        seen = set(np.concatenate(samples).tolist())
        assert seen <= allowed and len(seen) == len(allowed)
    np.testing.assert_allclose(filter_probas([[0.5, 0.2, 0.3]], topk=2), [[0.625, 0, 0.375]])


def test_min_ends_maxlen_and_minlen():
    # The end token is the most likely at every step.
    probas = [0.0, 0.2, 0.1, 0.05, 0.05, 0.6]
    dummy = [np.zeros(1)]
    np.testing.assert_array_equal(FixedDistribution(probas, maxlen=10).beam_search(dummy, 2),
                                  [5])
    np.testing.assert_array_equal(
        FixedDistribution(probas, maxlen=10).beam_search(dummy, 2, min_ends=3), [5, 5, 5]
    )
    minlen = FixedDistribution(probas, maxlen=10, minlen=4).beam_search(dummy, 1)
    np.testing.assert_array_equal(minlen, [1, 1, 1, 5])
    never_ends = FixedDistribution([0.1, 0.5, 0.4, 0.0, 0.0, 0.0], maxlen=6)
    assert len(never_ends.beam_search(dummy, 3)) == 6
    sampled = FixedDistribution(probas, maxlen=50).random_sample(dummy, 10, min_ends=2, seed=0)
    assert all(list(s).count(5) == 2 and s[-1] == 5 for s in sampled)


def test_wraps_temperature_and_errors():
    logits = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(softmax(logits / 2.0), [[0.186, 0.307, 0.506]], atol=1e-3)
    with pytest.raises(ValueError, match="`maxlen` must be a positive integer"):
        FixedDistribution([1.0], maxlen=0)
    with pytest.raises(ValueError, match=r"`minlen` must be an integer in \[0, maxlen=3\]"):
        FixedDistribution([1.0], maxlen=3, minlen=5)
    decoder = FixedDistribution([0.5, 0.5, 0, 0, 0, 0], maxlen=3)
    with pytest.raises(ValueError, match="`topk` must be a positive integer"):
        decoder.beam_search([np.zeros(1)], 0)
    with pytest.raises(ValueError, match=r"`topp` must be a finite number > 0"):
        decoder.random_sample([np.zeros(1)], 2, topp=0.0)
    with pytest.raises(ValueError, match="application='lm' or 'unilm'"):
        CachedGenerator(tiny_model("encoder"), end_id=END, maxlen=4)
    with pytest.raises(NotImplementedError, match="must define `predict`"):
        AutoRegressiveDecoder(None, END, 3).beam_search([np.zeros(1)], 1)


def test_impossible_inputs_are_refused_before_decoding():
    """Reliability probe D04-D12, D15: the compiled steps would clamp out-of-range gathers,
    so the generator checks ids, lengths, end_id and temperature first."""
    keras.utils.set_random_seed(0)
    config = dict(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=32, max_position_embeddings=12)
    model = build_transformer_model(config, application="unilm", with_mlm="linear")
    prompt, segments = np.array([[1, 5, 6, 7, 2]]), np.zeros((1, 5), "int64")
    generator = CachedGenerator(model, end_id=END, maxlen=4)
    for bad_prompt, message in [
        (np.array([[1, 999, 2]]), r"ids must be in \[0, 20\).*from 1 to 999"),   # D10
        (np.array([[1, 5, 2], [0, 0, 0]]), r"rows \[1\] are all padding"),          # D07
        (np.zeros((1, 0), "int64"), r"shape \[rows, length >= 1\]"),              # D08
    ]:
        with pytest.raises(ValueError, match=message):
            generator.batch_beam_search([bad_prompt, np.zeros_like(bad_prompt)], 1)
    with pytest.raises(ValueError, match=r"length 5 plus `maxlen` 10 .* 12 positions"):  # D09
        CachedGenerator(model, end_id=END, maxlen=10).batch_beam_search([prompt, segments], 1)
    for minlen in (1, 2):  # D04, D05
        with pytest.raises(ValueError, match=r"`end_id` must be a token id in \[1, 20\)"):
            CachedGenerator(model, end_id=10000, maxlen=4, minlen=minlen)
    # Reliability probe 2, D10: the padding id is never generated, so it cannot end anything.
    with pytest.raises(ValueError, match=r"`end_id` must be a token id in \[1, 20\) .*"
                                         r"without the padding id 0\); received 0"):
        CachedGenerator(model, end_id=0, maxlen=4)
    for temperature in (0, -1, float("nan")):  # D11, D12, D15
        with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
            generator.batch_random_sample([prompt, segments], 2, temperature=temperature)
        with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
            generator.batch_beam_search([prompt, segments], 2, temperature=temperature)
    assert generator.batch_beam_search([prompt[:0], segments[:0]], 2) == []  # D06
    assert len(generator.beam_search([prompt[0], segments[0]], 2)) >= 1


@pytest.mark.tensorflow_only  # the start token is written in NumPy; JAX's graph is as above
def test_lm_start_id_follows_each_prompt():
    """Reliability probe 2, D03: an LM's `start_id` is fed after each prompt (as
    AutoRegressiveDecoder's outputs start with it, bert4keras's convention) and is not part of
    the outputs; a left-padded row (D02) takes it after its last token too. The padding id
    0 is no start token."""
    model = tiny_model("lm")
    cached = CachedGenerator(model, end_id=END, maxlen=5, start_id=np.int64(9))
    prompts = PROMPTS[:2]
    token_ids = np.array([prompts[0], np.pad(prompts[1], (2, 0))])
    batch = cached.batch_beam_search([token_ids, np.zeros_like(token_ids)], 2)
    changed = False
    for prompt, output in zip(prompts, batch):
        inputs = [prompt, np.zeros_like(prompt)]
        expected = Uncached(model, 0, start_id=9, end_id=END, maxlen=5).beam_search(inputs, 2)
        np.testing.assert_array_equal(output, expected)
        without = Uncached(model, 0, end_id=END, maxlen=5).beam_search(inputs, 2)
        changed |= not np.array_equal(expected, without)
    assert changed  # the start token matters for this model, so the comparison is informative
    for start_id in (0, 30):
        with pytest.raises(ValueError, match=r"`start_id` must be a token id in \[1, 30\)"):
            CachedGenerator(model, end_id=END, maxlen=5, start_id=start_id)


class Scripted(AutoRegressiveDecoder):
    """`predict` returns `make(rows)` as probabilities; `ScriptedLogits` as logits."""

    def __init__(self, make, **kwargs):
        super().__init__(start_id=None, end_id=5, maxlen=4, **kwargs)
        self.make = make

    @AutoRegressiveDecoder.wraps(default_rtype="probas")
    def predict(self, inputs, output_ids, states):
        return self.make(len(output_ids))


class ScriptedLogits(Scripted):
    @AutoRegressiveDecoder.wraps(default_rtype="logits")
    def predict(self, inputs, output_ids, states):
        return self.make(len(output_ids))


def rows_of(scores):
    return lambda rows: np.repeat(np.asarray(scores, "float64")[None], rows, axis=0)


def test_unusable_predict_outputs_are_refused():
    """Reliability probe 2, D17, D18: beam search and sampling stop at the first step whose
    scores no search can use, naming them, instead of returning token 0 or an IndexError."""
    for decoder, message in [
        # D17: a diverged model's NaN, in probabilities and in logits.
        (Scripted(rows_of([0.1, np.nan, 0.3, 0.2, 0.2, 0.2])),
         r"returned probas that are NaN, infinite or < 0 in rows \[0\], e.g. nan"),
        (ScriptedLogits(rows_of([0.1, np.nan, 0.3, 0.2, 0.2, 0.2])),
         r"returned logits that are NaN or \+inf in rows \[0\], e.g. nan"),
        (ScriptedLogits(rows_of([0.1, np.inf, 0.3, 0.2, 0.2, 0.2])), r"NaN or \+inf"),
        (Scripted(rows_of([0.5, -0.1, 0.3, 0.1, 0.1, 0.1])), r"NaN, infinite or < 0.*e.g. -0.1"),
        (Scripted(rows_of([0.0] * 6)), r"gave rows \[0\] no possible token \(every probability"),
        (ScriptedLogits(rows_of([-np.inf] * 6)), r"no possible token \(every logit -inf"),
        # D18: one score per row instead of a row of scores, and a wrong row count.
        (Scripted(lambda rows: np.full(rows, 0.5)),
         r"must return probas of shape \[rows=1, vocab_size\] .* received shape \(1,\)"),
        (ScriptedLogits(lambda rows: np.zeros((rows + 1, 6))),
         r"must return logits of shape \[rows=1, vocab_size\] .* received shape \(2, 6\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            decoder.beam_search([np.zeros(1)], 2)
        with pytest.raises(ValueError, match=message):
            decoder.random_sample([np.zeros(1)], 2, seed=0)


def test_blocked_logits_are_allowed():
    """-inf logits block tokens (constrained decoding): only the others are chosen."""
    decoder = ScriptedLogits(rows_of([-np.inf, 1.0, -np.inf, 2.0, -np.inf, 0.5]))
    samples = decoder.random_sample([np.zeros(1)], 8, seed=0)
    assert set(np.concatenate(samples).tolist()) <= {1, 3, 5}
    np.testing.assert_array_equal(decoder.beam_search([np.zeros(1)], 1), [3, 3, 3, 3])


def test_numpy_scalars_are_counts_and_bools_nan_are_not():
    """Reliability probe 2, D11-D14, D16: NumPy scalars (from a config array) work as the
    Python numbers they hold and are stored as such; True is not a count, NaN not a penalty."""
    probas = [0.05, 0.4, 0.3, 0.15, 0.04, 0.06]
    numpy_made = FixedDistribution(probas, maxlen=np.int64(6), minlen=np.int32(2))  # D13
    assert (type(numpy_made.maxlen), type(numpy_made.minlen)) == (int, int)
    plain = FixedDistribution(probas, maxlen=6, minlen=2)
    dummy = [np.zeros(1)]
    np.testing.assert_array_equal(  # D12
        numpy_made.beam_search(dummy, np.int64(3), temperature=np.float32(0.7),
                               length_penalty=np.float64(1.0), min_ends=np.int8(1)),
        plain.beam_search(dummy, 3, temperature=float(np.float32(0.7)), length_penalty=1.0))
    for a, b in zip(numpy_made.random_sample(dummy, np.int64(3), topk=np.int64(2),  # D11
                                             topp=np.float32(0.9), seed=0),
                    plain.random_sample(dummy, 3, topk=2, topp=float(np.float32(0.9)), seed=0)):
        np.testing.assert_array_equal(a, b)
    for call, message in [
        (lambda: plain.random_sample(dummy, 2, topk=True),  # D16
         r"`topk` must be a positive integer; received True \(bool\)"),
        (lambda: plain.beam_search(dummy, True), r"`topk` must be a positive integer"),
        (lambda: plain.random_sample(dummy, True), r"`n` must be a positive integer"),
        (lambda: plain.beam_search(dummy, 2, length_penalty=float("nan")),  # D14
         r"`length_penalty` must be a finite number; received nan"),
        (lambda: plain.random_sample(dummy, 2, topp=float("nan")), r"`topp` must be a finite"),
        (lambda: plain.beam_search(dummy, 2, min_ends=0), r"`min_ends` must be a positive"),
        (lambda: plain.beam_search(dummy, 2, temperature=True), r"`temperature` must be a"),
        (lambda: FixedDistribution(probas, maxlen=6.0), r"`maxlen` must be a positive integer"),
        (lambda: FixedDistribution(probas, maxlen=True), r"`maxlen` must be a positive integer"),
        (lambda: FixedDistribution(probas, maxlen=4, minlen=-1), r"`minlen` must be an integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
