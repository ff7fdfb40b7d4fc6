"""What the sequence-labeling output layers (`ConditionalRandomField`,
`MaximumEntropyMarkovModel`) share, as in bert4keras (https://github.com/bojone/bert4keras).

Such a layer is a loss with weights: called on per-token label scores ("emissions",
`[batch, length, num_labels]`) it returns them unchanged except that padded positions (its
Keras mask) become -inf, and returns no Keras mask. The loss and accuracy methods, given to
`compile`, find the padding again as the positions whose scores are not all finite. The mask
travels inside the scores on purpose: Keras 3's `Loss` applies a Keras mask of `y_pred` to the
per-sample losses these methods return (`[batch]` for the CRF), which does not fit a
`[batch, length]` mask, and predictions saved or passed around keep their padding this way.

Any positions may be padding, not only a tail: the methods first move each row's valid
positions to its front in order (`valid_first`), so a left- or middle-padded row scores as the
sequence of its valid positions.
"""
import keras
from keras import ops

from bert4keras_ext import arguments


def emission_mask(scores):
    """Valid positions of scores a tagging layer returned: those with no -inf, [batch, length]."""
    return ops.all(ops.not_equal(scores, float("-inf")), axis=-1)


def valid_first(mask):
    """For each row, its positions with the valid ones first (in order), then the padding:
    indices `[batch, length]` that turn any padding into right padding."""
    positions = ops.arange(ops.shape(mask)[1], dtype="int32")[None]
    return ops.argsort(ops.where(mask, positions, positions + ops.shape(mask)[1]), axis=1)


def reorder(x, order):
    """`x` [batch, length, ...] with its positions taken in `order` [batch, length]."""
    index = ops.reshape(order, (*ops.shape(order), *([1] * (len(x.shape) - 2))))
    return ops.take_along_axis(x, index, axis=1)


def label_ids(y_true, scores):
    """Integer labels `[batch, length]` from `y_true` of shape `[batch, length]` or
    `[batch, length, 1]` (Keras adds the last axis when it matches ranks)."""
    return ops.reshape(ops.cast(y_true, "int32"), ops.shape(scores)[:-1])


class TaggingLayer(keras.layers.Layer):
    """Base of the tagging layers: masking call, no output mask, transition weights whose
    effective value is `lr_multiplier` times the stored one.

    bert4keras's `lr_multiplier`: the stored weight is drawn from `glorot_uniform` divided by
    the multiplier and the layer uses `lr_multiplier * stored`, so the transitions start as
    drawn while an optimizer moves them faster: `lr_multiplier**2` times for SGD, about
    `lr_multiplier` times for Adam.
    """

    def __init__(self, lr_multiplier=1, **kwargs):
        super().__init__(**kwargs)
        self.lr_multiplier = arguments.real(lr_multiplier, "lr_multiplier", above=0)
        self.supports_masking = True

    def num_labels_of(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} is called on label scores [batch, length, num_labels] "
                f"with a known num_labels; received input shape {input_shape}.")
        return input_shape[-1]

    def add_transition_weight(self, name, shape):
        draw = keras.initializers.GlorotUniform()

        def stored(shape, dtype=None):
            return draw(shape, dtype) / self.lr_multiplier

        return self.add_weight(name=name, shape=shape, initializer=stored)

    def effective(self, weight):
        """The weight as the layer uses it: `lr_multiplier * stored`, float32."""
        try:
            value = ops.cast(weight, "float32")
        except TypeError as error:
            # Keras's JAX trainer detaches the model's weights while it runs and gives metrics
            # only their own state, so a metric that reads a weight finds none.
            raise RuntimeError(
                f"{type(self).__name__} cannot read its weight `{weight.name}` here: Keras's "
                "JAX trainer gives compiled metrics no model weights. Compute this metric on "
                "predictions (`layer.sparse_accuracy(y, model.predict(x))`) or train with the "
                "TensorFlow backend.") from error
        return value * self.lr_multiplier

    def call(self, inputs, mask=None):
        if mask is None:
            return inputs
        return ops.where(ops.cast(mask, "bool")[..., None], inputs,
                         ops.cast(float("-inf"), inputs.dtype))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"lr_multiplier": self.lr_multiplier})
        return config
