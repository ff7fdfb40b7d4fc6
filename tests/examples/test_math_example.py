"""The math word problem example: a smoke run on bundled data and an overfit check."""
import sys
from pathlib import Path

import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

import ape210k  # noqa: E402
from datasets.math_word_problems import generate  # noqa: E402
from task_seq2seq_math_word_problem import train_and_evaluate  # noqa: E402


def problems(count, seed):
    return [x for x in map(ape210k.preprocess, generate(count, seed=seed)) if x]


@pytest.mark.slow
def test_smoke_run_reports_an_accuracy(tmp_path):
    model, evaluator = train_and_evaluate(
        problems(64, 0), problems(8, 1), epochs=1, batch_size=16, lr=1e-3,
        output=str(tmp_path / "best.weights.h5"), strategy=tf.distribute.get_strategy(),
        verbose=0,
    )
    assert 0.0 <= evaluator.best <= 1.0
    assert (tmp_path / "best.weights.h5").exists()


@pytest.mark.slow
def test_a_tiny_model_memorizes_a_handful_of_problems():
    handful = problems(6, 5)
    _, evaluator = train_and_evaluate(
        handful * 32, handful, epochs=10, batch_size=16, lr=2e-3,
        strategy=tf.distribute.get_strategy(), verbose=0,
    )
    assert evaluator.best == 1.0
