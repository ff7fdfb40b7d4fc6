"""Every family against its reference implementation, on checkpoints in its original format.

Fixtures (tests/fixtures/families, made once by make_family_reference.py): tiny models with
random weights saved by bert4keras 0.11.5 in each family's original variable names, and by
transformers as safetensors, with the reference outputs for a padded batch.
"""
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from bert4keras_ext.models import MODELS, build_transformer_model
from bert4keras_ext.models.checkpoints import load_checkpoint, save_checkpoint
from conftest import as_list

FIXTURES = Path(__file__).parent.parent / "fixtures" / "families"
# Mirrors make_family_reference.CASES: case -> (model, application, options).
CASES = {
    "albert": ("albert", "encoder", dict(with_pool=True, with_mlm=True)),
    "albert_lm": ("albert", "lm", dict(with_mlm=True)),
    "albert_unshared": ("albert_unshared", "encoder", dict(with_mlm=True)),
    "nezha": ("nezha", "encoder", dict(with_pool=True, with_mlm=True)),
    "nezha_unilm": ("nezha", "unilm", dict(with_mlm=True)),
    "roformer": ("roformer", "encoder", dict(with_mlm=True)),
    "roformer_unilm": ("roformer", "unilm", dict(with_mlm=True)),
    "roformer_v2": ("roformer_v2", "encoder", dict(with_mlm=True)),
    "roformer_v2_lm": ("roformer_v2", "lm", dict(with_mlm=True)),
    "electra": ("electra", "encoder", dict(with_discriminator=True)),
    "gpt2": ("gpt2", "lm", {}),
    "gpt2_ml": ("gpt2_ml", "lm", {}),
    "gpt": ("gpt", "lm", {}),
    "gpt_unilm": ("gpt", "unilm", {}),
}
# transformers head models -> our option giving the same logits.
HUGGING_FACE = {
    "albert": dict(with_mlm="linear"),
    "roformer": dict(with_mlm="linear"),
    "electra": dict(with_discriminator="linear"),
    "gpt2": dict(final_activation="linear"),
}


def model_inputs(model, reference):
    if len(model.inputs) == 1:
        return reference["token_ids"]
    return [reference["token_ids"], reference["segment_ids"]]


def assert_close_on_tokens(ours, expected, token_ids, log=False):
    """Equal within 1e-4 at real tokens (rows of padding excluded)."""
    ours, expected = np.asarray(ours, "float64"), np.asarray(expected, "float64")
    if ours.ndim == 3:
        keep = token_ids != 0
        ours, expected = ours[keep], expected[keep]
    if log:
        ours, expected = np.log(ours), np.log(expected)
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def build_case(case):
    family, application, options = CASES[case]
    return build_transformer_model(FIXTURES / case / "bert_config.json", model=family,
                                   application=application, **options)


@pytest.mark.parametrize("case", sorted(CASES))
def test_original_checkpoint_matches_bert4keras(case):
    model = build_case(case)
    report = load_checkpoint(model, str(FIXTURES / case / "model.ckpt"), family=CASES[case][0])
    assert report.missing == [] and report.unused == []
    reference = np.load(FIXTURES / case / "reference.npz")
    # Called directly: `predict` would trace the model, slower than running this tiny one.
    outputs = model(model_inputs(model, reference))
    outputs = [np.asarray(x) for x in (outputs if isinstance(outputs, list) else [outputs])]
    assert len(outputs) == len([key for key in reference if key.startswith("output_")])
    for index, output in enumerate(outputs):
        probabilities = output.ndim == 3 and output.shape[-1] > 1
        assert_close_on_tokens(output, reference[f"output_{index}"], reference["token_ids"],
                               log=probabilities)


@pytest.mark.parametrize("case", sorted(CASES))
def test_original_checkpoint_round_trip_is_exact(case, tmp_path):
    """The written checkpoint and config rebuild a model with the same weights that computes
    the same outputs (reliability probe 2, C06: every key deciding the computation is
    written)."""
    family = CASES[case][0]
    model = build_case(case)
    load_checkpoint(model, str(FIXTURES / case / "model.ckpt"), family=family)
    assert_written_model_computes_the_same(model, family, CASES[case][1], CASES[case][2],
                                           np.load(FIXTURES / case / "reference.npz"), tmp_path)


def assert_written_model_computes_the_same(model, family, application, options, reference,
                                           tmp_path):
    save_checkpoint(model, str(tmp_path / "model.ckpt"), family)
    reloaded = build_transformer_model(tmp_path / "bert_config.json",
                                       str(tmp_path / "model.ckpt"), model=family,
                                       application=application, **options)
    assert [w.path for w in reloaded.weights] == [w.path for w in model.weights]
    for ours, theirs in zip(model.weights, reloaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      keras.ops.convert_to_numpy(theirs))
    inputs = model_inputs(model, reference)
    for ours, theirs in zip(as_list(model(inputs)), as_list(reloaded(inputs))):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.parametrize("family, config", [
    ("nezha", {"max_relative_position": 8}), ("roformer", {"rotary_value": True}),
    ("roformer", {"rotary_value": False})])
def test_written_config_keeps_the_position_keys(family, config, tmp_path):
    """C06 for the keys of reliability probe 2's N02 and R01: NEZHA's clipping distance and
    RoFormer's rotated values survive `save_checkpoint` and a rebuild from its files."""
    directory = FIXTURES / ("nezha" if family == "nezha" else "hf_roformer")
    source = json.loads(next(directory.glob("*config.json")).read_text())
    model = build_transformer_model({**source, **config}, model=family, with_mlm="linear")
    assert_written_model_computes_the_same(model, family, "encoder", {"with_mlm": "linear"},
                                           np.load(directory / "reference.npz"), tmp_path)
    written = json.loads((tmp_path / "bert_config.json").read_text())
    assert {key: written[key] for key in config} == config


@pytest.mark.parametrize("family", sorted(HUGGING_FACE))
def test_safetensors_match_transformers(family):
    directory = FIXTURES / f"hf_{family}"
    model = build_transformer_model(directory / "config.json", directory / "model.safetensors",
                                    model=family, **HUGGING_FACE[family])
    reference = np.load(directory / "reference.npz")
    logits = model.predict(model_inputs(model, reference), verbose=0)
    expected = reference["logits"]
    if family == "electra":
        logits = logits[..., 0]
        keep = reference["token_ids"] != 0
        np.testing.assert_allclose(logits[keep], expected[keep], atol=1e-4, rtol=0)
        return
    assert_close_on_tokens(log_softmax(logits.astype("float64")),
                           log_softmax(expected.astype("float64")), reference["token_ids"])


def test_albert_shares_one_block():
    model = build_case("albert")
    names = {layer.name for layer in model.layers}
    assert "Transformer-MultiHeadSelfAttention" in names
    assert not any(name.startswith("Transformer-0") for name in names)
    unshared = build_case("albert_unshared")  # no pooler (2 weights); a second block (16)
    assert len(unshared.trainable_weights) == len(model.trainable_weights) - 2 + 16


def test_albert_unshared_apart_cannot_be_saved_as_albert(tmp_path):
    model = build_case("albert_unshared")
    load_checkpoint(model, str(FIXTURES / "albert_unshared" / "model.ckpt"),
                    family="albert_unshared")
    kernel = model.get_layer("Transformer-1-FeedForward").output_dense.kernel
    kernel.assign(kernel + 1.0)
    with pytest.raises(ValueError, match="trained apart"):
        save_checkpoint(model, str(tmp_path / "model.ckpt"), "albert_unshared")


def test_checkpoint_of_another_family_or_size_is_refused(tmp_path):
    model = build_case("roformer")
    with pytest.raises(ValueError, match=r"none of the model='roformer' variables.*another "
                                         r"family"):
        load_checkpoint(model, str(FIXTURES / "gpt2_ml" / "model.ckpt"), family="roformer")
    config = json.loads((FIXTURES / "albert" / "bert_config.json").read_text())
    config["intermediate_size"] = 48
    albert = build_transformer_model(config, model="albert")
    with pytest.raises(ValueError, match=r"(?s)model='albert'.*Transformer-FeedForward/"
                                         r"intermediate_dense/kernel: model shape \(32, 48\), "
                                         r"checkpoint variable bert/encoder/transformer/group_0/"
                                         r"inner_group_0/ffn_1/intermediate/dense/kernel gives "
                                         r"\(32, 64\)"):
        load_checkpoint(albert, str(FIXTURES / "albert" / "model.ckpt"), family="albert")


def test_unknown_model_lists_the_families():
    with pytest.raises(ValueError, match=r"`model` must be one of .*'albert'.*'gpt2_ml'.*"
                                         r"received 't5.1.2'"):
        build_transformer_model(FIXTURES / "albert" / "bert_config.json", model="t5.1.2")
    t5 = {f"{version}{part}" for version in ("t5", "t5.1.0", "t5.1.1", "mt5.1.1")
          for part in ("", "_encoder", "_decoder")}
    assert set(CASES[case][0] for case in CASES) | {"bert", "roberta"} | t5 == set(MODELS)


def test_family_arguments_are_checked():
    config = FIXTURES / "gpt2" / "bert_config.json"
    with pytest.raises(ValueError, match=r"`application` must be one of \('lm',\)"):
        build_transformer_model(config, model="gpt2", application="unilm")
    with pytest.raises(ValueError, match="GPT2 does not take `with_mlm`"):
        build_transformer_model(config, model="gpt2", with_mlm=True)
    with pytest.raises(ValueError, match="no mlm head"):
        build_transformer_model(config, model="electra", with_mlm=True)
    with pytest.raises(TypeError, match=r"unknown arguments \['with_discriminator'\]"):
        build_transformer_model(config, model="bert", with_discriminator=True)
    # bert4keras's GPT is causal under any application but UNILM.
    with pytest.raises(ValueError, match=r"`application` must be one of \('lm', 'unilm'\) "
                                         r"for GPT; received 'encoder'"):
        build_transformer_model(config, model="gpt", application="encoder")
    with pytest.raises(ValueError, match="GPT does not take `with_pool`"):
        build_transformer_model(config, model="gpt", with_pool=True)
    with pytest.raises(ValueError, match="'unilm' needs segment ids: `type_vocab_size` must "
                                         "be > 0; received 0"):
        build_transformer_model(config, model="gpt", application="unilm", type_vocab_size=0)


def test_gpt_takes_segment_ids_only_with_segment_embeddings():
    """As bert4keras: GPT's inputs are [token_ids, segment_ids] when `type_vocab_size` > 0,
    else token ids alone (a checkpoint's segment embeddings are then left unused)."""
    config = json.loads((FIXTURES / "gpt" / "bert_config.json").read_text())
    alone = build_transformer_model({**config, "type_vocab_size": 0}, model="gpt")
    assert [x.name for x in alone.inputs] == ["Input-Token"]
    with pytest.warns(UserWarning, match=r"left unused: \['gpt/embeddings/token_type_"):
        load_checkpoint(alone, str(FIXTURES / "gpt" / "model.ckpt"), family="gpt")
    assert [x.name for x in build_case("gpt").inputs] == ["Input-Token", "Input-Segment"]


@pytest.mark.parametrize("family", sorted(HUGGING_FACE))
def test_converter_writes_the_original_format(family, tmp_path):
    """safetensors -> original TF checkpoint (CLI's `convert`) -> the same model outputs."""
    from bert4keras_ext.models.checkpoints.convert import convert

    directory = FIXTURES / f"hf_{family}"
    written = convert(directory / "model.safetensors", str(tmp_path / "model.ckpt"), family)
    assert written
    direct = build_transformer_model(directory / "config.json", directory / "model.safetensors",
                                     model=family, **HUGGING_FACE[family])
    converted = build_transformer_model(directory / "config.json", str(tmp_path / "model.ckpt"),
                                        model=family, **HUGGING_FACE[family])
    for ours, theirs in zip(direct.weights, converted.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      keras.ops.convert_to_numpy(theirs))
