"""Which checkpoint variable fills which weight of a model: `WeightName` and the pieces each
family's name map is made of.

One map per family (`Family.weight_names`, in the family's module: `bert_weight_names` in
`models/bert.py`, ...) serves both source formats: the original released TensorFlow names
(the ones bert4keras reads: `bert/encoder/layer_0/attention/self/query/kernel`, kernels stored
[in, out]) and Hugging Face names (`encoder.layer.0.attention.self.query.weight`, Linear
weights stored [out, in]; GPT-2's Conv1D weights are stored [in, out] and its query, key and
value are one fused matrix). Hugging Face names are given without the model prefix
(`bert.`, `albert.`, ...); `Family.hugging_face_prefixes` lists the prefixes a file may add.
Our side is the Keras variable path: a layer name of `models.names`, '/', the variable.
"""
import re
from dataclasses import dataclass

from bert4keras_ext.models import names
from bert4keras_ext.models.registry import get_family


@dataclass(frozen=True)
class WeightName:
    ours: str  # Keras variable path, e.g. 'Transformer-0-FeedForward/output_dense/kernel'
    original: str  # name in the family's original TF checkpoints (None: not stored there)
    hugging_face: str = None  # name in Hugging Face weights, without the model prefix
    transposed_in_hugging_face: bool = False
    # (axis, index, parts): the stored Hugging Face tensor is `parts` weights concatenated on
    # `axis`, and this weight is part `index` (GPT-2's fused query/key/value).
    hugging_face_part: tuple = None
    transposed_in_original: bool = False  # T5's relative bias is stored [heads, buckets]


def under(prefix):
    """Hugging Face names below `prefix` ('a.b' + 'c' -> 'a.b.c'); all None when the prefix is
    None (a weight Hugging Face does not store)."""
    return lambda suffix: None if prefix is None else f"{prefix}.{suffix}"


def dense_weights(ours, original, hugging_face=None, linear=True, part=None):
    """A Dense layer's kernel and bias. `linear`: stored [out, in] by Hugging Face."""
    hf = under(hugging_face)
    return [
        WeightName(f"{ours}/kernel", f"{original}/kernel", hf("weight"), linear,
                   None if part is None else (1 if not linear else 0, *part)),
        WeightName(f"{ours}/bias", f"{original}/bias", hf("bias"), False,
                   None if part is None else (0, *part)),
    ]


def layer_norm_weights(ours, original, hugging_face=None):
    hf = under(hugging_face)
    return [WeightName(f"{ours}/gamma", f"{original}/gamma", hf("weight")),
            WeightName(f"{ours}/beta", f"{original}/beta", hf("bias"))]


def attention_weights(ours, originals, hugging_faces=(None,) * 4, linear=True, fused=None):
    """The four projections; `fused` names Hugging Face's single query/key/value matrix."""
    weights = []
    for index, (projection, original, hugging_face) in enumerate(
            zip(("q_dense", "k_dense", "v_dense", "o_dense"), originals, hugging_faces)):
        part = None
        if fused is not None and index < 3:
            hugging_face, part = fused, (index, 3)
        weights += dense_weights(f"{ours}/{projection}", original, hugging_face, linear, part)
    return weights


def feed_forward_weights(ours, original_in, original_out, hf_in=None, hf_out=None, linear=True):
    return (dense_weights(f"{ours}/intermediate_dense", original_in, hf_in, linear)
            + dense_weights(f"{ours}/output_dense", original_out, hf_out, linear))


def weight_names(family, num_hidden_layers):
    """The name map of the registered `family` (a `model=` name) for that many blocks."""
    return get_family(family, "family").weight_names(num_hidden_layers)


# A block's name (`names.block`) at the start of a weight path: the stack, then the index.
_BLOCK = re.compile(rf"^((?:{names.ENCODER}-|{names.DECODER}-)?{names.block()})(?:-\d+)?-")


def weight_role(path):
    """What a weight is in every block: its path with the block index as '*'
    ('Transformer-*-FeedForward/output_dense/kernel'); None outside the blocks."""
    return _BLOCK.sub(r"\1-*-", path, count=1) if _BLOCK.match(path) else None


# Weights along the vocabulary, and the axis: `keep_tokens` selects those entries.
VOCABULARY_WEIGHTS = {f"{names.TOKEN_EMBEDDING}/embeddings": 0, f"{names.MLM_BIAS}/bias": 0,
                      f"{names.in_stack(names.DECODER, names.OUTPUT_LM)}/kernel": 1}
# Heads a checkpoint may carry that our model leaves out on request; not worth a warning.
OPTIONAL_HEADS = ("bert/pooler/", "cls/", "pooler.", "cls.", "predictions.", "lm_head.",
                  "discriminator_predictions", "generator", "sop_classifier.")
