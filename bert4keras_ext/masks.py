"""Attention masks built from token and segment ids inside the graph.

Source: the UNILM paper ("Unified Language Model Pre-training for Natural Language
Understanding and Generation", Dong et al., 2019, https://arxiv.org/abs/1905.03197) and the post
"从语言模型到Seq2Seq：Transformer如戏，全靠Mask" (https://kexue.fm/archives/6933).

Every mask is boolean, True where a query position may attend a key position, with rows indexing
queries and columns keys. All functions are plain `keras.ops` graphs of static rank, so they trace
under XLA (`jit_compile=True`) and on TPU.
"""
from keras import ops

from bert4keras_ext.backend import check_rank

APPLICATIONS = ("encoder", "lm", "unilm")


def padding_mask(token_ids, pad_id=0):
    """`[batch, length]` boolean mask, False at padding tokens."""
    return ops.not_equal(token_ids, pad_id)


def lm_mask(segment_ids):
    """Causal mask `[batch, length, length]`: position i sees positions j <= i.

    Only the shape of `segment_ids` (any `[batch, length]` tensor, token ids work too) is used.
    """
    segment_ids = ops.convert_to_tensor(segment_ids)
    check_rank(segment_ids, 2, "segment_ids", "of shape [batch, length]")
    batch, length = ops.shape(segment_ids)
    positions = ops.arange(length)
    causal = ops.less_equal(positions[None, :], positions[:, None])
    return ops.broadcast_to(causal[None], (batch, length, length))


def unilm_mask(segment_ids):
    """UNILM seq2seq mask `[batch, length, length]` from segment ids (0 source, 1 target).

    Source rows see the whole source and no target; target rows see the whole source and the
    target up to themselves. With `order = cumsum(segment_ids)`, row i sees column j exactly when
    `order[j] <= order[i]`; an all-zero segment gives a fully bidirectional mask.
    """
    segment_ids = ops.convert_to_tensor(segment_ids)
    check_rank(segment_ids, 2, "segment_ids", "of shape [batch, length]")
    order = ops.cumsum(ops.cast(segment_ids, "int32"), axis=1)
    return ops.less_equal(order[:, None, :], order[:, :, None])


def attention_mask(application, token_ids, segment_ids=None, pad_id=0):
    """The boolean mask a Transformer of `application` uses, for `MultiHeadAttention`.

    Shape `[batch, 1, 1, length]` for 'encoder' (padding only) and `[batch, 1, length, length]`
    otherwise; both broadcast to `[batch, heads, length, length]`.

    Combines the application's mask (none for 'encoder', `lm_mask` for 'lm', `unilm_mask` for
    'unilm') with key padding (`token_ids == pad_id`; none when `pad_id` is None, as for a
    T5 decoder, whose start token is the padding id). With post-padding, UNILM target rows would
    otherwise see the padding keys, whose cumulative segment order equals the last target's.
    """
    if application not in APPLICATIONS:
        raise ValueError(
            f"`application` must be one of {APPLICATIONS}; received {application!r}."
        )
    token_ids = ops.convert_to_tensor(token_ids)
    check_rank(token_ids, 2, "token_ids", "of shape [batch, length]")
    if pad_id is None:
        keys = ops.ones_like(token_ids, dtype="bool")[:, None, :]
    else:
        keys = padding_mask(token_ids, pad_id)[:, None, :]
    if application == "lm":
        keys = ops.logical_and(keys, lm_mask(token_ids))
    elif application == "unilm":
        if segment_ids is None:
            raise ValueError("`segment_ids` is required when `application='unilm'`.")
        keys = ops.logical_and(keys, unilm_mask(segment_ids))
    return keys[:, None]
