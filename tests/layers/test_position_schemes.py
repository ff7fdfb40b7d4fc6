"""Position schemes: rotary (relative logits, norms kept), NEZHA's functional relative vectors
(closed form, clipping), and a key cache that stays valid for both."""
import numpy as np
import pytest

from bert4keras_ext.layers import MultiHeadAttention, PerformerAttention
from bert4keras_ext.layers.position_schemes import functional_relative, rotary

pytestmark = pytest.mark.backend_neutral


def test_rotary_logits_depend_only_on_the_position_difference():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(2, 1, 1, 1, 16)).astype("float32")

    def logit(m, n):
        qm = np.asarray(rotary(q, np.array([[m]])))
        kn = np.asarray(rotary(k, np.array([[n]])))
        return float((qm * kn).sum())

    for shift in (1, 7, 300):
        for m, n in ((0, 0), (5, 2), (3, 9)):
            np.testing.assert_allclose(logit(m + shift, n + shift), logit(m, n), atol=1e-4)
    assert abs(logit(5, 2) - logit(2, 5)) > 1e-3  # direction matters
    rotated = np.asarray(rotary(q, np.array([[41]])))
    np.testing.assert_allclose(np.linalg.norm(rotated), np.linalg.norm(q), rtol=1e-5)
    # Position 0 is the identity; pair (0, 1) at position 1 turns by exactly 1 radian.
    np.testing.assert_allclose(np.asarray(rotary(q, np.array([[0]]))), q, atol=1e-6)
    x = np.zeros((1, 1, 1, 2), "float32")
    x[..., 0] = 1.0
    np.testing.assert_allclose(np.asarray(rotary(x, np.array([[1]])))[0, 0, 0],
                               [np.cos(1.0), np.sin(1.0)], atol=1e-6)


def test_functional_relative_vectors_are_clipped_sinusoids_of_the_distance():
    size = 6
    vectors = np.asarray(functional_relative(np.array([[0, 3, 100]]), np.array([[0, 1, 2, 90]]),
                                             size))
    assert vectors.shape == (1, 3, 4, size)

    def expected(distance):
        row = np.clip(distance, -64, 64) + 64
        angles = row / 10000.0 ** (np.arange(0, size, 2) / size)
        return np.stack([np.sin(angles), np.cos(angles)], -1).reshape(size)

    for i, query in enumerate((0, 3, 100)):
        for j, key in enumerate((0, 1, 2, 90)):
            np.testing.assert_allclose(vectors[0, i, j], expected(key - query), atol=1e-5)
    # Beyond 64 apart, every distance shares the clipped row.
    np.testing.assert_array_equal(vectors[0, 2, 0], vectors[0, 2, 1])


def test_cached_calls_equal_one_causal_call():
    """Feeding tokens one at a time through the cache equals the full causal attention."""
    rng = np.random.default_rng(1)
    length, dim = 6, 16
    x = rng.normal(size=(2, length, dim)).astype("float32")
    for scheme in (None, "rotary", "functional_relative"):
        layer = MultiHeadAttention(2, 8, position_scheme=scheme)
        causal = np.tril(np.ones((length, length), bool))[None, None]
        expected = np.asarray(layer([x, x, x], attention_mask=causal))
        cache = (np.zeros((2, length, 2, 8), "float32"),) * 2
        for t in range(length):
            visible = np.zeros((1, 1, 1, length), bool)
            visible[..., : t + 1] = True
            step = x[:, t: t + 1]
            output, cache = layer([step, step, step], attention_mask=visible, cache=cache,
                                  cache_index=t)
            np.testing.assert_allclose(np.asarray(output)[:, 0], expected[:, t], atol=1e-5)


def test_cache_errors_name_the_argument():
    x = np.zeros((1, 2, 8), "float32")
    cache = (np.zeros((1, 4, 2, 4), "float32"),) * 2
    with pytest.raises(ValueError, match="`position_scheme` must be one of"):
        MultiHeadAttention(2, 4, position_scheme="alibi")
    with pytest.raises(ValueError, match="PerformerAttention"):
        MultiHeadAttention(2, 4, normalization="performer")
    with pytest.raises(ValueError, match="relative position terms"):
        PerformerAttention(2, 4, position_scheme="functional_relative")
    with pytest.raises(ValueError, match="no key/value cache"):
        PerformerAttention(2, 4)([x, x, x], cache=cache, cache_index=0)
