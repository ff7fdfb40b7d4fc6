"""BERT and RoBERTa: the base builder's graph as it is.

RoBERTa ("RoBERTa: A Robustly Optimized BERT Pretraining Approach",
https://arxiv.org/abs/1907.11692) has BERT's graph; its checkpoints have no pooler.
"""
from bert4keras_ext.models.transformer import Transformer


class BERT(Transformer):
    """BERT: post-LayerNorm blocks over token + segment + learned position embeddings."""


def mlm_head_logits(model, hidden):
    """The MLM head of a model built with `with_mlm`, applied to `hidden` [..., hidden_size]:
    the logits before `MLM-Activation`. Scoring only some positions (the masked ones in
    pretraining) this way skips the vocabulary projection everywhere else."""
    try:
        dense, norm = model.get_layer("MLM-Dense"), model.get_layer("MLM-Norm")
    except ValueError as error:
        raise ValueError(f"Model {model.name!r} has no MLM head (build it with with_mlm).") \
            from error
    if norm.conditional:
        raise ValueError("mlm_head_logits does not take the condition of a Conditional "
                         "LayerNorm model.")
    projected = model.get_layer("Embedding-Token")(norm(dense(hidden)), mode="dense")
    return model.get_layer("MLM-Bias")(projected)
