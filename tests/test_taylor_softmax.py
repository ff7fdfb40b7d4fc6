"""Taylor softmax (SPEC S3 (e)): positivity, the minima table, f_n' = f_{n-1}, normalization,
masks, the monotone variant, and the attention option."""
import keras
import numpy as np
import pytest

from bert4keras_ext.layers import MultiHeadAttention
from bert4keras_ext.taylor_softmax import taylor_minimum, taylor_polynomial, taylor_softmax
from conftest import assert_keras_round_trip

pytestmark = pytest.mark.backend_neutral

ORDERS = [2, 4, 6, 8, 10]


def polynomial(x, order):
    return np.asarray(taylor_polynomial(np.asarray(x, "float64"), order))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.tensorflow_only  # float64 closed forms; JAX computes in float32
def test_even_orders_are_positive_and_derivative_is_the_lower_order(order):
    x = np.linspace(-60, 60, 120001)
    assert polynomial(x, order).min() > 0
    h = 1e-6
    derivative = (polynomial(x[::100] + h, order) - polynomial(x[::100] - h, order)) / (2 * h)
    np.testing.assert_allclose(derivative, polynomial(x[::100], order - 1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("order, x_min, f_min", [
    (2, -1.0, 0.5), (4, -1.59607, 0.270395), (6, -2.18061, 0.149325),
    (8, -2.759, 0.0832715), (10, -3.33355, 0.0466991),
])
@pytest.mark.tensorflow_only  # float64 closed forms; JAX computes in float32
def test_table_of_minima(order, x_min, f_min):
    x, value = taylor_minimum(order)
    assert x == pytest.approx(x_min, abs=1e-3) and value == pytest.approx(f_min, rel=1e-5)
    grid = np.linspace(x - 1, x + 1, 20001)
    assert polynomial(grid, order).min() == pytest.approx(value, rel=1e-9)


def test_rows_sum_to_one_masked_entries_get_zero_and_monotone_variant():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3, size=(4, 7))
    mask = rng.random((4, 7)) < 0.6
    mask[0] = False
    probs = np.asarray(taylor_softmax(logits, order=4, mask=mask))
    assert (probs[~mask] == 0).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs[1:].sum(-1), 1.0, rtol=1e-6)
    assert (probs[0] == 0).all()
    f = polynomial(logits, 2)
    np.testing.assert_allclose(np.asarray(taylor_softmax(logits)), f / f.sum(-1, keepdims=True),
                               rtol=1e-6)
    x = np.linspace(-5, 5, 101)[None]
    monotone = np.asarray(taylor_softmax(x, order=2, monotone=True))[0]
    assert (np.diff(monotone) >= 0).all()
    assert not (np.diff(np.asarray(taylor_softmax(x, order=2))[0]) >= 0).all()
    with pytest.raises(ValueError, match="even integer >= 2; received 3"):
        taylor_softmax(x, order=3)


def test_attention_option_uses_taylor_softmax_and_round_trips(tmp_path):
    layer = MultiHeadAttention(1, 8, normalization="taylor_softmax", taylor_order=4,
                               use_bias=False, return_attention_scores=True)
    layer.build([(None, None, 8)] * 3)
    layer.set_weights([np.eye(8, dtype="float32")] * 4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    key_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    output, probs = layer([x, x, x], attention_mask=key_mask[:, None, None, :])
    logits = np.einsum("bqd,bkd->bqk", x, x) / np.sqrt(8)
    expected = np.asarray(taylor_softmax(logits, 4, mask=key_mask[:, None, :]))
    np.testing.assert_allclose(np.asarray(probs)[:, 0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(output), np.einsum("bqk,bkd->bqd", expected, x),
                               rtol=1e-4, atol=1e-5)

    inputs = keras.Input((None, 8))
    attention = MultiHeadAttention(2, 4, normalization="taylor_softmax", taylor_monotone=True)
    model = keras.Model(inputs, attention([inputs, inputs, inputs]))
    assert_keras_round_trip(model, x, tmp_path)
    with pytest.raises(ValueError, match="even integer"):
        MultiHeadAttention(2, 4, normalization="taylor_softmax", taylor_order=5)
