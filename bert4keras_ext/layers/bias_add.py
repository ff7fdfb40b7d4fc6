"""A trainable bias on the last axis (BERT's MLM output bias)."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class BiasAdd(keras.layers.Layer):
    """Adds a learned vector, initialized to zero, to the last axis of its input."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, inputs):
        return ops.add(inputs, self.bias)
