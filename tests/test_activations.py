"""GELU approximations against the exact form (SPEC S4 (e)) and their names."""
import math

import keras
import numpy as np
import pytest

from bert4keras_ext import activations
from bert4keras_ext.layers import FeedForward
from conftest import assert_keras_round_trip


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
    assert activations.get(name) is not None
