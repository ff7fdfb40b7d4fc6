"""How attention learns where tokens are: the position schemes `MultiHeadAttention` can apply.

- `None` (absolute): positions are added to the embeddings before the first layer (BERT's
  learned table, or a sinusoidal table); attention itself is position-blind.
- `'rotary'`: Rotary Position Embedding (RoPE) from "RoFormer: Enhanced Transformer with Rotary
  Position Embedding" (Su et al., 2021, https://arxiv.org/abs/2104.09864) and the post
  "Transformer升级之路：2、博采众长的旋转式位置编码" (https://kexue.fm/archives/8265). Queries and
  keys are rotated pairwise by angles `position * theta_i`, `theta_i = 10000^(-2i / d)`, so
  `<R_m q, R_n k>` depends only on `m - n`: absolute encoding that yields relative attention,
  and a key cached at its own position stays valid for every later query. Hugging Face's
  RoFormer may rotate the values by their positions too (`rotary_value`).
- `'functional_relative'`: NEZHA's functional relative positions ("NEZHA: Neural Contextualized
  Representation for Chinese Language Understanding", Wei et al., 2019,
  https://arxiv.org/abs/1909.00204), the relative position representations of Shaw et al.
  ("Self-Attention with Relative Position Representations", https://arxiv.org/abs/1803.02155)
  with a fixed sinusoidal table instead of a learned one. The distance `j - i` of key `j` to
  query `i`, clipped to `[-m, m]` (`m`: NEZHA's `max_relative_position`, 64 in its models),
  picks a vector `r_ij` (row `j - i + m` of the table `sin/cos(row / 10000^(2k / size))`),
  shared by all heads; the logit gains `q_i . r_ij` and the output gains `sum_j p_ij r_ij`.

Rotary acts on the projected heads before the logits, so the fused attention kernels stay
usable; the functional relative scheme adds terms to the logits and the output, so attention
with it runs the explicit path.
"""
import math

from keras import ops

POSITION_SCHEMES = (None, "rotary", "functional_relative")
# NEZHA's clipping distance in its released models.
MAX_RELATIVE_DISTANCE = 64


def check_position_scheme(position_scheme):
    if position_scheme not in POSITION_SCHEMES:
        raise ValueError(
            f"`position_scheme` must be one of {POSITION_SCHEMES}; received {position_scheme!r}."
        )


def frequencies(size, base=10000.0):
    """`theta_i = base^(-2i / size)` for each feature pair `i` (float32, `ceil(size / 2)`)."""
    return ops.exp(ops.arange(0, size, 2, dtype="float32") * (-math.log(base) / size))


def sinusoids(positions, size):
    """Interleaved `[sin(p theta_0), cos(p theta_0), sin(p theta_1), ...]` of `positions`,
    shape `[*positions.shape, size]`, float32 (the sinusoidal table of "Attention Is All You
    Need" read at `positions`)."""
    angles = ops.cast(positions, "float32")[..., None] * frequencies(size)
    pairs = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    return ops.reshape(pairs, (*ops.shape(angles)[:-1], 2 * ((size + 1) // 2)))[..., :size]


def rotary(x, positions, base=10000.0):
    """Rotates `x` [batch, length, heads, size] by `positions` [batch|1, length] (RoPE).

    Pairs are interleaved as in RoFormer's released code: features (2i, 2i+1) rotate together
    by `position * base^(-2i / size)`.
    """
    size = x.shape[-1]
    if size % 2:
        raise ValueError(f"Rotary positions need an even head size; received {size}.")
    angles = ops.cast(positions, "float32")[..., None, None] * frequencies(size, base)
    # angles: [B, L, 1, size/2]
    cos, sin = ops.cos(angles), ops.sin(angles)
    pairs = ops.reshape(ops.cast(x, "float32"), (*ops.shape(x)[:-1], size // 2, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = ops.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return ops.cast(ops.reshape(rotated, ops.shape(x)), x.dtype)


def functional_relative(q_positions, k_positions, size, max_distance=MAX_RELATIVE_DISTANCE):
    """NEZHA's relative vectors `r_ij`, [batch|1, q_len, k_len, size] float32, from positions
    [batch|1, q_len] and [batch|1, k_len]."""
    distance = ops.cast(k_positions, "int32")[:, None, :] - ops.cast(q_positions, "int32")[
        :, :, None]
    # The vector of a distance is row `distance + max_distance` of NEZHA's sinusoidal table.
    return sinusoids(ops.clip(distance, -max_distance, max_distance) + max_distance, size)


def rotate_queries_and_keys(position_scheme, qw, kw, q_positions, k_positions):
    """Queries and keys with a rotating scheme applied (unchanged for other schemes)."""
    if position_scheme == "rotary":
        return rotary(qw, q_positions), rotary(kw, k_positions)
    return qw, kw
