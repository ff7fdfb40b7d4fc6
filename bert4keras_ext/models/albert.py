"""ALBERT ("ALBERT: A Lite BERT for Self-supervised Learning of Language Representations",
https://arxiv.org/abs/1909.11942): BERT's graph with one block shared by every layer and a
small embedding (`embedding_size`) mapped up to `hidden_size`.

`ALBERTUnshared` ('albert_unshared', as in bert4keras) gives every layer its own copy of the
shared block: an ALBERT checkpoint loads into each layer, and fine-tuning may then move them
apart.
"""
from bert4keras_ext.models import names
from bert4keras_ext.models.bert import bert_embedding_weights, mlm_head_weights
from bert4keras_ext.models.checkpoints.name_map import (
    attention_weights,
    dense_weights,
    feed_forward_weights,
    layer_norm_weights,
)
from bert4keras_ext.models.registry import register_family
from bert4keras_ext.models.transformer import Transformer


class ALBERT(Transformer):
    """One attention and one feed-forward block (with their norms), applied at every depth."""

    def block_prefix(self, index):
        return names.block()


class ALBERTUnshared(Transformer):
    """ALBERT's layout with unshared layers: BERT's graph, ALBERT's checkpoint names."""


def albert_block_weights(block):
    """ALBERT's one stored block, read into our block `block`."""
    original = "bert/encoder/transformer/group_0/inner_group_0"
    hf = "encoder.albert_layer_groups.0.albert_layers.0"
    attention, feed_forward = names.self_attention(block), names.feed_forward(block)
    return (
        attention_weights(attention,
                          [f"{original}/attention_1/self/{role}"
                           for role in ("query", "key", "value")]
                          + [f"{original}/attention_1/output/dense"],
                          [f"{hf}.attention.{role}" for role in ("query", "key", "value", "dense")])
        + layer_norm_weights(names.norm(attention), f"{original}/LayerNorm",
                             f"{hf}.attention.LayerNorm")
        + feed_forward_weights(feed_forward, f"{original}/ffn_1/intermediate/dense",
                               f"{original}/ffn_1/intermediate/output/dense", f"{hf}.ffn",
                               f"{hf}.ffn_output")
        + layer_norm_weights(names.norm(feed_forward), f"{original}/LayerNorm_1",
                             f"{hf}.full_layer_layer_norm")
    )


def albert_weights(blocks):
    """ALBERT's names, the stored block read into each of our `blocks`."""
    weights = bert_embedding_weights()
    weights += dense_weights(names.EMBEDDING_MAPPING, "bert/encoder/embedding_hidden_mapping_in",
                             "encoder.embedding_hidden_mapping_in")
    for block in blocks:
        weights += albert_block_weights(block)
    weights += dense_weights(names.POOLER, "bert/pooler/dense", "pooler")
    return weights + mlm_head_weights("predictions.dense", "predictions.LayerNorm",
                                      "predictions.bias")


def albert_weight_names(num_hidden_layers):
    """ALBERT: one block for all layers."""
    return albert_weights([names.block()])


def albert_unshared_weight_names(num_hidden_layers):
    """Unshared ALBERT: every layer reads the same stored block."""
    return albert_weights([names.block(i) for i in range(num_hidden_layers)])


register_family("albert", ALBERT, albert_weight_names, hugging_face_prefixes=("albert.",))
register_family("albert_unshared", ALBERTUnshared, albert_unshared_weight_names,
                hugging_face_prefixes=("albert.",))
