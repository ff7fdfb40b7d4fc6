"""bert4keras's `snippets` names, so `from bert4keras.snippets import ...` becomes
`from bert4keras_ext.snippets import ...`.

Most live in their own modules (`data`, `decoding`, `tokenizers`); this module adds the small
helpers bert4keras scripts call: `to_array`, `text_segmentate`, `is_string`.
"""
import numpy as np

from bert4keras_ext.data import DataGenerator, parallel_apply, sequence_padding
from bert4keras_ext.decoding import AutoRegressiveDecoder
from bert4keras_ext.tokenizers import truncate_sequences

__all__ = [
    "AutoRegressiveDecoder",
    "DataGenerator",
    "is_string",
    "parallel_apply",
    "sequence_padding",
    "text_segmentate",
    "to_array",
    "truncate_sequences",
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
    separator of `seps`; consecutive parts, each keeping its separator, are joined while they
    fit in `maxlen`; a piece still too long is cut at the next separator, and so on. With no
    separator left, a long piece stays whole.

    Example:
    ```python
    text_segmentate("一句。二句。三句。", 4, seps="。")  # ['一句。', '二句。', '三句。']
    ```
    """
    text = text.strip().strip(strips)
    if not seps or len(text) <= maxlen:
        return [text]
    separator, finer = seps[0], seps[1:]
    parts = text.split(separator)
    pieces, current = [], ""
    for index, part in enumerate(parts):
        if current and part and len(current) + len(part) > maxlen - 1:
            pieces += text_segmentate(current, maxlen, finer, strips)
            current = ""
        current += part if index == len(parts) - 1 else part + separator
    if current:
        pieces += text_segmentate(current, maxlen, finer, strips)
    return pieces
