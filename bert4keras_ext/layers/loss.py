"""bert4keras's loss layer (`layers.Loss`, https://github.com/bojone/bert4keras): a loss
computed inside the graph from several tensors."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Loss(keras.layers.Layer):
    """Adds `compute_loss(inputs, mask)` to the model's losses and passes inputs through.

    Subclass it and write `compute_loss`; compile the model without a loss. The layer returns
    the inputs at `output_axis` (an index, a list of indices, or None for all of them).

    Padding masks: bert4keras's models carry Keras masks from their token embedding, and its
    scripts read `mask[i]` (e.g. the mask of the model's output, to average a loss over real
    tokens). Models of this package build their attention masks from the token ids instead,
    so when Keras passes no mask this layer derives bert4keras's: `token_ids != 0` of the
    first integer input of rank 2, given to every input of rank >= 2 with the same length
    axis (statically equal or both unknown); the others get None.

    Integer inputs reach `compute_loss` cast to `floatx`, as bert4keras's Keras 2 inputs were
    float32, so its idioms such as `loss * segment_ids` work unchanged (sparse cross entropy
    casts its targets back to integers).

    Example:
    ```python
    class CrossEntropy(Loss):
        def compute_loss(self, inputs, mask=None):
            y_true, y_pred = inputs
            y_mask = ops.cast(mask[1], "float32")[:, 1:]  # predictions of real tokens
            loss = ops.sparse_categorical_crossentropy(y_true[:, 1:], y_pred[:, :-1])
            return ops.sum(loss * y_mask) / ops.sum(y_mask)

    output = CrossEntropy(output_axis=1)([model.inputs[0], model.outputs[0]])
    trainer = keras.Model(model.inputs, output)
    trainer.compile(optimizer="adam")
    ```

    Args:
        output_axis: which inputs the layer returns (None: all).
    """

    def __init__(self, output_axis=None, **kwargs):
        super().__init__(**kwargs)
        self.output_axis = output_axis
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None or all(m is None for m in _as_list(mask)):
            mask = self.padding_masks(inputs)
        self.add_loss(self.compute_loss(_integers_as_floats(inputs), mask))
        return self._select(inputs)

    def compute_loss(self, inputs, mask=None):
        raise NotImplementedError(f"{type(self).__name__} must define `compute_loss`.")

    @staticmethod
    def padding_masks(inputs):
        """bert4keras's masks for `inputs` (see the class docstring); None without token ids."""
        if not isinstance(inputs, (list, tuple)):
            return None
        token_ids = next((x for x in inputs if len(x.shape) == 2 and _is_integer(x)), None)
        if token_ids is None:
            return [None] * len(inputs)
        valid = ops.not_equal(token_ids, 0)
        return [valid if len(x.shape) >= 2 and x.shape[1] == token_ids.shape[1] else None
                for x in inputs]

    def _select(self, values):
        if self.output_axis is None:
            return values
        if isinstance(self.output_axis, (list, tuple)):
            return [values[i] for i in self.output_axis]
        return values[self.output_axis]

    def compute_output_shape(self, input_shape):
        return self._select(input_shape)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else self._select(mask)

    def get_config(self):
        config = super().get_config()
        config["output_axis"] = self.output_axis
        return config


def _is_integer(x):
    return "int" in keras.backend.standardize_dtype(x.dtype)


def _integers_as_floats(inputs):
    def as_float(x):
        return ops.cast(x, keras.config.floatx()) if _is_integer(x) else x

    if isinstance(inputs, (list, tuple)):
        return [as_float(x) for x in inputs]
    return as_float(inputs)


def _as_list(mask):
    return list(mask) if isinstance(mask, (list, tuple)) else [mask]
