"""Intermediate outputs and attention probabilities of a built model."""
import numpy as np
import pytest

from bert4keras_ext.models import (
    attention_probabilities,
    build_transformer_model,
    intermediate_outputs,
)

pytestmark = pytest.mark.backend_neutral


def test_intermediate_outputs_and_attention_probabilities(tiny_config):
    model = build_transformer_model(tiny_config, application="lm", with_mlm=False)
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, tiny_config["vocab_size"], size=(2, 7))
    token_ids[1, 5:] = 0  # padding
    inputs = [token_ids, np.zeros_like(token_ids)]
    last = f"Transformer-{tiny_config['num_hidden_layers'] - 1}-FeedForward-Norm"
    outputs = intermediate_outputs(model, ["Embedding-Norm", last], inputs)
    np.testing.assert_allclose(outputs[last], np.asarray(model(inputs)), atol=1e-6)

    name = "Transformer-0-MultiHeadSelfAttention"
    probs = attention_probabilities(model, name, inputs)
    assert probs.shape == (2, tiny_config["num_attention_heads"], 7, 7)
    assert np.all(np.triu(probs, k=1) == 0)  # causal
    assert np.all(probs[1, :, :, 5:] == 0)  # padded keys
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    # The layer's output is these probabilities applied to its value projection.
    layer = model.get_layer(name)
    x = outputs["Embedding-Norm"]
    values = np.asarray(layer.v_dense(x)).reshape(2, 7, layer.heads, layer.head_size)
    mixed = np.einsum("bhqk,bkhd->bqhd", probs, values).reshape(2, 7, -1)
    expected = intermediate_outputs(model, [name], inputs)[name]
    np.testing.assert_allclose(np.asarray(layer.o_dense(mixed)), expected, atol=1e-5)


def test_inspection_errors(tiny_config):
    model = build_transformer_model(tiny_config)
    inputs = [np.ones((1, 3), "int32"), np.zeros((1, 3), "int32")]
    with pytest.raises(TypeError, match="not a MultiHeadAttention"):
        attention_probabilities(model, "Embedding-Norm", inputs)
    with pytest.raises(ValueError, match="No such layer"):
        intermediate_outputs(model, ["Nope"], inputs)
