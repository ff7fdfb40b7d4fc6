"""CompiledGenerator: the whole search in one compiled program gives CachedGenerator's tokens
(greedy and beam, padded batches, min_ends, minlen, length_penalty, early stops) on every
family the cached generator decodes; sampling is seeded and stays in the top-k / top-p set."""
import functools

import keras
import numpy as np
import pytest

from bert4keras_ext.decoding import CachedGenerator, CompiledGenerator
from bert4keras_ext.models import build_transformer_model
from tests.test_decoding import PROMPTS, tiny_model

pytestmark = pytest.mark.backend_neutral

MAXLEN = 8


@functools.cache
def model_of(family, application, condition_size=None):
    """One tiny model per family for the whole module (they are only read), of one block:
    the search does not depend on the depth, and each program compiles faster."""
    return tiny_model(application, model=family, condition_size=condition_size, layers=1)


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
    # A condition input, relative positions, token ids alone (every family's beams are
    # compared with the cached ones in test_decoding.py).
    ("bert", "unilm", 6), ("nezha", "unilm", None), ("gpt2", "lm", None),
])
def test_compiled_beam_search_equals_cached(family, application, condition_size):
    """Beam 3 with the search options (one compiled program each: the options are values of
    it). The end token is the one the left-padded prompt takes first, so that input finishes
    at the first step while the others run on (dead slots inside the fixed-shape loop), and
    min_ends=2 and length_penalty=1 change the picks."""
    model = model_of(family, application, condition_size)
    inputs = batch_inputs(family, condition_size)
    cached, compiled = generators(model, family, application, condition_size)
    lengths = set()
    for options in ({}, {"min_ends": 2, "length_penalty": 1.0, "temperature": 0.7}):
        expected = cached.batch_beam_search(inputs, 3, **options)
        received = compiled.batch_beam_search(inputs, 3, **options)
        assert_same(expected, received)
        assert all(output.dtype == np.int32 for output in received)
        lengths |= {len(output) for output in received}
    assert 1 in lengths and max(lengths) > 1  # an early stop, and outputs that run on


def generators(model, family, application, condition_size):
    """A CachedGenerator and a CompiledGenerator whose end token is the first one the
    left-padded prompt takes."""
    own = [] if condition_size is None else [batch_inputs(family, condition_size)[-1][1]]
    end_id = int(np.argmax(next_logits(model, family, application, PROMPTS[1], [], own)[0][1:]))
    end_id += 1  # the padding id 0 (skipped above) is never generated
    return (CachedGenerator(model, end_id=end_id, maxlen=MAXLEN),
            CompiledGenerator(model, end_id=end_id, maxlen=MAXLEN))


@pytest.mark.parametrize("family,application,condition_size", [("bert", "unilm", 6)])
def test_compiled_greedy_search_and_one_input_equal_cached(family, application,
                                                           condition_size):
    """Greedy search (rows never reordered: no cache copies), and one input alone."""
    model = model_of(family, application, condition_size)
    inputs = batch_inputs(family, condition_size)
    cached, compiled = generators(model, family, application, condition_size)
    for options in ({}, {"min_ends": 2}):
        assert_same(cached.batch_beam_search(inputs, 1, **options),
                    compiled.batch_beam_search(inputs, 1, **options))
    alone = compiled.beam_search([x[2] for x in inputs], 1)
    assert_same(cached.batch_beam_search([x[2:] for x in inputs], 1), [alone])


def test_minlen_and_start_id():
    """The end token is blocked before `minlen` new tokens (normalized with it, as the host);
    an LM's `start_id` follows each prompt and is not in the outputs."""
    model = model_of("bert", "lm")
    inputs = batch_inputs("bert")
    end_id = int(np.argmax(next_logits(model, "bert", "lm", PROMPTS[1], [])[0][1:])) + 1
    options = dict(end_id=end_id, maxlen=MAXLEN, minlen=3, start_id=9)
    expected = CachedGenerator(model, **options).batch_beam_search(inputs, 3)
    received = CompiledGenerator(model, **options).batch_beam_search(inputs, 3)
    assert_same(expected, received)
    assert min(len(output) for output in received) >= 3


def test_t5_encoder_decoder():
    """T5: the encoder runs once inside the program, the decoder starts from id 0."""
    keras.utils.set_random_seed(0)
    config = dict(vocab_size=30, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                  intermediate_size=64, hidden_act=["gelu", "linear"], initializer_range=0.5)
    t5 = build_transformer_model(config, model="t5.1.1", with_lm="linear",
                                 return_keras_model=False)
    token_ids = np.array([[5, 6, 7, 8, 9, 0], [0, 0, 0, 11, 3, 4], [12, 13, 0, 0, 0, 0]])
    greedy = CachedGenerator(t5, end_id=1, maxlen=MAXLEN).batch_beam_search([token_ids], 1)
    end_id = int(greedy[1][1])  # a token the model produces, so some outputs stop early
    cached = CachedGenerator(t5, end_id=end_id, maxlen=MAXLEN)
    compiled = CompiledGenerator(t5, end_id=end_id, maxlen=MAXLEN)
    expected = cached.batch_beam_search([token_ids], 3)
    assert_same(expected, compiled.batch_beam_search([token_ids], 3))
    assert min(len(output) for output in expected) < MAXLEN
