"""GELU approximations against the exact form (SPEC S4 (e)) and their names."""
import math

import keras
import numpy as np
import pytest

from bert4keras_ext import activations
from bert4keras_ext.layers import FeedForward
from conftest import assert_keras_round_trip

pytestmark = pytest.mark.backend_neutral


@pytest.mark.tensorflow_only  # float64 closed forms; JAX computes in float32
def test_gelu_forms_and_their_errors_on_minus_six_to_six():
    x = np.linspace(-6, 6, 20001)
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(np.asarray(activations.gelu_erf(x)), exact, atol=1e-12)
    tanh_error = np.abs(np.asarray(activations.gelu_tanh(x)) - exact).max()
    sigmoid_error = np.abs(np.asarray(activations.gelu_sigmoid(x)) - exact).max()
    assert 1e-4 < tanh_error < 5e-4
    assert 1e-2 < sigmoid_error < 2.5e-2


@pytest.mark.parametrize("name", ["gelu", "gelu_erf", "gelu_tanh", "gelu_sigmoid", "relu"])
def test_named_activations_round_trip_in_feedforward(name, tmp_path):
    x_in = keras.Input((None, 4))
    model = keras.Model(x_in, FeedForward(8, activation=name)(x_in))
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    assert_keras_round_trip(model, x, tmp_path)
    exact = x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    expected = {"gelu": exact, "gelu_erf": exact, "relu": np.maximum(x, 0),
                "gelu_tanh": 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                    * (x + 0.044715 * x**3))),
                "gelu_sigmoid": x / (1 + np.exp(-1.702 * x))}[name]
    np.testing.assert_allclose(np.asarray(activations.get(name)(x)), expected, atol=1e-5)


def test_recomputed_approximation_coefficients():
    # Local Taylor fit of tanh(a x + b x^3) to erf(x / sqrt 2): b / a = 0.0455399.
    a = math.sqrt(2 / math.pi)
    b = (4 - math.pi) / (3 * math.sqrt(2) * math.pi**1.5)
    assert b / a == pytest.approx(0.0455399, abs=1e-7)
    # Min-max fits with a fixed: the cubic coefficient of gelu_tanh and sigmoid's 1.702.
    x = np.linspace(-6, 6, 6001)[:, None]
    phi = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    cubic = np.linspace(0.0440, 0.0455, 1501)
    worst = np.abs(0.5 * (1 + np.tanh(a * (x + cubic * x**3))) - phi).max(axis=0)
    assert cubic[worst.argmin()] == pytest.approx(0.0447149, abs=2e-5)
    scale = np.linspace(1.69, 1.71, 2001)
    worst = np.abs(1 / (1 + np.exp(-scale * x)) - phi).max(axis=0)
    assert scale[worst.argmin()] == pytest.approx(1.7017449, abs=1e-4)


def test_config_hidden_act_selects_the_form():
    from bert4keras_ext.models import build_transformer_model

    config = {"vocab_size": 20, "hidden_size": 8, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 8}
    for name, function in [("gelu", activations.gelu_erf), ("gelu_tanh", activations.gelu_tanh),
                           ("gelu_sigmoid", activations.gelu_sigmoid)]:
        model = build_transformer_model(dict(config, hidden_act=name))
        feedforward = model.get_layer("Transformer-0-FeedForward")
        assert feedforward.activation is function
