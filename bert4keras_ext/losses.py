"""Losses for language-model heads (keras.ops only)."""
import keras
from keras import ops


def seq2seq_targets(token_ids, segment_ids):
    """Targets for `Seq2SeqCrossEntropy` from a UNILM batch: token ids in segment 1, else 0.

    `[CLS] source [SEP] target [SEP]` with segment ids `0...0 1...1`: only the target tokens and
    the final `[SEP]` are predicted; source and padding positions become 0 (not scored).
    """
    token_ids = ops.convert_to_tensor(token_ids)
    in_target = ops.equal(ops.convert_to_tensor(segment_ids), 1)
    return ops.where(in_target, token_ids, ops.zeros_like(token_ids))


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Seq2SeqCrossEntropy(keras.losses.Loss):
    """Next-token cross entropy averaged over the scored tokens of the batch (SPEC C8).

    `y_true` is `[batch, length]` token ids where 0 (`ignore_id`) marks positions not to score;
    `y_pred` is `[batch, length, vocab]`. Position i of `y_pred` is scored against token i + 1
    of `y_true`, so the model's output at the last source token predicts the first target token.
    The loss is `sum(ce * w) / sum(w)` with `w = [y_true[:, 1:] != ignore_id]`: make `y_true`
    with `seq2seq_targets` for UNILM, or pass the token ids themselves for a causal LM (padding
    excluded). Under tf.distribute each replica averages over its own scored tokens and the
    replicas' losses are averaged, as for every Keras loss.

    Example:
    ```python
    model.compile(optimizer="adam", loss=Seq2SeqCrossEntropy(from_logits=True))
    model.fit([token_ids, segment_ids], seq2seq_targets(token_ids, segment_ids))
    ```
    """

    def __init__(self, from_logits=False, ignore_id=0, name="seq2seq_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits
        self.ignore_id = ignore_id

    def call(self, y_true, y_pred):
        # Shift the labels left rather than slicing the (large) predictions: position i is
        # scored against token i + 1, and the last position against nothing.
        labels = ops.cast(y_true, "int32")[:, 1:]
        labels = ops.pad(labels, [(0, 0), (0, 1)], constant_values=self.ignore_id)
        weights = ops.cast(ops.not_equal(labels, self.ignore_id), "float32")
        losses = ops.sparse_categorical_crossentropy(
            labels, ops.cast(y_pred, "float32"), from_logits=self.from_logits
        )
        # Per-token values, rescaled so that Keras's mean over all entries (which it then
        # divides by the number of replicas under tf.distribute) is the mean over scored tokens.
        return losses * weights / ops.maximum(ops.mean(weights), 1e-9)

    def get_config(self):
        config = super().get_config()
        config.update({"from_logits": self.from_logits, "ignore_id": self.ignore_id})
        return config
