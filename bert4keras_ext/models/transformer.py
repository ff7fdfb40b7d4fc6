"""The shared Transformer builder: BERT's graph, with one method per part a family may change.

`Transformer.build()` makes a functional Keras model in this order: inputs, attention mask,
embeddings, `num_hidden_layers` blocks, output heads. The base class lays out BERT ("BERT:
Pre-training of Deep Bidirectional Transformers for Language Understanding",
https://arxiv.org/abs/1810.04805): token + segment + position embeddings, LayerNorm, and
post-LayerNorm blocks (attention -> add -> norm -> feed-forward -> add -> norm), with optional
pooler and MLM heads. A family (`models/albert.py`, `nezha.py`, `roformer.py`, `electra.py`,
`gpt2.py`) overrides only the methods where its graph differs.

Layers are created through `self.layer(cls, name, ...)`, which returns the existing layer when
the name was used before: ALBERT's shared blocks are the same names at every depth. Layer names
follow bert4keras ('Embedding-Token', 'Transformer-0-MultiHeadSelfAttention', 'MLM-Norm', ...),
so checkpoint name maps (`models.checkpoints.name_map`) address weights by layer name.
"""
import json
import os

import keras

from bert4keras_ext import activations, arguments, masks
from bert4keras_ext.layers import (
    Add,
    AttentionMask,
    BiasAdd,
    Embedding,
    FeedForward,
    LayerNormalization,
    MultiHeadAttention,
    PerformerAttention,
    PositionEmbedding,
)
from bert4keras_ext.models.backbone import ModelParts, TransformerModel
from bert4keras_ext.models.output_head import OutputHead

REQUIRED_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
)
DEFAULTS = {
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "embedding_size": None,
    "attention_head_size": None,
    "layer_norm_eps": 1e-12,
    "initializer_range": 0.02,
    # NEZHA: relative distances are clipped to +-max_relative_position (its models: 64).
    "max_relative_position": 64,
    # RoFormer (Hugging Face's key): values are rotated by their positions too.
    "rotary_value": False,
    # T5: the relative bias's buckets and the distance where the last one starts, and the
    # decoder's number of blocks (None: `num_hidden_layers`, as the encoder).
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "num_decoder_layers": None,
}
# Integer config keys and their smallest valid value (None allowed where the default is None).
SIZE_KEYS = {"vocab_size": 1, "hidden_size": 1, "num_hidden_layers": 1,
             "num_attention_heads": 1, "intermediate_size": 1, "max_position_embeddings": 1,
             "type_vocab_size": 0, "embedding_size": 1, "attention_head_size": 1,
             "max_relative_position": 1, "relative_attention_num_buckets": 1,
             "relative_attention_max_distance": 1, "num_decoder_layers": 1}
# Real config keys and their bounds (a dropout rate may also be None: no dropout).
REAL_KEYS = {"hidden_dropout_prob": dict(minimum=0.0, maximum=1.0),
             "attention_probs_dropout_prob": dict(minimum=0.0, maximum=1.0),
             "layer_norm_eps": dict(above=0.0), "initializer_range": dict(minimum=0.0)}
# Flags of the config (T5's two conventions are set by `load_config` for Hugging Face files).
FLAG_KEYS = ("rotary_value", "cross_position_bias", "scale_decoder_outputs")
# Keys of known config formats whose other values would change what the model computes in a
# way no family here offers: {key: (the value our models compute, what another value means)}.
UNSUPPORTED_VALUES = {
    "position_embedding_type": ("absolute", "Hugging Face's relative position embeddings "
                                            "('relative_key', 'relative_key_query')"),
    "num_hidden_groups": (1, "ALBERT with several groups of shared layers"),
    "inner_group_num": (1, "ALBERT with several layers per group"),
    "ln_type": ("postln", "albert_zh's pre-LayerNorm blocks"),
    "add_cross_attention": (False, "cross-attention inside the blocks"),
    "scale_attn_weights": (True, "GPT-2 without the 1/sqrt(head size) attention scale"),
    "scale_attn_by_inverse_layer_idx": (False, "GPT-2 attention scaled by 1/(layer + 1)"),
    "tie_word_embeddings": (True, "an output head of its own (the MLM / LM head here is the "
                                  "token embedding)"),
}
# Hugging Face model types whose inputs mean something else than in every family here.
UNSUPPORTED_MODEL_TYPES = {
    model_type: "Hugging Face RoBERTa pads with id 1 and numbers positions from 2; "
                "model='roberta' is RoBERTa in BERT's format (bert4keras's), whose padding id "
                "is 0 and whose positions start at 0"
    for model_type in ("roberta", "xlm-roberta", "camembert")
}


# Hugging Face GPT-2 config.json keys -> ours.
GPT2_KEYS = {"n_embd": "hidden_size", "n_layer": "num_hidden_layers",
             "n_head": "num_attention_heads", "n_positions": "max_position_embeddings",
             "n_inner": "intermediate_size", "activation_function": "hidden_act",
             "layer_norm_epsilon": "layer_norm_eps", "resid_pdrop": "hidden_dropout_prob",
             "attn_pdrop": "attention_probs_dropout_prob"}
# Hugging Face T5 config.json keys -> ours.
T5_KEYS = {"d_model": "hidden_size", "d_kv": "attention_head_size", "d_ff": "intermediate_size",
           "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
           "dropout_rate": "hidden_dropout_prob", "layer_norm_epsilon": "layer_norm_eps"}
# Hugging Face's `feed_forward_proj` -> our `hidden_act` (a list is a gated unit).
T5_FEED_FORWARDS = {"relu": "relu", "gelu": "gelu", "gated-gelu": ["gelu_new", "linear"],
                    "gated-silu": ["silu", "linear"], "gated-relu": ["relu", "linear"]}
# bert4keras's own names for the dropout rates.
BERT4KERAS_KEYS = {"dropout_rate": "hidden_dropout_prob",
                   "attention_dropout_rate": "attention_probs_dropout_prob"}


def load_config(config):
    """A model config from a dict or a JSON file path, with defaults filled in and checked.

    BERT-style keys (`bert_config.json`, and Hugging Face's config.json of BERT, ALBERT,
    ELECTRA, RoFormer) are read as they are; GPT-2's (`n_embd`, `n_layer`, ...) and T5's
    (`d_model`, `d_kv`, `feed_forward_proj`, ...) are renamed, as are bert4keras's
    `dropout_rate` and `attention_dropout_rate`. A Hugging Face T5 config also records that
    checkpoint's conventions: no position bias in cross-attention (`cross_position_bias`) and
    whether the decoder output is scaled by `d_model ** -0.5` (`scale_decoder_outputs`, or
    `tie_word_embeddings` in configs older than transformers 5: false for T5.1.1).

    Every key that changes what a family computes is honoured: besides the sizes, NEZHA's
    `max_relative_position`, RoFormer's `rotary_value` (Hugging Face's), T5's
    `relative_attention_num_buckets`, `relative_attention_max_distance` and
    `num_decoder_layers`. Keys of known formats whose value asks for something no family here
    computes (`UNSUPPORTED_VALUES`, e.g. `position_embedding_type: relative_key`, and Hugging
    Face RoBERTa's `model_type`) are refused by name, as is a value of the wrong type or range.
    Other keys (`architectures`, `use_cache`, ...) are kept as they are. Token id 0 is the
    padding of every family, as in bert4keras.
    """
    if isinstance(config, (str, os.PathLike)):
        if not os.path.exists(config):
            raise FileNotFoundError(f"`config` file not found: {config}")
        with open(config, encoding="utf-8") as file:
            try:
                config = json.load(file)
            except json.JSONDecodeError as error:
                raise ValueError(f"`config` file {config} is not valid JSON: {error}.") from None
    if not isinstance(config, dict):
        raise TypeError(f"`config` must be a dict or a JSON path; received {type(config)}.")
    if "n_embd" in config:
        config = _rename(config, GPT2_KEYS)
        if config.get("intermediate_size") is None:
            config["intermediate_size"] = 4 * config["hidden_size"]
        config.setdefault("type_vocab_size", 0)
    if "d_model" in config:
        config = _rename(config, T5_KEYS)
        projection = config.pop("feed_forward_proj", "relu")
        if projection not in T5_FEED_FORWARDS:
            raise ValueError(f"`feed_forward_proj` must be one of {sorted(T5_FEED_FORWARDS)}; "
                             f"received {projection!r}.")
        config["hidden_act"] = T5_FEED_FORWARDS[projection]
        config.setdefault("attention_probs_dropout_prob", config.get("hidden_dropout_prob"))
        config.setdefault("cross_position_bias", False)
        # Older configs say it as `tie_word_embeddings` (false for T5.1.1).
        tied = config.pop("tie_word_embeddings", True)
        config.setdefault("scale_decoder_outputs", tied)
    config = _rename(config, BERT4KERAS_KEYS)
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ValueError(f"The model config lacks required keys {missing}.")
    _refuse_unsupported(config)
    config = {**DEFAULTS, **config}
    for key, smallest in SIZE_KEYS.items():
        if config[key] is None and key in DEFAULTS and DEFAULTS[key] is None:
            continue
        config[key] = arguments.integer(config[key], key, minimum=smallest)
    for key, bounds in REAL_KEYS.items():
        if config[key] is not None:
            config[key] = arguments.real(config[key], key, **bounds)
    for key in FLAG_KEYS:
        if key in config:
            config[key] = arguments.boolean(config[key], key)
    if not config["attention_head_size"] and (
            config["hidden_size"] % config["num_attention_heads"]):
        raise ValueError(
            f"`hidden_size` ({config['hidden_size']}) must be divisible by "
            f"`num_attention_heads` ({config['num_attention_heads']}), or "
            "`attention_head_size` must be given."
        )
    return config


def _refuse_unsupported(config):
    """Errors for keys of known formats set to values that no family here computes."""
    model_type = config.get("model_type")
    if model_type in UNSUPPORTED_MODEL_TYPES:
        raise ValueError(f"Config key `model_type` is {model_type!r}, which is not supported: "
                         f"{UNSUPPORTED_MODEL_TYPES[model_type]}.")
    for key, (computed, meaning) in UNSUPPORTED_VALUES.items():
        if key in config and config[key] != computed:
            raise ValueError(f"Config key `{key}` must be {computed!r} (another value means "
                             f"{meaning}, which is not supported); received {config[key]!r}.")


def _rename(config, names):
    return {names.get(key, key): value for key, value in config.items()}


class Transformer:
    """Builds one family's graph; see the module docstring for the order and the hooks.

    Class attributes a family sets:
        position_scheme: None (a learned position table at the embeddings), 'rotary' or
            'functional_relative' (inside attention, no table).
        segments: whether the model takes segment ids as its second input.
        applications: the `application` values the family accepts (the first is the default).
        use_bias: whether projections and feed-forward layers have biases.
        attention_scale: whether attention logits are divided by `sqrt(head size)`.
    """

    position_scheme = None
    segments = True
    applications = masks.APPLICATIONS
    use_bias = True
    attention_scale = True

    def __init__(
        self,
        config,
        application="encoder",
        with_mlm=None,
        with_pool=False,
        normalization="softmax",
        layer_norm_cond=None,
        layer_norm_cond_hidden_size=None,
        layer_norm_cond_hidden_act="linear",
        additional_input_layers=None,
        sequence_length=None,
        name=None,
    ):
        if application not in self.applications:
            raise ValueError(
                f"`application` must be one of {self.applications} for "
                f"{type(self).__name__}; received {application!r}."
            )
        if normalization == "performer" and application == "unilm":
            # Linear attention cannot apply a mask matrix; UNILM's mask has no linear form.
            raise ValueError("normalization='performer' supports application 'encoder' or 'lm'; "
                             "UNILM's attention mask cannot be linearized.")
        if config.get("rotary_value") and self.position_scheme != "rotary":
            raise ValueError(f"Config key `rotary_value` is true, but {type(self).__name__} has "
                             "no rotary positions to rotate the values by (it is a RoFormer "
                             "key: model='roformer' or 'roformer_v2').")
        self.config = config
        self.application = application
        # As bert4keras: language models output the token distribution unless told otherwise.
        self.with_mlm = application in ("lm", "unilm") if with_mlm is None else with_mlm
        self.with_pool = with_pool
        self.normalization = normalization
        self.layer_norm_cond = (layer_norm_cond, layer_norm_cond_hidden_size,
                                layer_norm_cond_hidden_act, additional_input_layers)
        self.sequence_length = sequence_length
        self.name = name
        self.hidden_size = config["hidden_size"]
        self.embedding_size = config["embedding_size"] or self.hidden_size
        self.initializer = keras.initializers.TruncatedNormal(
            stddev=config["initializer_range"])
        self._layers = {}
        # Set by `build_transformer_model`: the family name and the builder options that
        # make the model again (`TransformerModel.get_config`).
        self.family, self.build_arguments = None, None

    @classmethod
    def refuse_options(cls, options, names, reason):
        """Raises for any of the builder arguments `names` set in `options`."""
        for name in names:
            if options.get(name):
                raise ValueError(f"{cls.__name__} does not take `{name}`: {reason}.")

    # Building blocks.
    def layer(self, cls, name, **kwargs):
        """The layer called `name`, created on first use (so equal names share weights)."""
        if name not in self._layers:
            self._layers[name] = cls(name=name, **kwargs)
        return self._layers[name]

    def layer_norm(self, x, name, **options):
        options.setdefault("epsilon", self.config["layer_norm_eps"])
        norm = self.layer(LayerNormalization, name, conditional=self.cond is not None, **options)
        return norm(x if self.cond is None else [x, self.cond])

    def dropout(self, x, rate, name):
        return self.layer(keras.layers.Dropout, name, rate=rate)(x) if rate else x

    def dense(self, x, units, name, **options):
        options.setdefault("use_bias", self.use_bias)
        return self.layer(keras.layers.Dense, name, units=units,
                          kernel_initializer=self.initializer, **options)(x)

    def token_embedding(self):
        """The token table; its output carries the padding mask (`Embedding(mask_zero=True)`)
        that every later layer passes on, as in bert4keras, so layers a user adds on any
        hidden state (a CRF, a pointer head, a `Loss`) receive it as Keras's `mask`."""
        return self.layer(Embedding, "Embedding-Token", input_dim=self.config["vocab_size"],
                          output_dim=self.embedding_size, mask_zero=True,
                          embeddings_initializer=self.initializer)

    def block_prefix(self, index):
        return f"Transformer-{index}"

    # The graph, part by part.
    def build(self):
        """The `TransformerModel`."""
        inputs = self.inputs()
        self.cond, cond_inputs = self.condition()
        self.attention_arguments = self.attention_mask(inputs)
        self.start_recording()
        x = self.embeddings(inputs)
        for index in range(self.config["num_hidden_layers"]):
            x = self.block(x, index)
        self.hidden_states = x
        outputs = self.heads(x)
        return self.described_model(inputs + cond_inputs, outputs)

    def start_recording(self):
        """Forgets the parts recorded by an earlier graph of this builder (T5's decoder lays
        out its graph twice: alone and inside the whole model)."""
        self.self_attention_calls, self.cross_attention_calls = [], []
        self.output_head = None

    def record_head(self, hidden, steps, activation=None):
        """Records the MLM / LM head laid out on `hidden` (the last hidden states): `steps`
        are layer names, or `(name, call keyword arguments)`, from `hidden` to the logits;
        names of layers the head did not create (a dropout at rate 0, a mapping between
        equal sizes) are left out. `activation` names the final activation layer."""
        self.hidden_states = hidden
        steps = [(step, {}) if isinstance(step, str) else step for step in steps]
        self.output_head = OutputHead(
            [(self._layers[name], kwargs) for name, kwargs in steps if name in self._layers],
            self._layers[activation] if activation else None)

    def described_model(self, inputs, outputs):
        """The `TransformerModel` of `inputs` -> `outputs` with the parts recorded while
        laying out the graph."""
        # One input is the model's input itself (not a list), so `model(token_ids)` works.
        inputs = inputs if len(inputs) > 1 else inputs[0]
        model = TransformerModel(inputs, outputs, name=self.name)
        return model.describe(self.family, self.application, self.model_config(),
                              self.model_parts(inputs), self.build_arguments)

    def model_config(self):
        """The config the model records (and `.keras` files and exported checkpoints keep)."""
        return self.config

    def model_parts(self, inputs):
        """The parts recorded while laying out the graph on `inputs`."""
        backbone = keras.Model(inputs, self.hidden_states, name=f"{self.name}_backbone")
        return ModelParts(backbone=backbone, token_embedding=self.token_embedding(),
                          attention_layers=tuple(self.self_attention_calls),
                          id_inputs=1 + bool(self.segments),
                          max_positions=next((layer.input_dim for layer in self._layers.values()
                                              if isinstance(layer, PositionEmbedding)), None),
                          cross_attention_layers=tuple(self.cross_attention_calls),
                          lm_head=self.output_head)

    def inputs(self):
        shape = (self.sequence_length,)
        inputs = [keras.Input(shape, dtype="int32", name="Input-Token")]
        if self.segments:
            inputs.append(keras.Input(shape, dtype="int32", name="Input-Segment"))
        return inputs

    def condition(self):
        """The (possibly projected) LayerNorm condition and the model inputs it needs."""
        cond, hidden_size, hidden_act, additional_input_layers = self.layer_norm_cond
        if cond is None:
            return None, []
        if isinstance(cond, int):
            cond = keras.Input((cond,), name="Input-LayerNorm-Condition")
            cond_inputs = [cond]
        elif additional_input_layers is not None:
            cond_inputs = (list(additional_input_layers)
                           if isinstance(additional_input_layers, (list, tuple))
                           else [additional_input_layers])
        elif isinstance(cond._keras_history.operation, keras.layers.InputLayer):
            cond_inputs = [cond]
        else:
            raise ValueError(
                "`layer_norm_cond` is computed from other inputs: pass them as "
                "`additional_input_layers`."
            )
        if hidden_size:
            cond = keras.layers.Dense(
                hidden_size, activation=hidden_act, use_bias=False,
                kernel_initializer=self.initializer, name="LayerNorm-Condition",
            )(cond)
        return cond, cond_inputs

    def attention_mask(self, inputs):
        """Keyword arguments of every self-attention call."""
        if self.normalization == "performer":
            # Keys are masked through Keras masks; the causal order is built into the layer.
            padding = keras.ops.not_equal(inputs[0], 0)
            return {"mask": [padding, None, padding]}
        mask = self.layer(AttentionMask, "Attention-Mask", application=self.application)
        return {"attention_mask": mask(inputs if self.segments else inputs[0])}

    def token_and_segment(self, inputs):
        x = self.token_embedding()(inputs[0])
        if not (self.segments and self.config["type_vocab_size"]):
            return x
        segments = self.layer(
            Embedding, "Embedding-Segment", input_dim=self.config["type_vocab_size"],
            output_dim=self.embedding_size, embeddings_initializer=self.initializer,
            one_hot_lookup=True,
        )(inputs[1])
        return self.layer(Add, "Embedding-Token-Segment")([x, segments])

    def embeddings(self, inputs):
        x = self.token_and_segment(inputs)
        if self.position_scheme is None:
            x = self.position_embedding(x)
        x = self.layer_norm(x, "Embedding-Norm")
        x = self.dropout(x, self.config["hidden_dropout_prob"], "Embedding-Dropout")
        return self.embedding_mapping(x)

    def position_embedding(self, x):
        return self.layer(
            PositionEmbedding, "Embedding-Position",
            input_dim=self.config["max_position_embeddings"], output_dim=self.embedding_size,
            embeddings_initializer=self.initializer,
        )(x)

    def embedding_mapping(self, x):
        if self.embedding_size == self.hidden_size:
            return x
        return self.dense(x, self.hidden_size, "Embedding-Mapping")

    def attention_layer(self, name):
        heads = self.config["num_attention_heads"]
        if self.normalization == "performer":
            cls, options = PerformerAttention, {"causal": self.application == "lm"}
        else:
            cls, options = MultiHeadAttention, {"normalization": self.normalization}
        return self.layer(
            cls, name, heads=heads,
            head_size=self.config["attention_head_size"] or self.hidden_size // heads,
            out_dim=self.hidden_size, use_bias=self.use_bias,
            attention_scale=self.attention_scale, position_scheme=self.position_scheme,
            attention_dropout=self.config["attention_probs_dropout_prob"],
            kernel_initializer=self.initializer, **self.position_options(), **options,
        )

    def position_options(self):
        """The attention layers' arguments of the family's position scheme."""
        return {}

    def attention(self, x, name):
        layer = self.attention_layer(name)
        self.self_attention_calls.append(layer)
        return layer([x, x, x], **self.attention_arguments)

    def feed_forward(self, x, name):
        return self.layer(
            FeedForward, name, units=self.config["intermediate_size"],
            activation=self.config["hidden_act"], use_bias=self.use_bias,
            kernel_initializer=self.initializer,
        )(x)

    def residual(self, x, y, name):
        """Dropout on the branch `y`, then `x + y` (post-LayerNorm blocks normalize after)."""
        y = self.dropout(y, self.config["hidden_dropout_prob"], f"{name}-Dropout")
        return self.layer(Add, f"{name}-Add")([x, y])

    def pre_norm_residual(self, x, sublayer, name):
        """Pre-LayerNorm: `x + dropout(sublayer(norm(x)))`, the norm called `name-Norm`."""
        return self.residual(x, sublayer(self.layer_norm(x, f"{name}-Norm"), name), name)

    def block(self, x, index):
        """Post-LayerNorm: attention -> add -> norm -> feed-forward -> add -> norm."""
        name = f"{self.block_prefix(index)}-MultiHeadSelfAttention"
        x = self.layer_norm(self.residual(x, self.attention(x, name), name), f"{name}-Norm")
        name = f"{self.block_prefix(index)}-FeedForward"
        return self.layer_norm(self.residual(x, self.feed_forward(x, name), name), f"{name}-Norm")

    def heads(self, x):
        """bert4keras's outputs: the sequence alone; the pooled `[CLS]` vector with
        `with_pool`; the MLM output with `with_mlm`; `[pooled, mlm]` with both."""
        outputs = [x]
        if self.with_pool:
            activation = "tanh" if self.with_pool is True else self.with_pool
            outputs.append(self.dense(x[:, 0], self.hidden_size, "Pooler-Dense",
                                      activation=activation))
        if self.with_mlm:
            y = self.dense(x, self.embedding_size, "MLM-Dense",
                           activation=activations.get(self.config["hidden_act"]))
            y = self.layer_norm(y, "MLM-Norm")
            y = self.layer(BiasAdd, "MLM-Bias")(self.token_embedding()(y, mode="dense"))
            outputs.append(self.output_activation(y, self.with_mlm, "MLM-Activation"))
            self.record_head(x, ["MLM-Dense", "MLM-Norm", ("Embedding-Token", {"mode": "dense"}),
                                 "MLM-Bias"], "MLM-Activation")
        if len(outputs) == 1:
            return outputs[0]
        return outputs[1] if len(outputs) == 2 else outputs[1:]

    def output_activation(self, logits, activation, name):
        """`True` means softmax; float32 so probabilities stay accurate under mixed precision."""
        activation = "softmax" if activation is True else activation
        return self.layer(keras.layers.Activation, name, activation=activation,
                          dtype="float32")(logits)
