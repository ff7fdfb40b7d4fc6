"""Writing a model's weights as its family's original-format TF checkpoint, with the config
that rebuilds it."""
import json
import os

import keras
import numpy as np

from bert4keras_ext.models.backbone import TransformerModel
from bert4keras_ext.models.config import KEYS
from bert4keras_ext.models.registry import FAMILIES, get_family


def config_from_model(model):
    """The config entries (`bert_config.json` keys) of a model made by
    `build_transformer_model`: every key that decides what it computes (the sizes, dropout
    rates, NEZHA's `max_relative_position`, RoFormer's `rotary_value`, T5's relative bias,
    decoder conventions and `num_decoder_layers`), from the config the model carries, so the
    model rebuilt from them (with the same builder arguments) computes the same."""
    config = described(model).transformer_config
    return {key: config[key] for key in KEYS}


def described(model):
    """`model` if it is a `TransformerModel` (which knows its family, config and parts)."""
    if not isinstance(model, TransformerModel):
        raise TypeError("Checkpoints are read and written for models made by "
                        "`build_transformer_model` (a TransformerModel); received a "
                        f"{type(model).__name__}.")
    return model


def write_original_checkpoint(tensors, path):
    """Writes `{original name: array}` as a TF1 name-based checkpoint at prefix `path`, or,
    for a `path` ending in `.safetensors`, as a safetensors file under the same names (no
    TensorFlow needed; `CheckpointReader` reads both)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if path.endswith(".safetensors"):
        from safetensors.numpy import save_file

        save_file({name: np.ascontiguousarray(value) for name, value in tensors.items()}, path)
        return
    import tensorflow as tf

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

    `family` is a `model=` name (default: the family the model was built as). Writes
    `path.index` / `path.data-*` (a `path` ending in `.safetensors`: that file, under the same
    names, without TensorFlow), and the config beside them as `bert_config.json` (or at
    `config_path`), so `build_transformer_model(config,
    path, model=family)`, bert4keras and the family's own tools read them and compute what
    `model` computes. Every weight is written: a model with weights the family's format has no
    name for (another family's blocks, Conditional LayerNorm projections, a head added
    around the Transformer) is refused, as is a family whose graph differs from the model's
    (`check_family`); nothing is written then. An unshared ALBERT is written as ALBERT's one
    shared block, so its layers must still be equal.
    """
    family = family or described(model).family
    weight_names = get_family(family, "family").weight_names(model.num_layers)
    check_family(model, family, weight_names)
    ours = {variable.path: variable for variable in model.weights}
    tensors = {}
    for name in weight_names:
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
    write_original_checkpoint(tensors, path)
    config_path = config_path or os.path.join(os.path.dirname(os.path.abspath(path)),
                                              "bert_config.json")
    with open(config_path, "w", encoding="utf-8") as file:
        json.dump(config_from_model(model), file, indent=2)
    return path


def check_family(model, family, weight_names=None):
    """Refuses to write `model` as `family` when the family's format has no name for one of
    its weights, or when the model was built as a family whose builder differs ('bert' and
    'roberta' share one, 't5.1.1' and 'mt5.1.1' another: a NEZHA written as RoFormer would
    have the same weight names and another attention). The error names the families that fit
    the model."""
    problem = _family_problem(model, family, weight_names)
    if problem:
        fits = [candidate for candidate in FAMILIES if not _family_problem(model, candidate)]
        advice = (f" The model fits model={' or '.join(map(repr, fits))}." if fits else "")
        raise ValueError(f"Model {model.name!r} cannot be written as model={family!r}: "
                         f"{problem}; nothing was written.{advice}")


def _family_problem(model, family, weight_names=None):
    """Why `model` is not a `family` model, or None."""
    if weight_names is None:
        weight_names = get_family(family, "family").weight_names(model.num_layers)
    written = {name.ours for name in weight_names if name.original is not None}
    left_out = [variable.path for variable in model.weights if variable.path not in written]
    if left_out:
        return (f"its format has no name for {len(left_out)} of the model's "
                f"{len(model.weights)} weights (e.g. {left_out[:4]}), which would be left out")
    # Families sharing a builder ('bert' and 'roberta', 't5.1.1' and 'mt5.1.1') share a graph.
    builder, built_as = FAMILIES[family].builder, FAMILIES[model.family].builder
    if built_as is not builder:
        return (f"it was built as model={model.family!r} ({built_as.__name__}), whose graph "
                f"differs from {builder.__name__}'s")
    return None


def save_as_bert_checkpoint(model, path, config_path=None):
    """`save_checkpoint` for BERT and RoBERTa models (Google's BERT variable names)."""
    return save_checkpoint(model, path, "bert", config_path)
