"""Transformer layers built on `keras.ops` only (they run on any Keras backend)."""
from bert4keras_ext.layers.attention import MultiHeadAttention
from bert4keras_ext.layers.attention_mask import AttentionMask
from bert4keras_ext.layers.bias_add import BiasAdd
from bert4keras_ext.layers.embeddings import (
    Embedding,
    PositionEmbedding,
    SinusoidalPositionEmbedding,
)
from bert4keras_ext.layers.feedforward import FeedForward
from bert4keras_ext.layers.normalization import LayerNormalization
from bert4keras_ext.layers.performer_attention import PerformerAttention
from bert4keras_ext.layers.relative_position_bias import RelativePositionBias

__all__ = [
    "AttentionMask",
    "BiasAdd",
    "Embedding",
    "FeedForward",
    "LayerNormalization",
    "MultiHeadAttention",
    "PerformerAttention",
    "PositionEmbedding",
    "RelativePositionBias",
    "SinusoidalPositionEmbedding",
]
