"""One set of checks for the public arguments of every module: counts, rates, flags, pattern
lists and step schedules.

Each check returns the value in its plain Python form (a NumPy integer becomes an `int`, a
NumPy float a `float`) or raises an error that names the argument, says what was expected and
shows what was received. `bool` is never a number here: `topk=True` is refused, not read as 1.
This module imports nothing of the package, so layers, optimizers and models can all use it.
"""
import math
import numbers
import re

import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. Also a ValueError, as the checks that came before this
    module raised, so code catching either keeps working."""


def integer(value, name, minimum=None):
    """`value` as an `int` (Python or NumPy integers) of at least `minimum`."""
    expected = ("a positive integer" if minimum == 1 else "an integer" if minimum is None
                else f"an integer >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"`{name}` must be {expected}; received {value!r} "
                                f"({type(value).__name__}).")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be {expected}; received {value}.")
    return value


def real(value, name, minimum=None, maximum=None, above=None, below=None, finite=True):
    """`value` as a `float` (Python or NumPy numbers): at least `minimum`, at most `maximum`,
    strictly greater than `above` and strictly less than `below`, and finite unless
    `finite=False` (NaN is always refused). Two bounds read as an interval: "in [0, 1)"."""
    low = (f"[{minimum}" if minimum is not None else f"({above}" if above is not None
           else None)
    high = (f"{maximum}]" if maximum is not None else f"{below})" if below is not None
            else None)
    if low and high:
        expected = f"a number in {low}, {high}"
    else:
        bounds = " and ".join(text for text, bound in (
            (f">= {minimum}", minimum), (f"> {above}", above), (f"<= {maximum}", maximum),
            (f"< {below}", below)) if bound is not None)
        expected = f"a {'finite ' if finite else ''}number" + (f" {bounds}" if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"`{name}` must be {expected}; received {value!r} "
                                f"({type(value).__name__}).")
    value = float(value)
    if (math.isnan(value) or (finite and math.isinf(value))
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
            or (above is not None and value <= above)
            or (below is not None and value >= below)):
        raise ValueError(f"`{name}` must be {expected}; received {value!r}.")
    return value


def boolean(value, name):
    """`value` as a `bool` (Python or NumPy booleans; 0 and 1 are refused, as a string would be)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"`{name}` must be true or false; received {value!r} "
                                f"({type(value).__name__}).")
    return bool(value)


def patterns(value, name):
    """The regular expressions of a pattern argument as a list: None gives none, one string is
    one pattern (not its characters), otherwise an iterable of strings."""
    if value is None:
        return []
    found = [value] if isinstance(value, str) else value
    try:
        found = list(found)
    except TypeError:
        found = None
    if found is None or not all(isinstance(pattern, str) for pattern in found):
        raise TypeError(f"`{name}` must be a regular expression or a list of them; "
                        f"received {value!r}.")
    for pattern in found:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"`{name}` holds {pattern!r}, which is not a regular "
                             f"expression ({error}).") from None
    return found


def schedule(value, name):
    """A `{step: multiplier}` schedule, or its `(step, multiplier)` pairs (as configs store
    it), as a list of `(step, multiplier)` sorted by step (as bert4keras sorts it): steps
    distinct integers >= 0, multipliers finite numbers >= 0. A step may also be written as
    decimal digits, as JSON writes the keys of a dict (a config file, an older `.keras` file)."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)) and all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in value):
        pairs = [tuple(pair) for pair in value]
    else:
        pairs = []
    if not pairs:
        raise ArgumentTypeError(f"`{name}` must be a non-empty dict {{step: multiplier}}; "
                                f"received {value!r}.")
    points = []
    for step, multiplier in pairs:
        if isinstance(step, str) and step.isascii() and step.isdigit():
            step = int(step)
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"`{name}` steps must be integers >= 0; received the step "
                             f"{step!r} in {value!r}.")
        points.append((int(step), real(multiplier, f"{name}[{step!r}]", minimum=0)))
    steps = [step for step, _ in points]
    if len(set(steps)) < len(steps):
        raise ValueError(f"`{name}` gives a step more than once; received {value!r}.")
    return sorted(points)
