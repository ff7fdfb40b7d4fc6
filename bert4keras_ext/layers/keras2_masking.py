"""Keras layers with the mask rules of Keras 2, which bert4keras's models and scripts were
written against (https://github.com/bojone/bert4keras).

Built models carry a padding mask from their token embedding. Two Keras 3 rules would break
bert4keras code on them: a merge layer drops the mask when one input has none (the token
embeddings are added to unmasked segment embeddings), and a `Lambda` warns that it destroys
the mask (scripts take `Lambda(lambda x: x[:, 0])` of the output). These subclasses keep
Keras 2's behaviour.
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Add(keras.layers.Add):
    """`keras.layers.Add` whose output mask keeps the positions every given mask keeps
    (inputs without a mask do not count), as Keras 2's merge layers did.

    Example:
    ```python
    tokens = Embedding(100, 8, mask_zero=True)(token_ids)    # masked where token_ids == 0
    segments = Embedding(2, 8)(segment_ids)                   # no mask
    x = Add()([tokens, segments])                             # keeps the tokens' mask
    ```
    """

    def compute_mask(self, inputs, mask=None):
        given = [m for m in mask or [] if m is not None]
        if not given:
            return None
        combined = ops.cast(given[0], "bool")
        for other in given[1:]:
            combined = ops.logical_and(combined, ops.cast(other, "bool"))
        return combined


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Lambda(keras.layers.Lambda):
    """`keras.layers.Lambda` that accepts a masked input quietly: its output mask is `mask`
    (None, a tensor, or a function of `(inputs, mask)`), as in Keras 2; Keras 3's warns that
    the mask is destroyed whenever `mask` is None.

    Example:
    ```python
    cls = Lambda(lambda x: x[:, 0])(model.output)   # the [CLS] vector, no mask
    ```
    """

    def __init__(self, *args, **kwargs):  # Keras's arguments, unchanged
        super().__init__(*args, **kwargs)
        self.supports_masking = True
