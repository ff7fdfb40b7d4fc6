"""An elementwise affine map of the last axis, optionally conditioned on a vector.

Source: bert4keras's `ScaleOffset` (https://github.com/bojone/bert4keras), whose arguments,
weights and outputs this layer keeps; the conditional form is that of the post
"基于Conditional Layer Normalization的条件文本生成" (https://kexue.fm/archives/7124), without
the normalization.
"""
import numbers

import keras
from keras import ops


def _check_factor(value, name):
    if not isinstance(value, (bool, numbers.Number)) and value is not None:
        raise TypeError(f"`{name}` must be True (learned), False/None (none) or a number "
                        f"(fixed); received {value!r}.")


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class ScaleOffset(keras.layers.Layer):
    """`y = x * gamma + beta` on the last axis.

    `scale` / `offset`: True learns `gamma` (ones) / `beta` (zeros); a number uses it as a
    fixed factor / shift; False or None leaves it out. With `conditional=True` the layer is
    called on `[x, cond]` (`cond` `[batch, cond_size]`) and `gamma` / `beta` (learned or fixed)
    are shifted by zero-initialized projections of `h(cond)`, `h` a Dense of `hidden_units`
    with `hidden_activation` when `hidden_units` is set. The Keras mask of `x` passes through.

    Example:
    ```python
    y = ScaleOffset()(keras.random.normal((2, 10, 64)))  # starts as the identity
    ```

    Weights, in bert4keras's order: `beta`, `gamma`, then (conditional) `hidden_dense`,
    `beta_dense`, `gamma_dense` kernels.
    """

    def __init__(self, scale=True, offset=True, conditional=False, hidden_units=None,
                 hidden_activation="linear", hidden_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        _check_factor(scale, "scale")
        _check_factor(offset, "offset")
        self.scale = scale
        self.offset = offset
        self.conditional = conditional
        self.hidden_units = hidden_units
        self.hidden_activation = keras.activations.get(hidden_activation)
        self.hidden_initializer = keras.initializers.get(hidden_initializer)
        self.supports_masking = True

    @staticmethod
    def _used(value):
        return value is not False and value is not None

    def build(self, input_shape):
        if self.conditional:
            if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
                    and all(isinstance(shape, (list, tuple)) for shape in input_shape)):
                raise ValueError("A conditional ScaleOffset is called on `[x, cond]`; received "
                                 f"input shape {input_shape}.")
            x_shape, cond_shape = (tuple(shape) for shape in input_shape)
        else:
            x_shape = tuple(input_shape)
        dim = x_shape[-1]
        if dim is None:
            raise ValueError(f"The last axis of `x` must be known; received shape {x_shape}.")
        if self.offset is True:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")
        if self.scale is True:
            self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
        if not self.conditional:
            return
        if self.hidden_units is not None:
            self.hidden_dense = keras.layers.Dense(
                self.hidden_units, activation=self.hidden_activation, use_bias=False,
                kernel_initializer=self.hidden_initializer, dtype=self.dtype_policy,
                name="hidden_dense")
            self.hidden_dense.build(cond_shape)
            cond_shape = (*cond_shape[:-1], self.hidden_units)

        def zero_projection(name):
            dense = keras.layers.Dense(dim, use_bias=False, kernel_initializer="zeros",
                                       dtype=self.dtype_policy, name=name)
            dense.build(cond_shape)
            return dense

        if self._used(self.offset):
            self.beta_dense = zero_projection("beta_dense")
        if self._used(self.scale):
            self.gamma_dense = zero_projection("gamma_dense")

    def call(self, inputs):
        x = inputs[0] if self.conditional else inputs
        if self.conditional:
            cond = inputs[1]
            if self.hidden_units is not None:
                cond = self.hidden_dense(cond)
            # [batch, size] -> [batch, 1, ..., 1, size], aligned with x.
            cond = ops.reshape(cond, (-1, *([1] * (len(x.shape) - 2)), ops.shape(cond)[-1]))
        if self._used(self.scale):
            gamma = self.gamma if self.scale is True else self.scale
            if self.conditional:
                gamma = gamma + self.gamma_dense(cond)
            x = x * gamma
        if self._used(self.offset):
            beta = self.beta if self.offset is True else self.offset
            if self.conditional:
                beta = beta + self.beta_dense(cond)
            x = x + beta
        return x

    def compute_mask(self, inputs, mask=None):
        if self.conditional and mask is not None:
            return mask[0]
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0]) if self.conditional else tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "scale": self.scale,
            "offset": self.offset,
            "conditional": self.conditional,
            "hidden_units": self.hidden_units,
            "hidden_activation": keras.activations.serialize(self.hidden_activation),
            "hidden_initializer": keras.initializers.serialize(self.hidden_initializer),
        })
        return config
