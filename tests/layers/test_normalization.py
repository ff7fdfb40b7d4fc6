"""LayerNormalization and Conditional LayerNorm (SPEC C2 (e))."""
import keras
import numpy as np
import pytest

from bert4keras_ext.layers import LayerNormalization
from conftest import assert_keras_round_trip

pytestmark = pytest.mark.backend_neutral


def plain_layer_norm(x, gamma=1.0, beta=0.0, epsilon=1e-12):
    x = x.astype("float64")
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def test_plain_layer_norm_matches_closed_form_and_keras():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 16)).astype("float32") * 5 + 2
    layer = LayerNormalization(epsilon=1e-6)
    gamma, beta = rng.normal(size=16), rng.normal(size=16)
    layer.build(x.shape)
    layer.set_weights([gamma.astype("float32"), beta.astype("float32")])
    np.testing.assert_allclose(
        np.asarray(layer(x)), plain_layer_norm(x, gamma, beta, 1e-6), atol=1e-5
    )
    reference = keras.layers.LayerNormalization(epsilon=1e-6)
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(reference(x)), atol=1e-5)


@pytest.mark.parametrize("hidden_units", [None, 6])
def test_conditional_equals_plain_at_initialization(hidden_units):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 7, 16)).astype("float32")
    layer = LayerNormalization(conditional=True, hidden_units=hidden_units,
                               hidden_activation="swish")
    for _ in range(3):
        cond = rng.normal(size=(3, 5)).astype("float32") * 10
        np.testing.assert_allclose(np.asarray(layer([x, cond])), plain_layer_norm(x), atol=1e-5)


@pytest.mark.parametrize("x_shape", [(3, 7, 16), (3, 2, 7, 16), (3, 16)])
def test_conditional_closed_form_after_setting_kernels(x_shape):
    rng = np.random.default_rng(2)
    x = rng.normal(size=x_shape).astype("float32")
    cond = rng.normal(size=(3, 5)).astype("float32")
    layer = LayerNormalization(conditional=True, hidden_units=4, hidden_activation="tanh")
    layer([x, cond])
    w_h = rng.normal(size=(5, 4)).astype("float32")
    w_gamma = rng.normal(size=(4, 16)).astype("float32")
    w_beta = rng.normal(size=(4, 16)).astype("float32")
    gamma = rng.normal(size=16).astype("float32")
    beta = rng.normal(size=16).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    layer.hidden_dense.kernel.assign(w_h)
    layer.gamma_dense.kernel.assign(w_gamma)
    layer.beta_dense.kernel.assign(w_beta)
    h = np.tanh(cond.astype("float64") @ w_h)
    aligned = (3,) + (1,) * (len(x_shape) - 2) + (16,)
    expected = plain_layer_norm(
        x, (gamma + h @ w_gamma).reshape(aligned), (beta + h @ w_beta).reshape(aligned)
    )
    np.testing.assert_allclose(np.asarray(layer([x, cond])), expected, atol=1e-4)


@pytest.mark.tensorflow_only
def test_gradient_reaches_zero_initialized_kernels():
    import tensorflow as tf

    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(2, 5, 8)).astype("float32"))
    cond = tf.constant(rng.normal(size=(2, 3)).astype("float32"))
    layer = LayerNormalization(conditional=True)
    layer([x, cond])
    target = tf.constant(rng.normal(size=(2, 5, 8)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum((layer([x, cond]) - target) ** 2)
    grads = tape.gradient(loss, [layer.gamma_dense.kernel, layer.beta_dense.kernel])
    assert all(np.abs(g.numpy()).max() > 1e-3 for g in grads)


def test_mask_of_x_passes_through():
    tokens = np.array([[1, 2, 0]])
    x = keras.layers.Embedding(5, 8, mask_zero=True)(tokens)
    out = LayerNormalization(conditional=True)([x, np.ones((1, 4), "float32")])
    np.testing.assert_array_equal(np.asarray(out._keras_mask), [[True, True, False]])


def test_serialization_clone_round_trip_and_jit(tmp_path):
    rng = np.random.default_rng(4)
    x_in, c_in = keras.Input((None, 8)), keras.Input((3,))
    layer = LayerNormalization(conditional=True, hidden_units=4, hidden_activation="relu",
                               center=False, epsilon=1e-5)
    model = keras.Model([x_in, c_in], layer([x_in, c_in]))
    layer.gamma_dense.kernel.assign(rng.normal(size=(4, 8)).astype("float32"))
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    cond = rng.normal(size=(2, 3)).astype("float32")
    restored = assert_keras_round_trip(model, [x, cond], tmp_path)
    assert restored.layers[-1].get_config() == layer.get_config()
    assert LayerNormalization.from_config(layer.get_config()).get_config() == layer.get_config()
    clone = keras.models.clone_model(model)
    assert clone([x, cond]).shape == (2, 5, 8)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    model.train_on_batch([x, cond], np.zeros((2, 5, 8)))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_statistics(policy):
    keras.config.set_dtype_policy(policy)
    x = (np.random.default_rng(5).normal(size=(2, 4, 64)) * 1000 + 3000).astype("float32")
    layer = LayerNormalization(conditional=True, hidden_units=8)
    out = layer([x, np.ones((2, 3), "float32")])
    assert out.dtype == policy.split("_")[1]
    assert layer.gamma.dtype == "float32"
    np.testing.assert_allclose(np.asarray(out, "float32"), plain_layer_norm(x), atol=0.05)


def test_bad_condition_errors():
    x = np.zeros((2, 5, 8), "float32")
    wrong_rank = r"`cond` must have shape \[batch, cond_size\].*\(2, 1, 3\)"
    with pytest.raises(ValueError, match=wrong_rank):
        LayerNormalization(conditional=True)([x, np.zeros((2, 1, 3), "float32")])
    with pytest.raises(ValueError, match=r"same batch size.*\(2, 5, 8\).*\(3, 4\)"):
        LayerNormalization(conditional=True)([x, np.zeros((3, 4), "float32")])
    with pytest.raises(ValueError, match=r"called on `\[x, cond\]`"):
        LayerNormalization(conditional=True)(x)


def test_rms_norm_without_mean_or_parameters():
    """zero_mean=False, center=False, scale=False: x / sqrt(mean(x^2) + eps) (RoFormer-V2)."""
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(2, 3, 8)).astype("float32")
    layer = LayerNormalization(zero_mean=False, center=False, scale=False, epsilon=1e-6)
    expected = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)
    assert layer.weights == []
    assert LayerNormalization.from_config(layer.get_config()).zero_mean is False
