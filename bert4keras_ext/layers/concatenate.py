"""Concatenation of sequences along time that keeps their Keras masks.

Source: bert4keras's `Concatenate1D` (https://github.com/bojone/bert4keras), written because
Keras's `Concatenate` failed on a masked and an unmasked sequence.
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Concatenate1D(keras.layers.Layer):
    """`[x1, x2, ...]` (each `[batch, length_i, features]`) joined along the length axis.

    The output mask joins the inputs' masks, an unmasked input counting as all valid; no
    input mask gives no output mask.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.concatenate(list(inputs), axis=1)

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        return ops.concatenate(
            [ops.ones(ops.shape(x)[:2], "bool") if m is None else ops.cast(m, "bool")
             for x, m in zip(inputs, mask)], axis=1)

    def compute_output_shape(self, input_shape):
        lengths = [shape[1] for shape in input_shape]
        length = None if None in lengths else sum(lengths)
        return (input_shape[0][0], length, input_shape[0][-1])
