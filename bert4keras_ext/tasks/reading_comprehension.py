"""Reading comprehension by seq2seq: data formats, samples, merging, n-grams, metrics.

Source: the post "万能的seq2seq：基于seq2seq的阅读理解问答" (https://kexue.fm/archives/7115).

Questions come from WebQA (`{qid: {"question", "evidences": {eid: {"evidence", "answer"}}}}`,
answer `["no_answer"]` when a passage has none) or SogouQA (`[{"question", "answer",
"passages": [{"passage"}]}]`), read into `{"question", "passages", "answers"}`.
"""
import json
import re

NO_ANSWER = "no_answer"


def load_webqa(path):
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    items = []
    for entry in data.values():
        passages = [e["evidence"] for e in entry["evidences"].values()]
        answers = sorted({a for e in entry["evidences"].values() for a in e["answer"]
                          if a != NO_ANSWER})
        items.append({"question": entry["question"], "passages": passages, "answers": answers})
    return items


def load_sogouqa(path):
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    return [{"question": d["question"], "passages": [p["passage"] for p in d["passages"]],
             "answers": [d["answer"]] if d.get("answer") else []} for d in data]


def normalize_passage(passage):
    """Spaces and Chinese list punctuation become commas, as in the original example."""
    return re.sub(r" |、|；|，", ",", passage)


def training_answer(passage, answers, max_passage_length):
    """The first gold answer whose parts all occur in the passage's usable prefix, else ''."""
    visible = passage[: max_passage_length - 2]
    for answer in answers:
        if all(part in visible for part in answer.split(" ")):
            return answer
    return ""


def merge_distributions(probas):
    """Σ_k p_k² / (Σ_k p_k + 1) over passages (axis 0): a vote that favours agreement."""
    probas = probas.astype("float64")
    return (probas**2).sum(axis=0) / (probas.sum(axis=0) + 1.0)


def next_token_candidates(passage_ids, prefix):
    """Tokens that extend `prefix` into a contiguous span of some passage (token-id lists)."""
    width = len(prefix)
    allowed = set()
    for ids in passage_ids:
        for start in range(len(ids) - width):
            if list(ids[start:start + width]) == list(prefix):
                allowed.add(int(ids[start + width]))
    return allowed


def _chars(text):
    return [c for c in text if not c.isspace()]


def f1(prediction, gold):
    """Character F1 of two answers."""
    prediction, gold = _chars(prediction), _chars(gold)
    common = sum(min(prediction.count(c), gold.count(c)) for c in set(prediction))
    if not common:
        return 0.0
    precision, recall = common / len(prediction), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def scores(predictions, golds):
    """Accuracy (exact match with a gold answer), F1 (best over golds) and Final (their mean).

    A question without gold answers counts as correct when the prediction is empty.
    """
    accuracy = f1_total = 0.0
    for prediction, answers in zip(predictions, golds):
        if not answers:
            accuracy += prediction == ""
            f1_total += prediction == ""
            continue
        accuracy += prediction in answers
        f1_total += max(f1(prediction, a) for a in answers)
    count = max(1, len(golds))
    accuracy, f1_score = accuracy / count, f1_total / count
    return {"accuracy": accuracy, "f1": f1_score, "final": (accuracy + f1_score) / 2}
