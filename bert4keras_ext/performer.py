"""Performer / FAVOR+ attention: softmax attention approximated in linear time.

Source: "Rethinking Attention with Performers" (Choromanski et al., 2020,
https://arxiv.org/abs/2009.14794) and the post "Performer：用随机投影将Attention的复杂度线性化"
(https://kexue.fm/archives/7921).

`exp(q.k) = E_w[exp(w.q - |q|^2/2) exp(w.k - |k|^2/2)]` for `w ~ N(0, I)`, so with m random
features `phi(x) = m^-1/2 exp(W x - |x|^2/2)` attention becomes
`phi(Q) (phi(K)^T V) / (phi(Q) (phi(K)^T 1))`: O(n m d) instead of O(n^2 d). The features are
positive, so the normalizer never vanishes. Orthogonal features (Gram-Schmidt on Gaussian
blocks of d directions, with chi-distributed norms) lower the variance. The causal form keeps
running sums of `phi(k) v^T` and `phi(k)`. Other masks (UNILM's) cannot be linearized.

Tensors are laid out [batch, length, heads, size] (`PerformerAttention.attend` transposes
the heads-first tensors `MultiHeadAttention` hands it).
"""
import numpy as np
from keras import ops


def gaussian_features(num_features, dim, seed=None, orthogonal=True):
    """A [num_features, dim] projection: iid N(0, 1) rows, or orthogonal blocks of `dim` rows
    whose norms are drawn like those of Gaussian vectors (so each row is still N(0, I))."""
    rng = np.random.default_rng(seed)
    if not orthogonal:
        return rng.normal(size=(num_features, dim)).astype("float32")
    blocks = []
    for _ in range(-(-num_features // dim)):
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        blocks.append(q.T)
    directions = np.concatenate(blocks)[:num_features]
    norms = np.linalg.norm(rng.normal(size=(num_features, dim)), axis=1, keepdims=True)
    return (directions * norms).astype("float32")


def positive_features(x, projection, is_query):
    """phi(x) [batch, length, heads, m] for x [batch, length, heads, d] and projection [m, d].

    A constant is subtracted inside the exponent for stability: per row for queries, one for
    all keys of a (batch, head); both cancel in the attention's ratio."""
    x = ops.cast(x, "float32")
    logits = ops.einsum("blhd,md->blhm", x, projection)
    logits = logits - ops.sum(x * x, axis=-1, keepdims=True) / 2.0
    if is_query:
        shift = ops.max(logits, axis=-1, keepdims=True)
    else:
        shift = ops.max(logits, axis=(1, 3), keepdims=True)
    m = ops.shape(projection)[0]
    return ops.exp(logits - ops.stop_gradient(shift)) / ops.sqrt(ops.cast(m, "float32"))


def linear_attention(q_features, k_features, v, key_mask=None, causal=False):
    """`phi(Q) phi(K)^T V` row-normalized, in O(length); `key_mask` [batch, length] zeroes keys."""
    v = ops.cast(v, "float32")
    if key_mask is not None:
        k_features = k_features * ops.cast(key_mask, "float32")[:, :, None, None]
    if causal:
        # Running sums over positions: S_t = sum_{s<=t} phi(k_s) v_s^T, z_t = sum phi(k_s).
        states = ops.cumsum(ops.einsum("blhm,blhd->blhmd", k_features, v), axis=1)
        numerator = ops.einsum("blhm,blhmd->blhd", q_features, states)
        denominator = ops.einsum("blhm,blhm->blh", q_features, ops.cumsum(k_features, axis=1))
    else:
        summary = ops.einsum("bkhm,bkhd->bhmd", k_features, v)  # [.., m, d]: no length^2
        numerator = ops.einsum("blhm,bhmd->blhd", q_features, summary)
        denominator = ops.einsum("blhm,bhm->blh", q_features, ops.sum(k_features, axis=1))
    return numerator / ops.maximum(denominator, 1e-30)[..., None]


def quadratic_attention(q_features, k_features, key_mask=None, causal=False):
    """The same attention as explicit probabilities [batch, heads, q_len, k_len] (O(length^2)),
    for inspection and tests."""
    scores = ops.einsum("bqhm,bkhm->bhqk", q_features, k_features)
    if key_mask is not None:
        scores = scores * ops.cast(key_mask, scores.dtype)[:, None, None, :]
    if causal:
        length = ops.shape(scores)[-1]
        scores = scores * ops.cast(ops.tril(ops.ones((length, length))), scores.dtype)
    return scores / ops.maximum(ops.sum(scores, axis=-1, keepdims=True), 1e-30)
