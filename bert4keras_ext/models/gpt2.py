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
        x = self.dropout(x, self.config["hidden_dropout_prob"], "Embedding-Dropout")
        return self.embedding_mapping(x)

    def heads(self, x):
        return self.language_model(x, x)

    def language_model(self, hidden, x, steps=()):
        """The tied output on `x`, the end of the head that began on `hidden` with the layers
        named in `steps`."""
        logits = self.token_embedding()(x, mode="dense")
        outputs = self.output_activation(logits, self.final_activation, "LM-Activation")
        self.record_head(hidden, [*steps, ("Embedding-Token", {"mode": "dense"})],
                         "LM-Activation")
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
        x = self.pre_norm_residual(x, self.attention, f"{prefix}-MultiHeadSelfAttention")
        return self.pre_norm_residual(x, self.feed_forward, f"{prefix}-FeedForward")

    def heads(self, x):
        y = self.layer_norm(x, "Output-Norm")
        y = self.dropout(y, self.config["hidden_dropout_prob"], "Output-Dropout")
        return self.language_model(x, y, ["Output-Norm", "Output-Dropout"])


class GPT2ML(GPT2):
    def embeddings(self, inputs):
        x = self.position_embedding(self.token_embedding()(inputs[0]))
        return self.embedding_mapping(self.layer_norm(x, "Embedding-Norm"))

    def block(self, x, index):
        """attention -> add; norm -> feed-forward -> add (to the norm's input) -> norm."""
        name = f"{self.block_prefix(index)}-MultiHeadSelfAttention"
        x = self.residual(x, self.attention(x, name), name)
        name = f"{self.block_prefix(index)}-FeedForward"
        y = self.feed_forward(self.layer_norm(x, f"{name}-Norm-0"), name)
        return self.layer_norm(self.residual(x, y, name), f"{name}-Norm-1")

    def heads(self, x):
        return self.language_model(x, x)
