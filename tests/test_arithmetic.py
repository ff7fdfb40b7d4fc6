"""safe_eval's exact mode and its bounds: reliability probe 2, A01, A01b, A02, A04, A06, A07.

(The float mode's acceptances and refusals are tested in tests/tasks/test_ape210k.py.)
"""
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from bert4keras_ext import arithmetic
from bert4keras_ext.arithmetic import safe_eval

pytestmark = pytest.mark.backend_neutral



@pytest.mark.parametrize("expression, value", [
    ("0.1+0.2", Fraction(3, 10)),  # A02: the decimals as written, not their binary floats
    ("1.1*1.1", Fraction(121, 100)),
    (".5+1.", Fraction(3, 2)),
    ("1.5e3-2E-2", Fraction(149998, 100)),
    ("(1+2)/4", Fraction(3, 4)),
    ("2^10/3", Fraction(1024, 3)),
    ("(2/3)**-2", Fraction(9, 4)),
    ("1e-320*1e-10", Fraction(1, 10 ** 330)),  # A07: exact where the float underflows to 0
])
def test_exact_mode_is_exact_on_decimals(expression, value):
    result = safe_eval(expression, exact=True)
    assert type(result) is Fraction and result == value


@pytest.mark.parametrize("expression, value", [
    ("(3**2+4**2)**0.5", Fraction(5)),
    ("(8/27)**(2/3)", Fraction(4, 9)),
    ("4**-0.5", Fraction(1, 2)),
    ("0.25**1.5", Fraction(1, 8)),
    ("2**100**0.5", Fraction(1024)),
    ("1**99.99999999999999", Fraction(1)),
    ("0**0.5", Fraction(0)),
])
def test_exact_roots_are_taken_when_rational(expression, value):
    """A04: a fractional power is exact when the root is rational; the float mode agrees."""
    result = safe_eval(expression, exact=True)
    assert type(result) is Fraction and result == value
    assert safe_eval(expression) == pytest.approx(float(value))


@pytest.mark.parametrize("expression", [
    "2**0.5*2", "2**(1/3)", "0.5**0.0000000001", "4**(1/1e15)", "(-8)**(1/3)", "(-4)**0.5",
])
def test_exact_mode_refuses_irrational_powers(expression):
    """A04: the exact mode gives a Fraction or None, never a float."""
    assert safe_eval(expression, exact=True) is None


@pytest.mark.parametrize("expression", ["0x10", "0b1", "0o7", "1_0", "0x10+0b1+0o7+1_0", "1j"])
def test_only_decimal_literals_are_numbers(expression):
    """A06 (debatable): Python's other literal forms are refused in both modes."""
    assert safe_eval(expression) is None and safe_eval(expression, exact=True) is None


def test_long_chains_are_arithmetic_not_depth():
    """A sum of 200 terms is not deep nesting (it was refused as such); 51 nested signs or
    brackets still are."""
    assert safe_eval("+".join(["1"] * 200)) == 200.0
    assert safe_eval("*".join(["1.5"] * 20), exact=True) == Fraction(3, 2) ** 20
    assert safe_eval("-" * 51 + "1") is None and safe_eval("-" * 50 + "1") == 1.0
    assert safe_eval("(" * 51 + "1" + ")" * 51) is None


def test_fraction_sizes_are_bounded():
    """A01b: '((1/3)**100)**100' is refused, not a 4772-digit denominator; (1/3)**100 and a
    literal of 1233 digits still pass; A07's float results are unchanged."""
    assert safe_eval("((1/3)**100)**100", exact=True) is None
    assert safe_eval("(1/3)**100", exact=True) == Fraction(1, 3 ** 100)
    assert safe_eval("1e-1233", exact=True) == Fraction(1, 10 ** 1233)
    assert safe_eval("1e-1300", exact=True) is None  # 4319 bits > MAX_FRACTION_BITS
    assert str(safe_eval("(1/3)**100*(7/9)**100", exact=True)) == f"{7 ** 100}/{3 ** 300}"
    assert safe_eval("1e-320*1e-10") == 0.0 and safe_eval("1/(1e-200*1e-200)") is None


ADVERSARIAL = [
    "((((1/3)**100)**100)**100)**100",  # A01
    "((((0.999999999999999**100)**100)**100)**100)**100",
    "*".join(["(1/3)**100"] * 40),
    "*".join(["(999999/1000001)**100"] * 20),
    "(((1+1e-15)**100)**100)**100",
    "1e-999999999", "1e999999999", "1" + "0" * 499, "0." + "3" * 497,
    "9**9**9**9", "(1/7)**-100**100", "2**(1/3)**100", "4**(1/1e15)",
    "1**99.99999999999999", "(" * 50 + "1/3" + ")" * 50, "(" * 51 + "1" + ")" * 51,
    "-" * 499 + "1", "(" * 250 + ")" * 250, "(((((2**0.5)**100)**100)**100)**100)",
]


def test_adversarial_expressions_end_quickly():
    """A01: every adversarial short expression (nested powers, long chains of products of
    powers, huge or tiny literals, deep parentheses and signs) ends within a second in both
    modes, with None or a value. Run in a subprocess, so a hang is killed after 20 s; it
    loads arithmetic.py alone, as the package would load Keras (seconds)."""
    assert all(len(expression) <= arithmetic.MAX_CHARS for expression in ADVERSARIAL)
    script = (
        "import importlib.util, json, sys, time\n"
        "spec = importlib.util.spec_from_file_location('arithmetic', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "times = []\n"
        "for expression in json.loads(sys.argv[2]):\n"
        "    for exact in (False, True):\n"
        "        start = time.perf_counter()\n"
        "        module.safe_eval(expression, exact=exact)\n"
        "        times.append(time.perf_counter() - start)\n"
        "print(json.dumps(times))\n")
    done = subprocess.run(
        [sys.executable, "-c", script, str(Path(arithmetic.__file__)), json.dumps(ADVERSARIAL)],
        capture_output=True, text=True, timeout=20, check=True)
    times = json.loads(done.stdout)
    assert len(times) == 2 * len(ADVERSARIAL) and max(times) < 1.0, times
