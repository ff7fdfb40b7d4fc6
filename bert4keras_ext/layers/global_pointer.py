"""GlobalPointer and Efficient GlobalPointer: span scores for (nested) named entity recognition.

Sources: the posts "GlobalPointer：用统一的方式处理嵌套和非嵌套NER"
(https://kexue.fm/archives/8373) and "Efficient GlobalPointer：少点参数，多点效果"
(https://kexue.fm/archives/8877), and bert4keras's layers of these names
(https://github.com/bojone/bert4keras), whose arguments, weights and outputs these keep.

Every span `(start m, end n)` of the sequence gets a score per entity type ("head"):
`s_h(m, n) = <q_{h,m}, k_{h,n}> / sqrt(head_size)`, queries and keys projections of the tokens,
rotated by RoPE (`RoPE=True`, the interleaved pairs of `position_schemes.rotary`) so the score
knows the span's length. Efficient GlobalPointer shares one query/key projection across types
and adds per-type start and end biases computed from it:
`s_h(m, n) = <q_m, k_n> / sqrt(head_size) + (w_{h,start} . [q_m; k_m] + w_{h,end} . [q_n; k_n]) / 2`
(bert4keras: `q`, `k` interleaved in one `[.., 2 * head_size]` projection).

Spans with a padded start or end (the Keras mask) and, with `tril_mask=True`, spans ending
before they start score -inf, as bert4keras; train with a loss that skips -inf scores (the
multilabel cross entropy of https://kexue.fm/archives/7359).
"""
import math

import keras
from keras import ops

from bert4keras_ext.backend import check_positive_int
from bert4keras_ext.layers.position_schemes import rotary


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class GlobalPointer(keras.layers.Layer):
    """Span scores `[batch, heads, length, length]` from token features `[batch, length, dim]`.

    Example:
    ```python
    x = keras.random.normal((2, 10, 64))
    scores = GlobalPointer(heads=3, head_size=16)(x)  # (2, 3, 10, 10); score > 0 = entity
    ```

    Args:
        heads: number of entity types.
        head_size: size of each type's queries and keys (even with RoPE).
        RoPE: rotate queries and keys by their positions (bert4keras's name).
        use_bias: whether the projections have biases.
        tril_mask: score spans that end before they start -inf.
        kernel_initializer: initializer of the projection kernels.

    Weights: `dense` (kernel `[dim, heads * 2 * head_size]`, bias), each head's query then key
    side by side.
    """

    def __init__(self, heads, head_size, RoPE=True, use_bias=True, tril_mask=True,
                 kernel_initializer="lecun_normal", **kwargs):
        super().__init__(**kwargs)
        heads = check_positive_int(heads, "heads")
        head_size = check_positive_int(head_size, "head_size")
        if RoPE and head_size % 2:
            raise ValueError(f"RoPE needs an even `head_size`; received {head_size}.")
        self.heads = heads
        self.head_size = head_size
        self.RoPE = RoPE
        self.use_bias = use_bias
        self.tril_mask = tril_mask
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def _projection(self, units, name):
        return keras.layers.Dense(units, use_bias=self.use_bias,
                                  kernel_initializer=self.kernel_initializer,
                                  dtype=self.dtype_policy, name=name)

    def _check_input_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} is called on features [batch, length, dim] with a "
                f"known dim; received input shape {input_shape}.")
        return input_shape

    def build(self, input_shape):
        input_shape = self._check_input_shape(input_shape)
        self.dense = self._projection(self.heads * 2 * self.head_size, "dense")
        self.dense.build(input_shape)

    def _rotated(self, *tensors):
        """The tensors (`[batch, length, heads, size]`) rotated by RoPE when it is on."""
        if not self.RoPE:
            return tensors
        positions = ops.arange(ops.shape(tensors[0])[1], dtype="int32")[None]
        return tuple(rotary(x, positions) for x in tensors)

    def scores(self, inputs):
        """Unmasked span scores `[batch, heads, length, length]`."""
        projected = self.dense(inputs)
        projected = ops.reshape(projected, (-1, ops.shape(projected)[1], self.heads,
                                            2 * self.head_size))
        qw, kw = self._rotated(projected[..., :self.head_size], projected[..., self.head_size:])
        return ops.einsum("bmhd,bnhd->bhmn", qw, kw) / math.sqrt(self.head_size)

    def call(self, inputs, mask=None):
        scores = self.scores(inputs)
        visible = None
        if mask is not None:
            mask = ops.cast(mask, "bool")
            visible = ops.logical_and(mask[:, None, :, None], mask[:, None, None, :])
        if self.tril_mask:
            positions = ops.arange(ops.shape(scores)[-1])
            ordered = positions[:, None] <= positions[None, :]
            visible = ordered if visible is None else ops.logical_and(visible, ordered)
        if visible is None:
            return scores
        return ops.where(visible, scores, ops.cast(float("-inf"), scores.dtype))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.heads, input_shape[1], input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({
            "heads": self.heads,
            "head_size": self.head_size,
            "RoPE": self.RoPE,
            "use_bias": self.use_bias,
            "tril_mask": self.tril_mask,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        })
        return config


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class EfficientGlobalPointer(GlobalPointer):
    """GlobalPointer with one query/key projection shared by all heads plus per-head start
    and end biases: kernels of `2 * head_size * (dim + 2 * heads)` weights instead of
    `2 * head_size * heads * dim`. Same arguments and output as `GlobalPointer`.

    Weights: `p_dense` (kernel `[dim, 2 * head_size]`, bias; queries and keys interleaved),
    `q_dense` (kernel `[2 * head_size, 2 * heads]`, bias; per head an end bias then a start
    bias, interleaved).
    """

    def build(self, input_shape):
        input_shape = self._check_input_shape(input_shape)
        self.p_dense = self._projection(2 * self.head_size, "p_dense")
        self.p_dense.build(input_shape)
        self.q_dense = self._projection(2 * self.heads, "q_dense")
        self.q_dense.build((*input_shape[:-1], 2 * self.head_size))

    def scores(self, inputs):
        projected = self.p_dense(inputs)
        length = ops.shape(projected)[1]
        # Queries and keys interleaved: [q0, k0, q1, k1, ...].
        pairs = ops.reshape(projected, (-1, length, 1, self.head_size, 2))
        qw, kw = self._rotated(pairs[..., 0], pairs[..., 1])
        scores = ops.einsum("bmhd,bnhd->bhmn", qw, kw) / math.sqrt(self.head_size)
        # Per head an end bias then a start bias, interleaved; each [batch, heads, length].
        biases = ops.reshape(self.q_dense(projected), (-1, length, self.heads, 2)) / 2
        ends, starts = (ops.transpose(biases[..., i], (0, 2, 1)) for i in (0, 1))
        return scores + ends[:, :, None, :] + starts[:, :, :, None]
