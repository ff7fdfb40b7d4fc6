"""bert4keras's `snippets` helpers: text helpers and `orthogonally_resize` against bert4keras
0.11.5 (tests/fixtures/make_backend_reference.py), brute force for the common substring and
subsequence, `open(indexable=True)`, the argument decorators, `parallel_apply_generator`,
`truncate_sequences` and `text_segmentate` with their argument checks."""
import itertools
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bert4keras_ext.snippets import (
    delete_arguments,
    insert_arguments,
    longest_common_subsequence,
    longest_common_substring,
    open,
    orthogonally_resize,
    parallel_apply,
    parallel_apply_generator,
    string_matching,
    strQ2B,
    text_segmentate,
    truncate_sequences,
)

REFERENCE = np.load(Path(__file__).parent / "fixtures" / "backend_reference.npz")


def test_text_helpers_match_bert4keras():
    assert [strQ2B(s) for s in REFERENCE["q2b_inputs"]] == REFERENCE["q2b_outputs"].tolist()
    keywords = [k.split("\n") if k else [] for k in REFERENCE["matching_keywords"]]
    results = [[string_matching(t, k) for k in keywords] for t in REFERENCE["matching_texts"]]
    assert results == REFERENCE["matching_results"].tolist()
    pairs = list(zip(REFERENCE["lcs_sources"].tolist(), REFERENCE["lcs_targets"].tolist()))
    for k, (source, target) in enumerate(pairs):
        length, span = longest_common_substring(source, target)
        assert [length, *span] == REFERENCE[f"substring_{k}"].tolist(), (source, target)
        length, mapping = longest_common_subsequence(source, target)
        assert length == len(mapping)
        assert [list(pair) for pair in mapping] == REFERENCE[f"subsequence_{k}"].tolist()


def test_common_substring_and_subsequence_are_longest_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(40):
        source, target = ("".join(rng.choice(list("ab"), rng.integers(0, 7))) for _ in "st")
        pieces = {source[i:j] for i in range(len(source) + 1) for j in range(i, len(source) + 1)}
        longest = max(len(p) for p in pieces if p in target)
        length, (i0, i1, j0, j1) = longest_common_substring(source, target)
        assert length == longest and source[i0:i1] == target[j0:j1] and i1 - i0 == length
        subsequences = {"".join(c) for n in range(len(source) + 1)
                        for c in itertools.combinations(source, n)}
        longest = max(len(s) for s in subsequences if _is_subsequence(s, target))
        length, mapping = longest_common_subsequence(source, target)
        assert length == longest
        assert all(source[i] == target[j] for i, j in mapping)
        assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(mapping, mapping[1:]))


def _is_subsequence(small, large):
    rest = iter(large)
    return all(char in rest for char in small)


def test_orthogonally_resize_matches_bert4keras_and_keeps_the_norm():
    for k in range(6):
        a, shape = REFERENCE[f"resize_{k}_input"], tuple(REFERENCE[f"resize_{k}_shape"])
        resized = orthogonally_resize(a, shape, int(REFERENCE[f"resize_{k}_window"]))
        np.testing.assert_allclose(resized, REFERENCE[f"resize_{k}_output"], rtol=1e-12)
        assert resized.shape == shape
        assert np.linalg.norm(resized) == pytest.approx(np.linalg.norm(a))
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    grown = orthogonally_resize(q, (8, 4))  # each row twice, scaled by 1 / sqrt(2)
    np.testing.assert_allclose(grown.T @ grown, np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="Axis 0 of `a` has 3 entries, not a multiple of "
                                         "`window`=2"):
        orthogonally_resize(np.ones((3, 2)), (6, 2))
    with pytest.raises(ValueError, match="`new_shape` must have one size per axis"):
        orthogonally_resize(np.ones((3, 2)), (6,))


def test_open_reads_lines_by_index_and_keeps_the_index(tmp_path):
    lines = ["第一行\n", "second line\n", "\n", "ｆｕｌｌ　ｗｉｄｔｈ\n", "last, no newline"]
    path = tmp_path / "corpus.txt"
    with open(path, "w", encoding="utf-8") as writer:
        for line in lines:
            writer.write(line)
    with open(path, encoding="utf-8", indexable=True) as corpus:
        assert len(corpus) == 5
        assert [corpus[i] for i in (3, 0, -1, 2)] == [lines[3], lines[0], lines[4], lines[2]]
        corpus.seek(0)
        assert list(corpus) == lines  # iteration reads on from the current position
    index = tmp_path / "corpus.index.json"
    with open(path, encoding="utf-8", indexable=str(index)) as corpus:
        assert corpus[1] == lines[1]
    offsets = json.loads(index.read_text())
    assert [path.read_bytes()[o:].decode().splitlines(True)[0] for o in offsets] == lines
    index.write_text(json.dumps(offsets[::-1]))  # an existing index is read, not rebuilt
    with open(path, encoding="utf-8", indexable=str(index)) as corpus:
        assert corpus[0] == lines[-1]
    with open(path, encoding="utf-8") as plain:
        assert plain.readline() == lines[0] and next(plain) == lines[1]
        assert plain.read() == "".join(lines[2:])
        with pytest.raises(TypeError, match="needs the line index: open .* indexable=True"):
            plain[0]


def test_uniout_imports_and_the_decorators_add_and_refuse_arguments():
    from bert4keras_ext.snippets import uniout  # noqa: F401  (a no-op, as on Python 3)

    class Base:
        def __init__(self, size=1):
            self.size = size

    class Scaled(Base):
        @insert_arguments(scale=2.0, shift=0.0)
        @delete_arguments("size")
        def __init__(self, **kwargs):
            super().__init__(size=4, **kwargs)

    layer = Scaled(scale=3.0)
    assert (layer.scale, layer.shift, layer.size) == (3.0, 0.0, 4)
    with pytest.raises(TypeError, match="Scaled got an unexpected keyword argument 'size'"):
        Scaled(size=3)


def test_truncate_sequences_keeps_each_index_with_its_sequence():
    """Reliability probe 2, S06: bert4keras dropped the empty first sequence before pairing
    the indices, so the second was cut at the first's index, -1, giving [1, 2, 3]."""
    empty, second = [], [1, 2, 3, 4, 5]
    assert truncate_sequences(3, [-1, 1], empty, second) == [[1, 4, 5]]
    assert second == [1, 4, 5]  # shortened in place
    # The longest loses an item (the first of equals): [1, 2, 3] at 0, then [4, 5, 6] at -1.
    first, second = [1, 2, 3], [4, 5, 6]
    assert truncate_sequences(np.int64(4), (0, -1), first, second) == [[2, 3], [4, 5]]
    assert truncate_sequences(9, -1, [1], [], [2]) == [[1], [2]]  # nothing to cut


@pytest.mark.parametrize("arguments,error,message", [
    ((-1, -1, [1, 2], [3]), ValueError, r"`maxlen` must be an integer >= 0; received -1"),  # S05
    ((2, -1, (1, 2, 3)), TypeError, r"sequence 0 is a tuple: \(1, 2, 3\)"),  # S07
    ((1, [-1], [1, 2], [3]), ValueError, r"`indices` must be one int or one per sequence \(2\)"),
    ((2, True, [1, 2, 3]), TypeError, r"`indices` must be an integer; received True"),
    ((0, 1, [1, 2]), IndexError, r"`indices` 1 is out of range for sequence 0, of length 1"),
])
def test_truncate_sequences_names_a_bad_argument(arguments, error, message):
    """Reliability probe 2, S05 and S07: an IndexError and an AttributeError before."""
    with pytest.raises(error, match=message):
        truncate_sequences(*arguments)


def test_text_segmentate_checks_its_arguments_and_keeps_bert4keras_results():
    """Reliability probe 2, S01 (an AttributeError before); S02-S04 as bert4keras."""
    text = "一句。二句，三句。"
    assert text_segmentate(text, 4, seps="。，") == ["一句。", "二句，", "三句。"]
    assert text_segmentate(text, np.int64(4), seps=["。", "，"]) == ["一句。", "二句，", "三句。"]
    assert text_segmentate("", 10) == text_segmentate("  \n ", 10) == [""]  # S02
    assert text_segmentate("abc", -1) == ["abc"]  # S04: no separator, stays whole
    for arguments, message in [((None, 10), r"`text` must be a string; received None"),
                               (("ab", True), r"`maxlen` must be an integer; received True"),
                               (("ab", 1, ["。", ""]), r"`seps` must be a string of separators"),
                               (("ab", 1, "\n", 3), r"`strips` must be None or a string")]:
        with pytest.raises(TypeError, match=message):
            text_segmentate(*arguments)


def slow_first(x):
    if x == 0:
        time.sleep(0.3)
    return x * x


def test_parallel_apply_generator_yields_indexed_results_as_they_are_done():
    results = list(parallel_apply_generator(slow_first, range(8), workers=2, max_queue_size=4,
                                            dummy=True))
    assert sorted(results) == [(i, i * i) for i in range(8)]
    assert results[0][0] != 0  # item 0 was the slowest, as bert4keras's (unordered)
    ordered = list(parallel_apply_generator(slow_first, range(8), 2, 4, dummy=True,
                                            ordered=True))
    assert ordered == [(i, i * i) for i in range(8)]
    assert parallel_apply(slow_first, range(6), 2, 3, dummy=True, unordered=False) == [
        i * i for i in range(6)]


def test_parallel_apply_generator_reads_lazily_and_stops_its_workers_when_closed():
    drawn = []

    def items():
        for i in itertools.count():
            drawn.append(i)
            yield i

    before = threading.active_count()
    generator = parallel_apply_generator(lambda x: -x, items(), workers=2, max_queue_size=3,
                                         dummy=True)
    first = [next(generator) for _ in range(5)]
    assert len({index for index, _ in first}) == 5 and all(r == -i for i, r in first)
    assert len(drawn) <= 5 + 3  # at most max_queue_size items ahead of what was taken
    generator.close()
    assert threading.active_count() == before


def draw_slowly(_):
    time.sleep(0.05)  # long enough for every worker to get items
    return np.random.randint(1 << 30)


@pytest.mark.slow
def test_parallel_apply_generator_in_processes_seeds_each_worker():
    results = dict(parallel_apply_generator(draw_slowly, range(12), workers=3, max_queue_size=4,
                                            random_seeds=[1, 2, 3]))
    assert sorted(results) == list(range(12))
    draws = {np.random.RandomState(seed).randint(1 << 30) for seed in (1, 2, 3)}
    assert draws <= set(results.values())  # each worker's first draw from its own seed
