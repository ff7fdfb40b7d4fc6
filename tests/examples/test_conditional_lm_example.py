"""The Conditional LayerNorm example learns to follow the requested label."""
import sys
from pathlib import Path

import pytest

from conftest import mirrored_strategy

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from bert4keras_ext.tasks.synthetic.sentiment_sentences import follows_label, generate  # noqa: E402
from task_conditional_language_model import train  # noqa: E402


def test_follows_label_lexicon():
    assert follows_label("这本书很好，喜欢。", 1) and not follows_label("这本书很好，喜欢。", 0)
    assert not follows_label("这本书很好，很差。", 1)


@pytest.mark.slow
def test_generation_follows_the_condition():
    scores = train(generate(800, seed=3), generate(40, seed=4), epochs=2, samples=6, verbose=0)
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert scores[-1] >= 0.8


@pytest.mark.slow
def test_fine_tunes_a_pretrained_checkpoint_under_a_mirrored_strategy(minilm_one_layer):
    scores = train(generate(32, seed=5), generate(8, seed=6), epochs=1, batch_size=8, lr=1e-5,
                   config=minilm_one_layer.config, checkpoint=minilm_one_layer.checkpoint,
                   vocab=minilm_one_layer.vocab, strategy=mirrored_strategy(), samples=2,
                   verbose=0)
    assert len(scores) == 1 and 0.0 <= scores[0] <= 1.0
