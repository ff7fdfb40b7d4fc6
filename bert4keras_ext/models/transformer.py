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
follow bert4keras ('Embedding-Token', 'Transformer-0-MultiHeadSelfAttention', 'MLM-Norm', ...;
all in `models.names`), so checkpoint name maps address weights by layer name. The config is a
`TransformerConfig` (`models.config`), read like bert4keras's dict.
"""
import keras

from bert4keras_ext import activations, masks
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
from bert4keras_ext.models import names
from bert4keras_ext.models.backbone import ModelParts, TransformerModel
from bert4keras_ext.models.output_head import OutputHead


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
        return self.layer(Embedding, names.TOKEN_EMBEDDING, input_dim=self.config["vocab_size"],
                          output_dim=self.embedding_size, mask_zero=True,
                          embeddings_initializer=self.initializer)

    def block_prefix(self, index):
        return names.block(index)

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
        inputs = [keras.Input(shape, dtype="int32", name=names.TOKEN_INPUT)]
        if self.segments:
            inputs.append(keras.Input(shape, dtype="int32", name=names.SEGMENT_INPUT))
        return inputs

    def condition(self):
        """The (possibly projected) LayerNorm condition and the model inputs it needs."""
        cond, hidden_size, hidden_act, additional_input_layers = self.layer_norm_cond
        if cond is None:
            return None, []
        if isinstance(cond, int):
            cond = keras.Input((cond,), name=names.CONDITION_INPUT)
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
                kernel_initializer=self.initializer, name=names.CONDITION_PROJECTION,
            )(cond)
        return cond, cond_inputs

    def attention_mask(self, inputs):
        """Keyword arguments of every self-attention call."""
        if self.normalization == "performer":
            # Keys are masked through Keras masks; the causal order is built into the layer.
            padding = keras.ops.not_equal(inputs[0], 0)
            return {"mask": [padding, None, padding]}
        mask = self.layer(AttentionMask, names.ATTENTION_MASK, application=self.application)
        return {"attention_mask": mask(inputs if self.segments else inputs[0])}

    def token_and_segment(self, inputs):
        x = self.token_embedding()(inputs[0])
        if not (self.segments and self.config["type_vocab_size"]):
            return x
        segments = self.layer(
            Embedding, names.SEGMENT_EMBEDDING, input_dim=self.config["type_vocab_size"],
            output_dim=self.embedding_size, embeddings_initializer=self.initializer,
            one_hot_lookup=True,
        )(inputs[1])
        return self.layer(Add, names.TOKEN_AND_SEGMENT)([x, segments])

    def embeddings(self, inputs):
        x = self.token_and_segment(inputs)
        if self.position_scheme is None:
            x = self.position_embedding(x)
        x = self.layer_norm(x, names.EMBEDDING_NORM)
        x = self.dropout(x, self.config["hidden_dropout_prob"], names.EMBEDDING_DROPOUT)
        return self.embedding_mapping(x)

    def position_embedding(self, x):
        return self.layer(
            PositionEmbedding, names.POSITION_EMBEDDING,
            input_dim=self.config["max_position_embeddings"], output_dim=self.embedding_size,
            embeddings_initializer=self.initializer,
        )(x)

    def embedding_mapping(self, x):
        if self.embedding_size == self.hidden_size:
            return x
        return self.dense(x, self.hidden_size, names.EMBEDDING_MAPPING)

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
        y = self.dropout(y, self.config["hidden_dropout_prob"], names.dropout(name))
        return self.layer(Add, names.residual_add(name))([x, y])

    def pre_norm_residual(self, x, sublayer, name):
        """Pre-LayerNorm: `x + dropout(sublayer(norm(x)))`, the norm called `name-Norm`."""
        return self.residual(x, sublayer(self.layer_norm(x, names.norm(name)), name), name)

    def block(self, x, index):
        """Post-LayerNorm: attention -> add -> norm -> feed-forward -> add -> norm."""
        name = names.self_attention(self.block_prefix(index))
        x = self.layer_norm(self.residual(x, self.attention(x, name), name), names.norm(name))
        name = names.feed_forward(self.block_prefix(index))
        return self.layer_norm(self.residual(x, self.feed_forward(x, name), name),
                               names.norm(name))

    def heads(self, x):
        """bert4keras's outputs: the sequence alone; the pooled `[CLS]` vector with
        `with_pool`; the MLM output with `with_mlm`; `[pooled, mlm]` with both."""
        outputs = [x]
        if self.with_pool:
            activation = "tanh" if self.with_pool is True else self.with_pool
            outputs.append(self.dense(x[:, 0], self.hidden_size, names.POOLER,
                                      activation=activation))
        if self.with_mlm:
            y = self.dense(x, self.embedding_size, names.MLM_DENSE,
                           activation=activations.get(self.config["hidden_act"]))
            y = self.layer_norm(y, names.MLM_NORM)
            y = self.layer(BiasAdd, names.MLM_BIAS)(self.token_embedding()(y, mode="dense"))
            outputs.append(self.output_activation(y, self.with_mlm, names.MLM_ACTIVATION))
            self.record_head(x, [names.MLM_DENSE, names.MLM_NORM, self.tied_output,
                                 names.MLM_BIAS], names.MLM_ACTIVATION)
        if len(outputs) == 1:
            return outputs[0]
        return outputs[1] if len(outputs) == 2 else outputs[1:]

    # The token embedding as the output projection (a step of `record_head`).
    tied_output = (names.TOKEN_EMBEDDING, {"mode": "dense"})

    def output_activation(self, logits, activation, name):
        """`True` means softmax; float32 so probabilities stay accurate under mixed precision."""
        activation = "softmax" if activation is True else activation
        return self.layer(keras.layers.Activation, name, activation=activation,
                          dtype="float32")(logits)
