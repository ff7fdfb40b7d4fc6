"""ape210k preprocessing (SPEC C10 (e)) and the safe evaluator's refusals and acceptances."""
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from bert4keras_ext.tasks.ape210k import (
    accuracy,
    is_equal,
    load,
    normalize_expression,
    normalize_question,
    preprocess,
    remove_redundant_brackets,
)
from bert4keras_ext.arithmetic import safe_eval


def test_spec_preprocessing_examples():
    equation = normalize_expression("150*20%/5%-150")
    assert equation == "150*(20/100)/(5/100)-150" and safe_eval(equation) == 450
    simplified = remove_redundant_brackets("(3.14*(4+1)**2)-(3.14*4**2)")
    assert simplified == "3.14*(4+1)**2-3.14*4**2"
    assert is_equal(safe_eval(simplified), 28.26)
    assert normalize_expression("3(1/2)") == "(3+1/2)"
    assert normalize_expression("2:3") == "2/3"
    assert normalize_question("他吃了(1/3)个") == "他吃了1/3个"
    assert normalize_question("2.75-1(5/6)+3(1/4)") == "2.75-(1+5/6)+(3+1/4)"
    assert is_equal(0.1 + 0.2, 0.3) and not is_equal(1.0, 1.000002)
    assert safe_eval("(1+2)/4", exact=True) == Fraction(3, 4)


def test_preprocess_keeps_only_consistent_items():
    item = {"id": "1", "original_text": "一个数的20%是30，这个数是多少？",
            "equation": "x=30/20%", "ans": "150"}
    question, equation, answer = preprocess(item)
    assert equation == "30/(20/100)" and answer == 150
    assert preprocess(dict(item, ans="151")) is None
    assert preprocess(dict(item, equation="x=foo(3)")) is None


@pytest.mark.parametrize("expression, value", [
    ("1+2*3", 7), ("-(2-5)**2", -9), ("2^10", 1024), ("7/2", 3.5), ("((((1))))", 1),
    ("1.5e3", 1500), ("+4", 4),
])
def test_safe_eval_accepts_arithmetic(expression, value):
    assert safe_eval(expression) == value


@pytest.mark.parametrize("expression", [
    "__import__('os').system('ls')", "open('x')", "x+1", "(1).real", "lambda: 1",
    "9**9**9", "10**1000", "1/0", "0**-1", "(" * 60 + "1" + ")" * 60, "1" * 600, "[1, 2]",
    "1 if 1 else 2", "1 < 2", "'a'*3", "", "2**0.5j", "(-8)**(1/3)", "9" * 401,
])
def test_safe_eval_refuses_everything_else(expression):
    assert safe_eval(expression) is None


REAL_SPLIT = Path(__file__).parents[3] / "shared" / "data" / "ape210k" / "test.ape.json"


@pytest.mark.skipif(not REAL_SPLIT.exists(), reason="the shared real ape210k split is absent")
def test_real_split_keeps_items_and_mixed_number_values():
    """Real ape210k: 3 of 5,000 items have an equation that does not give their answer; the
    54 questions with mixed numbers keep each one's value (5 more say `(1+1/3)` themselves)."""
    items = load(REAL_SPLIT)
    assert len(items) == 4997
    mixed = [question for question, _, _ in items if re.search(r"\(\d+\+\d+/\d+\)", question)]
    assert len(mixed) == 59
    assert not any(re.search(r"\d\(\d+/\d+\)", question) for question, _, _ in items)


def test_accuracy_counts_value_matches():
    assert accuracy(["1+1", "2*2", "import os", "3"], [2, 5, 1, 3.0]) == 0.5


def test_bad_data_files_name_the_file_and_line(tmp_path):
    """Reliability probe E01, E02, E04-E06."""
    good = json.dumps({"original_text": "1+1=?", "equation": "x=1+1", "ans": "2"})
    cases = {
        "truncated.json": ([good, good, '{"original_text": '], r"truncated.json, line 3: not JSON"),
        "fields.json": ([good, json.dumps({"original_text": "?"})],
                        r"fields.json, line 2: the item lacks \['equation', 'ans'\]"),
        "empty.json": ([], r"empty.json holds no usable problem \(0 read"),
        "dropped.json": ([good.replace('"2"', '"3"')], r"holds no usable problem \(1 read"),
    }
    for name, (lines, message) in cases.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            load(tmp_path / name)
    huge = json.dumps({"original_text": "?", "equation": "x=1", "ans": "1" + "0" * 400})
    (tmp_path / "huge.json").write_text(good + "\n" + huge + "\n", encoding="utf-8")
    assert len(load(tmp_path / "huge.json")) == 1  # the 401-digit answer is dropped
    assert safe_eval("1e400") is None  # E14


def test_task_flags_refuse_non_positive_sizes(capsys):
    """Reliability probe E07, E10 (`--epochs 0` used to exit 0 with accuracy -1)."""
    from bert4keras_ext.tasks import common as task_common

    for argv, message in [(["--epochs", "0"], "argument --epochs: must be a positive integer"),
                          (["--batch-size", "-2"], "argument --batch-size: must be a positive"),
                          (["--lr", "nan"], "argument --lr: must be a positive finite")]:
        with pytest.raises(SystemExit):
            task_common.parse_args(task_common.argument_parser("x", "y"), {}, {}, argv)
        assert message in capsys.readouterr().err
