"""The position-wise feed-forward block of a Transformer ("Attention Is All You Need",
https://arxiv.org/abs/1706.03762), with the gated form of T5.1.1 ("GLU Variants Improve
Transformer", https://arxiv.org/abs/2002.05202)."""
import keras

from bert4keras_ext import activations
from bert4keras_ext.backend import check_positive_int


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class FeedForward(keras.layers.Layer):
    """`Dense(units, activation)` then `Dense(input features)`, applied at every position.

    `activation='gelu'` is the exact erf form that BERT checkpoints were trained with;
    'gelu_tanh' and 'gelu_sigmoid' name its approximations (`bert4keras_ext.activations`).
    A list of activations makes a gated unit ("GLU Variants Improve Transformer", Shazeer,
    2020, https://arxiv.org/abs/2002.05202): one intermediate Dense per activation, multiplied
    elementwise, e.g. `['gelu', 'linear']` for T5.1.1's gated GELU.

    Example:
    ```python
    y = FeedForward(units=256)(keras.random.normal((2, 10, 64)))  # (2, 10, 64)
    ```

    Args:
        units: size of the intermediate layer.
        activation: activation of the intermediate layer (name or callable), or a list of
            them for a gated unit.
        use_bias: whether both Dense layers have biases.
        kernel_initializer: initializer of both kernels.
    """

    def __init__(
        self, units, activation="gelu", use_bias=True, kernel_initializer="glorot_uniform", **kwargs
    ):
        super().__init__(**kwargs)
        units = check_positive_int(units, "units")
        self.units = units
        self.gated = isinstance(activation, (list, tuple))
        if self.gated and not activation:
            raise ValueError("`activation` must be an activation or a non-empty list of them; "
                             "received [].")
        self.activation = ([activations.get(a) for a in activation] if self.gated
                           else activations.get(activation))
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        # `intermediate_dense`, then `intermediate_dense_1`, ... for the gates.
        self.intermediate_denses = [
            keras.layers.Dense(
                units,
                activation=function,
                use_bias=use_bias,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="intermediate_dense" + (f"_{index}" if index else ""),
            )
            for index, function in enumerate(
                self.activation if self.gated else [self.activation])
        ]
        self.intermediate_dense = self.intermediate_denses[0]
        self.output_dense = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if input_shape[-1] is None:
            raise ValueError(f"The last axis of the input must be known; received {input_shape}.")
        for dense in self.intermediate_denses:
            dense.build(input_shape)
        self.output_dense = keras.layers.Dense(
            input_shape[-1],
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build((*input_shape[:-1], self.units))

    def call(self, inputs):
        hidden = self.intermediate_dense(inputs)
        for gate in self.intermediate_denses[1:]:
            hidden = hidden * gate(inputs)
        return self.output_dense(hidden)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": ([keras.activations.serialize(a) for a in self.activation]
                               if self.gated else keras.activations.serialize(self.activation)),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
