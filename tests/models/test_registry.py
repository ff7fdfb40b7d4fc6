"""One record per family (`models.registry`), the typed config (`models.config`) and the layer
names (`models.names`): what each holds, and the errors naming the argument and the value."""
import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from bert4keras_ext.models import (
    FAMILIES,
    MODELS,
    TransformerConfig,
    build_transformer_model,
    get_family,
    load_config,
    names,
    register_family,
)
from bert4keras_ext.models.bert import BERT, bert_weight_names
from bert4keras_ext.models.config import DEFAULTS, FORMATS, KEYS, REQUIRED_KEYS, detect_format
from conftest import TINY_CONFIG

pytestmark = pytest.mark.backend_neutral

FIXTURES = Path(__file__).parent.parent / "fixtures" / "families"
HF_T5 = json.loads((FIXTURES / "hf_t5" / "config.json").read_text())
GPT2_CONFIG = {"n_embd": 32, "n_layer": 1, "n_head": 4, "vocab_size": 50, "n_positions": 16,
               "n_inner": None, "resid_pdrop": 0.0}


def test_every_family_is_one_registered_record():
    assert MODELS == tuple(FAMILIES)
    for name, family in FAMILIES.items():
        assert family.name == name
        assert family.default_application == family.builder.applications[0]
        assert "bert" in family.config_formats
        assert family.half_of is None or family.half_of in FAMILIES
    assert FAMILIES["roberta"].builder is FAMILIES["bert"].builder is BERT
    assert FAMILIES["roberta"].hugging_face_prefixes == ("roberta.",)
    assert FAMILIES["t5"].weight_names(1) == FAMILIES["t5.1.0"].weight_names(1)
    assert FAMILIES["t5.1.1_encoder"].unused_prefixes == ("decoder", "lm_head")
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAMILIES["bert"].builder = None


def test_registry_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`name` must be a family not yet registered; "
                                         r"received 'bert'"):
        register_family("bert", BERT, bert_weight_names)
    with pytest.raises(ValueError, match=r"`family` must be one of \('bert', 'roberta', .*"
                                         r"received 'bart'"):
        get_family("bart", "family")


def test_layer_names_are_bert4keras_names():
    assert names.TOKEN_EMBEDDING == "Embedding-Token"
    assert names.norm(names.self_attention(names.block(3))) == \
        "Transformer-3-MultiHeadSelfAttention-Norm"
    assert names.feed_forward(names.block()) == "Transformer-FeedForward"  # ALBERT's
    assert names.norm(names.feed_forward(names.block(0)), 1) == "Transformer-0-FeedForward-Norm-1"
    assert names.cross_attention(names.block(2, stack=names.DECODER)) == \
        "Decoder-Transformer-2-MultiHeadCrossAttention"
    assert names.in_stack(names.ENCODER, names.OUTPUT_NORM) == "Encoder-Output-Norm"
    assert names.residual_add("x") == "x-Add" and names.dropout("x") == "x-Dropout"


def test_config_is_a_typed_frozen_mapping():
    config = load_config(dict(TINY_CONFIG, architectures=["BertModel"]))
    assert isinstance(config, TransformerConfig)
    assert config.hidden_size == config["hidden_size"] == 32
    assert config.get("embedding_size") is None and config.get("absent", 7) == 7
    assert config["architectures"] == ["BertModel"] and config.extra == {
        "architectures": ["BertModel"]}
    assert list(config) == [*KEYS, "architectures"] and len(config) == len(KEYS) + 1
    assert dict(config) == {**DEFAULTS, **TINY_CONFIG, "architectures": ["BertModel"]}
    assert set(REQUIRED_KEYS) == set(TINY_CONFIG) - set(DEFAULTS)
    assert (lambda **entries: entries)(**config) == dict(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 64
    with pytest.raises(TypeError):
        config.extra["architectures"] = []
    # The same config again: from its JSON, pickle, a deep copy, or `load_config` itself.
    assert load_config(json.loads(json.dumps(config.to_dict()))) == config
    assert pickle.loads(pickle.dumps(config)) == config == copy.deepcopy(config)
    assert load_config(config) is config


def test_with_values_checks_the_changes_as_a_new_config():
    config = load_config(TINY_CONFIG)
    changed = config.with_values(hidden_size=64, architectures=["x"])
    assert (changed.hidden_size, changed.extra["architectures"], config.hidden_size) == (
        64, ["x"], 32)
    assert dataclasses.replace(config, num_hidden_layers=1).num_hidden_layers == 1
    with pytest.raises(ValueError, match=r"`hidden_dropout_prob` must be a number in "
                                         r"\[0.0, 1.0\]; received 2.0"):
        config.with_values(hidden_dropout_prob=2.0)
    with pytest.raises(ValueError, match=r"`hidden_size` \(30\) must be divisible by "
                                         r"`num_attention_heads` \(4\)"):
        config.with_values(hidden_size=30)
    with pytest.raises(ValueError, match=r"`extra` must hold only keys without a field; "
                                         r"received \['hidden_size'\]"):
        TransformerConfig(**TINY_CONFIG, extra={"hidden_size": 8})
    with pytest.raises(ValueError, match=r"lacks required keys \['intermediate_size'\]"):
        TransformerConfig.from_entries({k: v for k, v in TINY_CONFIG.items()
                                        if k != "intermediate_size"})


def test_each_format_is_read_into_our_keys():
    assert [detect_format(c) for c in (TINY_CONFIG, GPT2_CONFIG, HF_T5)] == list(FORMATS)
    bert4keras = load_config(dict(TINY_CONFIG, dropout_rate=0.0, attention_dropout_rate=0.2))
    assert (bert4keras.hidden_dropout_prob, bert4keras.attention_probs_dropout_prob) == (0.0,
                                                                                         0.2)
    gpt2 = load_config(GPT2_CONFIG)
    assert (gpt2.hidden_size, gpt2.intermediate_size, gpt2.type_vocab_size,
            gpt2.max_position_embeddings, gpt2.hidden_dropout_prob) == (32, 128, 0, 16, 0.0)
    t5 = load_config(HF_T5)
    assert (t5.hidden_size, t5.cross_position_bias) == (HF_T5["d_model"], False)
    assert load_config(TINY_CONFIG).cross_position_bias is True  # bert4keras's convention
    # An explicit format reads the keys as that format's, whatever they look like.
    assert "n_embd" in load_config(dict(TINY_CONFIG, n_embd=8), format="bert").extra
    with pytest.raises(ValueError, match=r"`format` must be one of \('bert', 'gpt2', 't5'\); "
                                         r"received 'bart'"):
        load_config(TINY_CONFIG, format="bart")


def test_a_family_refuses_a_config_format_it_does_not_read():
    with pytest.raises(ValueError, match=r"`config` must be in one of the formats \('bert',\) "
                                         r"here; received a 't5' config"):
        build_transformer_model(HF_T5, model="bert")


def test_config_entries_given_as_arguments_replace_the_config_s():
    builder = build_transformer_model(TINY_CONFIG, hidden_dropout_prob=0.0, keep_tokens=[0, 5],
                                      return_keras_model=False)
    assert isinstance(builder.config, TransformerConfig)
    assert (builder.config.hidden_dropout_prob, builder.config.vocab_size) == (0.0, 2)
