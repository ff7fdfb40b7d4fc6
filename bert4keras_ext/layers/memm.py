"""Bidirectional maximum entropy Markov model (MEMM) as an output layer with its own loss.

Sources: the post "CRF用过了，不妨再了解下更快的MEMM？" (https://kexue.fm/archives/7213) and
bert4keras's `MaximumEntropyMarkovModel` (https://github.com/bojone/bert4keras), whose name,
arguments, weights and methods this layer keeps.

Where a CRF normalizes over whole label paths, an MEMM normalizes each step given the previous
label: `p(y_t | y_t-1, x) = softmax((x_t + T[y_t-1]) / 2)` (the first step: `softmax(x_0)`),
so the loss is a per-token cross entropy with no recursion. The loss and accuracy average the
left-to-right model and the right-to-left one (transitions transposed). With `hidden_dim` the
transitions are low rank, `T = L R^T`.
"""
import keras
from keras import ops

from bert4keras_ext.backend import check_positive_int
from bert4keras_ext.layers.tagging import (
    TaggingLayer,
    emission_mask,
    label_ids,
    reorder,
    valid_first,
)


def _reversed_valid_prefix(valid):
    """Indices reversing each row's first `sum(valid)` positions (the rest stay in place)."""
    lengths = ops.sum(ops.cast(valid, "int32"), axis=1, keepdims=True)
    positions = ops.arange(ops.shape(valid)[1], dtype="int32")[None]
    return ops.where(positions < lengths, lengths - 1 - positions, positions)


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class MaximumEntropyMarkovModel(TaggingLayer):
    """Bidirectional MEMM output layer: returns its input with padding at -inf; its methods are
    the loss and metrics to compile with, as `ConditionalRandomField`'s.

    `sparse_loss` / `dense_loss` return one number for the batch: the mean token cross entropy
    over the valid positions, averaged over both directions. `sparse_accuracy` /
    `dense_accuracy` the fraction of valid positions whose label is the argmax of
    `(x_t + T[y_t-1]) / 2` given the true previous label (teacher forcing), averaged over both
    directions. Padding (the Keras mask of the input) counts nowhere.

    Args:
        lr_multiplier: as `ConditionalRandomField`'s (scales the transitions' learning rate).
        hidden_dim: None for a full transition matrix `trans` `[num_labels, num_labels]`; an
            integer for the low-rank pair `l_trans`, `r_trans` (`[num_labels, hidden_dim]`
            each, `T = l_trans @ r_trans^T`).
    """

    def __init__(self, lr_multiplier=1, hidden_dim=None, **kwargs):
        super().__init__(lr_multiplier=lr_multiplier, **kwargs)
        if hidden_dim is not None:
            hidden_dim = check_positive_int(hidden_dim, "hidden_dim")
        self.hidden_dim = hidden_dim

    def build(self, input_shape):
        num_labels = self.num_labels_of(input_shape)
        if self.hidden_dim is None:
            self._trans = self.add_transition_weight("trans", (num_labels, num_labels))
        else:
            self._l_trans = self.add_transition_weight("l_trans", (num_labels, self.hidden_dim))
            self._r_trans = self.add_transition_weight("r_trans", (num_labels, self.hidden_dim))

    @property
    def trans(self):
        """The effective transitions `[num_labels, num_labels]` (with `hidden_dim`, their
        low-rank product), float32."""
        if self.hidden_dim is None:
            return self.effective(self._trans)
        return ops.matmul(self.l_trans, ops.transpose(self.r_trans))

    @property
    def l_trans(self):
        return self.effective(self._l_trans)

    @property
    def r_trans(self):
        return self.effective(self._r_trans)

    def _next_scores(self, labels, backwards):
        """`T[y_t]`, the transition scores from each position's label to the next label."""
        if self.hidden_dim is None:
            trans = self.trans
            return ops.take(ops.transpose(trans) if backwards else trans, labels, axis=0)
        left, right = (self.r_trans, self.l_trans) if backwards else (self.l_trans, self.r_trans)
        return ops.matmul(ops.take(left, labels, axis=0), ops.transpose(right))

    def _step_logits(self, y_true, y_pred, backwards):
        """Labels, the step logits `(x_t + T[y_t-1]) / 2` and the validity, with the valid
        positions first (reversed for the right-to-left model)."""
        scores = ops.cast(y_pred, "float32")
        valid = emission_mask(scores)
        order = valid_first(valid)
        if backwards:
            order = ops.take_along_axis(order, _reversed_valid_prefix(valid), axis=1)
        labels = reorder(label_ids(y_true, y_pred), order)
        scores, valid = reorder(scores, order), reorder(valid, order)
        previous = ops.concatenate([scores[:, :1], self._next_scores(labels, backwards)[:, :-1]],
                                   axis=1)
        logits = ops.where(valid[..., None], (scores + previous) / 2, 0.0)
        return labels, logits, ops.cast(valid, "float32")

    def _loss(self, y_true, y_pred, backwards):
        labels, logits, valid = self._step_logits(y_true, y_pred, backwards)
        losses = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return ops.sum(losses * valid) / ops.maximum(ops.sum(valid), 1.0)

    def _accuracy(self, y_true, y_pred, backwards):
        labels, logits, valid = self._step_logits(y_true, y_pred, backwards)
        correct = ops.equal(labels, ops.cast(ops.argmax(logits, axis=-1), "int32"))
        return ops.sum(ops.cast(correct, "float32") * valid) / ops.maximum(ops.sum(valid), 1.0)

    def sparse_loss(self, y_true, y_pred):
        """Mean token cross entropy of both directions for integer labels (a scalar)."""
        return (self._loss(y_true, y_pred, False) + self._loss(y_true, y_pred, True)) / 2

    def dense_loss(self, y_true, y_pred):
        """`sparse_loss` for one-hot labels."""
        return self.sparse_loss(ops.argmax(y_true, axis=-1), y_pred)

    def sparse_accuracy(self, y_true, y_pred):
        """Teacher-forced per-token accuracy of both directions for integer labels."""
        return (self._accuracy(y_true, y_pred, False)
                + self._accuracy(y_true, y_pred, True)) / 2

    def dense_accuracy(self, y_true, y_pred):
        """`sparse_accuracy` for one-hot labels."""
        return self.sparse_accuracy(ops.argmax(y_true, axis=-1), y_pred)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim})
        return config
