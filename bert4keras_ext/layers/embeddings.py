"""Token embeddings with a tied output projection, and learned or sinusoidal positions
(BERT, https://arxiv.org/abs/1810.04805; "Attention Is All You Need",
https://arxiv.org/abs/1706.03762)."""
import keras
from keras import ops

from bert4keras_ext import arguments
from bert4keras_ext.layers.position_schemes import sinusoids

MERGE_MODES = ("add", "mul", "zero", "concat")


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Embedding(keras.layers.Embedding):
    """`keras.layers.Embedding` that can also act as the tied output projection.

    `layer(token_ids)` looks embeddings up; `layer(hidden, mode='dense')` multiplies hidden
    states by the transposed embedding matrix, giving one logit per vocabulary entry, as BERT's
    MLM head does with its input embeddings.

    An id outside `[0, input_dim)` embeds as NaN: gathers wrap negative ids and, under XLA
    (`jit_compile`, Keras's default on GPU), clamp large ones to the last row, so a bad id
    would otherwise give a plausible wrong vector.

    `one_hot_lookup=True` looks ids up as `one_hot(ids) @ table` instead of a gather. The
    values are the same; the gradient becomes a matmul instead of a scatter-add, which matters
    for tiny tables such as BERT's 2 segment rows: on a GPU, 16k rows of updates scattered into
    2 rows serialize on the same addresses (measured: half of a BERT-base step on an H200).

    `mask_zero=True` gives the output bert4keras's padding mask: False where the id is 0,
    except at the first position, which is never padding (a T5 decoder's input starts with
    the start id 0). Layers after it receive the mask as Keras's `mask` argument; the tied
    projection (`mode='dense'`) passes its input's mask on.

    Example:
    ```python
    embedding = Embedding(input_dim=100, output_dim=16)
    hidden = embedding(np.array([[5, 7, 9]]))   # (1, 3, 16)
    logits = embedding(hidden, mode="dense")     # (1, 3, 100)
    ```
    """

    def __init__(self, input_dim, output_dim, one_hot_lookup=False, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.one_hot_lookup = one_hot_lookup

    def call(self, inputs, mode="embedding"):
        if mode == "embedding" and self.one_hot_lookup:
            one_hot = ops.one_hot(ops.cast(inputs, "int32"), self.input_dim,
                                  dtype=self.compute_dtype)
            embedded = ops.matmul(one_hot, ops.cast(self.embeddings, self.compute_dtype))
            return nan_out_of_range(embedded, inputs, self.input_dim)
        if mode == "embedding":
            return nan_out_of_range(super().call(inputs), inputs, self.input_dim)
        if mode == "dense":
            # Contracting the table's last axis directly: with an explicit transpose, XLA on
            # CPU fuses a following bias add (BERT's MLM-Bias) into a slow loop around the
            # matmul (measured on JAX: 1.75 ms instead of 0.24 ms for 1 x 256 by 8000 x 256).
            # Not `einsum("...d,vd->...v")`: TensorFlow's gradient of it broadcast the table
            # over the batch (13 GB for a 64-wide model of 21128 tokens).
            return ops.tensordot(inputs, ops.cast(self.embeddings, inputs.dtype),
                                 axes=[[len(inputs.shape) - 1], [1]])
        raise ValueError(f"`mode` must be 'embedding' or 'dense'; received {mode!r}.")

    def compute_mask(self, inputs, mask=None):
        # Float inputs mean dense mode: the output is logits, keep the incoming mask.
        if "float" in str(inputs.dtype):
            return mask
        if not self.mask_zero:
            return None
        real = ops.not_equal(inputs, 0)
        if len(inputs.shape) < 2:
            return real
        return ops.concatenate([ops.ones_like(real[:, :1]), real[:, 1:]], axis=1)

    def get_config(self):
        config = super().get_config()
        config["one_hot_lookup"] = self.one_hot_lookup
        return config

    def compute_output_shape(self, input_shape, mode="embedding"):
        if mode == "dense":
            return (*tuple(input_shape)[:-1], self.input_dim)
        return super().compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, mode="embedding"):
        if mode == "dense":
            return keras.KerasTensor(
                self.compute_output_shape(inputs.shape, mode), dtype=self.compute_dtype
            )
        return super().compute_output_spec(inputs)


def nan_out_of_range(embedded, ids, rows):
    """`embedded` [..., dim] with NaN wherever `ids` [...] fall outside `[0, rows)`."""
    valid = ops.logical_and(ops.greater_equal(ids, 0), ops.less(ids, rows))
    return ops.where(ops.expand_dims(valid, -1), embedded, ops.cast(float("nan"), embedded.dtype))


def merge_positions(inputs, embeddings, merge_mode):
    """Combines `inputs` [batch, length, dim] with position `embeddings` [batch|1, length, d]."""
    embeddings = ops.cast(embeddings, inputs.dtype)
    if merge_mode == "add":
        return inputs + embeddings
    if merge_mode == "mul":
        return inputs * (embeddings + 1.0)
    batch = ops.shape(inputs)[0]
    embeddings = ops.broadcast_to(
        embeddings, (batch, ops.shape(embeddings)[1], ops.shape(embeddings)[2])
    )
    if merge_mode == "zero":
        return embeddings
    return ops.concatenate([inputs, embeddings], axis=-1)


class PositionEmbeddingBase(keras.layers.Layer):
    """What learned and sinusoidal position embeddings share: position ids and merging.

    With `custom_position_ids=True` the layer is called on `[inputs, position_ids]`; a call may
    also pass `position_ids=` (a decoder embeds each new token at its true position); otherwise
    positions are `0..length-1`.
    """

    def __init__(self, output_dim, merge_mode="add", custom_position_ids=False, **kwargs):
        super().__init__(**kwargs)
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"`merge_mode` must be one of {MERGE_MODES}; received {merge_mode!r}."
            )
        self.output_dim = output_dim
        self.merge_mode = merge_mode
        self.custom_position_ids = custom_position_ids
        self.supports_masking = True

    def _split(self, inputs, position_ids=None):
        """The inputs and their positions: from `[inputs, position_ids]`, from the call's
        `position_ids` (a decoder's new tokens at their true positions) or `0..length-1`."""
        if self.custom_position_ids:
            inputs, position_ids = inputs
        if position_ids is not None:
            return inputs, ops.cast(position_ids, "int32")
        return inputs, ops.arange(ops.shape(inputs)[1], dtype="int32")[None]

    def _input_shape(self, input_shape):
        return tuple(input_shape[0]) if self.custom_position_ids else tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        return mask[0] if self.custom_position_ids and mask is not None else mask

    def compute_output_shape(self, input_shape):
        shape = self._input_shape(input_shape)
        if self.merge_mode == "zero":
            return (*shape[:-1], self.output_dim)
        if self.merge_mode == "concat":
            return (*shape[:-1], shape[-1] + self.output_dim)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "merge_mode": self.merge_mode,
                "custom_position_ids": self.custom_position_ids,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class PositionEmbedding(PositionEmbeddingBase):
    """Learned absolute position embeddings for up to `input_dim` positions.

    Example:
    ```python
    x = keras.random.normal((2, 10, 16))
    y = PositionEmbedding(input_dim=512, output_dim=16)(x)  # x + embeddings[:10]
    ```

    Args:
        input_dim: the number of positions (maximum sequence length).
        output_dim: size of each position's embedding.
        merge_mode: 'add', 'mul' (x * (1 + p)), 'zero' (p alone) or 'concat'.
        custom_position_ids: call on `[inputs, position_ids]` instead of using `0..length-1`.
        embeddings_initializer: initializer of the table (BERT: truncated normal, stddev 0.02).
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        merge_mode="add",
        custom_position_ids=False,
        embeddings_initializer="zeros",
        **kwargs,
    ):
        super().__init__(output_dim, merge_mode, custom_position_ids, **kwargs)
        self.input_dim = input_dim
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        length = self._input_shape(input_shape)[1]
        if length is not None and not self.custom_position_ids and length > self.input_dim:
            raise ValueError(
                f"Sequence length {length} exceeds the {self.input_dim} positions of this "
                f"PositionEmbedding (`input_dim`); received input shape {input_shape}."
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
        )

    def call(self, inputs, position_ids=None):
        inputs, position_ids = self._split(inputs, position_ids)
        # Positions beyond the table embed as NaN (see `Embedding`: XLA would clamp them).
        embeddings = nan_out_of_range(ops.take(self.embeddings, position_ids, axis=0),
                                      position_ids, self.input_dim)
        return merge_positions(inputs, embeddings, self.merge_mode)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class SinusoidalPositionEmbedding(PositionEmbeddingBase):
    """Fixed sinusoidal position encoding ("Attention Is All You Need",
    https://arxiv.org/abs/1706.03762), interleaved per frequency.

    `p[k, 2i] = sin(k * theta_i)` and `p[k, 2i + 1] = cos(k * theta_i)` with
    `theta_i = 10000^(-2i / output_dim)`, so `<p_m, p_n> = sum_i cos((m - n) theta_i)` depends
    only on `m - n`. No weights; any length works.

    Example:
    ```python
    x = keras.random.normal((2, 10, 16))
    y = SinusoidalPositionEmbedding(output_dim=16)(x)
    ```
    """

    def __init__(self, output_dim, merge_mode="add", custom_position_ids=False, **kwargs):
        output_dim = arguments.integer(output_dim, "output_dim", minimum=2)
        if output_dim % 2:
            raise ValueError(f"`output_dim` must be a positive even integer; received "
                             f"{output_dim}.")
        super().__init__(output_dim, merge_mode, custom_position_ids, **kwargs)

    def call(self, inputs, position_ids=None):
        inputs, position_ids = self._split(inputs, position_ids)
        embeddings = sinusoids(position_ids, self.output_dim)
        return merge_positions(inputs, embeddings, self.merge_mode)
