"""NEZHA ("NEZHA: Neural Contextualized Representation for Chinese Language Understanding",
https://arxiv.org/abs/1909.00204): BERT without a position table; every attention layer adds
the functional (fixed sinusoidal) relative positions of its keys to the logits and the output.
"""
from bert4keras_ext.models.transformer import Transformer


class NEZHA(Transformer):
    position_scheme = "functional_relative"
