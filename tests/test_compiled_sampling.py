"""CompiledGenerator's sampling (seeded, top-k / top-p, greedy at top-1) and its argument
checks; the search's equality with CachedGenerator is in test_compiled_decoding.py (two
modules, so the test workers share them)."""
import functools

import numpy as np
import pytest

from bert4keras_ext.decoding import CompiledGenerator, filter_probas, softmax
from tests.test_compiled_decoding import MAXLEN, assert_same, batch_inputs, model_of, next_logits
from tests.test_decoding import PROMPTS

pytestmark = pytest.mark.backend_neutral


@functools.cache
def sampler():
    model = model_of("bert", "unilm", 6)
    return model, CompiledGenerator(model, end_id=2, maxlen=MAXLEN)


def test_sampling_is_seeded_and_top_1_is_greedy():
    model, generator = sampler()
    inputs = batch_inputs("bert", 6)

    def draw(seed):
        # The program of the next test (n, topk and a top-p), compiled once.
        return [np.concatenate(outputs) for outputs in
                generator.batch_random_sample(inputs, 3, topk=3, topp=0.9, seed=seed)]

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
    # One program (n, topk and a top-p fix its shapes); topk 3 binds in the first setting,
    # top-p 0.6 in the second.
    for topk, topp, min_ends in ((3, 0.99, 1), (3, 0.6, 2)):
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
