"""A safe evaluator for arithmetic written by a model: never `eval`.

Made for the answers of math word problems, as in the post "BERT可以上几年级了？Seq2Seq“硬刚”
小学数学应用题" (https://kexue.fm/archives/7809), whose script `eval`s the model's equations.

`safe_eval("150*(20/100)/(5/100)-150")` gives 450.0. Only numbers, + - * / ** (and ^ as **),
unary signs and parentheses are accepted; anything else (names, calls, attributes, lambdas,
comparisons, huge powers such as `9**9**9`, division by zero, deep nesting, long inputs)
gives None. Numbers are decimals as people write them (`12`, `0.5`, `.5`, `1.5e3`); Python's
other literal forms (`0x10`, `0o7`, `0b1`, `1_000`, `1j`) give None too, as no word problem's
equation has them.

With `exact=True` the result is a `fractions.Fraction` computed exactly from the decimals as
written (`0.1+0.2` gives `Fraction(3, 10)`), or None. A power with a fractional exponent is
exact when the root is rational (`(3**2+4**2)**0.5` gives 5, `(8/27)**(2/3)` gives 4/9) and
None otherwise (`2**0.5`: no fraction equals it; the float mode gives 1.414...).

Bounds, checked at every step so that any accepted input ends within milliseconds: at most
MAX_CHARS characters and MAX_DEPTH levels of nesting, exponents within +-MAX_EXPONENT, every
value (and literal) within +-MAX_MAGNITUDE, and with `exact=True` every numerator and
denominator under MAX_FRACTION_BITS bits (about 1233 digits, so a result still prints).
"""
import ast
import operator
import re
from fractions import Fraction

MAX_CHARS = 500
MAX_DEPTH = 50
MAX_EXPONENT = 100
MAX_MAGNITUDE = 1e15
MAX_FRACTION_BITS = 4096

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_DECIMAL = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?")


class _Refused(Exception):
    pass


def safe_eval(expression, exact=False):
    """The value of an arithmetic expression (a float, or a `Fraction` with `exact=True`), or
    None if it is not plain, bounded arithmetic."""
    if not isinstance(expression, str) or len(expression) > MAX_CHARS:
        return None
    if _bracket_depth(expression) > MAX_DEPTH:
        return None
    source = expression.replace("^", "**")
    try:
        tree = ast.parse(source, mode="eval")
        value = _evaluate(tree.body, 0, source, exact)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, _Refused,
            RecursionError, MemoryError):
        return None
    return value if exact else float(value)


def _bracket_depth(text):
    depth = deepest = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        deepest = max(deepest, depth)
    return deepest


def _evaluate(node, depth, source, exact):
    if depth > MAX_DEPTH:
        raise _Refused("too deep")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(_number(node, source, exact), exact)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _evaluate(node.operand, depth + 1, source, exact)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        # A chain `a+b+c+...` nests to the left: its length is bounded by MAX_CHARS, only
        # nesting to the right (brackets, signs, powers) counts as depth.
        left = _evaluate(node.left, depth, source, exact)
        right = _evaluate(node.right, depth + 1, source, exact)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT or (left == 0 and right < 0):
                raise _Refused("exponent out of range")
            if exact:
                return _bounded(_exact_power(left, right), exact)
        return _bounded(_OPERATORS[type(node.op)](left, right), exact)
    raise _Refused(f"{type(node).__name__} is not arithmetic")


def _number(node, source, exact):
    """A literal written as a decimal: its float (int) value, or with `exact` the Fraction of
    the decimal as written."""
    written = ast.get_source_segment(source, node)
    match = _DECIMAL.fullmatch(written or "")
    if match is None:
        raise _Refused(f"{written!r} is not a decimal number")
    if not exact:
        return node.value
    # Checked before the Fraction is built: '1e-999999999' would need 10**999999999.
    if match.group(1) and abs(int(match.group(1))) > MAX_FRACTION_BITS:
        raise _Refused("exponent of the literal out of range")
    return Fraction(written)


def _bounded(value, exact):
    """`value`, if within the magnitude and (exact) size bounds."""
    if isinstance(value, complex) or abs(value) > MAX_MAGNITUDE:
        raise _Refused("out of range")
    if exact and max(value.numerator.bit_length(),
                     value.denominator.bit_length()) > MAX_FRACTION_BITS:
        raise _Refused("too many digits")
    return value


def _exact_power(base, exponent):
    """`base ** exponent` as a Fraction: a fractional exponent p/q takes the q-th root of the
    numerator and of the denominator, refused unless both are whole (the power is rational)
    and the base is >= 0."""
    if exponent.denominator == 1:
        return base ** exponent.numerator
    if base < 0:
        raise _Refused("root of a negative number")
    root = Fraction(_integer_root(base.numerator, exponent.denominator),
                    _integer_root(base.denominator, exponent.denominator))
    return root ** exponent.numerator


def _integer_root(number, degree):
    """The whole number whose `degree`-th power is `number` (>= 0); refused if there is none."""
    if number < 2:
        return number
    # 2 ** degree > number: no whole root between 1 and 2.
    if degree >= number.bit_length():
        raise _Refused("irrational root")
    low, high = 1, 1 << (number.bit_length() // degree + 1)
    while low < high:  # the smallest root with root ** degree >= number
        middle = (low + high) // 2
        if middle ** degree < number:
            low = middle + 1
        else:
            high = middle
    if low ** degree != number:
        raise _Refused("irrational root")
    return low
