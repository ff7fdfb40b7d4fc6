"""T5's bucketed relative position bias.

"Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer" (Raffel et
al., 2020, https://arxiv.org/abs/1910.10683) adds to every attention logit a learned scalar per
head that depends only on the distance between the key and the query. Distances are grouped in
`num_buckets` buckets: half of them (a quarter each way when bidirectional) hold the exact
distances 0, 1, ...; the rest grow logarithmically up to `max_distance`, beyond which every
distance shares the last bucket. A decoder's self-attention is unidirectional: keys after the
query all fall in bucket 0, which the causal mask hides anyway.
"""
import math

import keras
from keras import ops

from bert4keras_ext.backend import check_positive_int


def relative_position_buckets(q_positions, k_positions, num_buckets=32, max_distance=128,
                              bidirectional=True):
    """Bucket ids, int32 [batch|1, q_len, k_len], of keys at `k_positions` [batch|1, k_len]
    seen from queries at `q_positions` [batch|1, q_len]."""
    # How far back the key is: positive for keys before the query.
    distance = ops.cast(q_positions, "int32")[:, :, None] - ops.cast(k_positions, "int32")[
        :, None, :]
    buckets = 0
    if bidirectional:
        num_buckets //= 2
        buckets = ops.cast(ops.less(distance, 0), "int32") * num_buckets
        distance = ops.abs(distance)
    else:
        distance = ops.maximum(distance, 0)
    exact = num_buckets // 2
    # Truncation toward zero, as the original's int cast; distance >= exact here.
    logarithmic = exact + ops.cast(
        ops.log(ops.cast(ops.maximum(distance, 1), "float32") / exact)
        / math.log(max_distance / exact) * (num_buckets - exact), "int32")
    logarithmic = ops.minimum(logarithmic, num_buckets - 1)
    return buckets + ops.where(ops.less(distance, exact), distance, logarithmic)


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class RelativePositionBias(keras.layers.Layer):
    """T5's relative position bias, called on `[queries, keys]` (only their lengths are read);
    returns float32 `[batch|1, heads, q_len, k_len]` for `MultiHeadAttention(attention_bias=)`.

    Positions default to 0, 1, ... along each input; pass `positions` ([batch|1, q_len]) and
    `key_positions` ([batch|1, k_len]) to read the bias of other positions (cached decoding).
    The table `embeddings` is `[num_buckets, heads]`; one layer usually serves every block.

    Example:
    ```python
    x = keras.random.normal((2, 10, 64))
    bias = RelativePositionBias(heads=4)([x, x])  # (1, 4, 10, 10)
    y = MultiHeadAttention(heads=4, head_size=16, attention_scale=False)(
        [x, x, x], attention_bias=bias)
    ```

    Args:
        heads: number of attention heads (one bias each).
        num_buckets: number of distance buckets (T5: 32).
        max_distance: distances from here on share the last bucket (T5: 128).
        bidirectional: keys on both sides of the query have their own buckets (encoders).
        embeddings_initializer: initializer of the table.
    """

    def __init__(self, heads, num_buckets=32, max_distance=128, bidirectional=True,
                 embeddings_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        heads = check_positive_int(heads, "heads")
        num_buckets = check_positive_int(num_buckets, "num_buckets")
        max_distance = check_positive_int(max_distance, "max_distance")
        minimum = 4 if bidirectional else 2
        if num_buckets < minimum or max_distance <= num_buckets // minimum:
            raise ValueError(
                f"`num_buckets` must be >= {minimum} and `max_distance` > num_buckets // "
                f"{minimum}; received num_buckets={num_buckets!r}, "
                f"max_distance={max_distance!r}."
            )
        self.heads = heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.num_buckets, self.heads),
                                          initializer=self.embeddings_initializer)

    def call(self, inputs, positions=None, key_positions=None):
        queries, keys = inputs
        if positions is None:
            positions = ops.arange(ops.shape(queries)[1], dtype="int32")[None]
        if key_positions is None:
            key_positions = ops.arange(ops.shape(keys)[1], dtype="int32")[None]
        buckets = relative_position_buckets(positions, key_positions, self.num_buckets,
                                            self.max_distance, self.bidirectional)
        bias = ops.take(ops.cast(self.embeddings, "float32"), buckets, axis=0)
        return ops.transpose(bias, (0, 3, 1, 2))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (1, self.heads, input_shape[0][1], input_shape[1][1])

    def get_config(self):
        config = super().get_config()
        config.update({
            "heads": self.heads,
            "num_buckets": self.num_buckets,
            "max_distance": self.max_distance,
            "bidirectional": self.bidirectional,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        })
        return config
