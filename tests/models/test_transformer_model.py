"""The typed model: `build_transformer_model` returns a `TransformerModel` that knows its
family, application and config and hands out its parts; `.keras` files rebuild it."""
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from bert4keras_ext.decoding import CachedGenerator
from bert4keras_ext.layers import Embedding, MultiHeadAttention
from bert4keras_ext.models import (
    TransformerModel,
    attention_probabilities,
    build_transformer_model,
)
from conftest import as_list

pytestmark = pytest.mark.backend_neutral

CONFIG = dict(vocab_size=40, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
              intermediate_size=32, max_position_embeddings=20)
# (model=, builder options, whether it has an MLM / LM head)
CASES = [
    ("bert", dict(application="unilm", with_mlm="linear", with_pool=True), True),
    ("albert", dict(with_mlm=True), True),
    ("nezha", dict(application="lm"), True),
    ("roformer", dict(application="unilm"), True),
    ("roformer_v2", dict(with_mlm="linear"), True),
    ("electra", dict(with_discriminator=True), False),
    ("gpt", dict(application="unilm"), True),
    ("gpt2", dict(final_activation="linear"), True),
    ("gpt2_ml", {}, True),
    ("t5.1.1", dict(with_lm="linear"), True),
    ("t5", {}, True),
    ("t5.1.1_encoder", {}, False),
]
# Families whose `.keras` file is reloaded here: the shared builder with pooler and MLM head, a
# shared block, token ids alone and the encoder-decoder (each reload rebuilds the model).
ROUND_TRIPS = ("bert", "albert", "gpt2", "t5.1.1")


def inputs_for(model, rng):
    token_ids = rng.integers(1, CONFIG["vocab_size"], size=(2, 6))
    token_ids[1, 4:] = 0
    if model.family.startswith("t5") and model.encoder is not None:
        decoder_ids = np.concatenate([np.zeros((2, 1), int), token_ids[:, :3]], axis=1)
        return [token_ids, decoder_ids]
    if len(model.inputs) == 1:
        return token_ids
    return [token_ids, np.zeros_like(token_ids)]


@pytest.mark.parametrize("family,options,has_head", CASES, ids=[c[0] for c in CASES])
def test_the_model_hands_out_its_parts_and_reloads_as_itself(family, options, has_head,
                                                             tmp_path):
    config = dict(CONFIG, hidden_act=["gelu", "linear"]) if family == "t5.1.1" else CONFIG
    model = build_transformer_model(config, model=family, **options)
    assert isinstance(model, TransformerModel) and model.family == family
    assert model.application == options.get("application", model.application)
    assert model.transformer_config["hidden_size"] == 16
    assert model.num_layers == 3
    stacks = 2 if model.encoder is not None else 1
    assert len(model.attention_layers) == 3 * stacks
    assert all(isinstance(layer, MultiHeadAttention) for layer in model.attention_layers)
    # ALBERT's one block is called at every depth.
    assert len(set(map(id, model.attention_layers))) == (1 if family == "albert" else 3 * stacks)
    assert isinstance(model.token_embedding, Embedding)
    assert model.token_embedding.input_dim == CONFIG["vocab_size"]
    assert (model.lm_head is not None) == has_head
    inputs = inputs_for(model, np.random.default_rng(0))
    outputs = [keras.ops.convert_to_numpy(x) for x in as_list(model(inputs))]
    hidden = model.backbone(inputs)
    assert tuple(hidden.shape) == (2, as_list(inputs)[-1].shape[1], 16)
    if has_head:
        # The head on the hidden states is the model's output; on chosen positions, those.
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model.lm_head(hidden)),
                                   outputs[-1], atol=1e-5)
        positions = np.array([[3, 0], [1, 1]])
        logits = keras.ops.convert_to_numpy(model.lm_head.logits(hidden, positions))
        full = keras.ops.convert_to_numpy(model.lm_head.logits(hidden))
        np.testing.assert_allclose(logits, np.take_along_axis(full, positions[..., None], 1),
                                   atol=1e-6)
    if family not in ROUND_TRIPS:
        return
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert type(restored) is TransformerModel and restored.family == family
    assert restored.num_layers == model.num_layers
    assert [layer.name for layer in restored.attention_layers] == [
        layer.name for layer in model.attention_layers]
    for expected, actual in zip(outputs, as_list(restored(inputs))):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(actual), expected)


def test_t5_halves_are_typed_and_the_whole_model_decodes():
    """T5 decodes from the model itself, as from the builder object."""
    builder = build_transformer_model(dict(CONFIG, hidden_act=["gelu", "linear"]),
                                      model="t5.1.1", with_lm="linear",
                                      return_keras_model=False)
    model = builder.model
    assert model.encoder.family == "t5.1.1_encoder" and model.decoder.family == "t5.1.1_decoder"
    assert model.decoder.application == "lm"
    assert len(model.decoder.cross_attention_layers) == 3
    token_ids = np.array([[5, 6, 7, 8], [9, 10, 0, 0]])
    from_model = CachedGenerator(model, end_id=1, maxlen=5).batch_beam_search([token_ids], 2)
    from_builder = CachedGenerator(builder, end_id=1, maxlen=5).batch_beam_search([token_ids], 2)
    for a, b in zip(from_model, from_builder):
        np.testing.assert_array_equal(a, b)


def test_a_model_built_from_foreign_tensors_refuses_to_save_as_keras(tmp_path):
    condition = keras.Input((4,), name="condition")
    model = build_transformer_model(CONFIG, layer_norm_cond=condition,
                                    layer_norm_cond_hidden_size=8)
    with pytest.raises(NotImplementedError, match="cannot be saved as a .keras file"):
        model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / "model.weights.h5")  # weights still save


def test_attention_probabilities_by_call_index_follow_albert_s_shared_block():
    model = build_transformer_model(CONFIG, model="albert", application="lm")
    token_ids = np.array([[3, 4, 5, 6]])
    inputs = [token_ids, np.zeros_like(token_ids)]
    first, last = (attention_probabilities(model, index, inputs) for index in (0, 2))
    assert first.shape == (1, 2, 4, 4) and np.all(np.triu(last, k=1) == 0)
    # One layer, called on different hidden states: different probabilities.
    assert not np.allclose(first, last)
    np.testing.assert_array_equal(
        attention_probabilities(model, "Transformer-MultiHeadSelfAttention", inputs), first)
    with pytest.raises(ValueError, match=r"`layer` must be a self-attention index in \[0, 3\)"):
        attention_probabilities(model, 3, inputs)


# Keras's private graph attributes: only the model itself (`TransformerModel.run_graph`), the
# builder checking where a user's condition tensor comes from, and bert4keras's `search_layer`
# (a walk up any tensor's graph, by the layer name the user gives) may read them.
PRIVATE_GRAPH_ATTRIBUTES = re.compile(
    r"_run_through_graph|_nodes_by_depth|_inbound_nodes|_keras_history")
ALLOWED = {"bert4keras_ext/models/backbone.py", "bert4keras_ext/models/transformer.py",
           "bert4keras_ext/backend.py"}


def test_no_consumer_reads_keras_private_graph_attributes_or_finds_parts_by_name():
    root = Path(__file__).resolve().parents[2]
    readers, by_name = [], []
    for path in [*root.glob("bert4keras_ext/**/*.py"), *root.glob("pretraining/*.py")]:
        relative = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        if PRIVATE_GRAPH_ATTRIBUTES.search(text) and relative not in ALLOWED:
            readers.append(relative)
        # Finding a layer by name is for names a user passes in (inspection).
        if "get_layer(" in text and relative != "bert4keras_ext/models/inspection.py":
            by_name.append(relative)
    assert readers == [] and by_name == []
