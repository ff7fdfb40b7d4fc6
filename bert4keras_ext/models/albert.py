"""ALBERT ("ALBERT: A Lite BERT for Self-supervised Learning of Language Representations",
https://arxiv.org/abs/1909.11942): BERT's graph with one block shared by every layer and a
small embedding (`embedding_size`) mapped up to `hidden_size`.

`ALBERTUnshared` ('albert_unshared', as in bert4keras) gives every layer its own copy of the
shared block: an ALBERT checkpoint loads into each layer, and fine-tuning may then move them
apart.
"""
from bert4keras_ext.models.transformer import Transformer


class ALBERT(Transformer):
    """One attention and one feed-forward block (with their norms), applied at every depth."""

    def block_prefix(self, index):
        return "Transformer"


class ALBERTUnshared(Transformer):
    """ALBERT's layout with unshared layers: BERT's graph, ALBERT's checkpoint names."""
