"""How attention learns where tokens are: the position schemes `MultiHeadAttention` can apply.

- `None` (absolute): positions are added to the embeddings before the first layer (BERT's
  learned table, or a sinusoidal table); attention itself is position-blind.
- `'rotary'`: Rotary Position Embedding (RoPE) from "RoFormer: Enhanced Transformer with Rotary
  Position Embedding" (Su et al., 2021, https://arxiv.org/abs/2104.09864) and the post
  "Transformer升级之路：2、博采众长的旋转式位置编码" (https://kexue.fm/archives/8265). Queries and
  keys are rotated pairwise by angles `position * theta_i`, `theta_i = 10000^(-2i / d)`, so
  `<R_m q, R_n k>` depends only on `m - n`: absolute encoding that yields relative attention,
  and a key cached at its own position stays valid for every later query.
- `'functional_relative'`: NEZHA's functional relative positions ("NEZHA: Neural Contextualized
  Representation for Chinese Language Understanding", Wei et al., 2019,
  https://arxiv.org/abs/1909.00204), the relative position representations of Shaw et al.
  ("Self-Attention with Relative Position Representations", https://arxiv.org/abs/1803.02155)
  with a fixed sinusoidal table instead of a learned one. The distance `j - i` of key `j` to
  query `i`, clipped to `[-64, 64]`, picks a vector `r_ij` (row `j - i + 64` of the table
  `sin/cos(row / 10000^(2k / size))`), shared by all heads; the logit gains `q_i . r_ij` and the
  output gains `sum_j p_ij r_ij`.

Rotary acts on the projected heads before the logits, so the fused attention kernels stay
usable; the functional relative scheme adds terms to the logits and the output, so attention
with it runs the explicit path.
"""
import math

from keras import ops

POSITION_SCHEMES = (None, "rotary", "functional_relative")
# NEZHA's clipping distance.
MAX_RELATIVE_DISTANCE = 64


def check_position_scheme(position_scheme):
    if position_scheme not in POSITION_SCHEMES:
        raise ValueError(
            f"`position_scheme` must be one of {POSITION_SCHEMES}; received {position_scheme!r}."
        )


def rotary(x, positions, base=10000.0):
    """Rotates `x` [batch, length, heads, size] by `positions` [batch|1, length] (RoPE).

    Pairs are interleaved as in RoFormer's released code: features (2i, 2i+1) rotate together
    by `position * base^(-2i / size)`.
    """
    size = x.shape[-1]
    if size % 2:
        raise ValueError(f"Rotary positions need an even head size; received {size}.")
    frequencies = ops.exp(ops.arange(size // 2, dtype="float32") * (-2.0 * math.log(base) / size))
    angles = ops.cast(positions, "float32")[..., None, None] * frequencies  # [B, L, 1, size/2]
    cos, sin = ops.cos(angles), ops.sin(angles)
    pairs = ops.reshape(ops.cast(x, "float32"), (*ops.shape(x)[:-1], size // 2, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = ops.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return ops.cast(ops.reshape(rotated, ops.shape(x)), x.dtype)


def sinusoid_table(rows, size):
    """`table[p, 2k] = sin(p / 10000^(2k / size))`, `table[p, 2k + 1] = cos(...)`, float32."""
    frequencies = ops.exp(ops.arange(0, size, 2, dtype="float32") * (-math.log(10000.0) / size))
    angles = ops.arange(rows, dtype="float32")[:, None] * frequencies  # [rows, ceil(size/2)]
    table = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)
    return ops.reshape(table, (rows, -1))[:, :size]


def functional_relative(q_positions, k_positions, size, max_distance=MAX_RELATIVE_DISTANCE):
    """NEZHA's relative vectors `r_ij`, [batch|1, q_len, k_len, size] float32, from positions
    [batch|1, q_len] and [batch|1, k_len]."""
    distance = ops.cast(k_positions, "int32")[:, None, :] - ops.cast(q_positions, "int32")[
        :, :, None]
    rows = ops.clip(distance, -max_distance, max_distance) + max_distance
    return ops.take(sinusoid_table(2 * max_distance + 1, size), rows, axis=0)


def rotate_queries_and_keys(position_scheme, qw, kw, q_positions, k_positions):
    """Queries and keys with a rotating scheme applied (unchanged for other schemes)."""
    if position_scheme == "rotary":
        return rotary(qw, q_positions), rotary(kw, k_positions)
    return qw, kw
