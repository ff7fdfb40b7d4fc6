"""Writing our BERT weights as an original-format TF checkpoint other BERT tools can read."""
import json
import os

import keras
import numpy as np

from bert4keras_ext import activations
from bert4keras_ext.models.checkpoints.loading import num_layers_of
from bert4keras_ext.models.checkpoints.name_map import bert_weight_names


def config_from_model(model):
    """The `bert_config.json` entries of a model made by `build_transformer_model`."""
    attention = model.get_layer("Transformer-0-MultiHeadSelfAttention")
    feed_forward = model.get_layer("Transformer-0-FeedForward")
    token = model.get_layer("Embedding-Token")
    config = {
        "vocab_size": token.input_dim,
        "hidden_size": attention.out_dim,
        "num_hidden_layers": num_layers_of(model),
        "num_attention_heads": attention.heads,
        "intermediate_size": feed_forward.units,
        "hidden_act": activations.name_of(feed_forward.activation),
        "max_position_embeddings": model.get_layer("Embedding-Position").input_dim,
        "type_vocab_size": _segment_vocabulary(model),
        "layer_norm_eps": model.get_layer("Embedding-Norm").epsilon,
    }
    if token.output_dim != attention.out_dim:
        config["embedding_size"] = token.output_dim
    return config


def _segment_vocabulary(model):
    try:
        return model.get_layer("Embedding-Segment").input_dim
    except ValueError:
        return 0


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


def save_as_bert_checkpoint(model, path, config_path=None):
    """Saves the BERT weights of `model` under their original TF names at prefix `path`.

    Writes `path.index` / `path.data-*`, and `bert_config.json` beside them (or at
    `config_path`), so `build_transformer_model(config, path)` and other BERT tools read them.
    Weights outside BERT (e.g. Conditional LayerNorm projections) are not written.
    """
    ours = {variable.path: variable for variable in model.weights}
    tensors = {
        name.original: keras.ops.convert_to_numpy(ours[name.ours])
        for name in bert_weight_names(num_layers_of(model))
        if name.ours in ours
    }
    write_original_checkpoint(tensors, path)
    config_path = config_path or os.path.join(os.path.dirname(os.path.abspath(path)),
                                              "bert_config.json")
    with open(config_path, "w", encoding="utf-8") as file:
        json.dump(config_from_model(model), file, indent=2)
    return path
