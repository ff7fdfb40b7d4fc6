"""T5.1.0, T5.1.1 and mT5.1.1 as bert4keras lays them out: an encoder, a decoder, and both
together.

T5 ("Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer", Raffel
et al., 2020, https://arxiv.org/abs/1910.10683) in its 1.1 version
(https://github.com/google-research/text-to-text-transfer-transformer/blob/main/released_checkpoints.md#t511)
and the multilingual mT5 (https://github.com/google-research/multilingual-t5): pre-RMSNorm
blocks (epsilon 1e-6) without biases, attention without the `1/sqrt(d)` scale and with a
bucketed relative position bias shared by the blocks (`RelativePositionBias`), gated-GELU
feed-forward layers, and an untied language-model head. mT5 differs only in checkpoint names.
The first release, T5.1.0 (bert4keras's 't5' and 't5.1.0'), has the same graph with a ReLU
feed-forward layer (the config's `hidden_act`) and the token embedding as the decoder's head
(`T5Tied`, `T5TiedDecoder`).

- The encoder takes token ids (0 is padding) and returns the normalized hidden states.
- The decoder takes `[context, token_ids]`: the encoder's output and the target so far, which
  starts with the start id 0, so the decoder masks no padding (its causal mask hides the
  padding after a target). It attends to every context position; the model made of both masks
  the encoder's padding, as does `CachedGenerator`. It outputs the next-token distribution.

Two conventions differ between the sources, and the config decides: bert4keras adds the
decoder's unidirectional relative bias to cross-attention too (`cross_position_bias`) and
scales the decoder output by `d_model ** -0.5` before the head (in both versions); Hugging
Face does neither for T5.1.1 (its config.json says `scale_decoder_outputs: false`, or in
older files `tie_word_embeddings: false`). `load_config` records Hugging Face's conventions
in the config, so each checkpoint computes what it was trained with; the builder arguments
`cross_position_bias` and `scale_logits` override them. The config's `num_decoder_layers`
(Hugging Face's key) gives the decoder its own number of blocks.
"""
import dataclasses

import keras

from bert4keras_ext.layers import AttentionMask, RelativePositionBias
from bert4keras_ext.models.backbone import TransformerModel
from bert4keras_ext.models.transformer import Transformer

EPSILON = 1e-6


class T5Encoder(Transformer):
    """T5's encoder: token ids (0 is padding) -> normalized hidden states."""

    segments = False
    applications = ("encoder",)
    use_bias = False
    attention_scale = False
    prefix = "Encoder"
    bidirectional = True
    pad_id = 0

    def __init__(self, config, **options):
        self.refuse_options(options, ("with_mlm", "with_pool", "layer_norm_cond"),
                            "T5 has no such head or Conditional LayerNorm")
        super().__init__(config, **options)

    def layer_norm(self, x, name, **options):
        return super().layer_norm(x, name, epsilon=EPSILON, center=False, zero_mean=False,
                                  **options)

    def block_prefix(self, index):
        return f"{self.prefix}-Transformer-{index}"

    def inputs(self):
        return [keras.Input((self.sequence_length,), dtype="int32",
                            name=f"{self.prefix}-Input-Token")]

    def position_bias(self, queries, keys):
        return self.layer(
            RelativePositionBias, f"{self.prefix}-Embedding-Relative-Position",
            heads=self.config["num_attention_heads"],
            num_buckets=self.config["relative_attention_num_buckets"],
            max_distance=self.config["relative_attention_max_distance"],
            bidirectional=self.bidirectional, embeddings_initializer=self.initializer,
        )([queries, keys])

    def attention_mask(self, inputs):
        token_ids = inputs[-1]
        mask = self.layer(AttentionMask, f"{self.prefix}-Attention-Mask",
                          application=self.application, pad_id=self.pad_id)(token_ids)
        return {"attention_mask": mask, "attention_bias": self.position_bias(token_ids,
                                                                            token_ids)}

    def embeddings(self, inputs):
        x = self.token_embedding()(inputs[-1])
        x = self.dropout(x, self.config["hidden_dropout_prob"],
                         f"{self.prefix}-Embedding-Dropout")
        if self.embedding_size == self.hidden_size:
            return x
        return self.dense(x, self.hidden_size, f"{self.prefix}-Embedding-Mapping")

    def block(self, x, index):
        """norm -> self-attention -> add; norm -> feed-forward -> add."""
        prefix = self.block_prefix(index)
        x = self.pre_norm_residual(x, self.attention, f"{prefix}-MultiHeadSelfAttention")
        return self.pre_norm_residual(x, self.feed_forward, f"{prefix}-FeedForward")

    def heads(self, x):
        """The final norm (and dropout); their output is the stack's last hidden states."""
        x = self.layer_norm(x, f"{self.prefix}-Output-Norm")
        self.hidden_states = self.dropout(x, self.config["hidden_dropout_prob"],
                                          f"{self.prefix}-Output-Dropout")
        return self.hidden_states


class T5Decoder(T5Encoder):
    """T5's decoder: `[context, token_ids]` -> next-token distribution (`with_lm`: True for
    probabilities, 'linear' for logits, False for the scaled hidden states)."""

    applications = ("lm",)
    prefix = "Decoder"
    bidirectional = False
    pad_id = None  # the start id is 0, the padding id

    def __init__(self, config, with_lm=True, cross_position_bias=None, scale_logits=None,
                 **options):
        super().__init__(config, **options)
        self.with_lm = with_lm
        self.cross_position_bias = (config.get("cross_position_bias", True)
                                    if cross_position_bias is None else cross_position_bias)
        self.scale_logits = (config.get("scale_decoder_outputs", True)
                             if scale_logits is None else scale_logits)

    def build(self):
        context, token_ids = self.inputs()
        return self.described_model([context, token_ids], self.decode(context, token_ids))

    def inputs(self):
        context = keras.Input((self.sequence_length, self.hidden_size), name="Input-Context")
        return [context, *super().inputs()]

    def decode(self, context, token_ids, context_mask=None):
        """The decoder's graph on `context` ([batch, length, hidden]); `context_mask` (boolean,
        broadcasting to [batch, 1, 1, length]) hides the context's padding."""
        self.cond = None
        self.start_recording()
        self.attention_arguments = self.attention_mask([token_ids])
        self.context = context
        self.cross_arguments = {"attention_mask": context_mask}
        if self.cross_position_bias:
            self.cross_arguments["attention_bias"] = self.position_bias(token_ids, context)
        x = self.embeddings([token_ids])
        for index in range(self.config["num_decoder_layers"] or self.config["num_hidden_layers"]):
            x = self.block(x, index)
        return self.heads(x)

    def cross_attention(self, x, name):
        layer = self.attention_layer(name)
        self.cross_attention_calls.append(layer)
        return layer([x, self.context, self.context], **self.cross_arguments)

    def block(self, x, index):
        """norm -> self-attention -> add; norm -> cross-attention -> add; norm ->
        feed-forward -> add."""
        prefix = self.block_prefix(index)
        x = self.pre_norm_residual(x, self.attention, f"{prefix}-MultiHeadSelfAttention")
        x = self.pre_norm_residual(x, self.cross_attention, f"{prefix}-MultiHeadCrossAttention")
        return self.pre_norm_residual(x, self.feed_forward, f"{prefix}-FeedForward")

    def heads(self, x):
        hidden = x = super().heads(x)
        if self.scale_logits:
            x = self.layer(keras.layers.Rescaling, "Decoder-Output-Scale",
                           scale=self.hidden_size ** -0.5)(x)
        if not self.with_lm:
            return x
        if self.embedding_size != self.hidden_size:
            x = self.dense(x, self.embedding_size, "Decoder-Output-Mapping")
        outputs = self.output_activation(self.head_logits(x), self.with_lm,
                                         "Decoder-Output-LM-Activation")
        self.record_head(hidden, ["Decoder-Output-Scale", "Decoder-Output-Mapping",
                                  self.head_step], "Decoder-Output-LM-Activation")
        return outputs

    # T5.1.1's language-model head: a projection of its own.
    head_step = "Decoder-Output-LM"

    def head_logits(self, x):
        return self.dense(x, self.config["vocab_size"], "Decoder-Output-LM")

    def model_config(self):
        # The conventions as decided by the builder arguments, so the config rebuilds them.
        return {**self.config, "cross_position_bias": self.cross_position_bias,
                "scale_decoder_outputs": self.scale_logits}


class T5TiedDecoder(T5Decoder):
    """T5.1.0's decoder: the token embedding is the language-model head."""

    head_step = ("Embedding-Token", {"mode": "dense"})

    def head_logits(self, x):
        return self.token_embedding()(x, mode="dense")


class T5:
    """The encoder and the decoder on shared token embeddings.

    `build()` returns the Keras model `[encoder token ids, decoder token ids] -> next-token
    distribution`, and sets `.encoder`, `.decoder` and `.model` (what
    `build_transformer_model(..., return_keras_model=False)` returns).
    """

    applications = ("encoder",)
    parts = (T5Encoder, T5Decoder)

    def __init__(self, config, application="encoder", with_lm=True, cross_position_bias=None,
                 scale_logits=None, sequence_length=None, name=None, **options):
        if application not in self.applications:
            raise ValueError(f"`application` must be 'encoder' for T5 (its decoder is causal "
                             f"already); received {application!r}.")
        name = name or "t5"
        encoder, decoder = self.parts
        self.encoder_builder = encoder(config, sequence_length=sequence_length,
                                       name=f"{name}_encoder", **options)
        self.decoder_builder = decoder(config, with_lm=with_lm,
                                       cross_position_bias=cross_position_bias,
                                       scale_logits=scale_logits, sequence_length=sequence_length,
                                       name=f"{name}_decoder", application="lm", **options)
        # One set of layers: the token embedding is shared.
        self.decoder_builder._layers = self.encoder_builder._layers
        self.initializer = self.encoder_builder.initializer
        self.name = name
        # Set by `build_transformer_model`, as for the other builders.
        self.family, self.build_arguments = None, None

    def build(self):
        """The whole `TransformerModel`, with the halves as its `encoder` and `decoder`."""
        for part, builder in (("encoder", self.encoder_builder),
                              ("decoder", self.decoder_builder)):
            builder.family = self.family and f"{self.family}_{part}"
        self.encoder = self.encoder_builder.build()
        self.decoder = self.decoder_builder.build()
        token_ids, decoder_ids = self.encoder.inputs[0], self.decoder.inputs[1]
        padding = self.encoder_builder.attention_arguments["attention_mask"]
        decoder = self.decoder_builder
        outputs = decoder.decode(self.encoder.outputs[0], decoder_ids, padding)
        inputs = [token_ids, decoder_ids]
        # The decoder's parts (its last hidden states, its head) after the encoder's blocks.
        parts = dataclasses.replace(
            decoder.model_parts(inputs), encoder=self.encoder, decoder=self.decoder,
            attention_layers=self.encoder.attention_layers + tuple(decoder.self_attention_calls))
        self.model = TransformerModel(inputs, outputs, name=self.name).describe(
            self.family, "encoder", decoder.model_config(), parts, self.build_arguments)
        return self.model


class T5Tied(T5):
    """T5.1.0: T5 whose decoder's head is the shared token embedding."""

    parts = (T5Encoder, T5TiedDecoder)
