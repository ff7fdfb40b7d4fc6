"""Config keys that change the computation are honoured or refused by name, and checkpoints of
another family or variant are refused by name (reliability probe 2: N02, R01, C01, C03, C03b,
C04, C07, C08, C10 and the keys found beside them).

Numbers: the NEZHA and rotary-value attention against a NumPy loop are in
tests/layers/test_position_schemes.py; here the config reaches those layers, and a T5 whose
decoder has its own number of blocks equals its decoder half built with that many blocks.
"""
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from bert4keras_ext.arguments import ArgumentTypeError
from bert4keras_ext.layers import MultiHeadAttention
from bert4keras_ext.models import build_transformer_model, load_config
from bert4keras_ext.models.checkpoints import config_from_model, save_checkpoint
from bert4keras_ext.models.checkpoints.convert import main as convert_main
from conftest import TINY_CONFIG

pytestmark = pytest.mark.backend_neutral

FIXTURES = Path(__file__).parent.parent / "fixtures" / "families"
HF_T5 = json.loads((FIXTURES / "hf_t5" / "config.json").read_text())
HF_ROFORMER = json.loads((FIXTURES / "hf_roformer" / "config.json").read_text())
TOKENS = np.array([[5, 6, 7, 8, 9, 10], [11, 3, 4, 2, 12, 13]])
SEGMENTS = np.zeros_like(TOKENS)


def attention_layers(model):
    return [layer for layer in model.layers if isinstance(layer, MultiHeadAttention)]


@pytest.mark.tensorflow_only  # slow op by op on JAX; the layer test's numbers run on both
def test_nezha_clipping_distance_comes_from_the_config():
    """N02: `max_relative_position` (NEZHA's key, 64 in its models) reaches every attention
    layer, changes the outputs, and is written back by `config_from_model`."""
    default = build_transformer_model(TINY_CONFIG, model="nezha")
    clipped = build_transformer_model(dict(TINY_CONFIG, max_relative_position=2), model="nezha")
    clipped.set_weights(default.get_weights())
    assert {layer.max_relative_position for layer in attention_layers(default)} == {64}
    assert {layer.max_relative_position for layer in attention_layers(clipped)} == {2}
    difference = np.abs(np.asarray(clipped([TOKENS, SEGMENTS]))
                        - np.asarray(default([TOKENS, SEGMENTS]))).max()
    assert difference > 1e-3
    assert config_from_model(clipped)["max_relative_position"] == 2


@pytest.mark.tensorflow_only  # slow op by op on JAX; the layer test's numbers run on both
def test_hugging_face_roformer_rotary_value_is_honoured():
    """R01: Hugging Face RoFormer's `rotary_value: true` rotates the values in every attention
    layer (transformers' RoFormerSelfAttention); on a family without rotary positions it is
    refused by name."""
    directory = FIXTURES / "hf_roformer"
    models = {flag: build_transformer_model(dict(HF_ROFORMER, rotary_value=flag),
                                            directory / "model.safetensors", model="roformer")
              for flag in (False, True)}
    assert {layer.rotary_value for layer in attention_layers(models[True])} == {True}
    outputs = {flag: np.asarray(model([TOKENS, SEGMENTS])) for flag, model in models.items()}
    assert np.abs(outputs[True] - outputs[False]).max() > 1e-3
    assert config_from_model(models[True])["rotary_value"] is True
    with pytest.raises(ValueError, match=r"Config key `rotary_value` is true, but BERT has no "
                                         r"rotary positions"):
        build_transformer_model(dict(TINY_CONFIG, rotary_value=True))


@pytest.mark.tensorflow_only  # slow op by op on JAX; the layer test's numbers run on both
def test_t5_decoder_with_its_own_number_of_blocks():
    """C01: Hugging Face's `num_decoder_layers` gives the decoder its own depth. The whole T5
    (2 encoder blocks, 1 decoder block) equals its decoder half built with 1 block on the
    output of the 2-block encoder."""
    weights = FIXTURES / "hf_t5" / "model.safetensors"
    config = dict(HF_T5, num_decoder_layers=1)
    with pytest.warns(UserWarning, match=r"left unused: \['decoder.block.1."):
        t5 = build_transformer_model(config, weights, model="t5.1.1", return_keras_model=False)
    names = {layer.name for layer in t5.model.layers}
    assert "Encoder-Transformer-1-FeedForward" in names
    assert "Decoder-Transformer-0-FeedForward" in names
    assert "Decoder-Transformer-1-FeedForward" not in names
    with pytest.warns(UserWarning, match="left unused"):
        decoder = build_transformer_model(config, weights, model="t5.1.1_decoder")
    decoder_ids = np.array([[0, 4, 9], [0, 7, 2]])
    expected = decoder([np.asarray(t5.encoder(TOKENS)), decoder_ids])
    np.testing.assert_allclose(np.asarray(t5.model([TOKENS, decoder_ids])), np.asarray(expected),
                               atol=1e-5)
    written = config_from_model(t5.model)
    assert (written["num_hidden_layers"], written["num_decoder_layers"]) == (2, 1)


@pytest.mark.parametrize("case, change, error, message", [
    ("C03b", {"relative_attention_max_distance": "128"}, ArgumentTypeError,
     r"`relative_attention_max_distance` must be a positive integer; received '128' \(str\)"),
    ("C03", {"relative_attention_num_buckets": 0}, ValueError,
     r"`relative_attention_num_buckets` must be a positive integer; received 0"),
    ("C03b", {"num_decoder_layers": 1.5}, ArgumentTypeError,
     r"`num_decoder_layers` must be a positive integer; received 1.5 \(float\)"),
    ("C03b", {"dropout_rate": "0.1"}, ArgumentTypeError,
     r"`hidden_dropout_prob` must be a number in \[0.0, 1.0\]; received '0.1'"),
    ("C03b", {"layer_norm_epsilon": 0}, ValueError,
     r"`layer_norm_eps` must be a finite number > 0.0; received 0.0"),
    ("C03b", {"scale_decoder_outputs": "false"}, ArgumentTypeError,
     r"`scale_decoder_outputs` must be true or false; received 'false' \(str\)"),
])
def test_config_values_of_the_wrong_type_or_range_name_the_key(case, change, error, message):
    """Reliability probe 2, C03 and C03b (was: '<=' not supported between 'str' and 'int')."""
    with pytest.raises(error, match=message):
        load_config(dict(HF_T5, **change))


@pytest.mark.parametrize("change, message", [
    ({"position_embedding_type": "relative_key"},
     r"`position_embedding_type` must be 'absolute' \(another value means Hugging Face's "
     r"relative position embeddings"),
    ({"num_hidden_groups": 2}, r"`num_hidden_groups` must be 1 \(another value means ALBERT "
                               r"with several groups"),
    ({"tie_word_embeddings": False}, r"`tie_word_embeddings` must be True"),
    ({"add_cross_attention": True}, r"`add_cross_attention` must be False"),
    ({"model_type": "roberta"}, r"`model_type` is 'roberta', which is not supported: Hugging "
                                r"Face RoBERTa pads with id 1"),
])
def test_known_keys_asking_for_another_computation_are_refused(change, message):
    """Keys of Hugging Face configs that BERT-like families would otherwise ignore silently."""
    with pytest.raises(ValueError, match=message):
        build_transformer_model(dict(HF_ROFORMER, **change), model="roformer")


def test_gpt2_attention_scaling_keys_are_refused():
    config = {"n_embd": 32, "n_layer": 1, "n_head": 4, "vocab_size": 50, "n_positions": 16}
    assert load_config(config)["hidden_size"] == 32
    with pytest.raises(ValueError, match=r"`scale_attn_by_inverse_layer_idx` must be False"):
        load_config(dict(config, scale_attn_by_inverse_layer_idx=True))


def t5_v10_file(tmp_path):
    """The Hugging Face T5 fixture as a T5 v1.0 file: one ReLU input projection per
    feed-forward layer (`wi`), the head tied to the embedding."""
    tensors = {}
    for name, value in load_file(FIXTURES / "hf_t5" / "model.safetensors").items():
        if name.endswith("wi_1.weight") or name == "lm_head.weight":
            continue
        tensors[name.replace("wi_0.weight", "wi.weight")] = value
    save_file(tensors, str(tmp_path / "model.safetensors"))
    config = dict(HF_T5, feed_forward_proj="relu", tie_word_embeddings=True)
    return config, tmp_path / "model.safetensors"


@pytest.mark.tensorflow_only  # builds four T5 models: slow op by op on JAX
def test_t5_checkpoint_of_another_variant_is_refused(tmp_path):
    """C04: a T5 v1.0 checkpoint loaded as model='t5.1.1' lacks every feed-forward input kernel
    of that variant; the error names them and the variant the file fits, which loads it."""
    config, weights = t5_v10_file(tmp_path)
    with pytest.raises(ValueError, match=r"(?s)holds no model='t5.1.1' weights for \["
                                         r"'Decoder-Transformer-\*-FeedForward/intermediate_"
                                         r"dense/kernel', .* in any block.*DenseReluDense.wi."
                                         r"weight.*fit model='t5.1.0' or 't5'"):
        build_transformer_model(config, weights, model="t5.1.1")
    with pytest.warns(UserWarning, match=r"left as initialized: \['Embedding-Token"):
        # A missing embedding is not a block weight: a warning, as before (C02).
        build_transformer_model(HF_T5, _without(tmp_path, "shared.weight"), model="t5.1.1")
    build_transformer_model(config, weights, model="t5.1.0")


def _without(tmp_path, dropped):
    tensors = load_file(FIXTURES / "hf_t5" / "model.safetensors")
    del tensors[dropped]
    path = tmp_path / "partial.safetensors"
    save_file(tensors, str(path))
    return path


def test_writing_a_model_as_another_family_is_refused(tmp_path):
    """C07, C08: a BERT written as ALBERT would lose its blocks, as GPT-2 would store its
    post-LayerNorm norms as pre-LayerNorm ones; a NEZHA named otherwise written as RoFormer
    has the same weight names but another attention. Nothing is written."""
    bert = build_transformer_model(TINY_CONFIG)
    for family, problem in [("albert", r"its format has no name for 32 of the model's 37 "
                                       r"weights"),
                            ("gpt2", r"its format has no name for 3 of the model's 37 weights"),
                            ("electra", r"it was built as model='bert' \(BERT\), whose graph "
                                        r"differs from ELECTRA's")]:
        with pytest.raises(ValueError, match=rf"Model 'bert' cannot be written as "
                                             rf"model='{family}': {problem}.*nothing was "
                                             rf"written. The model fits model='bert' or "
                                             rf"'roberta'"):
            save_checkpoint(bert, str(tmp_path / family / "model.ckpt"), family)
    nezha = build_transformer_model(TINY_CONFIG, model="nezha", name="encoder")
    # A model knows its family whatever its name.
    with pytest.raises(ValueError, match=r"it was built as model='nezha' \(NEZHA\), whose "
                                         r"graph differs from RoFormer's.*fits model='nezha'"):
        save_checkpoint(nezha, str(tmp_path / "roformer" / "model.ckpt"), "roformer")
    assert not list(tmp_path.rglob("*"))


def test_converter_refuses_a_file_of_another_family(tmp_path, capsys):
    """C10: a BERT safetensors file converted with --model albert was cut to its embeddings
    (exit 0); now the command names the tensors left out and the family the file fits."""
    # A BERT-like file without the model prefix, as BertModel writes it.
    tensors = {name.replace("roformer.", ""): value for name, value in
               load_file(FIXTURES / "hf_roformer" / "model.safetensors").items()}
    save_file(tensors, str(tmp_path / "bert.safetensors"))
    with pytest.raises(SystemExit) as exit_info:
        convert_main([str(tmp_path / "bert.safetensors"), str(tmp_path / "out" / "model.ckpt"),
                      "--model", "albert"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "is not a model='albert' checkpoint: model='albert' has no name for 34 of its 44 " \
           "tensors (e.g. ['embeddings_project.bias', 'embeddings_project.weight', " \
           "'encoder.layer.0.attention.output.LayerNorm.bias'" in error
    assert "fit model='bert' or 'roberta' or 'nezha' or 'roformer'" in error
    assert not (tmp_path / "out").exists()
    keras.utils.clear_session()
