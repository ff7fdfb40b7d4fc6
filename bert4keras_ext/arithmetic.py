"""A safe evaluator for arithmetic written by a model: never `eval`.

`safe_eval("150*(20/100)/(5/100)-150")` gives 450.0. Only numbers, + - * / ** (and ^ as **),
unary signs and parentheses are accepted; anything else (names, calls, attributes, lambdas,
comparisons, huge powers such as `9**9**9`, division by zero, deep nesting, long inputs)
gives None. With `exact=True` the result is a `fractions.Fraction`.
"""
import ast
import operator
from fractions import Fraction

MAX_CHARS = 500
MAX_DEPTH = 50
MAX_EXPONENT = 100
MAX_MAGNITUDE = 1e15

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


class _Refused(Exception):
    pass


def safe_eval(expression, exact=False):
    """The value of an arithmetic expression, or None if it is not plain, bounded arithmetic."""
    if not isinstance(expression, str) or len(expression) > MAX_CHARS:
        return None
    if _bracket_depth(expression) > MAX_DEPTH:
        return None
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        value = _evaluate(tree.body, 0, exact)
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


def _evaluate(node, depth, exact):
    if depth > MAX_DEPTH:
        raise _Refused("too deep")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if abs(node.value) > MAX_MAGNITUDE:
            raise _Refused("out of range")
        return Fraction(node.value) if exact else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _evaluate(node.operand, depth + 1, exact)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _evaluate(node.left, depth + 1, exact)
        right = _evaluate(node.right, depth + 1, exact)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT or (left == 0 and right < 0):
                raise _Refused("exponent out of range")
            if exact and Fraction(right).denominator != 1:
                left, right = float(left), float(right)  # roots are not exact fractions
        value = _OPERATORS[type(node.op)](left, right)
        if isinstance(value, complex) or abs(value) > MAX_MAGNITUDE:
            raise _Refused("out of range")
        return value
    raise _Refused(f"{type(node).__name__} is not arithmetic")
