"""Which checkpoint variable fills which weight of `build_transformer_model`'s BERT.

One table serves both source formats: Google's original TensorFlow names
(`bert/encoder/layer_0/attention/self/query/kernel`, kernels stored [in, out]) and Hugging
Face names (`encoder.layer.0.attention.self.query.weight`, Linear weights stored [out, in]).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class WeightName:
    ours: str  # Keras variable path, e.g. 'Transformer-0-FeedForward/output_dense/kernel'
    original: str  # name in Google's BERT TF checkpoints
    hugging_face: str  # name in Hugging Face BERT weights (without the 'bert.' prefix)
    transposed_in_hugging_face: bool = False


def _dense(ours, original, hugging_face):
    return [
        WeightName(f"{ours}/kernel", f"{original}/kernel", f"{hugging_face}.weight", True),
        WeightName(f"{ours}/bias", f"{original}/bias", f"{hugging_face}.bias"),
    ]


def _layer_norm(ours, original, hugging_face):
    return [
        WeightName(f"{ours}/gamma", f"{original}/gamma", f"{hugging_face}.weight"),
        WeightName(f"{ours}/beta", f"{original}/beta", f"{hugging_face}.bias"),
    ]


def bert_weight_names(num_hidden_layers):
    """The full table for a BERT with `num_hidden_layers` layers, pooler and MLM head."""
    names = [
        WeightName("Embedding-Token/embeddings", "bert/embeddings/word_embeddings",
                   "embeddings.word_embeddings.weight"),
        WeightName("Embedding-Segment/embeddings", "bert/embeddings/token_type_embeddings",
                   "embeddings.token_type_embeddings.weight"),
        WeightName("Embedding-Position/embeddings", "bert/embeddings/position_embeddings",
                   "embeddings.position_embeddings.weight"),
        *_layer_norm("Embedding-Norm", "bert/embeddings/LayerNorm", "embeddings.LayerNorm"),
    ]
    for i in range(num_hidden_layers):
        attention = f"Transformer-{i}-MultiHeadSelfAttention"
        feed_forward = f"Transformer-{i}-FeedForward"
        original = f"bert/encoder/layer_{i}"
        hugging_face = f"encoder.layer.{i}"
        for ours, role in (("q_dense", "query"), ("k_dense", "key"), ("v_dense", "value")):
            names += _dense(f"{attention}/{ours}", f"{original}/attention/self/{role}",
                            f"{hugging_face}.attention.self.{role}")
        names += _dense(f"{attention}/o_dense", f"{original}/attention/output/dense",
                        f"{hugging_face}.attention.output.dense")
        names += _layer_norm(f"{attention}-Norm", f"{original}/attention/output/LayerNorm",
                             f"{hugging_face}.attention.output.LayerNorm")
        names += _dense(f"{feed_forward}/intermediate_dense", f"{original}/intermediate/dense",
                        f"{hugging_face}.intermediate.dense")
        names += _dense(f"{feed_forward}/output_dense", f"{original}/output/dense",
                        f"{hugging_face}.output.dense")
        names += _layer_norm(f"{feed_forward}-Norm", f"{original}/output/LayerNorm",
                             f"{hugging_face}.output.LayerNorm")
    names += _dense("Pooler-Dense", "bert/pooler/dense", "pooler.dense")
    names += _dense("MLM-Dense", "cls/predictions/transform/dense",
                    "cls.predictions.transform.dense")
    names += _layer_norm("MLM-Norm", "cls/predictions/transform/LayerNorm",
                         "cls.predictions.transform.LayerNorm")
    names.append(
        WeightName("MLM-Bias/bias", "cls/predictions/output_bias", "cls.predictions.bias")
    )
    return names


# Rows of these follow the vocabulary, so `keep_tokens` selects them.
VOCABULARY_WEIGHTS = ("Embedding-Token/embeddings", "MLM-Bias/bias")
# Heads a checkpoint may carry that our model leaves out on request; not worth a warning.
OPTIONAL_HEADS = ("bert/pooler/", "cls/", "pooler.", "cls.")
