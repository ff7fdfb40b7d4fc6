"""What pretraining predicts and scores, shared by both routes (keras.ops only, so the same
code runs in TensorFlow's tf.data and inside JAX's compiled step).

A mode's sequences hold the `FEATURES` data_utils.py writes; `training_example` turns them
into inputs, labels and weights; `scored_logits` runs the model on the positions the loss
scores; `token_losses` is the weighted cross-entropy summed over them (each route divides by
the weight of its whole global micro-batch).
"""
from keras import ops

MODES = ("roberta", "gpt", "unilm")
FEATURES = {"roberta": ("token_ids", "mask_ids"), "gpt": ("token_ids",),
            "unilm": ("token_ids", "segment_ids")}
APPLICATIONS = {"roberta": "encoder", "gpt": "lm", "unilm": "unilm"}


def check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}; received {mode!r}.")


def _next(x):
    """`x` shifted left along the sequence (the last axis), 0 at the end."""
    return ops.concatenate([x[..., 1:], ops.zeros_like(x[..., :1])], axis=-1)


def training_example(features, mode):
    """((token ids, segment ids), labels, weights) of sequences (the last axis; any leading
    batch axes); the loss is the weighted mean of the token cross-entropies. roberta: masked
    positions predict the original token; gpt: every next token; unilm: the next token inside
    segment 1."""
    token_ids = features["token_ids"]
    if mode == "roberta":
        mask_ids = features["mask_ids"]
        inputs = ops.where(mask_ids > 0, mask_ids - 1, token_ids)
        return ((inputs, ops.zeros_like(token_ids)), token_ids,
                ops.cast(mask_ids > 0, "float32"))
    next_ids = _next(token_ids)
    weights = ops.cast(next_ids > 0, "float32")
    segment_ids = features.get("segment_ids", ops.zeros_like(token_ids))
    if mode == "unilm":
        weights = weights * ops.cast(_next(segment_ids), "float32")
    return (token_ids, segment_ids), next_ids, weights


def scored_logits(model, inputs, labels, weights, max_predictions=None, training=True):
    """(logits, labels, weights) of the positions the loss scores. With `max_predictions`
    (roberta): the first `max_predictions` masked positions of each row (top_k keeps index
    order among equal weights), the encoder run alone and the output head only on those;
    otherwise all positions, weighted."""
    if not max_predictions:
        return model(list(inputs), training=training), labels, weights
    positions = ops.top_k(weights, max_predictions)[1]
    hidden = ops.take_along_axis(model.backbone(list(inputs), training=training),
                                 positions[..., None], axis=1)
    labels, weights = (ops.take_along_axis(t, positions, axis=1) for t in (labels, weights))
    return model.lm_head.logits(hidden, training=training), labels, weights


def token_losses(logits, labels, weights):
    """(weighted sum of the token cross-entropies, weighted count of correct predictions),
    computed in float32."""
    logits = ops.cast(logits, "float32")
    losses = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    correct = ops.cast(ops.argmax(logits, axis=-1) == ops.cast(labels, "int32"), "float32")
    return ops.sum(losses * weights), ops.sum(correct * weights)
