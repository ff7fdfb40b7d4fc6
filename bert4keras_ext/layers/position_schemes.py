"""How attention learns where tokens are: the position schemes `MultiHeadAttention` can apply.

- `None` (absolute): positions are added to the embeddings before the first layer (BERT's
  learned table, or a sinusoidal table); attention itself is position-blind.
- `'rotary'`: Rotary Position Embedding (RoPE) from "RoFormer: Enhanced Transformer with Rotary
  Position Embedding" (Su et al., 2021, https://arxiv.org/abs/2104.09864) and the post
  "Transformer升级之路：2、博采众长的旋转式位置编码" (https://kexue.fm/archives/8265). Queries and
  keys are rotated pairwise by angles `position * theta_i`, `theta_i = 10000^(-2i / d)`, so
  `<R_m q, R_n k>` depends only on `m - n`: absolute encoding that yields relative attention,
  and a key cached at its own position stays valid for every later query.

A scheme is a function of the projected heads and their positions; it runs before the logits,
so the fused attention kernels stay usable.
"""
import math

from keras import ops

POSITION_SCHEMES = (None, "rotary")


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


def apply_position_scheme(position_scheme, qw, kw, q_positions, k_positions):
    """Queries and keys with the scheme's position information applied."""
    if position_scheme == "rotary":
        return rotary(qw, q_positions), rotary(kw, k_positions)
    return qw, kw
