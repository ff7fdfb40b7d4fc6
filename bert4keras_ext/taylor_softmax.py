"""Taylor softmax: normalize `f_n(x) = sum_{k<=n} x^k / k!` instead of `exp(x)`.

Source: "Exploring Alternatives to Softmax Function" (Banerjee et al., 2020,
https://arxiv.org/abs/2011.11538) and the post https://kexue.fm/archives/7919.

For even n, f_n is positive on the whole real line (at its only stationary point x*,
f_n(x*) = x*^n / n! > 0), so `f_n(x_i) / sum_j f_n(x_j)` is a distribution. It grows only
polynomially, which makes it less over-confident than softmax. f_n has a single minimum x*;
the `monotone` variant uses f_n(max(x, x*)), so larger logits never get smaller weights.

Example:
```python
probabilities = taylor_softmax(logits, order=2, mask=keys_visible)
```
"""
import math

import numpy as np
from keras import ops

from bert4keras_ext import arguments


def check_order(order, name="order"):
    """The Taylor softmax's `order` as an `int` (NumPy integers too): even and >= 2."""
    order = arguments.integer(order, name, minimum=2)
    if order % 2:
        raise ValueError(f"`{name}` of the Taylor softmax must be an even integer >= 2; "
                         f"received {order}.")
    return order


def taylor_polynomial(x, order):
    """f_n(x) = 1 + x + x^2/2! + ... + x^n/n!, by Horner's rule."""
    result = ops.ones_like(x)
    for k in range(order, 0, -1):
        result = 1.0 + result * x / float(k)
    return result


def taylor_minimum(order):
    """(x*, f_n(x*)): the single minimum of f_n, where f_n' = f_{n-1} vanishes."""
    check_order(order)
    # f_{n-1} has odd degree and exactly one real root.
    coefficients = [1.0 / math.factorial(k) for k in range(order - 1, -1, -1)]
    roots = np.roots(coefficients)
    x = float(roots[np.abs(roots.imag) < 1e-9].real[0])
    return x, sum(x**k / math.factorial(k) for k in range(order + 1))


def taylor_softmax(x, order=2, axis=-1, mask=None, monotone=False):
    """`f_n(x) / sum f_n(x)` along `axis`; entries where `mask` is False get weight 0 (a row
    with nothing visible is all zeros)."""
    check_order(order)
    x = ops.convert_to_tensor(x)
    if monotone:
        x = ops.maximum(x, taylor_minimum(order)[0])
    values = taylor_polynomial(x, order)
    if mask is not None:
        values = values * ops.cast(mask, values.dtype)
    total = ops.sum(values, axis=axis, keepdims=True)
    return values / ops.maximum(total, 1e-30)
