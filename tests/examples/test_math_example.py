"""The math word problem example: a run under a mirrored strategy, an overfit check and a
fine-tuning run."""
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import mirrored_strategy

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from bert4keras_ext.tasks import ape210k  # noqa: E402
from bert4keras_ext.tasks.synthetic.math_word_problems import generate  # noqa: E402
from task_seq2seq_math_word_problem import train_and_evaluate  # noqa: E402


def problems(count, seed):
    return [x for x in map(ape210k.preprocess, generate(count, seed=seed)) if x]


@pytest.mark.slow
def test_a_tiny_model_memorizes_a_handful_of_problems():
    handful = problems(6, 5)
    _, evaluator = train_and_evaluate(
        handful * 32, handful, epochs=8, batch_size=16, lr=2e-3,
        strategy=tf.distribute.get_strategy(), verbose=0,
    )
    assert evaluator.best == 1.0


@pytest.mark.slow
def test_fine_tunes_a_pretrained_checkpoint_on_english_problems(minilm_one_layer, recwarn):
    english = [x for x in map(ape210k.preprocess, generate(40, seed=2, language="en")) if x]
    model, evaluator = train_and_evaluate(
        english[:32], english[32:], epochs=1, batch_size=16, lr=1e-4,
        config=minilm_one_layer.config, checkpoint=minilm_one_layer.checkpoint,
        vocab=minilm_one_layer.vocab, verbose=0,
    )
    assert evaluator.best in {hits / len(english[32:]) for hits in range(len(english) - 31)}
    # Two Adam steps of 1e-4 move no weight far from the checkpoint it was loaded from.
    embeddings = model.get_layer("Embedding-Token").embeddings.numpy()
    assert np.abs(embeddings - minilm_one_layer.word_embeddings()).max() < 1e-3


@pytest.mark.slow
def test_runs_under_a_mirrored_strategy_and_keeps_the_best_weights(tmp_path):
    model, evaluator = train_and_evaluate(
        problems(64, 0), problems(8, 1), epochs=1, batch_size=16, lr=1e-3,
        output=str(tmp_path / "best.weights.h5"), strategy=mirrored_strategy(), verbose=0,
    )
    assert model.optimizer.iterations.numpy() == 64 // 16
    assert evaluator.best in {hits / 8 for hits in range(9)}
    assert (tmp_path / "best.weights.h5").exists()
