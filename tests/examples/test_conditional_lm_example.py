"""The Conditional LayerNorm example learns to follow the requested label."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from datasets.sentiment_sentences import follows_label, generate  # noqa: E402
from task_conditional_language_model import train  # noqa: E402


def test_follows_label_lexicon():
    assert follows_label("这本书很好，喜欢。", 1) and not follows_label("这本书很好，喜欢。", 0)
    assert not follows_label("这本书很好，很差。", 1)


@pytest.mark.slow
def test_generation_follows_the_condition():
    scores = train(generate(800, seed=3), epochs=2, samples=6, verbose=0)
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert scores[-1] >= 0.8
