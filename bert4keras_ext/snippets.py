"""bert4keras's `snippets` names, so `from bert4keras.snippets import ...` becomes
`from bert4keras_ext.snippets import ...`.

Most live in their own modules (`data`, `decoding`, `tokenizers`, `text`, `serving`); this
module adds the small helpers bert4keras scripts call: `to_array`, `text_segmentate`,
`is_string`, the `insert_arguments` / `delete_arguments` decorators and `orthogonally_resize`
(https://github.com/bojone/bert4keras, `bert4keras/snippets.py`). `open` is
`bert4keras_ext.text.IndexableFile`; `uniout` is a module that does nothing on Python 3.
"""
import functools

import numpy as np

from bert4keras_ext import (
    arguments,
    uniout,  # noqa: F401  (bert4keras's Python 2 import, a no-op)
)
from bert4keras_ext.data import (
    DataGenerator,
    parallel_apply,
    parallel_apply_generator,
    sequence_padding,
)
from bert4keras_ext.decoding import AutoRegressiveDecoder
from bert4keras_ext.serving import WebServing
from bert4keras_ext.text import (
    IndexableFile,
    longest_common_subsequence,
    longest_common_substring,
    string_matching,
    strQ2B,
)
from bert4keras_ext.tokenizers import truncate_sequences
from bert4keras_ext.viterbi import ViterbiDecoder

open = IndexableFile  # noqa: A001  (bert4keras's name, shadowing the builtin as it did)

__all__ = [
    "AutoRegressiveDecoder",
    "DataGenerator",
    "ViterbiDecoder",
    "WebServing",
    "delete_arguments",
    "insert_arguments",
    "is_string",
    "longest_common_subsequence",
    "longest_common_substring",
    "open",
    "orthogonally_resize",
    "parallel_apply",
    "parallel_apply_generator",
    "sequence_padding",
    "strQ2B",
    "string_matching",
    "text_segmentate",
    "to_array",
    "truncate_sequences",
    "uniout",
]


def to_array(*args):
    """Each argument as a NumPy array (the array itself for one argument)."""
    arrays = [np.array(arg) for arg in args]
    return arrays[0] if len(arrays) == 1 else arrays


def is_string(value):
    return isinstance(value, str)


def text_segmentate(text, maxlen, seps="\n", strips=None):
    """Cuts `text` into pieces of at most `maxlen` characters where the separators allow.

    The text (stripped of whitespace and of the characters `strips`) is split at the first
    separator of `seps` (a string of one-character separators, or a list of separators);
    consecutive parts, each keeping its separator, are joined while they fit in `maxlen`; a
    piece still too long is cut at the next separator, and so on. With no separator left, a
    long piece stays whole (any `maxlen`, even 0 or negative, which splits at every
    separator). An empty text gives `['']`, as bert4keras.

    Example:
    ```python
    text_segmentate("一句。二句。三句。", 4, seps="。")  # ['一句。', '二句。', '三句。']
    ```
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a string; received {text!r} ({type(text).__name__}).")
    maxlen = arguments.integer(maxlen, "maxlen")
    if isinstance(seps, str):
        seps = list(seps)
    if (not isinstance(seps, (list, tuple))
            or not all(isinstance(sep, str) and sep for sep in seps)):
        raise TypeError(f"`seps` must be a string of separators or a list of non-empty "
                        f"strings; received {seps!r}.")
    if strips is not None and not isinstance(strips, str):
        raise TypeError(f"`strips` must be None or a string of characters; received "
                        f"{strips!r}.")
    return _segmentate(text, maxlen, seps, strips)


def _segmentate(text, maxlen, seps, strips):
    text = text.strip().strip(strips)
    if not seps or len(text) <= maxlen:
        return [text]
    separator, finer = seps[0], seps[1:]
    parts = text.split(separator)
    pieces, current = [], ""
    for index, part in enumerate(parts):
        if current and part and len(current) + len(part) > maxlen - 1:
            pieces += _segmentate(current, maxlen, finer, strips)
            current = ""
        current += part if index == len(parts) - 1 else part + separator
    if current:
        pieces += _segmentate(current, maxlen, finer, strips)
    return pieces


def insert_arguments(**arguments):
    """Decorator for a method (usually `__init__`): adds keyword arguments with defaults,
    stored as attributes of the instance before the method runs.

    Example:
    ```python
    class Scaled(keras.layers.Layer):
        @insert_arguments(scale=1.0)
        def __init__(self, **kwargs):
            super().__init__(**kwargs)  # self.scale is already set
    ```
    """
    def decorator(method):
        @functools.wraps(method)
        def with_arguments(self, *args, **kwargs):
            for name, default in arguments.items():
                setattr(self, name, kwargs.pop(name, default))
            return method(self, *args, **kwargs)

        return with_arguments

    return decorator


def delete_arguments(*arguments):
    """Decorator for a method (usually `__init__`): refuses the keyword arguments `arguments`
    (a TypeError naming the class and the argument), e.g. ones a subclass fixes itself."""
    def decorator(method):
        @functools.wraps(method)
        def without_arguments(self, *args, **kwargs):
            for name in arguments:
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__} got an unexpected keyword "
                                    f"argument '{name}'")
            return method(self, *args, **kwargs)

        return without_arguments

    return decorator


def orthogonally_resize(a, new_shape, window=2):
    """Resizes the array `a` to `new_shape`, keeping its Frobenius norm, as bert4keras's.

    An axis that grows repeats each block of `window` consecutive entries `k = ceil(new/old)`
    times in place (so its size must be a multiple of `window`), then keeps the first `new`
    entries; an axis that shrinks keeps its first entries. The result is rescaled to the norm
    of `a`. When an axis grows by a whole factor `k`, the vectors along the other axes keep
    their inner products up to the common factor `k` (orthogonal ones stay orthogonal), which
    suits initializing a larger model from a smaller one's weights.
    """
    a = np.asarray(a)
    if a.ndim != len(new_shape):
        raise ValueError(f"`new_shape` must have one size per axis of `a` ({a.ndim}); "
                         f"received {tuple(new_shape)}.")
    norm = np.linalg.norm(a)
    for axis, (old, new) in enumerate(zip(a.shape, new_shape)):
        repeats = -(-new // old)
        if repeats > 1:
            if old % window:
                raise ValueError(f"Axis {axis} of `a` has {old} entries, not a multiple of "
                                 f"`window`={window}, so it cannot grow to {new}.")
            blocks = a.reshape(a.shape[:axis] + (old // window, window) + a.shape[axis + 1:])
            a = np.repeat(blocks, repeats, axis=axis).reshape(
                a.shape[:axis] + (old * repeats,) + a.shape[axis + 1:])
    a = a[tuple(slice(new) for new in new_shape)]
    return a / np.linalg.norm(a) * norm
