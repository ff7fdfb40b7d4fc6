"""bert4keras's loss layer (`layers.Loss`, https://github.com/bojone/bert4keras): a loss
computed inside the graph from several tensors."""
import keras
from keras import ops

from bert4keras_ext import arguments


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Loss(keras.layers.Layer):
    """Adds `compute_loss(inputs, mask)` to the model's losses and passes inputs through.

    Subclass it and write `compute_loss`; compile the model without a loss. The layer returns
    the inputs at `output_axis` (an index, a list of indices, or None for all of them); an
    index outside the inputs is refused when the layer is called.

    Padding masks: `compute_loss` receives one mask per input, bert4keras's `mask[i]` (e.g. the
    mask of the model's output, to average a loss over real tokens). An input that carries a
    Keras mask (every hidden state and head output of `build_transformer_model`'s models does,
    from the token embedding) gives that mask. An input without one (the model's token-id
    inputs, a tensor made by plain ops) gets `token_ids != 0` of the first integer input of
    rank 2 when it has rank >= 2 and the same length axis (statically equal or both
    unknown), else None. So an input of another length (e.g. predictions already shifted by
    one, `y_pred[:, :-1]`) gets None: test `mask[i] is None`, or give that input a Keras mask.
    When `compute_loss` fails while such a mask is None, the error says which input lacks
    its mask and why.

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
        if isinstance(output_axis, (list, tuple)):
            output_axis = [arguments.integer(axis, "output_axis") for axis in output_axis]
        elif output_axis is not None:
            output_axis = arguments.integer(output_axis, "output_axis")
        self.output_axis = output_axis
        self.supports_masking = True

    def call(self, inputs, mask=None):
        masks = self.padding_masks(inputs, mask)
        try:
            loss = self.compute_loss(_integers_as_floats(inputs), masks)
        except (AttributeError, TypeError, ValueError) as error:
            explained = _explained(error, inputs, masks)
            if explained is error:
                raise
            raise explained from error
        self.add_loss(loss)
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

    def _select(self, values, one_input=None):
        if self.output_axis is None:
            return values
        if one_input or (one_input is None and not isinstance(values, (list, tuple))):
            raise ValueError(f"`output_axis` picks among a list of inputs; with one input it "
                             f"must be None; received {self.output_axis!r}.")
        count = len(values)
        axes = self.output_axis if isinstance(self.output_axis, list) else [self.output_axis]
        if not all(-count <= axis < count for axis in axes):
            raise ValueError(f"`output_axis` must index the layer's {count} inputs (in "
                             f"[{-count}, {count})); received {self.output_axis!r}.")
        if isinstance(self.output_axis, list):
            return [values[i] for i in axes]
        return values[self.output_axis]

    def compute_output_shape(self, input_shape):
        # One input's shape is a tuple of dimensions; several inputs give a list of those.
        one_input = all(dim is None or isinstance(dim, int) for dim in input_shape)
        return self._select(input_shape, one_input)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else self._select(mask)

    def get_config(self):
        config = super().get_config()
        config["output_axis"] = self.output_axis
        return config


def _explained(error, inputs, masks):
    """`error` of `compute_loss` with, when it may come from a mask that is None (an input
    of rank >= 2 whose mask could not be derived), a note saying which and why."""
    if not isinstance(inputs, (list, tuple)):
        return error
    missing = [i for i, (x, m) in enumerate(zip(inputs, masks))
               if m is None and len(x.shape) >= 2]
    if not missing:
        return error
    token_ids = [tuple(x.shape) for x in inputs if len(x.shape) == 2 and _is_integer(x)]
    reason = (f"their length axis differs from that of the token ids {token_ids[0]}"
              if token_ids else "no input is integer token ids of rank 2 to derive one from")
    note = (f"This may come from `mask[i]` being None for the inputs {missing} (shapes "
            f"{[tuple(inputs[i].shape) for i in missing]}): they carry no Keras mask and "
            f"{reason}, so no padding mask could be derived. Give them a Keras mask or handle "
            f"`mask[i] is None` in `compute_loss`.")
    try:
        return type(error)(f"{error}\n{note}")
    except TypeError:  # an error class that takes other arguments: keep it as it is
        return error


def _is_integer(x):
    return "int" in keras.backend.standardize_dtype(x.dtype)


def _integers_as_floats(inputs):
    def as_float(x):
        return ops.cast(x, keras.config.floatx()) if _is_integer(x) else x

    if isinstance(inputs, (list, tuple)):
        return [as_float(x) for x in inputs]
    return as_float(inputs)

