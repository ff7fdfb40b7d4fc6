"""BERT and RoBERTa: the base builder's graph as it is, and BERT's checkpoint names, which
ALBERT, NEZHA, RoFormer, ELECTRA and GPT build on.

RoBERTa ("RoBERTa: A Robustly Optimized BERT Pretraining Approach",
https://arxiv.org/abs/1907.11692) has BERT's graph; its checkpoints have no pooler.
"""
from bert4keras_ext.models import names
from bert4keras_ext.models.checkpoints.name_map import (
    WeightName,
    attention_weights,
    dense_weights,
    feed_forward_weights,
    layer_norm_weights,
    under,
)
from bert4keras_ext.models.registry import register_family
from bert4keras_ext.models.transformer import Transformer


class BERT(Transformer):
    """BERT: post-LayerNorm blocks over token + segment + learned position embeddings."""


def bert_block_weights(block, original, hugging_face):
    """One BERT block: `block` our name ('Transformer-0'), `original` like
    'bert/encoder/layer_0', `hugging_face` like 'encoder.layer.0' (None: not stored by Hugging
    Face)."""
    hf = under(hugging_face)
    attention, feed_forward = names.self_attention(block), names.feed_forward(block)
    return (
        attention_weights(attention,
                          [f"{original}/attention/self/{role}"
                           for role in ("query", "key", "value")]
                          + [f"{original}/attention/output/dense"],
                          [hf(f"attention.self.{role}") for role in ("query", "key", "value")]
                          + [hf("attention.output.dense")])
        + layer_norm_weights(names.norm(attention), f"{original}/attention/output/LayerNorm",
                             hf("attention.output.LayerNorm"))
        + feed_forward_weights(feed_forward, f"{original}/intermediate/dense",
                               f"{original}/output/dense", hf("intermediate.dense"),
                               hf("output.dense"))
        + layer_norm_weights(names.norm(feed_forward), f"{original}/output/LayerNorm",
                             hf("output.LayerNorm"))
    )


def bert_embedding_weights(scope="bert"):
    """Token, segment and position tables and their LayerNorm, under `scope` ('bert/...')."""
    return [
        WeightName(f"{names.TOKEN_EMBEDDING}/embeddings",
                   f"{scope}/embeddings/word_embeddings", "embeddings.word_embeddings.weight"),
        WeightName(f"{names.SEGMENT_EMBEDDING}/embeddings",
                   f"{scope}/embeddings/token_type_embeddings",
                   "embeddings.token_type_embeddings.weight"),
        WeightName(f"{names.POSITION_EMBEDDING}/embeddings",
                   f"{scope}/embeddings/position_embeddings",
                   "embeddings.position_embeddings.weight"),
        *layer_norm_weights(names.EMBEDDING_NORM, f"{scope}/embeddings/LayerNorm",
                            "embeddings.LayerNorm"),
    ]


def mlm_head_weights(dense="cls.predictions.transform.dense",
                     norm="cls.predictions.transform.LayerNorm", bias="cls.predictions.bias"):
    """The MLM head; the arguments are its Hugging Face names."""
    return (
        dense_weights(names.MLM_DENSE, "cls/predictions/transform/dense", dense)
        + layer_norm_weights(names.MLM_NORM, "cls/predictions/transform/LayerNorm", norm)
        + [WeightName(f"{names.MLM_BIAS}/bias", "cls/predictions/output_bias", bias)]
    )


def bert_weight_names(num_hidden_layers):
    """BERT, RoBERTa, NEZHA, RoFormer (and, without biases and norms, RoFormer-V2)."""
    weights = bert_embedding_weights()
    weights += dense_weights(names.EMBEDDING_MAPPING, "bert/encoder/embedding_hidden_mapping_in",
                             "embeddings_project")
    for i in range(num_hidden_layers):
        weights += bert_block_weights(names.block(i), f"bert/encoder/layer_{i}",
                                      f"encoder.layer.{i}")
    return (weights + dense_weights(names.POOLER, "bert/pooler/dense", "pooler.dense")
            + mlm_head_weights())


register_family("bert", BERT, bert_weight_names, hugging_face_prefixes=("bert.",))
register_family("roberta", BERT, bert_weight_names, hugging_face_prefixes=("roberta.",))
