"""GPT-2 ("Language Models are Unsupervised Multitask Learners", OpenAI 2019,
https://openai.com/research/better-language-models) and GPT2-ML (the Chinese 1.5B model of
https://github.com/imcaspar/gpt2-ml), both as bert4keras lays them out: causal language models
over token ids alone (no segments), whose output is the next-token distribution through the
tied token embedding (`final_activation`, softmax by default).

GPT-2 normalizes before each branch (pre-LayerNorm) and once more at the output. GPT2-ML
normalizes the embeddings, adds attention without a norm, and wraps the feed-forward branch in
two norms (before it and after the residual add).
"""
from bert4keras_ext.models.transformer import Transformer

# Both checkpoints' LayerNorm epsilon.
EPSILON = 1e-5


class GPT2(Transformer):
    segments = False
    applications = ("lm",)

    def __init__(self, config, final_activation="softmax", **options):
        self.refuse_options(options, ("with_mlm", "with_pool"),
                            "it always outputs the language model's distribution (use "
                            "final_activation='linear' for logits)")
        super().__init__(config, **options)
        self.final_activation = final_activation

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
        x = self.layer_norm(x, "Output-Norm")
        x = self.dropout(x, self.config["hidden_dropout_prob"], "Output-Dropout")
        return self.language_model(x)

    def language_model(self, x):
        logits = self.token_embedding()(x, mode="dense")
        return self.output_activation(logits, self.final_activation, "LM-Activation")


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
        return self.language_model(x)
