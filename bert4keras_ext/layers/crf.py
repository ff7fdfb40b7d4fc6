"""Linear-chain conditional random field (CRF) as an output layer with its own loss.

Sources: "Conditional Random Fields: Probabilistic Models for Segmenting and Labeling Sequence
Data" (Lafferty, McCallum and Pereira, 2001), the post "简明条件随机场CRF介绍（附带纯Keras实现）"
(https://kexue.fm/archives/5542) and bert4keras's `ConditionalRandomField`
(https://github.com/bojone/bert4keras), whose name, arguments, weight and methods this layer
keeps.

For label scores `x_t` (the layer's input) and transitions `T`, a label path `y` scores
`s(y) = sum_t x_t[y_t] + sum_t T[y_t, y_t+1]` and `-log p(y | x) = log Z - s(y)`,
`log Z = logsumexp over all paths`. `log Z` is the forward recursion
`alpha_t = logsumexp_i(alpha_t-1[i] + T[i, :]) + x_t`, run as one `keras.ops.scan` over time.
Its gradient is given in closed form (`keras.ops.custom_gradient`): the label marginals
`exp(alpha_t + beta_t - log Z)` for the scores and the expected transition counts for `T`, from
a second, backward scan. This keeps the loss differentiable under XLA on TensorFlow (Keras's
scan there is a while loop without an iteration bound, which XLA cannot differentiate) and
needs no per-step activations for the backward pass.
"""
import keras
from keras import ops

from bert4keras_ext.layers.tagging import (
    TaggingLayer,
    emission_mask,
    label_ids,
    reorder,
    valid_first,
)


def _time_major(scores, valid):
    """`[length, batch, num_labels + 1]`: the scores with the validity as the last feature.

    One tensor to scan over: Keras's TensorFlow scan checks the lengths of several inputs with
    a static shape method that fails on an unknown length.
    """
    steps = ops.concatenate([scores, ops.cast(valid, scores.dtype)[..., None]], axis=-1)
    return ops.transpose(steps, (1, 0, 2))


def _forward_messages(steps, trans):
    """`alpha_t`, `[length, batch, num_labels]`; a padded step keeps the previous message."""

    def step(alpha, inputs):
        scores, valid = inputs[:, :-1], inputs[:, -1:] > 0
        advanced = ops.logsumexp(alpha[:, :, None] + trans, axis=1) + scores
        alpha = ops.where(valid, advanced, alpha)
        return alpha, alpha

    first = steps[0, :, :-1]
    _, alphas = ops.scan(step, first, steps[1:])
    return ops.concatenate([first[None], alphas], axis=0)


def _backward_messages(steps, trans):
    """`beta_t` (log-sum of the path scores after `t`), `[length, batch, num_labels]`."""

    def step(beta, inputs):
        scores, valid = inputs[:, :-1], inputs[:, -1:] > 0
        receded = ops.logsumexp(trans + (scores + beta)[:, None, :], axis=2)
        beta = ops.where(valid, receded, beta)
        return beta, beta

    last = ops.zeros_like(steps[0, :, :-1])
    _, betas = ops.scan(step, last, steps[1:], reverse=True)
    return ops.concatenate([betas, last[None]], axis=0)


@ops.custom_gradient
def _log_partition(scores, valid, trans):
    steps = _time_major(scores, valid)
    alphas = _forward_messages(steps, trans)
    log_z = ops.logsumexp(alphas[-1], axis=-1)

    def gradient(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream
        betas = _backward_messages(steps, trans)
        weight = ops.transpose(valid, (1, 0))[..., None] * upstream[None, :, None]
        # The first position's scores always enter log Z (a row of padding scores them).
        first = ops.ones_like(weight[:1]) * upstream[None, :, None]
        weight = ops.concatenate([first, weight[1:]], axis=0)
        marginals = ops.exp(alphas + betas - log_z[None, :, None]) * weight
        pairs = (alphas[:-1, :, :, None] + trans + (steps[1:, :, None, :-1] + betas[1:, :, None])
                 - log_z[None, :, None, None])
        trans_gradient = ops.sum(ops.exp(pairs) * weight[1:, :, :, None], axis=(0, 1))
        return ops.transpose(marginals, (1, 0, 2)), ops.zeros_like(valid), trans_gradient

    return log_z, gradient


def crf_log_partition(scores, valid, trans):
    """`log Z` per row, float32 `[batch]`, of a linear-chain CRF.

    Args:
        scores: label scores `[batch, length, num_labels]`, finite (values at padding unused).
        valid: `[batch, length]`, True (or 1) at valid positions; padding must come after the
            valid positions of its row (see `tagging.valid_first`).
        trans: transition scores `[num_labels, num_labels]`, `trans[i, j]` for `i -> j`.
    """
    return _log_partition(ops.cast(scores, "float32"), ops.cast(valid, "float32"),
                          ops.cast(trans, "float32"))


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class ConditionalRandomField(TaggingLayer):
    """CRF output layer: returns its input with padding at -inf; its methods are the loss and
    metrics to compile with.

    Example:
    ```python
    ids = keras.Input((None,), dtype="int32")
    scores = keras.layers.Dense(num_labels)(keras.layers.Embedding(100, 32, mask_zero=True)(ids))
    crf = ConditionalRandomField(lr_multiplier=100)
    model = keras.Model(ids, crf(scores))
    model.compile("adam", loss=crf.sparse_loss, metrics=[crf.sparse_accuracy])
    ```
    Decode a row's valid scores with `ViterbiDecoder(keras.ops.convert_to_numpy(crf.trans))`
    (`bert4keras_ext.viterbi`).

    Padding (the Keras mask of the input, e.g. from `Embedding(mask_zero=True)`) is excluded
    from loss and accuracy; a row with no valid position has loss 0. As in bert4keras the
    output marks padding with -inf and carries no Keras mask (`bert4keras_ext.layers.tagging`
    says why), so the methods also work on saved predictions.

    `sparse_loss` / `dense_loss` return `-log p(y | x)` per row, `[batch]`;
    `sparse_accuracy` / `dense_accuracy` the fraction of valid positions whose highest score is
    the true label (per-token argmax, as bert4keras: a cheap training signal, not Viterbi
    decoding). Sparse labels are integers `[batch, length]`; dense ones one-hot
    `[batch, length, num_labels]`.

    Args:
        lr_multiplier: the transitions are stored divided by it and used multiplied by it,
            which scales their effective learning rate (bert4keras's examples use 100 or more,
            since the transitions get small gradients next to a pretrained encoder).

    Weight: `trans` `[num_labels, num_labels]` (stored value; the effective transitions are
    the property `trans`).
    """

    def build(self, input_shape):
        num_labels = self.num_labels_of(input_shape)
        self._trans = self.add_transition_weight("trans", (num_labels, num_labels))

    @property
    def trans(self):
        """The effective transitions, `lr_multiplier * stored`, float32."""
        return self.effective(self._trans)

    def dense_loss(self, y_true, y_pred):
        """`-log p(y | x)` per row, `[batch]`, for one-hot labels `y_true`."""
        scores = ops.cast(y_pred, "float32")
        valid = emission_mask(scores)
        order = valid_first(valid)
        scores, valid = reorder(scores, order), reorder(valid, order)
        labels = reorder(ops.reshape(ops.cast(y_true, "float32"), ops.shape(scores)), order)
        scores = ops.where(valid[..., None], scores, 0.0)
        labels = ops.where(valid[..., None], labels, 0.0)
        trans = self.trans
        # Padding labels are zero, so only transitions between valid positions count.
        path = ops.sum(labels * scores, axis=(1, 2)) + ops.sum(
            ops.matmul(labels[:, :-1], trans) * labels[:, 1:], axis=(1, 2))
        log_z = crf_log_partition(scores, valid, trans)
        return ops.where(ops.any(valid, axis=1), log_z - path, 0.0)

    def sparse_loss(self, y_true, y_pred):
        """`-log p(y | x)` per row, `[batch]`, for integer labels `y_true`."""
        return self.dense_loss(ops.one_hot(label_ids(y_true, y_pred), ops.shape(y_pred)[-1]),
                               y_pred)

    def sparse_accuracy(self, y_true, y_pred):
        """Per-token accuracy of the highest score over the valid positions of the batch."""
        valid = ops.cast(emission_mask(y_pred), "float32")
        correct = ops.equal(label_ids(y_true, y_pred),
                            ops.cast(ops.argmax(y_pred, axis=-1), "int32"))
        return ops.sum(ops.cast(correct, "float32") * valid) / ops.maximum(ops.sum(valid), 1.0)

    def dense_accuracy(self, y_true, y_pred):
        """`sparse_accuracy` for one-hot labels."""
        return self.sparse_accuracy(ops.argmax(y_true, axis=-1), y_pred)
