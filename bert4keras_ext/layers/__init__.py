"""Transformer layers built on `keras.ops` only (they run on any Keras backend).

Other names are Keras's layers, so `from bert4keras_ext.layers import Dense, Dropout` works as
`from bert4keras.layers import ...` did (bert4keras re-exported `keras.layers`); `Add` and
`Lambda` are Keras's with Keras 2's mask rules (`keras2_masking`).
"""
import keras

from bert4keras_ext.layers.attention import MultiHeadAttention
from bert4keras_ext.layers.attention_mask import AttentionMask
from bert4keras_ext.layers.bias_add import BiasAdd
from bert4keras_ext.layers.concatenate import Concatenate1D
from bert4keras_ext.layers.crf import ConditionalRandomField
from bert4keras_ext.layers.embeddings import (
    Embedding,
    PositionEmbedding,
    SinusoidalPositionEmbedding,
)
from bert4keras_ext.layers.feedforward import FeedForward
from bert4keras_ext.layers.gated_attention_unit import GatedAttentionUnit
from bert4keras_ext.layers.global_pointer import EfficientGlobalPointer, GlobalPointer
from bert4keras_ext.layers.keras2_masking import Add, Lambda
from bert4keras_ext.layers.loss import Loss
from bert4keras_ext.layers.memm import MaximumEntropyMarkovModel
from bert4keras_ext.layers.normalization import LayerNormalization
from bert4keras_ext.layers.performer_attention import PerformerAttention
from bert4keras_ext.layers.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from bert4keras_ext.layers.relative_position_bias import RelativePositionBias
from bert4keras_ext.layers.scale_offset import ScaleOffset

__all__ = [
    "Add",
    "AttentionMask",
    "BiasAdd",
    "Concatenate1D",
    "ConditionalRandomField",
    "EfficientGlobalPointer",
    "Embedding",
    "FeedForward",
    "GatedAttentionUnit",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "GlobalPointer",
    "Lambda",
    "LayerNormalization",
    "Loss",
    "MaximumEntropyMarkovModel",
    "MultiHeadAttention",
    "PerformerAttention",
    "PositionEmbedding",
    "RelativePositionBias",
    "ScaleOffset",
    "SinusoidalPositionEmbedding",
]


def __getattr__(name):
    if hasattr(keras.layers, name):
        return getattr(keras.layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
