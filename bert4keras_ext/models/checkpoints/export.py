"""Writing a model's weights as its family's original-format TF checkpoint."""
import json
import os

import keras
import numpy as np

from bert4keras_ext import activations
from bert4keras_ext.layers import FeedForward, MultiHeadAttention
from bert4keras_ext.models.checkpoints.name_map import num_layers_of, weight_names


def config_from_model(model):
    """The config entries (`bert_config.json` keys) of a model made by
    `build_transformer_model`."""
    attention = next(layer for layer in model.layers if isinstance(layer, MultiHeadAttention))
    feed_forward = next(layer for layer in model.layers if isinstance(layer, FeedForward))
    token = model.get_layer("Embedding-Token")
    config = {
        "vocab_size": token.input_dim,
        "hidden_size": attention.out_dim,
        "num_hidden_layers": num_layers_of(model),
        "num_attention_heads": attention.heads,
        "intermediate_size": feed_forward.units,
        "hidden_act": ([activations.name_of(a) for a in feed_forward.activation]
                       if feed_forward.gated else activations.name_of(feed_forward.activation)),
        "type_vocab_size": _input_dim(model, "Embedding-Segment") or 0,
    }
    if attention.heads * attention.head_size != attention.out_dim:
        config["attention_head_size"] = attention.head_size
    positions = _input_dim(model, "Embedding-Position")
    if positions:
        config["max_position_embeddings"] = positions
    norms = [layer for layer in model.layers if layer.name.endswith("Norm") and hasattr(
        layer, "epsilon")]
    if norms:
        config["layer_norm_eps"] = norms[0].epsilon
    if token.output_dim != attention.out_dim:
        config["embedding_size"] = token.output_dim
    return config


def _input_dim(model, name):
    try:
        return model.get_layer(name).input_dim
    except ValueError:
        return None


def write_original_checkpoint(tensors, path):
    """Writes `{original name: array}` as a TF1 name-based checkpoint at prefix `path`."""
    import tensorflow as tf

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tf.Graph().as_default():
        variables = [
            tf.compat.v1.Variable(np.asarray(value), name=name, dtype=np.asarray(value).dtype)
            for name, value in tensors.items()
        ]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, path, write_meta_graph=False, write_state=False)


def save_checkpoint(model, path, family=None, config_path=None):
    """Saves the weights of `model` under its family's original TF names at prefix `path`.

    `family` is the `model=` name it was built with (default: the model's name, which
    `build_transformer_model` sets to it). Writes `path.index` / `path.data-*`, and the config
    beside them as `bert_config.json` (or at `config_path`), so `build_transformer_model(config,
    path, model=family)`, bert4keras and the family's own tools read them. Weights outside the
    family's format (e.g. Conditional LayerNorm projections) are not written. An unshared ALBERT
    is written as ALBERT's one shared block, so its layers must still be equal.
    """
    family = family or model.name
    ours = {variable.path: variable for variable in model.weights}
    tensors = {}
    for name in weight_names(family, num_layers_of(model)):
        if name.ours not in ours or name.original is None:
            continue
        value = keras.ops.convert_to_numpy(ours[name.ours])
        if name.transposed_in_original:
            value = value.T
        if name.original in tensors and not np.array_equal(tensors[name.original], value):
            raise ValueError(
                f"model={family!r} stores {name.original} once, but the model's weights for it "
                f"differ ({name.ours}); the layers were trained apart and this format cannot "
                "hold them."
            )
        tensors[name.original] = value
    if not tensors:
        raise ValueError(f"Model {model.name!r} has none of the model={family!r} weights; pass "
                         "the `family` it was built as.")
    write_original_checkpoint(tensors, path)
    config_path = config_path or os.path.join(os.path.dirname(os.path.abspath(path)),
                                              "bert_config.json")
    with open(config_path, "w", encoding="utf-8") as file:
        json.dump(config_from_model(model), file, indent=2)
    return path


def save_as_bert_checkpoint(model, path, config_path=None):
    """`save_checkpoint` for BERT and RoBERTa models (Google's BERT variable names)."""
    return save_checkpoint(model, path, "bert", config_path)
