"""Transformer layers built on `keras.ops` only (they run on any Keras backend).

Other names are Keras's layers, so `from bert4keras_ext.layers import Dense, Dropout` works as
`from bert4keras.layers import ...` did (bert4keras re-exported `keras.layers`); `Add` and
`Lambda` are Keras's with Keras 2's mask rules (`keras2_masking`).
"""
import keras

from bert4keras_ext.layers.attention import MultiHeadAttention
from bert4keras_ext.layers.attention_mask import AttentionMask
from bert4keras_ext.layers.bias_add import BiasAdd
from bert4keras_ext.layers.embeddings import (
    Embedding,
    PositionEmbedding,
    SinusoidalPositionEmbedding,
)
from bert4keras_ext.layers.feedforward import FeedForward
from bert4keras_ext.layers.keras2_masking import Add, Lambda
from bert4keras_ext.layers.loss import Loss
from bert4keras_ext.layers.normalization import LayerNormalization
from bert4keras_ext.layers.performer_attention import PerformerAttention
from bert4keras_ext.layers.relative_position_bias import RelativePositionBias

__all__ = [
    "Add",
    "AttentionMask",
    "BiasAdd",
    "Embedding",
    "FeedForward",
    "Lambda",
    "LayerNormalization",
    "Loss",
    "MultiHeadAttention",
    "PerformerAttention",
    "PositionEmbedding",
    "RelativePositionBias",
    "SinusoidalPositionEmbedding",
]


def __getattr__(name):
    if hasattr(keras.layers, name):
        return getattr(keras.layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
