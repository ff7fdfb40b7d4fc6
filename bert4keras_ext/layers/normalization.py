"""Layer normalization, optionally conditioned on a vector (Conditional LayerNorm).

Source: the post "基于Conditional Layer Normalization的条件文本生成"
(https://kexue.fm/archives/7124): gamma and beta are offset by Dense projections
(zero-initialized) of a condition vector."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class LayerNormalization(keras.layers.Layer):
    """LayerNorm over the last axis; with `conditional=True` called on `[x, cond]`.

    Conditional LayerNorm shifts the gain and bias by projections of a condition vector `c`
    (shape `[batch, cond_size]`, broadcast over the sequence):
    `gamma(c) = gamma + W_gamma h(c)` and `beta(c) = beta + W_beta h(c)`, with
    `h(c) = hidden_activation(W_h c)` when `hidden_units` is set, else `h(c) = c`. `W_gamma`
    and `W_beta` start at zero, so at initialization the layer is exactly plain LayerNorm and a
    pretrained model is unchanged until training moves them.

    Statistics are computed in float32 under mixed precision; the output has the layer's compute
    dtype. The Keras mask of `x` passes through.

    Example:
    ```python
    x = keras.random.normal((2, 10, 64))
    label = keras.random.normal((2, 8))
    y = LayerNormalization(conditional=True, hidden_units=16)([x, label])  # (2, 10, 64)
    ```

    Args:
        conditional: whether the layer takes a condition as second input.
        hidden_units: size of the optional projection `h` of the condition (None: no projection).
        hidden_activation: activation of that projection.
        hidden_initializer: kernel initializer of that projection.
        center: learn a bias `beta`.
        scale: learn a gain `gamma`.
        zero_mean: subtract the mean; False gives RMSNorm (T5, RoFormer-V2: "Root Mean Square
            Layer Normalization", https://arxiv.org/abs/1910.07467).
        epsilon: added to the variance (BERT uses 1e-12).
    """

    def __init__(
        self,
        conditional=False,
        hidden_units=None,
        hidden_activation="linear",
        hidden_initializer="glorot_uniform",
        center=True,
        scale=True,
        epsilon=1e-12,
        zero_mean=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.conditional = conditional
        self.hidden_units = hidden_units
        self.hidden_activation = keras.activations.get(hidden_activation)
        self.hidden_initializer = keras.initializers.get(hidden_initializer)
        self.center = center
        self.scale = scale
        self.epsilon = epsilon
        self.zero_mean = zero_mean
        self.supports_masking = True
        # Gamma and beta stay float32 under mixed precision; the call casts explicitly.
        self.autocast = False

    def build(self, input_shape):
        if self.conditional:
            x_shape, cond_shape = self._split_shapes(input_shape)
        else:
            x_shape = tuple(input_shape)
        dim = x_shape[-1]
        if dim is None:
            raise ValueError(f"The last axis of `x` must be known; received shape {x_shape}.")
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
        if self.center:
            self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")
        if not self.conditional:
            return
        if self.hidden_units:
            self.hidden_dense = keras.layers.Dense(
                self.hidden_units,
                activation=self.hidden_activation,
                use_bias=False,
                kernel_initializer=self.hidden_initializer,
                dtype=self.dtype_policy,
                name="hidden_dense",
            )
            self.hidden_dense.build(cond_shape)
            cond_shape = (cond_shape[0], self.hidden_units)

        def zero_projection(name):
            dense = keras.layers.Dense(
                dim, use_bias=False, kernel_initializer="zeros", dtype=self.dtype_policy, name=name
            )
            dense.build(cond_shape)
            return dense

        if self.scale:
            self.gamma_dense = zero_projection("gamma_dense")
        if self.center:
            self.beta_dense = zero_projection("beta_dense")

    def _split_shapes(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or any(shape is None or isinstance(shape, int) for shape in input_shape)
        ):
            raise ValueError(
                "A conditional LayerNormalization is called on `[x, cond]`; received input "
                f"shape {input_shape}."
            )
        x_shape, cond_shape = tuple(input_shape[0]), tuple(input_shape[1])
        if len(cond_shape) != 2 or cond_shape[-1] is None:
            raise ValueError(
                "`cond` must have shape [batch, cond_size] with a known cond_size; received "
                f"{cond_shape} (x has shape {x_shape})."
            )
        if None not in (x_shape[0], cond_shape[0]) and x_shape[0] != cond_shape[0]:
            raise ValueError(
                f"`x` and `cond` must have the same batch size; received shapes {x_shape} and "
                f"{cond_shape}."
            )
        return x_shape, cond_shape

    def call(self, inputs):
        if self.conditional:
            x, cond = inputs
        else:
            x = inputs
        x32 = ops.cast(x, "float32")
        if self.zero_mean:
            mean, variance = ops.moments(x32, axes=[-1], keepdims=True)
            x32 = x32 - mean
        else:
            variance = ops.mean(ops.square(x32), axis=-1, keepdims=True)
        outputs = x32 * ops.rsqrt(variance + self.epsilon)
        gamma = self.gamma if self.scale else None
        beta = self.beta if self.center else None
        if self.conditional:
            h = self.hidden_dense(cond) if self.hidden_units else cond
            # [batch, dim] -> [batch, 1, ..., 1, dim], aligned with x.
            aligned = (-1,) + (1,) * (len(ops.shape(x)) - 2) + (ops.shape(x)[-1],)
            if self.scale:
                gamma = gamma + ops.reshape(ops.cast(self.gamma_dense(h), "float32"), aligned)
            if self.center:
                beta = beta + ops.reshape(ops.cast(self.beta_dense(h), "float32"), aligned)
        if gamma is not None:
            outputs = outputs * gamma
        if beta is not None:
            outputs = outputs + beta
        return ops.cast(outputs, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        if self.conditional and mask is not None:
            return mask[0]
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0]) if self.conditional else tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "conditional": self.conditional,
                "hidden_units": self.hidden_units,
                "hidden_activation": keras.activations.serialize(self.hidden_activation),
                "hidden_initializer": keras.initializers.serialize(self.hidden_initializer),
                "center": self.center,
                "scale": self.scale,
                "zero_mean": self.zero_mean,
                "epsilon": self.epsilon,
            }
        )
        return config
