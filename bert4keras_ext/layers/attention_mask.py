"""A layer that builds a Transformer's attention mask from its token and segment ids."""
import keras

from bert4keras_ext import masks


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class AttentionMask(keras.layers.Layer):
    """Called on `[token_ids, segment_ids]` (or `token_ids` alone when the model has no
    segments and the application is not 'unilm'); returns
    `masks.attention_mask(application, ...)`.

    Keeps the mask a symbolic function of the inputs, so functional models stay static-shape
    and serializable.

    Example:
    ```python
    mask = AttentionMask("unilm")([token_ids, segment_ids])  # (batch, 1, length, length)
    ```

    Args:
        application: 'encoder' (padding only), 'lm' (causal) or 'unilm' (seq2seq).
        pad_id: the token id whose positions are padding (None: no padding mask).
    """

    def __init__(self, application="encoder", pad_id=0, **kwargs):
        super().__init__(**kwargs)
        if application not in masks.APPLICATIONS:
            raise ValueError(
                f"`application` must be one of {masks.APPLICATIONS}; received {application!r}."
            )
        self.application = application
        self.pad_id = pad_id

    def call(self, inputs):
        token_ids, segment_ids = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        return masks.attention_mask(self.application, token_ids, segment_ids, self.pad_id)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"application": self.application, "pad_id": self.pad_id})
        return config
