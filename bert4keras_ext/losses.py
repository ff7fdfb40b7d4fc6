"""Losses (keras.ops only): sequence-to-sequence cross entropy for language-model heads, focal
loss and soft truncation for classifiers, and the multi-label "softmax + cross entropy".

Sources: "Focal Loss for Dense Object Detection" (Lin et al., 2017,
https://arxiv.org/abs/1708.02002) and the post "文本情感分类（四）：更好的损失函数"
(https://kexue.fm/archives/4733) for the hard truncation and its softened form; the posts
"将“softmax+交叉熵”推广到多标签分类问题" (https://kexue.fm/archives/7359), "多标签“Softmax+交叉熵”的
软标签版本" (https://kexue.fm/archives/9064) and "GPLinker：基于GlobalPointer的实体关系联合抽取"
(https://kexue.fm/archives/8888, the sparse form) for the multi-label losses, which are
bert4keras's `backend.multilabel_categorical_crossentropy` and
`sparse_multilabel_categorical_crossentropy` (https://github.com/bojone/bert4keras)."""
import math

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
    """Next-token cross entropy averaged over the scored tokens of the batch.

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

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The scored positions come from `y_true`. The models' outputs carry a Keras padding
        # mask, with which Keras would divide the sum by the number of real tokens instead of
        # the number of entries `call` scales for; a fresh tensor of the same values (free
        # once compiled) carries no mask.
        return super().__call__(y_true, ops.add(y_pred, 0), sample_weight)

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


def _binary_log_probabilities(y_pred, from_logits):
    """(log p, log(1 - p), logits) of the positive class, stable at extreme values."""
    y_pred = ops.cast(y_pred, "float32")
    if not from_logits:
        y_pred = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        y_pred = ops.log(y_pred) - ops.log1p(-y_pred)
    return ops.log_sigmoid(y_pred), ops.log_sigmoid(-y_pred), y_pred


def _sparse_log_probabilities(y_true, y_pred, from_logits):
    """(log p of the true class, logits) for integer labels `y_true` and `[..., classes]`."""
    y_pred = ops.cast(y_pred, "float32")
    if not from_logits:
        y_pred = ops.log(ops.clip(y_pred, 1e-7, 1.0))
    log_probs = ops.log_softmax(y_pred, axis=-1)
    labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
    return ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), -1), y_pred


class _ConfigurableLoss(keras.losses.Loss):
    """Stores its hyper-parameters as attributes and returns them from `get_config`."""

    _options = ()

    def __init__(self, name, reduction="sum_over_batch_size", dtype=None, **options):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        for option, value in options.items():
            setattr(self, option, value)

    def get_config(self):
        config = super().get_config()
        config.update({option: getattr(self, option) for option in self._options})
        return config


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class BinaryFocalLoss(_ConfigurableLoss):
    """Focal loss: `-alpha_t (1 - p_t)^gamma log p_t` for 0/1 labels, mean over the
    last axis. `gamma=0` and `alpha=None` give binary cross entropy; `alpha` weighs the
    positives by alpha and the negatives by 1 - alpha (0.25 in the paper, 0.5 if untuned).

    Example: `model.compile("adam", loss=BinaryFocalLoss(gamma=2.0, from_logits=True))`
    """

    _options = ("gamma", "alpha", "from_logits")

    def __init__(self, gamma=2.0, alpha=None, from_logits=False, name="binary_focal_loss",
                 **kwargs):
        super().__init__(name, gamma=gamma, alpha=alpha, from_logits=from_logits, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        log_p, log_not_p, _ = _binary_log_probabilities(y_pred, self.from_logits)
        positive = -((1.0 - ops.exp(log_p)) ** self.gamma) * log_p
        negative = -(ops.exp(log_p) ** self.gamma) * log_not_p
        if self.alpha is not None:
            positive, negative = self.alpha * positive, (1.0 - self.alpha) * negative
        return ops.mean(y_true * positive + (1.0 - y_true) * negative, axis=-1)


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class SparseCategoricalFocalLoss(_ConfigurableLoss):
    """Multi-class focal loss `-alpha (1 - p_t)^gamma log p_t` for integer labels."""

    _options = ("gamma", "alpha", "from_logits")

    def __init__(self, gamma=2.0, alpha=1.0, from_logits=False,
                 name="sparse_categorical_focal_loss", **kwargs):
        super().__init__(name, gamma=gamma, alpha=alpha, from_logits=from_logits, **kwargs)

    def call(self, y_true, y_pred):
        log_p, _ = _sparse_log_probabilities(y_true, y_pred, self.from_logits)
        return -self.alpha * (1.0 - ops.exp(log_p)) ** self.gamma * log_p


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class BinarySoftTruncationLoss(_ConfigurableLoss):
    """Softened hard truncation: `-sigmoid(-K x) log sigmoid(x)` for positives and
    `-sigmoid(K x) log sigmoid(-x)` for negatives, x the logit; mean over the last axis.
    With K = 1 it equals the focal loss with gamma = 1; large K approaches hard truncation
    (no loss once a sample is on the right side of 0.5)."""

    _options = ("k", "from_logits")

    def __init__(self, k=1.0, from_logits=True, name="binary_soft_truncation_loss", **kwargs):
        super().__init__(name, k=k, from_logits=from_logits, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        log_p, log_not_p, logits = _binary_log_probabilities(y_pred, self.from_logits)
        positive = -ops.sigmoid(-self.k * logits) * log_p
        negative = -ops.sigmoid(self.k * logits) * log_not_p
        return ops.mean(y_true * positive + (1.0 - y_true) * negative, axis=-1)


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class SparseCategoricalSoftTruncationLoss(_ConfigurableLoss):
    """Multi-class soft truncation `-softmax(-K x)_t log softmax(x)_t`."""

    _options = ("k", "from_logits")

    def __init__(self, k=1.0, from_logits=True,
                 name="sparse_categorical_soft_truncation_loss", **kwargs):
        super().__init__(name, k=k, from_logits=from_logits, **kwargs)

    def call(self, y_true, y_pred):
        log_p, logits = _sparse_log_probabilities(y_true, y_pred, self.from_logits)
        weights = ops.softmax(-self.k * logits, axis=-1)
        labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        return -ops.squeeze(ops.take_along_axis(weights, labels, axis=-1), -1) * log_p


def _float_for_loss(x):
    """`x` as a float tensor of at least 32 bits (half precision would overflow `exp`)."""
    x = ops.convert_to_tensor(x)
    if keras.backend.standardize_dtype(x.dtype) == "float64":
        return x
    return ops.cast(x, "float32")


def _logsumexp_with_zero(x):
    """`log(1 + sum(exp(x), axis=-1))`: the log-sum-exp of `x` with a 0 logit appended."""
    return ops.logsumexp(ops.concatenate([x, ops.zeros_like(x[..., :1])], axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="bert4keras_ext")
def multilabel_categorical_crossentropy(y_true, y_pred):
    """Multi-label "softmax + cross entropy": `log(1 + sum_neg e^s) + log(1 + sum_pos e^-s)`.

    `y_true` and `y_pred` have one shape `[..., classes]`; `y_true` holds 0/1 labels, or soft
    labels in [0, 1] (each class then counts as positive with weight `y` and negative with
    weight `1 - y`); `y_pred` holds logits with no activation, and a class is predicted when
    its logit is > 0. Logits equal to `-inf` mark classes left out (a positive one included).
    Returns one loss per row (`[...]`), so it works as a Keras loss:
    `model.compile(loss=multilabel_categorical_crossentropy)`.
    """
    y_pred = _float_for_loss(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    minus_infinity = ops.full_like(y_pred, -math.inf)
    present = ops.not_equal(y_pred, minus_infinity)
    # log(1 - y) and log(y) weigh each class as a negative and as a positive; the -inf of a
    # hard 0 removes the class from that sum. `where` keeps -inf logits from turning into +inf.
    negatives = y_pred + ops.log(1.0 - y_true)
    positives = ops.where(present, -y_pred, minus_infinity) + ops.log(y_true)
    return _logsumexp_with_zero(negatives) + _logsumexp_with_zero(positives)


@keras.saving.register_keras_serializable(package="bert4keras_ext")
def sparse_multilabel_categorical_crossentropy(y_true, y_pred, mask_zero=False, epsilon=1e-7,
                                               infinity=1e12):
    """`multilabel_categorical_crossentropy` with the positive classes given by index.

    `y_true` is `[..., positives]` class indices, `y_pred` is `[..., classes]` logits. The
    negative part `log(1 + sum_neg e^s)` is computed as `log(1 + sum_all e^s)` plus
    `log(1 - sum_pos e^s / (1 + sum_all e^s))`, so the cost grows with the number of positives
    only; the second factor is clipped to `[epsilon, 1]`. `mask_zero=True` reserves class 0 for
    padding: indices 0 in `y_true` are ignored and class 0 is never scored. `infinity` stands in
    for an infinite logit there (1e12 keeps the gradients finite; bert4keras 0.11.5 used
    `inf`, which gives the same losses). An index equal to `classes` picks a logit of 0.
    """
    y_pred = _float_for_loss(y_pred)
    y_true = ops.cast(y_true, "int32")
    zero = ops.zeros_like(y_pred[..., :1])
    y_pred = ops.concatenate([y_pred, zero], axis=-1)  # the 1 of `1 + sum`, at index `classes`
    if mask_zero:
        # Class 0 as +infinity: padded positives drop out of sum(e^-s); as -infinity below:
        # they and class 0 drop out of the other sums.
        y_pred_for_positives = ops.concatenate([zero + infinity, y_pred[..., 1:]], axis=-1)
        y_pred = ops.concatenate([zero - infinity, y_pred[..., 1:]], axis=-1)
    else:
        y_pred_for_positives = y_pred
    positive_logits = ops.take_along_axis(y_pred_for_positives, y_true, axis=-1)
    positive_loss = _logsumexp_with_zero(-positive_logits)
    all_loss = ops.logsumexp(y_pred, axis=-1)
    positive_share = ops.logsumexp(ops.take_along_axis(y_pred, y_true, axis=-1), axis=-1)
    # 1 - e^(positive_share - all_loss), written with expm1 for accuracy near 0.
    negative_share = ops.clip(-ops.expm1(positive_share - all_loss), epsilon, 1.0)
    return positive_loss + all_loss + ops.log(negative_share)
