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
import functools

import keras

from bert4keras_ext.layers import AttentionMask, RelativePositionBias
from bert4keras_ext.models import names
from bert4keras_ext.models.backbone import TransformerModel
from bert4keras_ext.models.checkpoints.name_map import WeightName
from bert4keras_ext.models.registry import register_family
from bert4keras_ext.models.transformer import Transformer

EPSILON = 1e-6


class T5Encoder(Transformer):
    """T5's encoder: token ids (0 is padding) -> normalized hidden states."""

    segments = False
    applications = ("encoder",)
    use_bias = False
    attention_scale = False
    prefix = names.ENCODER
    bidirectional = True
    pad_id = 0

    def __init__(self, config, **options):
        self.refuse_options(options, ("with_mlm", "with_pool", "layer_norm_cond"),
                            "T5 has no such head or Conditional LayerNorm")
        super().__init__(config, **options)

    def layer_norm(self, x, name, **options):
        return super().layer_norm(x, name, epsilon=EPSILON, center=False, zero_mean=False,
                                  **options)

    def in_stack(self, name):
        """The name of this stack's layer `name` ('Encoder-Output-Norm')."""
        return names.in_stack(self.prefix, name)

    def block_prefix(self, index):
        return names.block(index, stack=self.prefix)

    def inputs(self):
        return [keras.Input((self.sequence_length,), dtype="int32",
                            name=self.in_stack(names.TOKEN_INPUT))]

    def position_bias(self, queries, keys):
        return self.layer(
            RelativePositionBias, self.in_stack(names.RELATIVE_POSITION_EMBEDDING),
            heads=self.config["num_attention_heads"],
            num_buckets=self.config["relative_attention_num_buckets"],
            max_distance=self.config["relative_attention_max_distance"],
            bidirectional=self.bidirectional, embeddings_initializer=self.initializer,
        )([queries, keys])

    def attention_mask(self, inputs):
        token_ids = inputs[-1]
        mask = self.layer(AttentionMask, self.in_stack(names.ATTENTION_MASK),
                          application=self.application, pad_id=self.pad_id)(token_ids)
        return {"attention_mask": mask, "attention_bias": self.position_bias(token_ids,
                                                                            token_ids)}

    def embeddings(self, inputs):
        x = self.token_embedding()(inputs[-1])
        x = self.dropout(x, self.config["hidden_dropout_prob"],
                         self.in_stack(names.EMBEDDING_DROPOUT))
        if self.embedding_size == self.hidden_size:
            return x
        return self.dense(x, self.hidden_size, self.in_stack(names.EMBEDDING_MAPPING))

    def block(self, x, index):
        """norm -> self-attention -> add; norm -> feed-forward -> add."""
        prefix = self.block_prefix(index)
        x = self.pre_norm_residual(x, self.attention, names.self_attention(prefix))
        return self.pre_norm_residual(x, self.feed_forward, names.feed_forward(prefix))

    def heads(self, x):
        """The final norm (and dropout); their output is the stack's last hidden states."""
        x = self.layer_norm(x, self.in_stack(names.OUTPUT_NORM))
        self.hidden_states = self.dropout(x, self.config["hidden_dropout_prob"],
                                          self.in_stack(names.OUTPUT_DROPOUT))
        return self.hidden_states


class T5Decoder(T5Encoder):
    """T5's decoder: `[context, token_ids]` -> next-token distribution (`with_lm`: True for
    probabilities, 'linear' for logits, False for the scaled hidden states)."""

    applications = ("lm",)
    prefix = names.DECODER
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
        context = keras.Input((self.sequence_length, self.hidden_size),
                              name=names.CONTEXT_INPUT)
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
        x = self.pre_norm_residual(x, self.attention, names.self_attention(prefix))
        x = self.pre_norm_residual(x, self.cross_attention, names.cross_attention(prefix))
        return self.pre_norm_residual(x, self.feed_forward, names.feed_forward(prefix))

    def heads(self, x):
        hidden = x = super().heads(x)
        if self.scale_logits:
            x = self.layer(keras.layers.Rescaling, self.in_stack(names.OUTPUT_SCALE),
                           scale=self.hidden_size ** -0.5)(x)
        if not self.with_lm:
            return x
        if self.embedding_size != self.hidden_size:
            x = self.dense(x, self.embedding_size, self.in_stack(names.OUTPUT_MAPPING))
        outputs = self.output_activation(self.head_logits(x), self.with_lm,
                                         self.in_stack(names.OUTPUT_LM_ACTIVATION))
        self.record_head(hidden, [self.in_stack(names.OUTPUT_SCALE),
                                  self.in_stack(names.OUTPUT_MAPPING), self.head_step()],
                         self.in_stack(names.OUTPUT_LM_ACTIVATION))
        return outputs

    def head_step(self):
        """The head's projection onto the vocabulary, as `record_head` names it."""
        return self.in_stack(names.OUTPUT_LM)

    def head_logits(self, x):
        """T5.1.1's language-model head: a projection of its own."""
        return self.dense(x, self.config["vocab_size"], self.in_stack(names.OUTPUT_LM))

    def model_config(self):
        # The conventions as decided by the builder arguments, so the config rebuilds them.
        return self.config.with_values(cross_position_bias=self.cross_position_bias,
                                       scale_decoder_outputs=self.scale_logits)


class T5TiedDecoder(T5Decoder):
    """T5.1.0's decoder: the token embedding is the language-model head."""

    def head_step(self):
        return self.tied_output

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


def t5_stack_weights(stack, num_hidden_layers, norm, gated):
    """One side of T5 ('encoder' or 'decoder'); `norm` is 'layer_norm' (T5) or 'rms_norm'
    (mT5.1.1's original names); `gated`: two input projections (T5.1.1) or one (T5.1.0)."""
    ours = names.ENCODER if stack == "encoder" else names.DECODER
    bias = "SelfAttention.relative_attention_bias"
    weights = [WeightName(f"{names.in_stack(ours, names.RELATIVE_POSITION_EMBEDDING)}/embeddings",
                          f"{stack}/block_000/layer_000/{bias.replace('.', '/')}",
                          f"{stack}.block.0.layer.0.{bias}.weight", transposed_in_original=True)]
    # Our sublayer and its scope in the checkpoint, in the order the checkpoint numbers them.
    sublayers = [(names.self_attention, "SelfAttention"), (names.feed_forward, "DenseReluDense")]
    if stack == "decoder":
        sublayers.insert(1, (names.cross_attention, "EncDecAttention"))
    for i in range(num_hidden_layers):
        for index, (sublayer, scope) in enumerate(sublayers):
            layer = sublayer(names.block(i, stack=ours))
            original = f"{stack}/block_{i:03d}/layer_{index:03d}"
            hf = f"{stack}.block.{i}.layer.{index}"
            weights.append(WeightName(f"{names.norm(layer)}/gamma", f"{original}/{norm}/scale",
                                      f"{hf}.layer_norm.weight"))
            if scope == "DenseReluDense":
                parts = ({"intermediate_dense": "wi_0", "intermediate_dense_1": "wi_1"}
                         if gated else {"intermediate_dense": "wi"})
                parts["output_dense"] = "wo"
            else:
                parts = {f"{role}_dense": role for role in "qkvo"}
            for part, stored in parts.items():
                kernel = "/kernel" if scope == "DenseReluDense" else ""
                weights.append(WeightName(f"{layer}/{part}/kernel",
                                          f"{original}/{scope}/{stored}{kernel}",
                                          f"{hf}.{scope}.{stored}.weight", True))
    final = "final_layer_norm" if norm == "layer_norm" else norm
    return weights + [WeightName(f"{names.in_stack(ours, names.OUTPUT_NORM)}/gamma",
                                 f"{stack}/{final}/scale", f"{stack}.final_layer_norm.weight")]


def t5_weight_names(num_hidden_layers, version="t5.1.1"):
    """T5 of `version` ('t5.1.0', 't5.1.1' or 'mt5.1.1') in the released mesh-tensorflow names
    and in Hugging Face's (no model prefix; Linear weights [out, in]). T5.1.0's head is the
    token embedding; the others' is `decoder/logits`."""
    norm = "rms_norm" if version == "mt5.1.1" else "layer_norm"
    gated = version != "t5.1.0"
    weights = [
        WeightName(f"{names.TOKEN_EMBEDDING}/embeddings", "shared/embedding", "shared.weight"),
        *t5_stack_weights("encoder", num_hidden_layers, norm, gated),
        *t5_stack_weights("decoder", num_hidden_layers, norm, gated),
    ]
    if version == "t5.1.0":
        return weights
    return weights + [WeightName(f"{names.in_stack(names.DECODER, names.OUTPUT_LM)}/kernel",
                                 "decoder/logits/kernel", "lm_head.weight", True)]


def register_t5(name, version, whole, decoder):
    """Registers T5 `version` as `name` (the builders `whole` and `decoder`) and its halves
    `name`_encoder and `name`_decoder, which read the same checkpoints and leave the other
    half's variables unused. T5 families also read Hugging Face T5's config.json."""
    weight_names = functools.partial(t5_weight_names, version=version)
    formats = ("bert", "t5")
    register_family(name, whole, weight_names, config_formats=formats)
    register_family(f"{name}_encoder", T5Encoder, weight_names, config_formats=formats,
                    half_of=name, unused_prefixes=("decoder", "lm_head"))
    register_family(f"{name}_decoder", decoder, weight_names, config_formats=formats,
                    half_of=name, unused_prefixes=("encoder",))


register_t5("t5.1.0", "t5.1.0", T5Tied, T5TiedDecoder)
register_t5("t5.1.1", "t5.1.1", T5, T5Decoder)
register_t5("mt5.1.1", "mt5.1.1", T5, T5Decoder)
# bert4keras's 't5' is T5.1.0, whose head is tied.
register_t5("t5", "t5.1.0", T5Tied, T5TiedDecoder)
