"""Gated Attention Unit (GAU): one layer that replaces attention plus feed-forward.

Sources: "Transformer Quality in Linear Time" (Hua et al., 2022,
https://arxiv.org/abs/2202.10447), the post "FLASH：可能是近来最有意思的高效Transformer设计"
(https://kexue.fm/archives/8934) and bert4keras's `GatedAttentionUnit`
(https://github.com/bojone/bert4keras), whose arguments, weights and outputs this layer keeps.

`[u, v, z] = activation(x W + b)` (`u`, `v` of `units`, `z` of `key_size`), queries and keys
are two cheap affine maps of the shared `z` (`ScaleOffset`), `A = normalize(q k^T / sqrt(
key_size))` with one head, and the output is `(u * (A v)) W_o + b_o`. The paper's
normalization is `'squared_relu'`: `relu(logits)^2 / n`, `n` the number of keys a row may see;
`'softmax'` and the entropy-invariant `'softmax_plus'` (https://kexue.fm/archives/8823) are the
alternatives bert4keras offers.
"""
import math

import keras
from keras import ops

from bert4keras_ext import activations
from bert4keras_ext.backend import check_positive_int
from bert4keras_ext.layers.attention import softmax_plus_factor, visible_keys
from bert4keras_ext.layers.position_schemes import rotary
from bert4keras_ext.layers.scale_offset import ScaleOffset

NORMALIZATIONS = ("squared_relu", "softmax", "softmax_plus")
POSITION_SCHEMES = (None, "rotary")


def _rotated(x):
    """`x` `[batch, length, size]` rotated by RoPE at positions 0, 1, ..."""
    positions = ops.arange(ops.shape(x)[1], dtype="int32")[None]
    return rotary(x[:, :, None], positions)[:, :, 0]


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class GatedAttentionUnit(keras.layers.Layer):
    """GAU called as `layer(x)` (`self_attention=True`) or `layer([q, k, v])`.

    bert4keras passes extra inputs positionally (`a_bias=True` adds an attention bias input,
    `p_bias='rotary'` a sinusoidal input); here they are keywords and a constructor argument,
    as for `MultiHeadAttention`: `attention_mask=` (boolean, True = may attend, broadcast to
    `[batch, q_len, k_len]`), `attention_bias=` (float, added to the scaled logits) and
    `position_scheme='rotary'` (queries and keys rotated by their positions 0, 1, ...; queries
    and keys must then have the same length for the rotation to mean relative positions).

    Masks: the Keras mask of `x` (of `v` for `[q, k, v]`) blocks padded keys; padded query rows
    are computed like the others, as in bert4keras (bert4keras takes the key mask from its
    first input, which for `[q, k, v]` is the query's). A row that sees no key returns the
    output projection of zeros. The output carries the Keras mask of `x` (of `q`).

    Example:
    ```python
    x = keras.random.normal((2, 10, 64))
    y = GatedAttentionUnit(units=128, key_size=32)(x)  # (2, 10, 64)
    ```

    Args:
        units: size of `u` and `v` (the paper: twice the model size).
        key_size: size of the shared query/key projection.
        activation: activation of the input projections ('swish').
        use_bias: biases of the projections and offsets of the query/key maps.
        normalization: 'squared_relu' (the paper's), 'softmax' or 'softmax_plus'.
        self_attention: called on `x` (True) or on `[q, k, v]`.
        attention_scale: divide the logits by `sqrt(key_size)`.
        attention_dropout: dropout rate on the attention weights while training.
        kernel_initializer: initializer of the projection kernels.
        position_scheme: None or 'rotary' (bert4keras: `p_bias='rotary'` at call time).

    Weights, in bert4keras's order: self-attention `i_dense` (`[dim, 2 * units + key_size]`),
    `q_scaleoffset`, `k_scaleoffset` (`beta`, `gamma`), `o_dense`; cross attention `uq_dense`,
    `k_dense`, `v_dense`, `o_dense`.
    """

    def __init__(self, units, key_size, activation="swish", use_bias=True,
                 normalization="squared_relu", self_attention=True, attention_scale=True,
                 attention_dropout=None, kernel_initializer="glorot_uniform",
                 position_scheme=None, **kwargs):
        super().__init__(**kwargs)
        units = check_positive_int(units, "units")
        key_size = check_positive_int(key_size, "key_size")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"`normalization` must be one of {NORMALIZATIONS}; received "
                             f"{normalization!r}.")
        if position_scheme not in POSITION_SCHEMES:
            raise ValueError(f"`position_scheme` must be one of {POSITION_SCHEMES}; received "
                             f"{position_scheme!r}.")
        self.units = units
        self.key_size = key_size
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.normalization = normalization
        self.self_attention = self_attention
        self.attention_scale = attention_scale
        self.attention_dropout = attention_dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.position_scheme = position_scheme
        self.supports_masking = True
        self.dropout = keras.layers.Dropout(attention_dropout or 0.0, dtype=self.dtype_policy)

    def _dense(self, units, name, activation=None):
        return keras.layers.Dense(units, activation=activation, use_bias=self.use_bias,
                                  kernel_initializer=self.kernel_initializer,
                                  dtype=self.dtype_policy, name=name)

    def _shapes(self, input_shape):
        """`(x_shape,)` or `(q_shape, k_shape, v_shape)`, checked."""
        count = 1 if self.self_attention else 3
        listed = isinstance(input_shape, (list, tuple)) and all(
            isinstance(shape, (list, tuple)) or shape is None for shape in input_shape)
        shapes = [tuple(shape) for shape in input_shape] if listed else [tuple(input_shape)]
        if len(shapes) != count or any(len(shape) != 3 or shape[-1] is None
                                       for shape in shapes):
            expected = "`x`" if self.self_attention else "a list `[q, k, v]`"
            raise ValueError(
                f"GatedAttentionUnit(self_attention={self.self_attention}) is called on "
                f"{expected} of [batch, length, features] tensors with known features; received "
                f"input shape {input_shape}.")
        return shapes

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        if self.self_attention:
            self.i_dense = self._dense(2 * self.units + self.key_size, "i_dense",
                                       self.activation)
            self.i_dense.build(shapes[0])
            self.q_scaleoffset = ScaleOffset(offset=self.use_bias, dtype=self.dtype_policy,
                                             name="q_scaleoffset")
            self.k_scaleoffset = ScaleOffset(offset=self.use_bias, dtype=self.dtype_policy,
                                             name="k_scaleoffset")
            for scale_offset in (self.q_scaleoffset, self.k_scaleoffset):
                scale_offset.build((*shapes[0][:-1], self.key_size))
        else:
            self.uq_dense = self._dense(self.units + self.key_size, "uq_dense", self.activation)
            self.k_dense = self._dense(self.key_size, "k_dense", self.activation)
            self.v_dense = self._dense(self.units, "v_dense", self.activation)
            for dense, shape in zip((self.uq_dense, self.k_dense, self.v_dense), shapes):
                dense.build(shape)
        self.o_dense = self._dense(shapes[0][-1], "o_dense")
        self.o_dense.build((*shapes[0][:-1], self.units))

    def call(self, inputs, attention_mask=None, attention_bias=None, mask=None, training=None):
        if self.self_attention:
            projected = self.i_dense(inputs)
            u = projected[..., :self.units]
            v = projected[..., self.units:2 * self.units]
            shared = projected[..., 2 * self.units:]
            q, k = self.q_scaleoffset(shared), self.k_scaleoffset(shared)
            key_mask = mask
        else:
            q_in, k_in, v_in = inputs
            projected = self.uq_dense(q_in)
            u, q = projected[..., :self.units], projected[..., self.units:]
            k, v = self.k_dense(k_in), self.v_dense(v_in)
            key_mask = mask[2] if mask is not None else None
        if self.position_scheme == "rotary":
            q, k = _rotated(q), _rotated(k)
        logits = ops.cast(ops.einsum("bmd,bnd->bmn", q, k), "float32")
        if self.attention_scale:
            logits = logits / math.sqrt(self.key_size)
        if attention_bias is not None:
            logits = logits + ops.cast(attention_bias, "float32")
        weights = self._normalize(logits, self._visible(attention_mask, key_mask))
        weights = self.dropout(ops.cast(weights, self.compute_dtype), training=training)
        return self.o_dense(u * ops.einsum("bmn,bnd->bmd", weights, v))

    def _visible(self, attention_mask, key_mask):
        """Boolean `[batch|1, q_len|1, k_len]` of the pairs that may attend, or None."""
        visible = None
        if attention_mask is not None:
            if "float" in keras.backend.standardize_dtype(attention_mask.dtype):
                raise TypeError(
                    "`attention_mask` must be boolean (True = attend) or 0/1 integers; received "
                    f"{attention_mask.dtype}. Pass an additive float mask as `attention_bias`.")
            visible = ops.cast(attention_mask, "bool")
            if len(visible.shape) == 2:
                visible = visible[None]
            if len(visible.shape) != 3:
                raise ValueError("`attention_mask` must broadcast to [batch, q_len, k_len]; "
                                 f"received shape {tuple(visible.shape)}.")
        if key_mask is not None:
            keys = ops.cast(key_mask, "bool")[:, None, :]
            visible = keys if visible is None else ops.logical_and(visible, keys)
        return visible

    def _normalize(self, logits, visible):
        """Attention weights from float32 logits; blocked pairs get 0."""
        k_len = ops.shape(logits)[-1]
        if self.normalization == "squared_relu":
            weights = ops.square(ops.relu(logits)) / ops.maximum(
                visible_keys(visible, k_len, rank=3), 1.0)
            return weights if visible is None else ops.where(visible, weights, 0.0)
        if self.normalization == "softmax_plus":
            logits = logits * softmax_plus_factor(visible, k_len, floor=16, base=512, rank=3)
        if visible is None:
            return ops.softmax(logits, axis=-1)
        weights = ops.softmax(ops.where(visible, logits, -1e9), axis=-1)
        # Rows that see no key get zeros, not a uniform average of blocked keys.
        return weights * ops.cast(ops.any(visible, axis=-1, keepdims=True), weights.dtype)

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            return mask[0]
        return mask

    def compute_output_shape(self, input_shape):
        return self._shapes(input_shape)[0]

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "key_size": self.key_size,
            "activation": activations.name_of(self.activation),
            "use_bias": self.use_bias,
            "normalization": self.normalization,
            "self_attention": self.self_attention,
            "attention_scale": self.attention_scale,
            "attention_dropout": self.attention_dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "position_scheme": self.position_scheme,
        })
        return config
