"""Which checkpoint variable fills which weight of each family's model.

One table per family serves both source formats: the original released TensorFlow names (the
ones bert4keras reads: `bert/encoder/layer_0/attention/self/query/kernel`, kernels stored
[in, out]) and Hugging Face names (`encoder.layer.0.attention.self.query.weight`, Linear
weights stored [out, in]; GPT-2's Conv1D weights are stored [in, out] and its query, key and
value are one fused matrix). Hugging Face names are given without the model prefix
(`bert.`, `albert.`, ...); `HUGGING_FACE_PREFIXES` lists the prefixes a file may add.
"""
import functools
import re
from dataclasses import dataclass


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


def _under(prefix):
    """Names below `prefix` ('a.b' + 'c' -> 'a.b.c'); all None when the prefix is None."""
    return lambda suffix: None if prefix is None else f"{prefix}.{suffix}"


def _dense(ours, original, hugging_face=None, linear=True, part=None):
    """A Dense layer's kernel and bias. `linear`: stored [out, in] by Hugging Face."""
    hf = _under(hugging_face)
    return [
        WeightName(f"{ours}/kernel", f"{original}/kernel", hf("weight"), linear,
                   None if part is None else (1 if not linear else 0, *part)),
        WeightName(f"{ours}/bias", f"{original}/bias", hf("bias"), False,
                   None if part is None else (0, *part)),
    ]


def _layer_norm(ours, original, hugging_face=None):
    hf = _under(hugging_face)
    return [WeightName(f"{ours}/gamma", f"{original}/gamma", hf("weight")),
            WeightName(f"{ours}/beta", f"{original}/beta", hf("bias"))]


def _attention(ours, originals, hugging_faces=(None,) * 4, linear=True, fused=None):
    """The four projections; `fused` names Hugging Face's single query/key/value matrix."""
    names = []
    for index, (projection, original, hugging_face) in enumerate(
            zip(("q_dense", "k_dense", "v_dense", "o_dense"), originals, hugging_faces)):
        part = None
        if fused is not None and index < 3:
            hugging_face, part = fused, (index, 3)
        names += _dense(f"{ours}/{projection}", original, hugging_face, linear, part)
    return names


def _feed_forward(ours, original_in, original_out, hf_in=None, hf_out=None, linear=True):
    return (_dense(f"{ours}/intermediate_dense", original_in, hf_in, linear)
            + _dense(f"{ours}/output_dense", original_out, hf_out, linear))


def _bert_layer(ours, original, hugging_face):
    """One BERT block: `original` like 'bert/encoder/layer_0', `hugging_face` like
    'encoder.layer.0' (None: not stored by Hugging Face)."""
    hf = _under(hugging_face)
    attention, feed_forward = f"{ours}-MultiHeadSelfAttention", f"{ours}-FeedForward"
    return (
        _attention(attention,
                   [f"{original}/attention/self/{role}" for role in ("query", "key", "value")]
                   + [f"{original}/attention/output/dense"],
                   [hf(f"attention.self.{role}") for role in ("query", "key", "value")]
                   + [hf("attention.output.dense")])
        + _layer_norm(f"{attention}-Norm", f"{original}/attention/output/LayerNorm",
                      hf("attention.output.LayerNorm"))
        + _feed_forward(feed_forward, f"{original}/intermediate/dense",
                        f"{original}/output/dense", hf("intermediate.dense"),
                        hf("output.dense"))
        + _layer_norm(f"{feed_forward}-Norm", f"{original}/output/LayerNorm",
                      hf("output.LayerNorm"))
    )


def _bert_embeddings(scope="bert"):
    return [
        WeightName("Embedding-Token/embeddings", f"{scope}/embeddings/word_embeddings",
                   "embeddings.word_embeddings.weight"),
        WeightName("Embedding-Segment/embeddings", f"{scope}/embeddings/token_type_embeddings",
                   "embeddings.token_type_embeddings.weight"),
        WeightName("Embedding-Position/embeddings", f"{scope}/embeddings/position_embeddings",
                   "embeddings.position_embeddings.weight"),
        *_layer_norm("Embedding-Norm", f"{scope}/embeddings/LayerNorm", "embeddings.LayerNorm"),
    ]


def _mlm_head(dense="cls.predictions.transform.dense",
              norm="cls.predictions.transform.LayerNorm", bias="cls.predictions.bias"):
    return (
        _dense("MLM-Dense", "cls/predictions/transform/dense", dense)
        + _layer_norm("MLM-Norm", "cls/predictions/transform/LayerNorm", norm)
        + [WeightName("MLM-Bias/bias", "cls/predictions/output_bias", bias)]
    )


def bert_weight_names(num_hidden_layers):
    """BERT, RoBERTa, NEZHA, RoFormer (and, without biases and norms, RoFormer-V2)."""
    names = _bert_embeddings()
    names += _dense("Embedding-Mapping", "bert/encoder/embedding_hidden_mapping_in",
                    "embeddings_project")
    for i in range(num_hidden_layers):
        names += _bert_layer(f"Transformer-{i}", f"bert/encoder/layer_{i}", f"encoder.layer.{i}")
    return names + _dense("Pooler-Dense", "bert/pooler/dense", "pooler.dense") + _mlm_head()


def _albert_block(ours):
    original = "bert/encoder/transformer/group_0/inner_group_0"
    hf = "encoder.albert_layer_groups.0.albert_layers.0"
    attention, feed_forward = f"{ours}-MultiHeadSelfAttention", f"{ours}-FeedForward"
    return (
        _attention(attention,
                   [f"{original}/attention_1/self/{role}" for role in ("query", "key", "value")]
                   + [f"{original}/attention_1/output/dense"],
                   [f"{hf}.attention.{role}" for role in ("query", "key", "value", "dense")])
        + _layer_norm(f"{attention}-Norm", f"{original}/LayerNorm", f"{hf}.attention.LayerNorm")
        + _feed_forward(feed_forward, f"{original}/ffn_1/intermediate/dense",
                        f"{original}/ffn_1/intermediate/output/dense", f"{hf}.ffn",
                        f"{hf}.ffn_output")
        + _layer_norm(f"{feed_forward}-Norm", f"{original}/LayerNorm_1",
                      f"{hf}.full_layer_layer_norm")
    )


def albert_weight_names(num_hidden_layers, shared=True):
    """ALBERT: one block for all layers; unshared, every layer reads that same block."""
    names = _bert_embeddings()
    names += _dense("Embedding-Mapping", "bert/encoder/embedding_hidden_mapping_in",
                    "encoder.embedding_hidden_mapping_in")
    if shared:
        names += _albert_block("Transformer")
    else:
        for i in range(num_hidden_layers):
            names += _albert_block(f"Transformer-{i}")
    names += _dense("Pooler-Dense", "bert/pooler/dense", "pooler")
    return names + _mlm_head("predictions.dense", "predictions.LayerNorm", "predictions.bias")


def electra_weight_names(num_hidden_layers):
    """ELECTRA's discriminator: BERT's names under 'electra/' and the replaced-token head."""
    names = _bert_embeddings("electra")
    names += _dense("Embedding-Mapping", "electra/embeddings_project", "embeddings_project")
    for i in range(num_hidden_layers):
        names += _bert_layer(f"Transformer-{i}", f"electra/encoder/layer_{i}",
                             f"encoder.layer.{i}")
    return (names
            + _dense("Discriminator-Dense", "discriminator_predictions/dense",
                     "discriminator_predictions.dense")
            + _dense("Discriminator-Prediction", "discriminator_predictions/dense_1",
                     "discriminator_predictions.dense_prediction"))


def gpt_weight_names(num_hidden_layers):
    """GPT in bert4keras's names (its conversion of OpenAI's checkpoint): BERT's original names
    with 'bert/' as 'gpt/' and 'encoder' as 'transformer' (no Hugging Face format)."""
    return [WeightName(name.ours,
                       name.original.replace("bert/", "gpt/").replace("encoder", "transformer"))
            for name in bert_weight_names(num_hidden_layers)
            if name.original.startswith("bert/")]


def gpt2_weight_names(num_hidden_layers):
    """GPT-2 in bert4keras's names (its conversion of OpenAI's checkpoint) and in Hugging
    Face's (`h.0.attn.c_attn`: Conv1D, [in, out], query/key/value fused)."""
    names = [
        WeightName("Embedding-Token/embeddings", "gpt/embeddings/word_embeddings", "wte.weight"),
        WeightName("Embedding-Position/embeddings", "gpt/embeddings/position_embeddings",
                   "wpe.weight"),
        *_dense("Embedding-Mapping", "gpt/transformer/embedding_hidden_mapping_in"),
    ]
    for i in range(num_hidden_layers):
        ours, original, hf = f"Transformer-{i}", f"gpt/transformer/layer_{i}", f"h.{i}"
        attention, feed_forward = f"{ours}-MultiHeadSelfAttention", f"{ours}-FeedForward"
        names += _layer_norm(f"{attention}-Norm", f"{original}/attention/input/LayerNorm",
                             f"{hf}.ln_1")
        names += _attention(attention,
                            [f"{original}/attention/self/{role}"
                             for role in ("query", "key", "value")]
                            + [f"{original}/attention/output/dense"],
                            (None, None, None, f"{hf}.attn.c_proj"), linear=False,
                            fused=f"{hf}.attn.c_attn")
        names += _layer_norm(f"{feed_forward}-Norm", f"{original}/input/LayerNorm",
                             f"{hf}.ln_2")
        names += _feed_forward(feed_forward, f"{original}/intermediate/dense",
                               f"{original}/output/dense", f"{hf}.mlp.c_fc",
                               f"{hf}.mlp.c_proj", linear=False)
    return names + _layer_norm("Output-Norm", "gpt/output/LayerNorm", "ln_f")


def gpt2_ml_weight_names(num_hidden_layers):
    """GPT2-ML's released names (no Hugging Face format)."""
    names = [
        WeightName("Embedding-Token/embeddings", "newslm/embeddings/word_embed"),
        WeightName("Embedding-Position/embeddings", "newslm/embeddings/pos_embed"),
        *_layer_norm("Embedding-Norm", "newslm/embeddings/LayerNorm_embed_norm"),
    ]
    for i in range(num_hidden_layers):
        ours, original = f"Transformer-{i}", f"newslm/layer{i:02d}"
        names += _attention(f"{ours}-MultiHeadSelfAttention",
                            [f"{original}/{role}_layer"
                             for role in ("query", "key", "value", "context_projection")])
        names += _layer_norm(f"{ours}-FeedForward-Norm-0", f"{original}/LayerNorm_mlp_ln0")
        names += _feed_forward(f"{ours}-FeedForward", f"{original}/intermediate",
                               f"{original}/output")
        names += _layer_norm(f"{ours}-FeedForward-Norm-1", f"{original}/LayerNorm_mlp_ln1")
    return names


def _t5_stack(stack, num_hidden_layers, norm, gated):
    """One side of T5 ('encoder' or 'decoder'); `norm` is 'layer_norm' (T5) or 'rms_norm'
    (mT5.1.1's original names); `gated`: two input projections (T5.1.1) or one (T5.1.0)."""
    ours = stack.capitalize()
    bias = "SelfAttention.relative_attention_bias"
    names = [WeightName(f"{ours}-Embedding-Relative-Position/embeddings",
                        f"{stack}/block_000/layer_000/{bias.replace('.', '/')}",
                        f"{stack}.block.0.layer.0.{bias}.weight", transposed_in_original=True)]
    sublayers = ["MultiHeadSelfAttention", "FeedForward"]
    if stack == "decoder":
        sublayers.insert(1, "MultiHeadCrossAttention")
    for i in range(num_hidden_layers):
        for index, sublayer in enumerate(sublayers):
            block = f"{ours}-Transformer-{i}-{sublayer}"
            original = f"{stack}/block_{i:03d}/layer_{index:03d}"
            hf = f"{stack}.block.{i}.layer.{index}"
            names.append(WeightName(f"{block}-Norm/gamma", f"{original}/{norm}/scale",
                                    f"{hf}.layer_norm.weight"))
            if sublayer == "FeedForward":
                parts = ({"intermediate_dense": "wi_0", "intermediate_dense_1": "wi_1"}
                         if gated else {"intermediate_dense": "wi"})
                parts["output_dense"] = "wo"
                scope = "DenseReluDense"
            else:
                parts = {f"{role}_dense": role for role in "qkvo"}
                scope = "EncDecAttention" if "Cross" in sublayer else "SelfAttention"
            for part, stored in parts.items():
                kernel = "/kernel" if scope == "DenseReluDense" else ""
                names.append(WeightName(f"{block}/{part}/kernel",
                                        f"{original}/{scope}/{stored}{kernel}",
                                        f"{hf}.{scope}.{stored}.weight", True))
    final = "final_layer_norm" if norm == "layer_norm" else norm
    return names + [WeightName(f"{ours}-Output-Norm/gamma", f"{stack}/{final}/scale",
                               f"{stack}.final_layer_norm.weight")]


def t5_weight_names(num_hidden_layers, version="t5.1.1"):
    """T5 of `version` ('t5.1.0', 't5.1.1' or 'mt5.1.1') in the released mesh-tensorflow names
    and in Hugging Face's (no model prefix; Linear weights [out, in]). T5.1.0's head is the
    token embedding; the others' is `decoder/logits`."""
    norm = "rms_norm" if version == "mt5.1.1" else "layer_norm"
    gated = version != "t5.1.0"
    names = [
        WeightName("Embedding-Token/embeddings", "shared/embedding", "shared.weight"),
        *_t5_stack("encoder", num_hidden_layers, norm, gated),
        *_t5_stack("decoder", num_hidden_layers, norm, gated),
    ]
    if version == "t5.1.0":
        return names
    return names + [WeightName("Decoder-Output-LM/kernel", "decoder/logits/kernel",
                               "lm_head.weight", True)]


NAME_MAPS = {
    "bert": bert_weight_names,
    "roberta": bert_weight_names,
    "nezha": bert_weight_names,
    "roformer": bert_weight_names,
    "roformer_v2": bert_weight_names,
    "albert": albert_weight_names,
    "albert_unshared": lambda layers: albert_weight_names(layers, shared=False),
    "electra": electra_weight_names,
    "gpt": gpt_weight_names,
    "gpt2": gpt2_weight_names,
    "gpt2_ml": gpt2_ml_weight_names,
}
for _part in ("", "_encoder", "_decoder"):
    for _version in ("t5.1.0", "t5.1.1", "mt5.1.1"):
        NAME_MAPS[f"{_version}{_part}"] = functools.partial(t5_weight_names, version=_version)
    NAME_MAPS[f"t5{_part}"] = NAME_MAPS[f"t5.1.0{_part}"]  # bert4keras's name for T5.1.0
# Prefixes Hugging Face model classes put before the names above.
HUGGING_FACE_PREFIXES = {
    "bert": ("bert.",), "roberta": ("roberta.",), "nezha": ("nezha.",),
    "roformer": ("roformer.",), "roformer_v2": ("roformer.",), "albert": ("albert.",),
    "albert_unshared": ("albert.",), "electra": ("electra.",), "gpt2": ("transformer.",),
    "gpt2_ml": (),
}


def weight_names(family, num_hidden_layers):
    if family not in NAME_MAPS:
        raise ValueError(f"No checkpoint name map for model {family!r}; families with one: "
                         f"{sorted(NAME_MAPS)}.")
    return NAME_MAPS[family](num_hidden_layers)


_BLOCK = re.compile(r"^((?:Encoder-|Decoder-)?Transformer)(?:-\d+)?-")


def weight_role(path):
    """What a weight is in every block: its path with the block index as '*'
    ('Transformer-*-FeedForward/output_dense/kernel'); None outside the blocks."""
    return _BLOCK.sub(r"\1-*-", path, count=1) if _BLOCK.match(path) else None


# Weights along the vocabulary, and the axis: `keep_tokens` selects those entries.
VOCABULARY_WEIGHTS = {"Embedding-Token/embeddings": 0, "MLM-Bias/bias": 0,
                      "Decoder-Output-LM/kernel": 1}
# Heads a checkpoint may carry that our model leaves out on request; not worth a warning.
OPTIONAL_HEADS = ("bert/pooler/", "cls/", "pooler.", "cls.", "predictions.", "lm_head.",
                  "discriminator_predictions", "generator", "sop_classifier.")
