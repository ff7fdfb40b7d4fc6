"""Text helpers from bert4keras's `snippets` (https://github.com/bojone/bert4keras): full-width
to half-width characters, keyword matching, the longest common substring and subsequence, and
`IndexableFile` (bert4keras's `snippets.open`), a text file whose lines can be read by index.
"""
import builtins
import json
import os
import re


def strQ2B(ustring):  # noqa: N802  (bert4keras's name)
    """Full-width characters as their half-width forms: U+3000 becomes a space and U+FF01 to
    U+FF5E become '!' to '~'; other characters are kept."""
    return "".join(
        " " if char == "\u3000"
        else chr(ord(char) - 0xFEE0) if "\uff01" <= char <= "\uff5e"
        else char
        for char in ustring)


def string_matching(s, keywords):
    """Whether one of `keywords` (regular expressions) is found in `s`."""
    return any(re.search(keyword, s) for keyword in keywords)


def longest_common_substring(source, target):
    """`(length, (source_start, source_end, target_start, target_end))` of a longest common
    contiguous piece: `source[source_start:source_end] == target[target_start:target_end]`.

    Of several, the one ending first in `source` (then in `target`) is returned, as
    bert4keras's; with nothing in common, `(0, (0, 0, 0, 0))`. Works on any sequences.
    """
    best, span = 0, (0, 0, 0, 0)
    previous = [0] * (len(target) + 1)  # run lengths ending at the previous source item
    for i, item in enumerate(source, 1):
        current = [0] * (len(target) + 1)
        for j, other in enumerate(target, 1):
            if item == other:
                current[j] = previous[j - 1] + 1
                if current[j] > best:
                    best = current[j]
                    span = (i - best, i, j - best, j)
        previous = current
    return best, span


def longest_common_subsequence(source, target):
    """`(length, mapping)` of a longest common subsequence: `mapping` lists the pairs
    `(i, j)` with `source[i] == target[j]` that it is made of, in order.

    Of several, the one bert4keras returns: walking back from the ends, equal items are
    matched, else the `target` item is skipped if that keeps a longer subsequence than
    skipping the `source` item, which is skipped otherwise.
    """
    # lengths[i][j]: the length for source[:i] and target[:j].
    lengths = [[0] * (len(target) + 1) for _ in range(len(source) + 1)]
    for i, item in enumerate(source, 1):
        for j, other in enumerate(target, 1):
            if item == other:
                lengths[i][j] = lengths[i - 1][j - 1] + 1
            else:
                lengths[i][j] = max(lengths[i][j - 1], lengths[i - 1][j])
    mapping, i, j = [], len(source), len(target)
    while len(mapping) < lengths[-1][-1]:
        if source[i - 1] == target[j - 1]:
            mapping.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif lengths[i][j - 1] > lengths[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return len(mapping), mapping[::-1]


class IndexableFile:
    """bert4keras's `snippets.open`: the builtin `open`, with `indexable` random access.

    `IndexableFile(name, mode='r', encoding=None, errors='strict', indexable=False)` reads and
    writes as the builtin file does (`read`, `readline`, `readlines`, `write`, iteration,
    `with`). With `indexable=True` the start of every line is recorded once, so `f[i]` reads
    line `i` (negative indices too) and `len(f)` counts lines without keeping them in memory;
    with `indexable` a path, those offsets are loaded from that JSON file when it exists, else
    recorded and saved there (bert4keras's format), for the next run on a large corpus.

    Example:
    ```python
    corpus = IndexableFile("corpus.txt", encoding="utf-8", indexable=True)
    line = corpus[np.random.randint(len(corpus))]
    ```
    """

    def __init__(self, name, mode="r", encoding=None, errors="strict", indexable=False):
        self.name = name
        self.file = builtins.open(name, mode, encoding=encoding, errors=errors)
        self.encoding, self.errors = encoding, errors
        self.offsets = None
        if indexable:
            if isinstance(indexable, (str, os.PathLike)) and os.path.exists(indexable):
                with builtins.open(indexable) as saved:
                    self.offsets = json.load(saved)
            else:
                self.offsets = self._line_offsets()
                if isinstance(indexable, (str, os.PathLike)):
                    with builtins.open(indexable, "w") as saved:
                        json.dump(self.offsets, saved)

    def _line_offsets(self):
        # tell() after readline(): the positions `seek` takes back, in this file's own mode.
        offsets, offset = [], self.file.tell()
        while self.file.readline():
            offsets.append(offset)
            offset = self.file.tell()
        self.file.seek(0)
        return offsets

    def _require_index(self, operation):
        if self.offsets is None:
            raise TypeError(f"{operation} needs the line index: open {self.name!r} with "
                            "indexable=True (or a path to keep the index in).")

    def __getitem__(self, index):
        self._require_index("Reading a line by index")
        self.file.seek(self.offsets[index])
        return self.file.readline()

    def __len__(self):
        self._require_index("len()")
        return len(self.offsets)

    def __iter__(self):
        return iter(self.file)

    def __next__(self):
        return next(self.file)

    next = __next__  # bert4keras's Python 2 name

    def read(self, size=-1):
        return self.file.read(size)

    def readline(self):
        return self.file.readline()

    def readlines(self):
        return self.file.readlines()

    def write(self, text):
        return self.file.write(text)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()

    def tell(self):
        return self.file.tell()

    def seek(self, offset=0):
        return self.file.seek(offset)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
