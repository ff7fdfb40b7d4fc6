"""The two NER examples (CRF and GlobalPointer) learn the generated People's-Daily-format
sentences: entity-level F1 on held-out sentences after two epochs of a one-block model."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from task_sequence_labeling_ner_crf import train_and_evaluate as train_crf  # noqa: E402
from task_sequence_labeling_ner_global_pointer import (  # noqa: E402
    train_and_evaluate as train_global_pointer,
)

from bert4keras_ext.tasks import ner  # noqa: E402
from bert4keras_ext.tasks.common import character_vocabulary  # noqa: E402
from bert4keras_ext.tasks.synthetic.ner_sentences import generate  # noqa: E402


def sentences(count, seed):
    return [ner.from_tagged(tagged) for tagged in generate(count, seed)]


def tiny_config(texts):
    """A one-block model over the example's own character vocabulary (as it builds it)."""
    return dict(vocab_size=len(character_vocabulary(texts)), hidden_size=64,
                num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                max_position_embeddings=64)


@pytest.mark.slow
@pytest.mark.parametrize("train", [train_crf, train_global_pointer])
def test_the_example_finds_the_entities_of_new_sentences(train, tmp_path):
    output = tmp_path / "best.weights.h5"
    train_set, valid_set = sentences(320, 0), sentences(40, 1)
    config = tiny_config(text for text, _ in train_set + valid_set)
    _, evaluator = train(train_set, valid_set, epochs=2, batch_size=32, lr=3e-3,
                         output=str(output), config=config, verbose=0)
    f1, precision, recall = evaluator.history[-1]
    assert evaluator.best > 0.8 and 0 < precision <= 1 and 0 < recall <= 1, evaluator.history
    assert output.exists()
