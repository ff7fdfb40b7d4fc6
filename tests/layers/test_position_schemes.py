"""Position schemes: rotary (relative logits, norms kept; values rotated too with
`rotary_value`), NEZHA's functional relative vectors (closed form, clipping at
`max_relative_position`), and a key cache that stays valid for both."""
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


def rotate(x, positions):
    """RoPE in NumPy: pairs (2i, 2i+1) of x [..., length, size] turn by position * theta_i."""
    theta = 10000.0 ** (-np.arange(0, x.shape[-1], 2) / x.shape[-1])
    angles = positions[:, None] * theta
    even, odd = x[..., 0::2], x[..., 1::2]
    turned = np.stack([even * np.cos(angles) - odd * np.sin(angles),
                       even * np.sin(angles) + odd * np.cos(angles)], -1)
    return turned.reshape(x.shape)


def brute_force_attention(layer, x, relative=None, rotate_values=False):
    """One head-by-head loop over NumPy copies of the layer's weights (no mask, no bias)."""
    q, k, v = (x @ np.asarray(dense.kernel) + np.asarray(dense.bias)
               for dense in (layer.q_dense, layer.k_dense, layer.v_dense))
    length, size = x.shape[1], layer.key_size
    positions = np.arange(length)
    heads = []
    for h in range(layer.heads):
        qh, kh, vh = (t[0, :, h * size:(h + 1) * size] for t in (q, k, v))
        if layer.position_scheme == "rotary":
            qh, kh = rotate(qh, positions), rotate(kh, positions)
            vh = rotate(vh, positions) if rotate_values else vh
        logits = qh @ kh.T
        if relative is not None:
            logits = logits + np.einsum("id,ijd->ij", qh, relative)
        weights = np.exp(logits / np.sqrt(size))
        weights /= weights.sum(-1, keepdims=True)
        out = weights @ vh
        if relative is not None:
            out = out + np.einsum("ij,ijd->id", weights, relative)
        heads.append(out)
    merged = np.concatenate(heads, -1)
    return merged @ np.asarray(layer.o_dense.kernel) + np.asarray(layer.o_dense.bias)


def test_nezha_clipping_distance_and_rotated_values_match_brute_force():
    """Reliability probe 2, N02 and R01: NEZHA's `max_relative_position` clips the distances
    (rows `clip(j - i, -m, m) + m` of the sinusoid table), and RoFormer's `rotary_value`
    rotates the values by their positions, as a NumPy loop over the heads computes."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 7, 16)).astype("float32")
    layer = MultiHeadAttention(2, 8, position_scheme="functional_relative",
                               max_relative_position=2, kernel_initializer="normal")
    distance = np.arange(7)[None, :] - np.arange(7)[:, None]
    angles = (np.clip(distance, -2, 2) + 2)[..., None] / 10000.0 ** (np.arange(0, 8, 2) / 8)
    relative = np.stack([np.sin(angles), np.cos(angles)], -1).reshape(7, 7, 8)
    np.testing.assert_allclose(np.asarray(layer([x, x, x])),
                               brute_force_attention(layer, x, relative)[None], atol=2e-4)
    assert MultiHeadAttention.from_config(layer.get_config()).max_relative_position == 2
    layer = MultiHeadAttention(2, 8, position_scheme="rotary", rotary_value=True,
                               kernel_initializer="normal")
    np.testing.assert_allclose(np.asarray(layer([x, x, x])),
                               brute_force_attention(layer, x, rotate_values=True)[None],
                               atol=2e-4)
    with pytest.raises(ValueError, match=r"`rotary_value=True` needs position_scheme='rotary'; "
                                         r"received position_scheme='functional_relative'"):
        MultiHeadAttention(2, 4, position_scheme="functional_relative", rotary_value=True)
    with pytest.raises(ValueError, match=r"`max_relative_position` must be a positive integer; "
                                         r"received 0"):
        MultiHeadAttention(2, 4, position_scheme="functional_relative", max_relative_position=0)
    with pytest.raises(TypeError, match=r"`rotary_value` must be true or false; received 'yes'"):
        MultiHeadAttention(2, 4, position_scheme="rotary", rotary_value="yes")


def test_cached_calls_equal_one_causal_call():
    """Feeding tokens one at a time through the cache equals the full causal attention."""
    rng = np.random.default_rng(1)
    length, dim = 6, 16
    x = rng.normal(size=(2, length, dim)).astype("float32")
    for scheme, options in ((None, {}), ("rotary", {"rotary_value": True}),
                            ("functional_relative", {"max_relative_position": 2})):
        layer = MultiHeadAttention(2, 8, position_scheme=scheme, **options)
        causal = np.tril(np.ones((length, length), bool))[None, None]
        expected = np.asarray(layer([x, x, x], attention_mask=causal))
        cache = (np.zeros((2, 2, length, 8), "float32"),) * 2  # [batch, heads, slots, size]
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
