"""CompiledGenerator: the whole search in one compiled program gives CachedGenerator's tokens
(greedy and beam, padded batches, min_ends, minlen, length_penalty, early stops) on every
family the cached generator decodes; sampling is seeded and stays in the top-k / top-p set."""
import functools

import keras
import numpy as np
import pytest

from bert4keras_ext.decoding import CachedGenerator, CompiledGenerator, filter_probas, softmax
from bert4keras_ext.models import build_transformer_model
from tests.test_decoding import PROMPTS, tensorflow_only, tiny_model

pytestmark = pytest.mark.backend_neutral

MAXLEN = 8


@functools.cache
def model_of(family, application, condition_size=None):
    """One tiny model per family for the whole module (they are only read)."""
    return tiny_model(application, model=family, condition_size=condition_size)


def batch_inputs(family, condition_size=None):
    """The three prompts in one batch, the first right-padded and the second left-padded."""
    width = max(len(p) for p in PROMPTS)
    token_ids = np.array([np.pad(p, (width - len(p), 0) if index == 1 else (0, width - len(p)))
                          for index, p in enumerate(PROMPTS)])
    ids = [token_ids] if family.startswith("gpt2") else [token_ids, np.zeros_like(token_ids)]
    extras = [] if condition_size is None else [
        np.random.default_rng(1).normal(size=(len(PROMPTS), condition_size)).astype("float32")]
    return [*ids, *extras]


def next_logits(model, family, application, prompt, output, extras=()):
    """The uncached model's logits [len(output) + 1, vocab] for each new token of `output`
    after `prompt` (the model run once on prompt + output)."""
    token_ids = np.concatenate([prompt, output]).astype("int32")[None]
    ids = [token_ids]
    if not family.startswith("gpt2"):
        segment = 1 if application == "unilm" else 0
        ids.append(np.concatenate([np.zeros_like(prompt), np.full_like(output, segment)])
                   .astype("int32")[None])
    inputs = [*ids, *(np.asarray(extra)[None] for extra in extras)]
    logits = keras.ops.convert_to_numpy(model(inputs if len(inputs) > 1 else inputs[0]))[0]
    return logits[len(prompt) - 1:]


def assert_same(expected, received):
    assert [list(ids) for ids in received] == [list(ids) for ids in expected]


@pytest.mark.parametrize("family,application,condition_size", [
    # test_decoding's list of families for the cached generator.
    ("bert", "unilm", None), tensorflow_only("bert", "lm", None), ("bert", "unilm", 6),
    ("roformer", "lm", None), tensorflow_only("roformer_v2", "unilm", None),
    ("nezha", "unilm", None), tensorflow_only("nezha", "lm", 6),
    ("albert", "unilm", 6), ("gpt2", "lm", None), tensorflow_only("gpt2_ml", "lm", None),
    tensorflow_only("gpt", "unilm", None),
])
def test_compiled_equals_cached_greedy_and_beam(family, application, condition_size):
    """The end token is the one the left-padded prompt takes first, so that input finishes
    at the first step while the others run on (dead slots inside the fixed-shape loop), and
    min_ends=2 and length_penalty=1 change the picks."""
    model = model_of(family, application, condition_size)
    inputs = batch_inputs(family, condition_size)
    own = [] if condition_size is None else [inputs[-1][1]]
    end_id = int(np.argmax(next_logits(model, family, application, PROMPTS[1], [], own)[0][1:]))
    end_id += 1  # the padding id 0 (skipped above) is never generated
    cached = CachedGenerator(model, end_id=end_id, maxlen=MAXLEN)
    compiled = CompiledGenerator(model, end_id=end_id, maxlen=MAXLEN)
    lengths = set()
    for topk in (1, 3):
        for options in ({}, {"min_ends": 2}, {"length_penalty": 1.0, "temperature": 0.7}):
            expected = cached.batch_beam_search(inputs, topk, **options)
            received = compiled.batch_beam_search(inputs, topk, **options)
            assert_same(expected, received)
            assert all(output.dtype == np.int32 for output in received)
            lengths |= {len(output) for output in received}
    assert 1 in lengths and max(lengths) > 1  # an early stop, and outputs that run on
    alone = compiled.beam_search([x[2] for x in inputs], 3)
    assert_same(cached.batch_beam_search([x[2:] for x in inputs], 3), [alone])


def test_minlen_and_start_id():
    """The end token is blocked before `minlen` new tokens (normalized with it, as the host);
    an LM's `start_id` follows each prompt and is not in the outputs."""
    model = model_of("bert", "lm")
    inputs = batch_inputs("bert")
    end_id = int(np.argmax(next_logits(model, "bert", "lm", PROMPTS[1], [])[0][1:])) + 1
    options = dict(end_id=end_id, maxlen=MAXLEN, minlen=3, start_id=9)
    for topk in (1, 3):
        expected = CachedGenerator(model, **options).batch_beam_search(inputs, topk)
        received = CompiledGenerator(model, **options).batch_beam_search(inputs, topk)
        assert_same(expected, received)
        assert min(len(output) for output in received) >= 3


def test_t5_encoder_decoder():
    """T5: the encoder runs once inside the program, the decoder starts from id 0."""
    keras.utils.set_random_seed(0)
    config = dict(vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, hidden_act=["gelu", "linear"], initializer_range=0.5)
    t5 = build_transformer_model(config, model="t5.1.1", with_lm="linear",
                                 return_keras_model=False)
    token_ids = np.array([[5, 6, 7, 8, 9, 0], [0, 0, 0, 11, 3, 4], [12, 13, 0, 0, 0, 0]])
    greedy = CachedGenerator(t5, end_id=1, maxlen=MAXLEN).batch_beam_search([token_ids], 1)
    end_id = int(greedy[1][1])  # a token the model produces, so some outputs stop early
    cached = CachedGenerator(t5, end_id=end_id, maxlen=MAXLEN)
    compiled = CompiledGenerator(t5, end_id=end_id, maxlen=MAXLEN)
    for topk in (1, 3):
        expected = cached.batch_beam_search([token_ids], topk)
        assert_same(expected, compiled.batch_beam_search([token_ids], topk))
    assert min(len(output) for output in expected) < MAXLEN


@functools.cache
def sampler():
    model = model_of("bert", "unilm", 6)
    return model, CompiledGenerator(model, end_id=2, maxlen=MAXLEN)


def test_sampling_is_seeded_and_top_1_is_greedy():
    model, generator = sampler()
    inputs = batch_inputs("bert", 6)

    def draw(seed, **options):
        return [np.concatenate(outputs) for outputs in
                generator.batch_random_sample(inputs, 4, seed=seed, **options)]

    first, again, other = draw(0), draw(0), draw(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    greedy = generator.batch_beam_search(inputs, 1)
    samples = generator.batch_random_sample(inputs, 3, topk=1, temperature=0.5, seed=5)
    for outputs, best in zip(samples, greedy):
        assert len(outputs) == 3
        assert_same([best] * 3, outputs)


def test_samples_stay_in_the_top_k_and_top_p_set():
    """Each sampled token has positive probability after `filter_probas` of the uncached
    model's distribution at its step; outputs end at the `min_ends`-th end token."""
    model, generator = sampler()
    inputs = batch_inputs("bert", 6)
    for topk, topp, min_ends in ((3, None, 1), (None, 0.6, 2), (4, 0.8, 1)):
        batch = generator.batch_random_sample(inputs, 3, topk=topk, topp=topp,
                                              temperature=1.5, min_ends=min_ends, seed=3)
        for index, (prompt, outputs) in enumerate(zip(PROMPTS, batch)):
            for output in outputs:
                ends = list(output).count(2)
                assert (ends == min_ends and output[-1] == 2) or len(output) == MAXLEN
                logits = next_logits(model, "bert", "unilm", prompt, output[:-1],
                                     [inputs[2][index]])
                logits[:, 0] = -np.inf
                allowed = filter_probas(softmax(logits / 1.5), topk, topp) > 0
                assert allowed[np.arange(len(output)), output].all()


def test_arguments_are_checked_by_name():
    model, generator = sampler()
    inputs = batch_inputs("bert", 6)
    for call, message in [
        (lambda: generator.batch_beam_search(inputs, 0), r"`topk` must be a positive integer"),
        (lambda: generator.batch_beam_search(inputs, True), r"`topk` .*received True \(bool\)"),
        (lambda: generator.batch_beam_search(inputs, 2, temperature=0),
         r"`temperature` must be a finite number > 0; received 0"),
        (lambda: generator.batch_beam_search(inputs, 2, min_ends=0), r"`min_ends` must be a"),
        (lambda: generator.batch_random_sample(inputs, 2, topp=0.0), r"`topp` must be a finite"),
        (lambda: generator.batch_random_sample(inputs, 0), r"`n` must be a positive integer"),
        (lambda: generator.batch_random_sample(inputs, 2, seed=-1),
         r"`seed` must be an integer >= 0; received -1"),
        (lambda: generator.batch_random_sample(inputs, 2, seed=1.5),
         r"`seed` must be an integer >= 0; received 1.5 \(float\)"),
        (lambda: CompiledGenerator(model, end_id=2, maxlen=3, minlen=4),
         r"`minlen` must be an integer in \[0, maxlen=3\]; received 4"),
        (lambda: CompiledGenerator(model, end_id=0, maxlen=3), r"`end_id` must be a token id"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
    assert generator.batch_beam_search([x[:0] for x in inputs], 2) == []
