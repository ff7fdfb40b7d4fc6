"""Multi-head attention that owns its key/value cache and its position scheme.

Normalizers (how logits become probabilities), one table entry each:
- `'softmax'`: the standard scaled dot-product attention of "Attention Is All You Need"
  (Vaswani et al., 2017, https://arxiv.org/abs/1706.03762).
- `'softmax_plus'`: entropy-invariant attention from the post "从熵不变性看Attention的Scale操作"
  (https://kexue.fm/archives/8823): the logits of a query row are multiplied by
  `log(max(n, softmax_plus_floor)) / log(softmax_plus_base)`, `n` the number of keys the row may
  see, which is the row's standard probabilities raised to that power and renormalized. The
  attention keeps its sharpness on sequences longer than the training length.
- `'taylor_softmax'`: `exp` replaced by its even-order Taylor polynomial ("Exploring
  Alternatives to Softmax Function", Banerjee et al., 2020, https://arxiv.org/abs/2011.11538;
  see `bert4keras_ext.taylor_softmax`).
Performer's linear-time attention is the subclass `PerformerAttention`.

Position schemes (`bert4keras_ext.layers.position_schemes`): absolute positions live in the
embeddings; `position_scheme='rotary'` rotates queries and keys inside the layer (RoFormer);
`'functional_relative'` adds NEZHA's relative position terms to the logits and the output.

Cache: `layer([x, x, x], cache=(keys, values), cache_index=i, attention_mask=visible)` writes the
new keys and values at slots `i, i+1, ...` of the cache, attends over the whole cache and returns
`(output, (keys, values))`; without `cache_index` the cache is used as it is (cross-attention).
Caches are laid out heads first, `[batch, heads, slots, size]`, the layout the attention's
matrix products read: a slots-first cache would be transposed (copied whole) by XLA at every
decoding step, which made a 3-row step over 320 slots cost 2.7x as much on a CPU.
T5's bucketed relative bias is a separate layer (`RelativePositionBias`, shared by all blocks)
whose output every attention call takes as `attention_bias`. Decoding
(`bert4keras_ext.decoding.CachedModel`) runs a model's own layers this way, so the model graph
is the single source of truth for cached decoding.
"""
import math

import keras
from keras import ops

from bert4keras_ext import arguments
from bert4keras_ext.backend import check_positive_int
from bert4keras_ext.layers.position_schemes import (
    MAX_RELATIVE_DISTANCE,
    check_position_scheme,
    functional_relative,
    rotary,
    rotate_queries_and_keys,
)
from bert4keras_ext.taylor_softmax import check_order, taylor_softmax


def swap_length_and_heads(x):
    """[batch, length, heads, size] <-> [batch, heads, length, size]."""
    return ops.transpose(x, (0, 2, 1, 3))


def softmax_probabilities(layer, logits, visible):
    if visible is not None:
        logits = ops.where(visible, logits, -1e9)
    return ops.softmax(logits, axis=-1)


def taylor_probabilities(layer, logits, visible):
    return taylor_softmax(logits, layer.taylor_order, mask=visible, monotone=layer.taylor_monotone)


def visible_keys(visible, k_len, rank):
    """How many keys each query row may see, float32 with a last axis of 1: counted in the
    boolean `visible` (keys on its last axis), or `k_len` (shape `[1] * rank`) when `visible`
    is None or masks no key individually."""
    if visible is None or ops.shape(visible)[-1] == 1:
        return ops.reshape(ops.cast(k_len, "float32"), (1,) * rank)
    return ops.sum(ops.cast(visible, "float32"), axis=-1, keepdims=True)


def softmax_plus_factor(visible, k_len, floor, base, rank):
    """`log(max(n, floor)) / log(base)` per query row, `n` from `visible_keys`: the factor of
    the entropy-invariant softmax (https://kexue.fm/archives/8823)."""
    n = ops.maximum(visible_keys(visible, k_len, rank), float(floor))
    return ops.log(n) / math.log(base)


# name -> (probabilities from float32 logits, whether keras.ops.dot_product_attention computes it)
NORMALIZERS = {
    "softmax": (softmax_probabilities, True),
    "softmax_plus": (softmax_probabilities, True),
    "taylor_softmax": (taylor_probabilities, False),
}


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention called as `layer([q, k, v], attention_mask=None)`.

    Masks: `attention_mask` is boolean and broadcasts to `[batch, heads, q_len, k_len]` (True =
    may attend). Keras masks on the inputs are honoured: the mask of `v` blocks padded keys and
    the mask of `q` zeroes padded query rows. A row that can see no key returns zeros.

    Without `return_attention_scores` (and without attention dropout while training) a fusable
    normalizer runs `keras.ops.dot_product_attention`, which uses fused kernels on JAX and torch
    GPUs; the entropy-invariant factor is then applied by scaling the query rows. With
    `return_attention_scores=True` the layer returns `[output, probabilities]`, the
    probabilities in float32 with shape `[batch, heads, q_len, k_len]`.

    Decoding with a cache: pass `cache=(keys, values)` (each `[batch, heads, cache_len, size]`)
    and `cache_index` (where the new rows go); `attention_mask` then covers the cache length and
    Keras masks of `k`/`v` are ignored (the cache's validity is in `attention_mask`). The call
    returns `(output, (keys, values))`. `positions` (`[batch|1, length]`, default
    `cache_index + 0..length-1`) are the new tokens' positions for the position scheme;
    `key_positions` (`[batch|1, k_len]`, default: the positions of the keys' rows, 0, 1, ...)
    are those of all keys, which relative schemes compare with the queries'. A `cache` without
    `cache_index` is complete (an encoder's keys and values for cross-attention): `k` and `v`
    are not projected and the call returns the cache unchanged.

    `attention_bias` (float, `[batch|1, heads|1, q_len, k_len]`) is added to the scaled logits,
    e.g. T5's `RelativePositionBias`.

    Example:
    ```python
    x = keras.random.normal((2, 10, 64))
    layer = MultiHeadAttention(heads=4, head_size=16, normalization="softmax_plus")
    y = layer([x, x, x])  # (2, 10, 64)
    ```

    Args:
        heads: number of attention heads.
        head_size: size of each head's values; the concatenated heads have `heads * head_size`.
        out_dim: size of the output projection; defaults to `heads * head_size`.
        key_size: size of each head's queries and keys; defaults to `head_size`.
        use_bias: whether the four projections have biases.
        attention_scale: divide the logits by `sqrt(key_size)`.
        normalization: 'softmax', 'softmax_plus' or 'taylor_softmax'.
        position_scheme: None (absolute positions come with the embeddings), 'rotary' or
            'functional_relative'.
        max_relative_position: 'functional_relative' clips distances to +-this (NEZHA: 64).
        rotary_value: with 'rotary', rotate the values by their positions too (Hugging Face
            RoFormer's `rotary_value`; the output is not rotated back).
        softmax_plus_base: the length at which 'softmax_plus' equals 'softmax' (512).
        softmax_plus_floor: rows seeing fewer keys use this count instead (16).
        taylor_order: even order of the Taylor softmax (2).
        taylor_monotone: use the monotone Taylor softmax.
        attention_dropout: dropout rate on the attention probabilities while training.
        return_attention_scores: also return the attention probabilities.
        kernel_initializer: initializer of the projection kernels.
    """

    def __init__(
        self,
        heads,
        head_size,
        out_dim=None,
        key_size=None,
        use_bias=True,
        attention_scale=True,
        normalization="softmax",
        position_scheme=None,
        max_relative_position=MAX_RELATIVE_DISTANCE,
        rotary_value=False,
        softmax_plus_base=512,
        softmax_plus_floor=16,
        taylor_order=2,
        taylor_monotone=False,
        attention_dropout=None,
        return_attention_scores=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._check_normalization(normalization)
        check_position_scheme(position_scheme)
        max_relative_position = check_positive_int(max_relative_position,
                                                   "max_relative_position")
        if arguments.boolean(rotary_value, "rotary_value") and position_scheme != "rotary":
            raise ValueError(f"`rotary_value=True` needs position_scheme='rotary'; received "
                             f"position_scheme={position_scheme!r}.")
        heads = check_positive_int(heads, "heads")
        head_size = check_positive_int(head_size, "head_size")
        out_dim = None if out_dim is None else check_positive_int(out_dim, "out_dim")
        key_size = None if key_size is None else check_positive_int(key_size, "key_size")
        softmax_plus_base = arguments.real(softmax_plus_base, "softmax_plus_base", above=1)
        softmax_plus_floor = arguments.real(softmax_plus_floor, "softmax_plus_floor", minimum=1)
        taylor_order = check_order(taylor_order, "taylor_order")
        self.heads = heads
        self.head_size = head_size
        self.out_dim = out_dim or heads * head_size
        self.key_size = key_size or head_size
        self.use_bias = use_bias
        self.attention_scale = attention_scale
        self.normalization = normalization
        self.position_scheme = position_scheme
        self.max_relative_position = max_relative_position
        self.rotary_value = bool(rotary_value)
        self.softmax_plus_base = softmax_plus_base
        self.softmax_plus_floor = softmax_plus_floor
        self.taylor_order = taylor_order
        self.taylor_monotone = taylor_monotone
        self.attention_dropout = attention_dropout
        self.return_attention_scores = return_attention_scores
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

        def projection(units, name):
            return keras.layers.Dense(
                units,
                use_bias=use_bias,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.q_dense = projection(heads * self.key_size, "q_dense")
        self.k_dense = projection(heads * self.key_size, "k_dense")
        self.v_dense = projection(heads * head_size, "v_dense")
        self.o_dense = projection(self.out_dim, "o_dense")
        self.dropout = keras.layers.Dropout(attention_dropout or 0.0, dtype=self.dtype_policy)

    def _check_normalization(self, normalization):
        if normalization not in NORMALIZERS:
            hint = " (Performer is the layer PerformerAttention)" if (
                normalization == "performer") else ""
            raise ValueError(
                f"`normalization` must be one of {tuple(NORMALIZERS)}{hint}; received "
                f"{normalization!r}."
            )

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 3
            or any(shape is None or isinstance(shape, int) for shape in input_shape)
        ):
            raise ValueError(
                f"{type(self).__name__} is called on a list `[q, k, v]` of three tensors; "
                f"received input shape {input_shape}."
            )
        q_shape, k_shape, v_shape = (tuple(shape) for shape in input_shape)
        for name, shape in (("q", q_shape), ("k", k_shape), ("v", v_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(
                    f"`{name}` must have shape [batch, length, features] with known features; "
                    f"received {shape}."
                )
        if None not in (k_shape[1], v_shape[1]) and k_shape[1] != v_shape[1]:
            raise ValueError(
                f"`k` and `v` must have the same length; received shapes {k_shape} and {v_shape}."
            )
        self.q_dense.build(q_shape)
        self.k_dense.build(k_shape)
        self.v_dense.build(v_shape)
        self.o_dense.build((*q_shape[:-1], self.heads * self.head_size))

    def call(self, inputs, attention_mask=None, cache=None, cache_index=None, positions=None,
             key_positions=None, attention_bias=None, mask=None, training=None):
        q, k, v = inputs
        if 0 in (q.shape[1], k.shape[1]):
            raise ValueError(f"MultiHeadAttention needs sequences of length >= 1; received q "
                             f"shape {tuple(q.shape)} and k shape {tuple(k.shape)}.")
        q_mask, _, v_mask = mask if mask is not None else (None, None, None)
        qw = self._split_heads(self.q_dense(q), self.key_size)
        if self.position_scheme is not None and positions is None:
            positions = ops.arange(ops.shape(q)[1], dtype="int32")[None]
            if cache_index is not None:
                positions = positions + ops.cast(cache_index, "int32")
        new_cache = None
        if cache is not None and cache_index is None:
            # A cache without an index is complete (cross-attention over an encoder's output):
            # `k` and `v` are not projected again.
            (kw, vw), v_mask = cache, None
            qw, _ = rotate_queries_and_keys(self.position_scheme, qw, qw, positions, positions)
        else:
            kw = self._split_heads(self.k_dense(k), self.key_size)
            vw = self._split_heads(self.v_dense(v), self.head_size)
            # New keys come from the new tokens, so they take the queries' positions.
            qw, kw = rotate_queries_and_keys(self.position_scheme, qw, kw, positions, positions)
            if self.rotary_value:
                vw = rotary(vw, positions)
            kw, vw = swap_length_and_heads(kw), swap_length_and_heads(vw)
        qw = swap_length_and_heads(qw)
        if cache is not None and cache_index is not None:
            start = ops.stack([0, 0, ops.cast(cache_index, "int32"), 0])
            kw = ops.slice_update(cache[0], start, ops.cast(kw, cache[0].dtype))
            vw = ops.slice_update(cache[1], start, ops.cast(vw, cache[1].dtype))
            new_cache, v_mask = (kw, vw), None
        relative = None
        if self.position_scheme == "functional_relative":
            if key_positions is None:
                key_positions = ops.arange(ops.shape(kw)[2], dtype="int32")[None]
            relative = functional_relative(positions, key_positions, self.key_size,
                                           self.max_relative_position)
        visible = self._visible(attention_mask, q_mask, v_mask, qw.shape[2], kw.shape[2])
        # The fused kernel takes slots-first keys and values: a cache would be transposed.
        output, probs = self.attend(qw, kw, vw, visible, training, relative, attention_bias,
                                    fuse=cache is None)
        output = self.o_dense(output)
        result = [output, probs] if self.return_attention_scores else output
        return result if cache is None else (result, new_cache or cache)

    def _split_heads(self, x, size):
        return ops.reshape(x, (-1, ops.shape(x)[1], self.heads, size))

    def attend(self, qw, kw, vw, visible=None, training=None, relative=None, bias=None,
               fuse=True):
        """Attention over projected heads, before the output projection.

        `qw` is [batch, heads, q_len, key_size], `kw` / `vw` [batch, heads, k_len, size],
        `visible` a boolean of rank 4 or None, `relative` NEZHA's relative vectors
        [batch|1, q_len, k_len, key_size] or None and `bias` a float added to the scaled
        logits, [batch|1, heads|1, q_len, k_len] or None (T5's relative position bias).
        `fuse`: whether `keras.ops.dot_product_attention` may run it (see the class docstring).
        Returns the heads concatenated,
        [batch, q_len, heads * head_size], and the probabilities (None unless computed
        explicitly).
        """
        q_len, k_len = ops.shape(qw)[2], ops.shape(kw)[2]
        scale = 1.0 / math.sqrt(self.key_size) if self.attention_scale else 1.0
        factor = self._softmax_plus_factor(visible, k_len) if (
            self.normalization == "softmax_plus") else None
        probabilities, fusable = NORMALIZERS[self.normalization]
        dropping = bool(self.attention_dropout) and bool(training)
        explicit = self.return_attention_scores or dropping or not fusable
        if explicit or not fuse or relative is not None:
            logits = ops.cast(ops.einsum("bhqd,bhkd->bhqk", qw, kw), "float32")
            if relative is not None:
                subscripts, relative = self._relative_operand(relative)
                logits = logits + ops.einsum(f"bhqd,{subscripts}->bhqk",
                                             ops.cast(qw, "float32"), relative)
            logits = logits * scale
            if factor is not None:
                logits = logits * factor
            if bias is not None:
                logits = logits + ops.cast(bias, "float32")
            probs = probabilities(self, logits, visible)
            if self.return_attention_scores:
                probs = self._zero_rows_without_keys(probs, visible)
            dropped = self.dropout(probs, training=training)
            output = ops.einsum("bhqk,bhkd->bqhd", ops.cast(dropped, vw.dtype), vw)
            if relative is not None:
                output = output + ops.cast(ops.einsum(
                    f"bhqk,{subscripts}->bqhd", ops.cast(dropped, "float32"), relative),
                    output.dtype)
        else:
            if factor is not None:  # [B, H, Q, 1], the queries' layout
                qw = qw * ops.cast(factor, qw.dtype)
            if bias is not None:
                bias = ops.cast(bias, qw.dtype)
            output = ops.dot_product_attention(*(swap_length_and_heads(x) for x in (qw, kw, vw)),
                                               bias=bias, mask=visible, scale=scale)
            probs = None
        return self._merge_heads(output, visible, q_len), probs

    @staticmethod
    def _relative_operand(relative):
        """Einsum subscripts and operand for `relative`: one set of vectors for the whole batch
        drops its batch axis (TensorFlow's einsum does not broadcast a batch of 1)."""
        return ("qkd", relative[0]) if relative.shape[0] == 1 else ("bqkd", relative)

    @staticmethod
    def _zero_rows_without_keys(probs, visible):
        """Returned probabilities of query rows that see no key are zero, not uniform."""
        if visible is None:
            return probs
        return probs * ops.cast(ops.any(visible, axis=-1, keepdims=True), probs.dtype)

    def _merge_heads(self, output, visible, q_len):
        """Zeroes rows that see no key (a uniform average on the fused path, 0/0 otherwise)
        and concatenates the heads."""
        if visible is not None:
            has_key = ops.any(visible, axis=-1, keepdims=True)
            output = output * ops.cast(ops.transpose(has_key, (0, 2, 1, 3)), output.dtype)
        return ops.reshape(output, (-1, q_len, self.heads * ops.shape(output)[-1]))

    def _visible(self, attention_mask, q_mask, v_mask, q_len, k_len):
        """Combines all masks into a boolean of rank 4, or None when nothing is masked."""
        visible = None
        if attention_mask is not None:
            dtype = keras.backend.standardize_dtype(attention_mask.dtype)
            if "float" in dtype:
                raise TypeError(
                    f"`attention_mask` must be boolean (True = attend) or 0/1 integers; "
                    f"received {dtype}. An additive float mask (0 = attend, -1e9 = blocked) "
                    f"would be read inverted: pass `mask > -1` instead."
                )
            visible = ops.cast(attention_mask, "bool")
            shape = tuple(ops.shape(visible))
            for axis, length in ((-2, q_len), (-1, k_len)):
                if (len(shape) >= 2 and isinstance(shape[axis], int)
                        and isinstance(length, int) and shape[axis] not in (1, length)):
                    raise ValueError(
                        f"`attention_mask` must broadcast to [batch, heads, q_len={q_len}, "
                        f"k_len={k_len}]; received shape {shape}."
                    )
            if not 2 <= len(shape) <= 4:
                raise ValueError(
                    "`attention_mask` must broadcast to [batch, heads, q_len, k_len]; received "
                    f"shape {shape}."
                )
            while len(ops.shape(visible)) < 4:
                visible = ops.expand_dims(visible, -3)
            heads_axis = ops.shape(visible)[1]
            if isinstance(heads_axis, int) and heads_axis not in (1, self.heads):
                raise ValueError(
                    f"`attention_mask` axis 1 must be 1 or heads={self.heads}; received shape "
                    f"{shape}."
                )
        if v_mask is not None:
            keys = ops.cast(v_mask, "bool")[:, None, None, :]
            visible = keys if visible is None else ops.logical_and(visible, keys)
        if q_mask is not None:
            queries = ops.cast(q_mask, "bool")[:, None, :, None]
            visible = queries if visible is None else ops.logical_and(visible, queries)
        return visible

    def _softmax_plus_factor(self, visible, k_len):
        """The entropy-invariant factor per query row, [B|1, H|1, Q|1, 1]. Query padding is
        ignored here: those rows are zeroed."""
        return softmax_plus_factor(visible, k_len, self.softmax_plus_floor,
                                   self.softmax_plus_base, rank=4)

    def compute_mask(self, inputs, mask=None):
        q_mask = mask[0] if mask is not None else None
        return [q_mask, None] if self.return_attention_scores else q_mask

    def compute_output_shape(self, input_shape):
        q_shape, k_shape = tuple(input_shape[0]), tuple(input_shape[1])
        output_shape = (*q_shape[:-1], self.out_dim)
        if self.return_attention_scores:
            return [output_shape, (q_shape[0], self.heads, q_shape[1], k_shape[1])]
        return output_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "heads": self.heads,
                "head_size": self.head_size,
                "out_dim": self.out_dim,
                "key_size": self.key_size,
                "use_bias": self.use_bias,
                "attention_scale": self.attention_scale,
                "normalization": self.normalization,
                "position_scheme": self.position_scheme,
                "max_relative_position": self.max_relative_position,
                "rotary_value": self.rotary_value,
                "softmax_plus_base": self.softmax_plus_base,
                "softmax_plus_floor": self.softmax_plus_floor,
                "taylor_order": self.taylor_order,
                "taylor_monotone": self.taylor_monotone,
                "attention_dropout": self.attention_dropout,
                "return_attention_scores": self.return_attention_scores,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
