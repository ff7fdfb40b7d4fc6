"""The NER task helpers: reading the People's Daily format, labels both ways, entity scores,
GlobalPointer's loss, and a CRF head on a built model scoring a padded batch as the unpadded
sentences."""
from pathlib import Path

import keras
import numpy as np
import pytest

from bert4keras_ext.layers import ConditionalRandomField
from bert4keras_ext.losses import multilabel_categorical_crossentropy
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.tasks import ner
from bert4keras_ext.tasks.common import character_vocabulary
from bert4keras_ext.tokenizers import Tokenizer

pytestmark = pytest.mark.backend_neutral

PEOPLE_DAILY = Path(__file__).parents[3] / "shared" / "data" / "people_daily_ner" / "example.test"
TYPES = ["LOC", "ORG", "PER"]


def test_reads_sentences_and_entities_and_names_a_bad_line(tmp_path):
    path = tmp_path / "ner.txt"
    path.write_text("张 B-PER\n伟 I-PER\n在 O\n北 B-LOC\n京 I-LOC\n\n"
                    "上 I-LOC\n海 I-LOC\n人 O\n", encoding="utf-8")
    assert ner.load_bio(path) == [("张伟在北京", [(0, 1, "PER"), (3, 4, "LOC")]),
                                  ("上海人", [(0, 1, "LOC")])]  # an I- run without its B-
    path.write_text("张 B-PER\n伟\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: expected a character, a space and a BIO tag"):
        ner.load_bio(path)


@pytest.mark.skipif(not PEOPLE_DAILY.exists(), reason="the People's Daily split is not here")
def test_the_real_split_has_its_documented_sentences_and_entities():
    sentences = ner.load_bio(PEOPLE_DAILY)
    counts = {kind: sum(label == kind for _, entities in sentences for *_, label in entities)
              for kind in TYPES}
    assert len(sentences) == 4636 and counts == {"LOC": 3658, "ORG": 2185, "PER": 1864}


def tokenizer_for(texts):
    return Tokenizer(character_vocabulary(texts))


def test_crf_and_pointer_labels_read_back_to_the_entities():
    text, entities = "张伟在北京的清华大学", [(0, 1, "PER"), (3, 4, "LOC"), (6, 9, "ORG")]
    _, spans = ner.token_spans(tokenizer_for([text]), text, maxlen=32)
    labels = ner.crf_labels(spans, entities, TYPES)
    # [CLS] 张 伟 在 北 京 的 清 华 大 学 [SEP]: PER is type 2 (labels 5, 6), LOC 0, ORG 1.
    np.testing.assert_array_equal(labels, [0, 5, 6, 0, 1, 2, 0, 3, 4, 4, 4, 0])
    assert ner.crf_entities(labels, spans, TYPES) == entities
    matrix = ner.pointer_labels(spans, entities, TYPES, 16)
    assert matrix.shape == (3, 16, 16) and matrix.sum() == 3 and matrix[2, 1, 2] == 1
    scores = np.where(matrix == 1, 5.0, -5.0)
    assert sorted(ner.pointer_entities(scores, spans, TYPES)) == sorted(entities)
    # Cut by maxlen, an entity whose end is gone is dropped rather than shortened.
    _, short = ner.token_spans(tokenizer_for([text]), text, maxlen=9)
    assert ner.crf_entities(ner.crf_labels(short, entities, TYPES), short, TYPES) == (
        entities[:2])


def test_entity_scores_count_exact_matches():
    gold = [[(0, 1, "PER"), (3, 4, "LOC")], [(0, 2, "ORG")]]
    predicted = [[(0, 1, "PER"), (3, 4, "ORG")], []]
    f1, precision, recall = ner.scores(predicted, gold)
    assert (precision, recall) == (0.5, 1 / 3)
    np.testing.assert_allclose(f1, 2 * 1 / (2 + 3))
    assert ner.scores([[]], [[]]) == (0.0, 0.0, 0.0)


def test_global_pointer_loss_is_the_mean_over_types_of_the_flattened_multilabel_loss():
    rng = np.random.default_rng(0)
    y_pred = rng.normal(size=(2, 3, 4, 4)).astype("float32")
    y_true = (rng.random((2, 3, 4, 4)) < 0.2).astype("float32")
    flat = np.asarray(multilabel_categorical_crossentropy(y_true.reshape(6, 16),
                                                          y_pred.reshape(6, 16)))
    np.testing.assert_allclose(np.asarray(ner.global_pointer_crossentropy(y_true, y_pred)),
                               flat.reshape(2, 3).mean(axis=1), rtol=1e-6)


def test_a_crf_head_scores_a_padded_batch_as_the_sentences_alone():
    """The model's padding mask reaches the CRF: the loss of each row of a padded batch equals
    its loss computed without any padding."""
    keras.utils.set_random_seed(0)
    encoder = build_transformer_model(dict(vocab_size=20, hidden_size=16, num_hidden_layers=1,
                                           num_attention_heads=2, intermediate_size=32))
    crf = ConditionalRandomField(lr_multiplier=10)
    scores = keras.layers.Dense(5, kernel_initializer="normal")(encoder.output)
    model = keras.Model(encoder.inputs, crf(scores))
    crf.set_weights([np.random.default_rng(1).normal(size=(5, 5)).astype("float32")])
    rng = np.random.default_rng(2)
    rows = [rng.integers(1, 20, size=length) for length in (7, 3)]
    labels = [rng.integers(0, 5, size=length) for length in (7, 3)]
    padded, padded_labels = np.zeros((2, 7), "int32"), np.zeros((2, 7), "int32")
    for index, (row, label) in enumerate(zip(rows, labels)):
        padded[index, :len(row)], padded_labels[index, :len(row)] = row, label

    def losses(token_ids, targets):
        outputs = model.predict([token_ids, np.zeros_like(token_ids)], verbose=0)
        return np.asarray(crf.sparse_loss(targets, outputs))

    alone = [losses(row[None], label[None])[0] for row, label in zip(rows, labels)]
    np.testing.assert_allclose(losses(padded, padded_labels), alone, rtol=1e-5)
