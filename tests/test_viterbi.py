"""ViterbiDecoder: brute-force argmax over all label paths (with and without allowed start and
end labels) and bert4keras 0.11.5's paths (tests/fixtures/make_sequence_labeling_reference.py).
That it finds the CRF's most likely path is in tests/layers/test_sequence_labeling.py."""
import itertools
from pathlib import Path

import numpy as np
import pytest

from bert4keras_ext.viterbi import ViterbiDecoder

pytestmark = pytest.mark.backend_neutral

REFERENCE = np.load(Path(__file__).parent / "fixtures" / "sequence_labeling_reference.npz")


def best_path(nodes, trans, starts=None, ends=None):
    """The highest-scoring path by enumeration, among those with allowed ends."""
    length, labels = nodes.shape
    best, best_score = None, -np.inf
    for path in map(np.array, itertools.product(range(labels), repeat=length)):
        if (starts is not None and path[0] not in starts) or (
                ends is not None and path[-1] not in ends):
            continue
        score = nodes[np.arange(length), path].sum() + trans[path[:-1], path[1:]].sum()
        if score > best_score:
            best, best_score = path, score
    return list(best)


def test_decode_is_the_brute_force_argmax():
    rng = np.random.default_rng(0)
    for length in (1, 2, 4, 5):
        for _ in range(5):
            trans = rng.normal(size=(3, 3))
            nodes = rng.normal(size=(length, 3))
            kept = nodes.copy()
            assert list(ViterbiDecoder(trans).decode(nodes)) == best_path(nodes, trans)
            constrained = ViterbiDecoder(trans, starts=[1, 2], ends=[0, 2]).decode(nodes)
            assert list(constrained) == best_path(nodes, trans, starts=[1, 2], ends=[0, 2])
            np.testing.assert_array_equal(nodes, kept)


def test_paths_equal_bert4keras():
    decoder = ViterbiDecoder(REFERENCE["viterbi/trans"])
    constrained = ViterbiDecoder(REFERENCE["viterbi/trans"], starts=[0, 2], ends=[1, 3])
    for row, length in enumerate(REFERENCE["viterbi/lengths"]):
        nodes = REFERENCE["viterbi/nodes"][row, :length]
        np.testing.assert_array_equal(decoder.decode(nodes),
                                      REFERENCE["viterbi/paths"][row, :length])
        np.testing.assert_array_equal(constrained.decode(nodes),
                                      REFERENCE["viterbi/constrained_paths"][row, :length])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="trans"):
        ViterbiDecoder(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"nodes.*num_labels=3.*\(4, 2\)"):
        ViterbiDecoder(np.zeros((3, 3))).decode(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="nodes"):
        ViterbiDecoder(np.zeros((3, 3))).decode(np.zeros((0, 3)))
