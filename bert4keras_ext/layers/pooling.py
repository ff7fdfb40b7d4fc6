"""Global average and max pooling over a sequence that leave out padding (the Keras mask).

Source: bert4keras's `GlobalAveragePooling1D` and `GlobalMaxPooling1D`
(https://github.com/bojone/bert4keras), which replaced Keras's so that padding (the Keras mask)
does not enter the mean or the max; these subclasses of Keras's layers do the same under the
same names. A row with no valid step pools to zeros (bert4keras: NaN and -inf).
"""
import keras
from keras import ops


def _step_mask(layer, inputs, mask):
    """The mask as a boolean aligned with `inputs` (steps on axis 1 or 2) and its step axis."""
    channels_last = layer.data_format == "channels_last"
    mask = ops.cast(mask, "bool")
    return (mask[:, :, None] if channels_last else mask[:, None, :]), (1 if channels_last
                                                                       else 2)


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class GlobalAveragePooling1D(keras.layers.GlobalAveragePooling1D):
    """Mean over the steps where the Keras mask is True (Keras's arguments:
    `data_format`, `keepdims`)."""

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        valid, axis = _step_mask(self, inputs, mask)
        total = ops.sum(ops.where(valid, inputs, 0), axis=axis, keepdims=self.keepdims)
        count = ops.sum(ops.cast(valid, inputs.dtype), axis=axis, keepdims=self.keepdims)
        return total / ops.maximum(count, 1)


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class GlobalMaxPooling1D(keras.layers.GlobalMaxPooling1D):
    """Maximum over the steps where the Keras mask is True (Keras's arguments:
    `data_format`, `keepdims`)."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        valid, axis = _step_mask(self, inputs, mask)
        lowest = ops.cast(float("-inf"), inputs.dtype)
        pooled = ops.max(ops.where(valid, inputs, lowest), axis=axis, keepdims=self.keepdims)
        return ops.where(ops.any(valid, axis=axis, keepdims=self.keepdims), pooled, 0)

    def compute_mask(self, inputs, mask=None):
        return None
