"""ape210k preprocessing and accuracy for math word problems by seq2seq.

Source: the post "BERT可以上几年级了？Seq2Seq“硬刚”小学数学应用题" (https://kexue.fm/archives/7809).

An item is `{"id", "original_text", "equation", "ans"}` (JSON lines). The equation (without
its leading `x=`) is the seq2seq target; preprocessing makes equations and answers evaluable:
`a%` -> `(a/100)`, mixed numbers `a(b/c)` -> `(a+b/c)` (in the question too, where a bare
`(a/b)` then becomes `a/b`), ratios `:` -> `/`, other `%` -> `/100`; items whose equation
does not give their answer are dropped, and brackets that do not change the value are removed.
"""
import json
import re

from bert4keras_ext.arithmetic import safe_eval

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")
_MIXED = re.compile(r"(\d+)\((\d+/\d+)\)")
_QUESTION_FRACTION = re.compile(r"\((\d+/\d+)\)")


def is_equal(a, b):
    """Answers agree after rounding both to 6 decimals."""
    return a is not None and b is not None and round(float(a), 6) == round(float(b), 6)


def normalize_expression(text):
    """Makes an equation or answer evaluable: percentages, mixed numbers, ratios."""
    text = text.replace(" ", "").replace("（", "(").replace("）", ")").replace("：", ":")
    text = _PERCENT.sub(r"(\1/100)", text)
    text = _MIXED.sub(r"(\1+\2)", text)
    text = re.sub(r"(\d)\(", r"\1+(", text)  # a(b... -> a+(b..., the remaining mixed forms
    return text.replace(":", "/").replace("%", "/100").replace("^", "**")


def normalize_question(text):
    """Mixed numbers keep their value (`1(5/6)` -> `(1+5/6)`, not `15/6`); other bracketed
    fractions lose their brackets."""
    return _QUESTION_FRACTION.sub(r"\1", _MIXED.sub(r"(\1+\2)", text))


def remove_redundant_brackets(equation):
    """Drops every bracket pair whose removal leaves the value unchanged."""
    value = safe_eval(equation)
    changed = True
    while changed:
        changed = False
        for start, end in _bracket_pairs(equation):
            candidate = equation[:start] + equation[start + 1: end] + equation[end + 1:]
            if is_equal(safe_eval(candidate), value):
                equation, changed = candidate, True
                break
    return equation


def _bracket_pairs(text):
    stack, pairs = [], []
    for index, char in enumerate(text):
        if char == "(":
            stack.append(index)
        elif char == ")" and stack:
            pairs.append((stack.pop(), index))
    return sorted(pairs)


def preprocess(item):
    """(question, equation, answer) ready for training, or None to drop the item."""
    equation = item["equation"]
    if equation.startswith("x="):
        equation = equation[2:]
    equation = normalize_expression(equation)
    answer = safe_eval(normalize_expression(str(item["ans"])))
    if not is_equal(safe_eval(equation), answer):
        return None
    return normalize_question(item["original_text"]), remove_redundant_brackets(equation), answer


FIELDS = ("original_text", "equation", "ans")


def load(path):
    """Preprocessed items of a JSON-lines file; unusable items are dropped. A line that is not
    JSON or lacks a field is an error naming the file and line; a file with no usable item too.
    """
    items = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error.msg}).") from None
            missing = [field for field in FIELDS if field not in item]
            if missing:
                raise ValueError(f"{path}, line {number}: the item lacks {missing}.")
            items.append(preprocess(item))
    usable = [item for item in items if item is not None]
    if not usable:
        raise ValueError(f"{path} holds no usable problem ({len(items)} read, none whose "
                         f"equation gives its answer).")
    return usable


def accuracy(predicted_equations, answers):
    """Share of predictions whose safely evaluated value equals the answer."""
    hits = sum(is_equal(safe_eval(equation), answer)
               for equation, answer in zip(predicted_equations, answers))
    return hits / max(1, len(answers))
