"""Reading comprehension (SPEC C9 (e)): formats, samples, merging, dropping answerless
passages, the n-gram constraint and the metrics, against hand-worked cases."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import mirrored_strategy

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from bert4keras_ext.tasks import reading_comprehension as rc  # noqa: E402
from bert4keras_ext.tasks.synthetic.reading_comprehension import generate  # noqa: E402
from task_seq2seq_reading_comprehension import (  # noqa: E402
    Lengths,
    MultiPassageReader,
    sample_ids,
    train_and_evaluate,
)

from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"甲乙丙丁谁是，。?"]
VOCAB = {token: index for index, token in enumerate(TOKENS)}


def test_merge_formula():
    p = np.array([0.5, 0.3, 0.2])
    merged = rc.merge_distributions(np.stack([p, p, p]))
    np.testing.assert_allclose(merged, 3 * p**2 / (3 * p + 1))
    q = np.array([0.0, 0.6, 0.4])
    with_zero = rc.merge_distributions(np.stack([p, q]))
    # A passage with p = 0 for a token adds nothing to that token's numerator.
    np.testing.assert_allclose(with_zero[0], 0.25 / (0.5 + 0 + 1))


def test_next_token_candidates_follow_passage_spans():
    passages = [[5, 6, 7, 8], [6, 9]]
    assert rc.next_token_candidates(passages, []) == {5, 6, 7, 8, 9}
    assert rc.next_token_candidates(passages, [6]) == {7, 9}
    assert rc.next_token_candidates(passages, [6, 7]) == {8}
    assert rc.next_token_candidates(passages, [8, 5]) == set()


def test_metrics_and_training_answers():
    result = rc.scores(["北京", "上海市", ""], [["北京"], ["上海"], []])
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx((1 + 0.8 + 1) / 3)
    assert result["final"] == pytest.approx((result["accuracy"] + result["f1"]) / 2)
    assert rc.training_answer("甲是乙丙", ["丁", "乙 丙"], 64) == "乙 丙"
    assert rc.training_answer("甲是乙丙", ["丙"], 4) == ""  # only the first 2 chars count
    assert rc.normalize_passage("甲、乙；丙 丁") == "甲,乙,丙,丁"


def test_formats_and_samples(tmp_path):
    (tmp_path / "webqa.json").write_text(json.dumps(generate(3, seed=0), ensure_ascii=False))
    items = rc.load_webqa(tmp_path / "webqa.json")
    assert len(items) == 3 and all(len(i["passages"]) == 2 and len(i["answers"]) == 1
                                   for i in items)
    sogou = [{"question": "谁?", "answer": "甲", "passages": [{"passage": "甲是"}]}]
    (tmp_path / "sogou.json").write_text(json.dumps(sogou, ensure_ascii=False))
    assert rc.load_sogouqa(tmp_path / "sogou.json")[0]["answers"] == ["甲"]

    tokenizer = Tokenizer(VOCAB)
    token_ids, segments = sample_ids(tokenizer, "甲是乙", "谁是乙", ["甲"], Lengths())
    assert tokenizer.ids_to_tokens(token_ids) == ["[CLS]", "甲", "是", "乙", "[SEP]", "谁", "是",
                                                  "乙", "[SEP]", "甲", "[SEP]"]
    assert segments == [0] * 9 + [1, 1]
    token_ids, segments = sample_ids(tokenizer, "甲是乙", "谁是乙", ["丁"], Lengths())
    assert tokenizer.ids_to_tokens(token_ids)[-2:] == ["[SEP]", "[SEP]"] and segments[-1] == 1


class FakeReader(MultiPassageReader):
    """Per-passage distributions given by a table instead of a model."""

    def __init__(self, tables, extractive=True):
        super().__init__(model=None, tokenizer=Tokenizer(VOCAB), lengths=Lengths(),
                         extractive=extractive)
        self.tables = tables

    def passage_probas(self, prompts, output_ids):
        return np.array([table(list(output_ids)) for table in self.tables[: len(prompts)]])


def distribution(favourite):
    probas = np.full(len(VOCAB), 0.01)
    probas[favourite] = 1.0
    return probas / probas.sum()


def test_answerless_passages_are_dropped_and_spans_are_enforced():
    sep, first, second = VOCAB["[SEP]"], VOCAB["甲"], VOCAB["乙"]
    answers = {(): first, (first,): second, (first, second): sep}
    reader = FakeReader([lambda prefix: distribution(sep),  # answerless: dropped
                         lambda prefix: distribution(answers.get(tuple(prefix), sep))])
    assert reader.answer("谁", ["丙丁", "甲乙"]) == "甲乙"
    # Extractive: a token that continues no span of a kept passage is never produced.
    wrong = {(): first, (first,): VOCAB["丙"], (first, VOCAB["丙"]): sep}
    reader = FakeReader([lambda prefix: distribution(sep),
                         lambda prefix: distribution(wrong.get(tuple(prefix), sep))])
    assert reader.answer("谁", ["丙丁", "甲乙"]) in ("甲", "甲乙")
    # All passages answerless: empty answer.
    reader = FakeReader([lambda prefix: distribution(sep)] * 2)
    assert reader.answer("谁", ["丙丁", "甲乙"]) == ""


@pytest.mark.slow
def test_smoke_run_reports_scores(tmp_path):
    (tmp_path / "data.json").write_text(json.dumps(generate(48, seed=2), ensure_ascii=False))
    items = rc.load_webqa(tmp_path / "data.json")
    history = train_and_evaluate(items[:40], items[40:], epochs=1, batch_size=16,
                                 extractive=False, verbose=0)
    assert all(0.0 <= value <= 1.0 for value in history[-1].values())


@pytest.mark.slow
def test_fine_tunes_a_pretrained_checkpoint_under_a_mirrored_strategy(tmp_path, minilm_one_layer):
    (tmp_path / "data.json").write_text(json.dumps(generate(20, seed=4), ensure_ascii=False))
    items = rc.load_webqa(tmp_path / "data.json")
    history = train_and_evaluate(
        items[:16], items[16:], epochs=1, batch_size=8, lr=1e-5, config=minilm_one_layer.config,
        checkpoint=minilm_one_layer.checkpoint, vocab=minilm_one_layer.vocab,
        strategy=mirrored_strategy(), verbose=0,
    )
    assert all(0.0 <= value <= 1.0 for value in history[-1].values())
