"""Multi-head attention with standard, entropy-invariant ("softmax_plus"), Taylor-softmax or
Performer (linear-time) normalization."""
import math

import keras
from keras import ops

from bert4keras_ext import performer
from bert4keras_ext.backend import check_positive_int
from bert4keras_ext.taylor_softmax import check_order, taylor_softmax

NORMALIZATIONS = ("softmax", "softmax_plus", "taylor_softmax", "performer")


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention called as `layer([q, k, v], attention_mask=None)`.

    `normalization='softmax_plus'` is the entropy-invariant attention of SPEC C1: the logits of a
    query row are multiplied by `log(max(n, softmax_plus_floor)) / log(softmax_plus_base)`, where
    `n` is the number of keys that row may see (key padding and `attention_mask` combined). That
    equals raising the row's standard probabilities to that power and renormalizing, so the
    attention keeps its sharpness when sequences grow beyond the length it was trained on.
    `normalization='taylor_softmax'` replaces `exp` by its order-`taylor_order` Taylor
    polynomial (SPEC S3; `taylor_monotone` clamps it below its minimum); it always runs the
    explicit path. `normalization='performer'` approximates softmax attention in linear time with
    `num_random_features` positive orthogonal random features (SPEC S2; a non-trainable weight,
    `redraw_features()` draws new ones); it supports key padding (the Keras mask of `v`) and,
    with `performer_causal=True`, causal attention, but no `attention_mask` (UNILM masks cannot
    be linearized) and no attention dropout; its `return_attention_scores` probabilities are
    the explicit O(n^2) form of the same features.

    Masks: `attention_mask` is boolean and broadcasts to `[batch, heads, q_len, k_len]` (True =
    may attend). Keras masks on the inputs are honoured: the mask of `v` blocks padded keys and
    the mask of `q` zeroes padded query rows. A row that can see no key returns zeros.

    Without `return_attention_scores` (and without attention dropout while training) the layer
    runs `keras.ops.dot_product_attention`, which uses fused kernels on JAX and torch GPUs; the
    entropy-invariant factor is then applied by scaling the query rows. With
    `return_attention_scores=True` it returns `[output, probabilities]`, the probabilities in
    float32 with shape `[batch, heads, q_len, k_len]`.

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
        normalization: 'softmax', 'softmax_plus', 'taylor_softmax' or 'performer'.
        softmax_plus_base: the length at which 'softmax_plus' equals 'softmax' (512).
        softmax_plus_floor: rows seeing fewer keys use this count instead (16).
        taylor_order: even order of the Taylor softmax (2).
        taylor_monotone: use the monotone Taylor softmax.
        num_random_features: Performer's feature count m (256).
        performer_causal: Performer attends to the current and earlier positions only.
        feature_seed: seed of Performer's random features (None: fresh randomness).
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
        softmax_plus_base=512,
        softmax_plus_floor=16,
        taylor_order=2,
        taylor_monotone=False,
        num_random_features=256,
        performer_causal=False,
        feature_seed=None,
        attention_dropout=None,
        return_attention_scores=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"`normalization` must be one of {NORMALIZATIONS}; received {normalization!r}."
            )
        check_positive_int(heads, "heads")
        check_positive_int(head_size, "head_size")
        if softmax_plus_base <= 1 or softmax_plus_floor < 1:
            raise ValueError(
                "`softmax_plus_base` must be > 1 and `softmax_plus_floor` >= 1; received "
                f"{softmax_plus_base!r} and {softmax_plus_floor!r}."
            )
        self.heads = heads
        self.head_size = head_size
        self.out_dim = out_dim or heads * head_size
        self.key_size = key_size or head_size
        self.use_bias = use_bias
        self.attention_scale = attention_scale
        self.normalization = normalization
        self.softmax_plus_base = softmax_plus_base
        self.softmax_plus_floor = softmax_plus_floor
        check_order(taylor_order)
        self.taylor_order = taylor_order
        self.taylor_monotone = taylor_monotone
        check_positive_int(num_random_features, "num_random_features")
        self.num_random_features = num_random_features
        self.performer_causal = performer_causal
        self.feature_seed = feature_seed
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

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 3
            or any(shape is None or isinstance(shape, int) for shape in input_shape)
        ):
            raise ValueError(
                "MultiHeadAttention is called on a list `[q, k, v]` of three tensors; "
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
        if self.normalization == "performer":
            # Saved with the weights, so a reloaded layer attends with the same features.
            self.random_features = self.add_weight(
                shape=(self.num_random_features, self.key_size), trainable=False,
                name="random_features",
                initializer=keras.initializers.Constant(performer.gaussian_features(
                    self.num_random_features, self.key_size, self.feature_seed)),
            )

    def redraw_features(self, seed=None):
        """New random features for 'performer' (e.g. every few hundred training steps)."""
        self.random_features.assign(performer.gaussian_features(
            self.num_random_features, self.key_size, seed))

    def call(self, inputs, attention_mask=None, mask=None, training=None):
        q, k, v = inputs
        if self.normalization == "performer" and attention_mask is not None:
            raise ValueError(
                "normalization='performer' supports key padding (the Keras mask of `v`) and "
                "performer_causal=True only; an `attention_mask` (such as UNILM's) cannot be "
                "linearized."
            )
        q_mask, _, v_mask = mask if mask is not None else (None, None, None)
        q_len, k_len = ops.shape(q)[1], ops.shape(k)[1]
        qw = ops.reshape(self.q_dense(q), (-1, q_len, self.heads, self.key_size))
        kw = ops.reshape(self.k_dense(k), (-1, k_len, self.heads, self.key_size))
        vw = ops.reshape(self.v_dense(v), (-1, k_len, self.heads, self.head_size))
        visible = self._visible(attention_mask, q_mask, v_mask)
        output, probs = self.attend(qw, kw, vw, visible, training)
        output = self.o_dense(output)
        if self.return_attention_scores:
            return [output, probs]
        return output

    def attend(self, qw, kw, vw, visible=None, training=None):
        """Attention over projected heads, before the output projection.

        `qw` is [batch, q_len, heads, key_size], `kw` / `vw` [batch, k_len, heads, size] (for
        instance a key/value cache) and `visible` a boolean of rank 4 or None. Returns the
        heads concatenated, [batch, q_len, heads * head_size], and the probabilities (None
        unless computed explicitly).
        """
        q_len, k_len = ops.shape(qw)[1], ops.shape(kw)[1]
        scale = 1.0 / math.sqrt(self.key_size) if self.attention_scale else 1.0
        if self.normalization == "softmax_plus":
            factor = self._softmax_plus_factor(visible, k_len)
        else:
            factor = None

        dropping = bool(self.attention_dropout) and bool(training)
        explicit = self.normalization == "taylor_softmax"
        if self.normalization == "performer":
            output, probs = self._attend_linearly(qw, kw, vw, visible)
        elif self.return_attention_scores or dropping or explicit:
            output, probs = self._attend_explicitly(qw, kw, vw, visible, scale, factor, training)
        else:
            if factor is not None:
                # [B, H, Q, 1] -> [B, Q, H, 1], the query's layout.
                qw = qw * ops.cast(ops.transpose(factor, (0, 2, 1, 3)), qw.dtype)
            output = ops.dot_product_attention(qw, kw, vw, mask=visible, scale=scale)
            probs = None
        if visible is not None:
            # Rows with no visible key would be a uniform average (fused path) or 0/0.
            has_key = ops.any(visible, axis=-1, keepdims=True)
            output = output * ops.cast(ops.transpose(has_key, (0, 2, 1, 3)), output.dtype)
        return ops.reshape(output, (-1, q_len, self.heads * self.head_size)), probs

    def _attend_linearly(self, qw, kw, vw, visible):
        if self.attention_scale:  # exp(q.k / sqrt(d)): scale both sides by d^(-1/4)
            qw, kw = qw / self.key_size**0.25, kw / self.key_size**0.25
        q_features = performer.positive_features(qw, self.random_features, is_query=True)
        k_features = performer.positive_features(kw, self.random_features, is_query=False)
        key_mask = None if visible is None else ops.any(visible, axis=(1, 2))
        output = performer.linear_attention(q_features, k_features, vw, key_mask,
                                            self.performer_causal)
        probs = None
        if self.return_attention_scores:
            probs = performer.quadratic_attention(q_features, k_features, key_mask,
                                                  self.performer_causal)
            if visible is not None:
                probs = probs * ops.cast(ops.any(visible, axis=-1, keepdims=True), probs.dtype)
        return ops.cast(output, vw.dtype), probs

    def _visible(self, attention_mask, q_mask, v_mask):
        """Combines all masks into a boolean of rank 4, or None when nothing is masked."""
        visible = None
        if attention_mask is not None:
            visible = ops.cast(attention_mask, "bool")
            shape = tuple(ops.shape(visible))
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
        """`log(max(n, floor)) / log(base)` per query row, shape [B|1, H|1, Q|1, 1], float32.

        `n` counts the keys a row may see. Query padding is ignored here: those rows are zeroed.
        """
        if visible is None or ops.shape(visible)[-1] == 1:
            n = ops.reshape(ops.cast(k_len, "float32"), (1, 1, 1, 1))
        else:
            n = ops.sum(ops.cast(visible, "float32"), axis=-1, keepdims=True)
        n = ops.maximum(n, float(self.softmax_plus_floor))
        return ops.log(n) / math.log(self.softmax_plus_base)

    def _attend_explicitly(self, qw, kw, vw, visible, scale, factor, training):
        logits = ops.einsum("bqhd,bkhd->bhqk", qw, kw)
        logits = ops.cast(logits, "float32") * scale
        if factor is not None:
            logits = logits * factor
        if self.normalization == "taylor_softmax":
            probs = taylor_softmax(logits, self.taylor_order, mask=visible,
                                   monotone=self.taylor_monotone)
        else:
            if visible is not None:
                logits = ops.where(visible, logits, -1e9)
            probs = ops.softmax(logits, axis=-1)
        if visible is not None and self.return_attention_scores:
            probs = probs * ops.cast(ops.any(visible, axis=-1, keepdims=True), probs.dtype)
        dropped = self.dropout(probs, training=training)
        output = ops.einsum("bhqk,bkhd->bqhd", ops.cast(dropped, vw.dtype), vw)
        return output, probs

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
                "softmax_plus_base": self.softmax_plus_base,
                "softmax_plus_floor": self.softmax_plus_floor,
                "taylor_order": self.taylor_order,
                "taylor_monotone": self.taylor_monotone,
                "num_random_features": self.num_random_features,
                "performer_causal": self.performer_causal,
                "feature_seed": self.feature_seed,
                "attention_dropout": self.attention_dropout,
                "return_attention_scores": self.return_attention_scores,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
