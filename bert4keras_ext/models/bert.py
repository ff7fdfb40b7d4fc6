"""The BERT graph as a Keras functional model: encoder, causal LM or UNILM seq2seq.

Layer names follow bert4keras ('Embedding-Token', 'Transformer-0-MultiHeadSelfAttention',
'MLM-Norm', ...) so that checkpoint loaders can map BERT variables onto them by name.
"""
import json
import os

import keras

from bert4keras_ext import activations, masks
from bert4keras_ext.layers import (
    AttentionMask,
    BiasAdd,
    Embedding,
    FeedForward,
    LayerNormalization,
    MultiHeadAttention,
    PerformerAttention,
    PositionEmbedding,
)
from bert4keras_ext.models.checkpoints import load_checkpoint

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
    "layer_norm_eps": 1e-12,
    "initializer_range": 0.02,
}


def load_config(config):
    """A BERT config from a dict or a JSON file path, with defaults filled in and checked."""
    if isinstance(config, (str, os.PathLike)):
        if not os.path.exists(config):
            raise FileNotFoundError(f"`config` file not found: {config}")
        with open(config, encoding="utf-8") as file:
            config = json.load(file)
    if not isinstance(config, dict):
        raise TypeError(f"`config` must be a dict or a JSON path; received {type(config)}.")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ValueError(f"The BERT config lacks required keys {missing}.")
    config = {**DEFAULTS, **config}
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ValueError(
            f"`hidden_size` ({config['hidden_size']}) must be divisible by "
            f"`num_attention_heads` ({config['num_attention_heads']})."
        )
    return config


# RoFormer is BERT without the position table, with rotary positions inside attention
# ("RoFormer: Enhanced Transformer with Rotary Position Embedding", https://arxiv.org/abs/2104.09864).
MODELS = ("bert", "roberta", "roformer")


def build_transformer_model(
    config,
    checkpoint_path=None,
    model="bert",
    application="encoder",
    with_mlm=False,
    with_pool=False,
    normalization="softmax",
    layer_norm_cond=None,
    layer_norm_cond_hidden_size=None,
    layer_norm_cond_hidden_act="linear",
    additional_input_layers=None,
    sequence_length=None,
    keep_tokens=None,
    name=None,
    **config_overrides,
):
    """Builds a BERT-style Transformer from a config dict or a `bert_config.json` path.

    Inputs are `[token_ids, segment_ids]` (int, `[batch, length]`, token 0 is padding), plus the
    condition input when `layer_norm_cond` is a size. The attention mask is made inside the graph
    from the inputs: padding only for 'encoder', causal for 'lm', UNILM seq2seq for 'unilm'.

    Outputs follow bert4keras: the sequence output alone; with `with_pool` the pooled `[CLS]`
    vector; with `with_mlm` the MLM head's output; with both, `[pooled, mlm]`.

    Example:
    ```python
    config = dict(vocab_size=100, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=128)
    model = build_transformer_model(config, application="unilm", with_mlm="linear")
    logits = model([token_ids, segment_ids])  # (batch, length, 100)
    ```

    Pretrained weights: `checkpoint_path` is an original Google TF checkpoint prefix
    (`bert_model.ckpt`), a Hugging Face `.safetensors` file or our own `.weights.h5`; weights
    are mapped by name (`models.checkpoints`). `keep_tokens` (from
    `tokenizers.load_vocab(..., simplified=True)`) keeps only those vocabulary rows.

    Args:
        config: dict or JSON path with vocab_size, hidden_size, num_hidden_layers,
            num_attention_heads, intermediate_size and optionally hidden_act,
            max_position_embeddings, type_vocab_size, hidden_dropout_prob,
            attention_probs_dropout_prob, embedding_size, layer_norm_eps, initializer_range.
        checkpoint_path: pretrained weights to load, or None.
        model: 'bert', 'roberta' (the same graph; RoBERTa checkpoints have no pooler) or
            'roformer' (rotary positions in attention instead of a position table).
        application: 'encoder', 'lm' or 'unilm'.
        with_mlm: False, True (probabilities) or 'linear' (logits): add the MLM head, whose
            output projection is tied to the token embeddings.
        with_pool: False, True (tanh) or 'linear': add the pooler on the first token.
        normalization: 'softmax', 'softmax_plus' (entropy-invariant), 'taylor_softmax' or
            'performer' (linear time; 'encoder' and 'lm' only) in all layers.
        layer_norm_cond: a tensor, or an int to create an input of that size, conditioning every
            LayerNorm (Conditional LayerNorm).
        layer_norm_cond_hidden_size: if set, one shared Dense of this size projects the
            condition first, with `layer_norm_cond_hidden_act`.
        additional_input_layers: inputs a `layer_norm_cond` tensor depends on.
        sequence_length: a fixed input length (static shapes for TPU/XLA), or None.
        keep_tokens: vocabulary ids to keep from the checkpoint (sets `vocab_size`).
        name: the model's name (default: `model`).
        **config_overrides: config entries to replace, e.g. `hidden_dropout_prob=0.0`.
    """
    config = dict(load_config(config))
    unknown = sorted(set(config_overrides) - set(REQUIRED_KEYS) - set(DEFAULTS))
    if unknown:
        raise TypeError(
            f"build_transformer_model got unknown arguments {unknown}; config entries it accepts "
            f"are {sorted(REQUIRED_KEYS + tuple(DEFAULTS))}."
        )
    config.update(config_overrides)
    if keep_tokens is not None:
        config["vocab_size"] = len(keep_tokens)
    config = load_config(config)
    if model not in MODELS:
        raise ValueError(f"`model` must be one of {MODELS}; received {model!r}.")
    if application not in masks.APPLICATIONS:
        raise ValueError(
            f"`application` must be one of {masks.APPLICATIONS}; received {application!r}."
        )
    hidden = config["hidden_size"]
    embedding_size = config["embedding_size"] or hidden
    initializer = keras.initializers.TruncatedNormal(stddev=config["initializer_range"])

    token_ids = keras.Input((sequence_length,), dtype="int32", name="Input-Token")
    segment_ids = keras.Input((sequence_length,), dtype="int32", name="Input-Segment")
    inputs = [token_ids, segment_ids]
    cond, cond_inputs = _layer_norm_condition(
        layer_norm_cond, layer_norm_cond_hidden_size, layer_norm_cond_hidden_act,
        additional_input_layers, initializer,
    )
    inputs += cond_inputs

    def layer_norm(x, name):
        norm = LayerNormalization(
            conditional=cond is not None, epsilon=config["layer_norm_eps"], name=name
        )
        return norm(x if cond is None else [x, cond])

    def dropout(x, rate, name):
        return keras.layers.Dropout(rate, name=name)(x) if rate else x

    if normalization == "performer":
        # Linear attention cannot apply a mask matrix: keys are masked through Keras masks and
        # the causal order is built into the layer; UNILM's mask has no linear form.
        if application == "unilm":
            raise ValueError("normalization='performer' supports application 'encoder' or 'lm'; "
                             "UNILM's attention mask cannot be linearized.")
        padding = keras.ops.not_equal(token_ids, 0)
        attention_arguments = {"mask": [padding, None, padding]}
        attention_options = {"causal": application == "lm"}
    else:
        attention_mask = AttentionMask(application, name="Attention-Mask")(
            [token_ids, segment_ids])
        attention_arguments = {"attention_mask": attention_mask}
        attention_options = {"normalization": normalization}
    token_embedding = Embedding(
        config["vocab_size"], embedding_size, embeddings_initializer=initializer,
        name="Embedding-Token",
    )
    x = token_embedding(token_ids)
    if config["type_vocab_size"]:
        segments = Embedding(
            config["type_vocab_size"], embedding_size, embeddings_initializer=initializer,
            one_hot_lookup=True, name="Embedding-Segment",
        )(segment_ids)
        x = keras.layers.Add(name="Embedding-Token-Segment")([x, segments])
    position_scheme = "rotary" if model == "roformer" else None
    if position_scheme is None:
        x = PositionEmbedding(
            config["max_position_embeddings"], embedding_size, embeddings_initializer=initializer,
            name="Embedding-Position",
        )(x)
    x = layer_norm(x, "Embedding-Norm")
    x = dropout(x, config["hidden_dropout_prob"], "Embedding-Dropout")
    if embedding_size != hidden:
        x = keras.layers.Dense(hidden, kernel_initializer=initializer, name="Embedding-Mapping")(x)

    heads = config["num_attention_heads"]
    for index in range(config["num_hidden_layers"]):
        block = f"Transformer-{index}-MultiHeadSelfAttention"
        attention = PerformerAttention if normalization == "performer" else MultiHeadAttention
        y = attention(
            heads, hidden // heads, out_dim=hidden, position_scheme=position_scheme,
            attention_dropout=config["attention_probs_dropout_prob"],
            kernel_initializer=initializer, name=block, **attention_options,
        )([x, x, x], **attention_arguments)
        y = dropout(y, config["hidden_dropout_prob"], f"{block}-Dropout")
        x = layer_norm(keras.layers.Add(name=f"{block}-Add")([x, y]), f"{block}-Norm")

        block = f"Transformer-{index}-FeedForward"
        y = FeedForward(
            config["intermediate_size"], activation=config["hidden_act"],
            kernel_initializer=initializer, name=block,
        )(x)
        y = dropout(y, config["hidden_dropout_prob"], f"{block}-Dropout")
        x = layer_norm(keras.layers.Add(name=f"{block}-Add")([x, y]), f"{block}-Norm")

    outputs = [x]
    if with_pool:
        pooled = keras.layers.Dense(
            hidden, activation="tanh" if with_pool is True else with_pool,
            kernel_initializer=initializer, name="Pooler-Dense",
        )(x[:, 0])
        outputs.append(pooled)
    if with_mlm:
        y = keras.layers.Dense(
            embedding_size, activation=activations.get(config["hidden_act"]),
            kernel_initializer=initializer,
            name="MLM-Dense",
        )(x)
        y = layer_norm(y, "MLM-Norm")
        y = BiasAdd(name="MLM-Bias")(token_embedding(y, mode="dense"))
        activation = "softmax" if with_mlm is True else with_mlm
        # float32 so probabilities and logits stay accurate under mixed precision.
        outputs.append(
            keras.layers.Activation(activation, dtype="float32", name="MLM-Activation")(y)
        )
    outputs = outputs[0] if len(outputs) == 1 else outputs[1] if len(outputs) == 2 else outputs[1:]
    transformer = keras.Model(inputs, outputs, name=name or model)
    if checkpoint_path is not None:
        load_pretrained(transformer, checkpoint_path, keep_tokens)
    return transformer


def mlm_head_logits(model, hidden):
    """The MLM head of a model built with `with_mlm`, applied to `hidden` [..., hidden_size]:
    the logits before `MLM-Activation`. Scoring only some positions (the masked ones in
    pretraining) this way skips the vocabulary projection everywhere else."""
    try:
        dense, norm = model.get_layer("MLM-Dense"), model.get_layer("MLM-Norm")
    except ValueError as error:
        raise ValueError(f"Model {model.name!r} has no MLM head (build it with with_mlm).") \
            from error
    if norm.conditional:
        raise ValueError("mlm_head_logits does not take the condition of a Conditional "
                         "LayerNorm model.")
    projected = model.get_layer("Embedding-Token")(norm(dense(hidden)), mode="dense")
    return model.get_layer("MLM-Bias")(projected)


def load_pretrained(model, checkpoint_path, keep_tokens=None):
    """Loads weights by format: our `.h5` / `.weights.h5`, else a BERT checkpoint by name."""
    path = str(checkpoint_path)
    if path.endswith(".h5"):
        if not os.path.exists(path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        model.load_weights(path)
        return None
    return load_checkpoint(model, path, keep_tokens)


def _layer_norm_condition(cond, hidden_size, hidden_act, additional_input_layers, initializer):
    """The (possibly projected) LayerNorm condition and the model inputs it needs."""
    if cond is None:
        return None, []
    if isinstance(cond, int):
        cond = keras.Input((cond,), name="Input-LayerNorm-Condition")
        cond_inputs = [cond]
    elif additional_input_layers is not None:
        cond_inputs = list(additional_input_layers)
    elif isinstance(cond._keras_history.operation, keras.layers.InputLayer):
        cond_inputs = [cond]
    else:
        raise ValueError(
            "`layer_norm_cond` is computed from other inputs: pass them as "
            "`additional_input_layers`."
        )
    if hidden_size:
        cond = keras.layers.Dense(
            hidden_size, activation=hidden_act, use_bias=False, kernel_initializer=initializer,
            name="LayerNorm-Condition",
        )(cond)
    return cond, cond_inputs
