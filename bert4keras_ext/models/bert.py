"""BERT and RoBERTa: the base builder's graph as it is.

RoBERTa ("RoBERTa: A Robustly Optimized BERT Pretraining Approach",
https://arxiv.org/abs/1907.11692) has BERT's graph; its checkpoints have no pooler.
"""
from bert4keras_ext.models.transformer import Transformer


class BERT(Transformer):
    """BERT: post-LayerNorm blocks over token + segment + learned position embeddings."""

