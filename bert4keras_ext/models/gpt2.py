"""GPT ("Improving Language Understanding by Generative Pre-Training", Radford et al., 2018,
https://openai.com/research/language-unsupervised, code at
https://github.com/openai/finetune-transformer-lm), GPT-2 ("Language Models are Unsupervised
Multitask Learners", OpenAI 2019, https://openai.com/research/better-language-models) and
GPT2-ML (the Chinese 1.5B model of https://github.com/imcaspar/gpt2-ml), as bert4keras lays
them out: causal language models whose output is the next-token distribution through the tied
token embedding (`final_activation`, softmax by default).

GPT is BERT's graph with the embedding LayerNorm left out: token + segment + position
embeddings, post-LayerNorm blocks, no pooler or MLM transform before the tied head. As in
bert4keras it takes segment ids when `type_vocab_size` > 0 and then also runs as UNILM.
GPT-2 and GPT2-ML take token ids alone. GPT-2 normalizes before each branch (pre-LayerNorm)
and once more at the output. GPT2-ML normalizes the embeddings, adds attention without a norm,
and wraps the feed-forward branch in two norms (before it and after the residual add).
"""
from bert4keras_ext.models import names
from bert4keras_ext.models.bert import bert_weight_names
from bert4keras_ext.models.checkpoints.name_map import (
    WeightName,
    attention_weights,
    dense_weights,
    feed_forward_weights,
    layer_norm_weights,
)
from bert4keras_ext.models.registry import register_family
from bert4keras_ext.models.transformer import Transformer

# GPT-2's and GPT2-ML's LayerNorm epsilon (GPT's norms are BERT's, with the config's).
EPSILON = 1e-5


class GPT(Transformer):
    """BERT's graph without the embedding LayerNorm, pooler and MLM transform."""

    applications = ("lm", "unilm")

    def __init__(self, config, final_activation="softmax", **options):
        self.refuse_options(options, ("with_mlm", "with_pool"),
                            "it always outputs the language model's distribution (use "
                            "final_activation='linear' for logits)")
        super().__init__(config, **options)
        self.final_activation = final_activation
        if self.application == "unilm" and not self.segments:
            raise ValueError("model='gpt' with application='unilm' needs segment ids: "
                             "`type_vocab_size` must be > 0; received 0.")

    @property
    def segments(self):
        """As in bert4keras, a segment input only when there are segment embeddings."""
        return self.config["type_vocab_size"] > 0

    def embeddings(self, inputs):
        x = self.position_embedding(self.token_and_segment(inputs))
        x = self.dropout(x, self.config["hidden_dropout_prob"], names.EMBEDDING_DROPOUT)
        return self.embedding_mapping(x)

    def heads(self, x):
        return self.language_model(x, x)

    def language_model(self, hidden, x, steps=()):
        """The tied output on `x`, the end of the head that began on `hidden` with the layers
        named in `steps`."""
        logits = self.token_embedding()(x, mode="dense")
        outputs = self.output_activation(logits, self.final_activation, names.LM_ACTIVATION)
        self.record_head(hidden, [*steps, self.tied_output], names.LM_ACTIVATION)
        return outputs


class GPT2(GPT):
    segments = False
    applications = ("lm",)

    def layer_norm(self, x, name, **options):
        return super().layer_norm(x, name, epsilon=EPSILON, **options)

    def embeddings(self, inputs):
        return self.embedding_mapping(self.position_embedding(self.token_embedding()(inputs[0])))

    def block(self, x, index):
        """Pre-LayerNorm: norm -> attention -> add -> norm -> feed-forward -> add."""
        prefix = self.block_prefix(index)
        x = self.pre_norm_residual(x, self.attention, names.self_attention(prefix))
        return self.pre_norm_residual(x, self.feed_forward, names.feed_forward(prefix))

    def heads(self, x):
        y = self.layer_norm(x, names.OUTPUT_NORM)
        y = self.dropout(y, self.config["hidden_dropout_prob"], names.OUTPUT_DROPOUT)
        return self.language_model(x, y, [names.OUTPUT_NORM, names.OUTPUT_DROPOUT])


class GPT2ML(GPT2):
    def embeddings(self, inputs):
        x = self.position_embedding(self.token_embedding()(inputs[0]))
        return self.embedding_mapping(self.layer_norm(x, names.EMBEDDING_NORM))

    def block(self, x, index):
        """attention -> add; norm -> feed-forward -> add (to the norm's input) -> norm."""
        name = names.self_attention(self.block_prefix(index))
        x = self.residual(x, self.attention(x, name), name)
        name = names.feed_forward(self.block_prefix(index))
        y = self.feed_forward(self.layer_norm(x, names.norm(name, 0)), name)
        return self.layer_norm(self.residual(x, y, name), names.norm(name, 1))

    def heads(self, x):
        return self.language_model(x, x)


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
    weights = [
        WeightName(f"{names.TOKEN_EMBEDDING}/embeddings", "gpt/embeddings/word_embeddings",
                   "wte.weight"),
        WeightName(f"{names.POSITION_EMBEDDING}/embeddings",
                   "gpt/embeddings/position_embeddings", "wpe.weight"),
        *dense_weights(names.EMBEDDING_MAPPING, "gpt/transformer/embedding_hidden_mapping_in"),
    ]
    for i in range(num_hidden_layers):
        block, original, hf = names.block(i), f"gpt/transformer/layer_{i}", f"h.{i}"
        attention, feed_forward = names.self_attention(block), names.feed_forward(block)
        weights += layer_norm_weights(names.norm(attention),
                                      f"{original}/attention/input/LayerNorm", f"{hf}.ln_1")
        weights += attention_weights(attention,
                                     [f"{original}/attention/self/{role}"
                                      for role in ("query", "key", "value")]
                                     + [f"{original}/attention/output/dense"],
                                     (None, None, None, f"{hf}.attn.c_proj"), linear=False,
                                     fused=f"{hf}.attn.c_attn")
        weights += layer_norm_weights(names.norm(feed_forward), f"{original}/input/LayerNorm",
                                      f"{hf}.ln_2")
        weights += feed_forward_weights(feed_forward, f"{original}/intermediate/dense",
                                        f"{original}/output/dense", f"{hf}.mlp.c_fc",
                                        f"{hf}.mlp.c_proj", linear=False)
    return weights + layer_norm_weights(names.OUTPUT_NORM, "gpt/output/LayerNorm", "ln_f")


def gpt2_ml_weight_names(num_hidden_layers):
    """GPT2-ML's released names (no Hugging Face format)."""
    weights = [
        WeightName(f"{names.TOKEN_EMBEDDING}/embeddings", "newslm/embeddings/word_embed"),
        WeightName(f"{names.POSITION_EMBEDDING}/embeddings", "newslm/embeddings/pos_embed"),
        *layer_norm_weights(names.EMBEDDING_NORM, "newslm/embeddings/LayerNorm_embed_norm"),
    ]
    for i in range(num_hidden_layers):
        block, original = names.block(i), f"newslm/layer{i:02d}"
        feed_forward = names.feed_forward(block)
        weights += attention_weights(names.self_attention(block),
                                     [f"{original}/{role}_layer"
                                      for role in ("query", "key", "value",
                                                   "context_projection")])
        weights += layer_norm_weights(names.norm(feed_forward, 0),
                                      f"{original}/LayerNorm_mlp_ln0")
        weights += feed_forward_weights(feed_forward, f"{original}/intermediate",
                                        f"{original}/output")
        weights += layer_norm_weights(names.norm(feed_forward, 1),
                                      f"{original}/LayerNorm_mlp_ln1")
    return weights


# GPT families also read Hugging Face GPT-2's config.json (`n_embd`, ...).
register_family("gpt", GPT, gpt_weight_names, config_formats=("bert", "gpt2"))
register_family("gpt2", GPT2, gpt2_weight_names, hugging_face_prefixes=("transformer.",),
                config_formats=("bert", "gpt2"))
register_family("gpt2_ml", GPT2ML, gpt2_ml_weight_names, config_formats=("bert", "gpt2"))
