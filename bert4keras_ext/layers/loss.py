"""bert4keras's loss layer (`layers.Loss`, https://github.com/bojone/bert4keras): a loss
computed inside the graph from several tensors."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Loss(keras.layers.Layer):
    """Adds `compute_loss(inputs, mask)` to the model's losses and passes inputs through.

    Subclass it and write `compute_loss`; compile the model without a loss. The layer returns
    the inputs at `output_axis` (an index, a list of indices, or None for all of them).

    Padding masks: `compute_loss` receives one mask per input, bert4keras's `mask[i]` (e.g. the
    mask of the model's output, to average a loss over real tokens). An input that carries a
    Keras mask (every hidden state and head output of `build_transformer_model`'s models does,
    from the token embedding) gives that mask. An input without one (the model's token-id
    inputs, a tensor made by plain ops) gets `token_ids != 0` of the first integer input of
    rank 2 when it has rank >= 2 and the same length axis (statically equal or both
    unknown), else None.

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
        self.add_loss(self.compute_loss(_integers_as_floats(inputs),
                                        self.padding_masks(inputs, mask)))
        return self._select(inputs)

    def compute_loss(self, inputs, mask=None):
        raise NotImplementedError(f"{type(self).__name__} must define `compute_loss`.")

    @staticmethod
    def padding_masks(inputs, mask=None):
        """bert4keras's masks for `inputs` (see the class docstring): the Keras masks given,
        and for inputs without one the padding of the token ids among `inputs`, if any."""
        if not isinstance(inputs, (list, tuple)):
            return mask
        given = list(mask) if isinstance(mask, (list, tuple)) else [None] * len(inputs)
        token_ids = next((x for x in inputs if len(x.shape) == 2 and _is_integer(x)), None)
        valid = None if token_ids is None else ops.not_equal(token_ids, 0)

        def derived(x):
            if valid is None or len(x.shape) < 2 or x.shape[1] != token_ids.shape[1]:
                return None
            return valid

        return [m if m is not None else derived(x) for x, m in zip(inputs, given)]

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

