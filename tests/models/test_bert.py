"""build_transformer_model: outputs, UNILM/LM invariances (SPEC C8 (e)), round trips, errors."""
import json

import keras
import numpy as np
import pytest

from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets
from bert4keras_ext.models import build_transformer_model
from conftest import assert_keras_round_trip

pytestmark = pytest.mark.backend_neutral


def seq2seq_batch():
    tokens = np.array([[1, 5, 6, 7, 2, 8, 9, 10, 11, 2, 0, 0]] * 2)
    segments = np.array([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]] * 2)
    return tokens, segments


def test_output_shapes_follow_bert4keras(tiny_config):
    tokens, segments = seq2seq_batch()
    encoder = build_transformer_model(tiny_config)
    assert encoder([tokens, segments]).shape == (2, 12, 32)
    pooled = build_transformer_model(tiny_config, with_pool=True)
    assert pooled([tokens, segments]).shape == (2, 32)
    both = build_transformer_model(tiny_config, with_pool=True, with_mlm=True)
    pooled_out, probs = both([tokens, segments])
    assert pooled_out.shape == (2, 32) and probs.shape == (2, 12, 50)
    np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-5)
    embedded = build_transformer_model(tiny_config, embedding_size=16, with_mlm="linear")
    assert embedded([tokens, segments]).shape == (2, 12, 50)
    assert embedded.get_layer("Embedding-Mapping").kernel.shape == (16, 32)


def test_unilm_source_and_causal_target_invariance(tiny_config):
    tokens, segments = seq2seq_batch()
    model = build_transformer_model(tiny_config, application="unilm", with_mlm="linear")
    base = np.asarray(model([tokens, segments]))
    changed = tokens.copy()
    changed[1, 7:10] = [30, 31, 32]  # later target tokens of sample 1
    out = np.asarray(model([changed, segments]))
    np.testing.assert_allclose(out[1, :7], base[1, :7], atol=1e-6)  # source + earlier targets
    assert np.abs(out[1, 7:10] - base[1, 7:10]).max() > 1e-4
    changed = tokens.copy()
    changed[0, 5:10] = [40, 41, 42, 43, 44]  # the whole target of sample 0
    out = np.asarray(model([changed, segments]))
    np.testing.assert_allclose(out[0, :5], base[0, :5], atol=1e-6)
    # Source positions do see every source token (bidirectional).
    changed = tokens.copy()
    changed[0, 3] = 45
    assert np.abs(np.asarray(model([changed, segments]))[0, 1] - base[0, 1]).max() > 1e-4


def test_lm_is_causal_and_encoder_ignores_padding_length(tiny_config):
    tokens, segments = seq2seq_batch()
    lm = build_transformer_model(tiny_config, application="lm", with_mlm=True)
    base = np.asarray(lm([tokens, segments]))
    changed = tokens.copy()
    changed[0, 6] = 33
    np.testing.assert_allclose(np.asarray(lm([changed, segments]))[0, :6], base[0, :6], atol=1e-5)
    encoder = build_transformer_model(tiny_config, normalization="softmax_plus")
    short = np.asarray(encoder([tokens[:, :10], segments[:, :10]]))
    longer = np.asarray(encoder([np.pad(tokens, [(0, 0), (0, 20)]),
                                 np.pad(segments, [(0, 0), (0, 20)])]))
    np.testing.assert_allclose(longer[:, :10], short, atol=1e-5)


def test_conditional_layer_norm_model_ignores_condition_at_init(tiny_config):
    tokens, segments = seq2seq_batch()
    model = build_transformer_model(tiny_config, application="lm", with_mlm=True,
                                    layer_norm_cond=6, layer_norm_cond_hidden_size=8,
                                    layer_norm_cond_hidden_act="swish")
    assert len(model.inputs) == 3
    rng = np.random.default_rng(0)
    first = np.asarray(model([tokens, segments, rng.normal(size=(2, 6))]))
    second = np.asarray(model([tokens, segments, rng.normal(size=(2, 6))]))
    np.testing.assert_allclose(first, second, atol=1e-6)
    # A condition tensor computed from another input, declared through additional_input_layers.
    label = keras.Input((), dtype="int32")
    cond = keras.layers.Embedding(2, 6)(label)
    model = build_transformer_model(tiny_config, layer_norm_cond=cond,
                                    additional_input_layers=[label])
    assert model([tokens, segments, np.array([0, 1])]).shape == (2, 12, 32)


def test_round_trip_jit_and_training_lowers_loss(tiny_config, tmp_path):
    tokens, segments = seq2seq_batch()
    model = build_transformer_model(tiny_config, application="unilm", with_mlm="linear",
                                    layer_norm_cond=4, normalization="softmax_plus")
    cond = np.ones((2, 4), "float32")
    assert_keras_round_trip(model, [tokens, segments, cond], tmp_path)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=Seq2SeqCrossEntropy(from_logits=True), jit_compile=True)
    targets = seq2seq_targets(tokens, segments)
    history = model.fit([tokens, segments, cond], targets, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_config_from_json_and_overrides(tiny_config, tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({**tiny_config, "architectures": ["BertModel"]}))
    model = build_transformer_model(str(path), num_hidden_layers=1)
    assert model.get_layer("Transformer-0-FeedForward").units == tiny_config["intermediate_size"]
    with pytest.raises(ValueError):
        model.get_layer("Transformer-1-FeedForward")


def test_builder_errors(tiny_config, tmp_path):
    with pytest.raises(TypeError, match=r"unknown arguments \['with_nsp'\]"):
        build_transformer_model(tiny_config, with_nsp=True)
    with pytest.raises(ValueError, match=r"lacks required keys \['intermediate_size'\]"):
        build_transformer_model({k: v for k, v in tiny_config.items()
                                 if k != "intermediate_size"})
    with pytest.raises(ValueError, match=r"`hidden_size` \(32\) must be divisible by "
                                         r"`num_attention_heads` \(5\)"):
        build_transformer_model(tiny_config, num_attention_heads=5)
    with pytest.raises(ValueError, match="`application` must be one of"):
        build_transformer_model(tiny_config, application="seq2seq")
    with pytest.raises(FileNotFoundError, match="missing_config.json"):
        build_transformer_model(str(tmp_path / "missing_config.json"))
    with pytest.raises(ValueError, match="`normalization` must be one of"):
        build_transformer_model(tiny_config, normalization="softmax+")
    with pytest.raises(ValueError, match="Sequence length 100 exceeds the 64 positions"):
        build_transformer_model(tiny_config, sequence_length=100)
