"""AdaFactor (SPEC C3 (e)): first-step closed form, factored state, clipping, Keras cross-check."""
import keras
import numpy as np
import pytest

from bert4keras_ext.optimizers import AdaFactor

pytestmark = pytest.mark.backend_neutral


def one_step(optimizer, w0, gradient, name="kernel"):
    variable = keras.Variable(w0, name=name)
    optimizer.apply([np.asarray(gradient, "float32")], [variable])
    return np.asarray(variable) - w0, variable


def i_divergence(target, approximation):
    return np.sum(target * np.log(target / approximation) - target + approximation)


def rms(x):
    return np.sqrt(np.mean(np.square(x)))


@pytest.mark.parametrize("shape", [(6, 5), (7,), (3, 4, 5)])
def test_first_step_on_rank_one_gradient(shape):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=shape).astype("float32")
    factors = [rng.normal(size=n) for n in shape]
    gradient = factors[0]
    for factor in factors[1:]:
        gradient = np.multiply.outer(gradient, factor)
    optimizer = AdaFactor(learning_rate=0.01, min_dim_size_to_factor=2)
    delta, _ = one_step(optimizer, w0, gradient)
    expected = -0.01 * np.sign(gradient) * max(1e-3, rms(w0))
    np.testing.assert_allclose(delta, expected, rtol=1e-4, atol=1e-9)


def test_factored_state_shapes_and_size():
    optimizer = AdaFactor()
    kernel = keras.Variable(np.zeros((768, 3072), "float32"))
    small = keras.Variable(np.zeros((64, 100), "float32"))
    bias = keras.Variable(np.zeros((3072,), "float32"))
    cube = keras.Variable(np.zeros((4, 200, 300), "float32"))
    optimizer.build([kernel, small, bias, cube])
    # Rows keep the largest axis (3072), columns the second largest (768).
    assert optimizer._rows[0].shape == (3072,) and optimizer._columns[0].shape == (768,)
    assert optimizer._second_moments[0] is None and optimizer._momentums[0] is None
    assert optimizer._second_moments[1].shape == (64, 100)
    assert optimizer._second_moments[2].shape == (3072,)
    assert optimizer._rows[3].shape == (4, 300) and optimizer._columns[3].shape == (4, 200)
    state = optimizer._rows[0].shape[0] + optimizer._columns[0].shape[0]
    assert state / (768 * 3072) <= 0.002


def test_reconstruction_is_exact_for_rank_one_and_minimizes_i_divergence():
    rng = np.random.default_rng(1)
    for gradient, exact in ((np.outer(rng.normal(size=6), rng.normal(size=5)), True),
                            (rng.normal(size=(6, 5)), False)):
        optimizer = AdaFactor(min_dim_size_to_factor=2, epsilon1=0.0)
        one_step(optimizer, np.ones((6, 5), "float32"), gradient)
        rows, columns = np.asarray(optimizer._rows[0]), np.asarray(optimizer._columns[0])
        squared = gradient.astype("float64") ** 2
        # The row axis is the largest one (6 rows), averaged over the columns.
        reconstruction = np.outer(rows, columns) / rows.mean()
        if exact:
            np.testing.assert_allclose(reconstruction, squared, rtol=1e-5)

        best = i_divergence(squared, reconstruction)
        for _ in range(20):
            a = rows * (1 + 0.05 * rng.normal(size=6))
            b = columns * (1 + 0.05 * rng.normal(size=5))
            assert i_divergence(squared, np.outer(a, b) / rows.mean()) >= best - 1e-9


def test_clipping_caps_update_rms():
    gradient = np.array([3.0, -0.5, 2.0, -4.0], "float32")
    optimizer = AdaFactor(learning_rate=1.0, clipping_threshold=0.5,
                          multiply_by_parameter_scale=False)
    delta, _ = one_step(optimizer, np.zeros(4, "float32"), gradient)
    np.testing.assert_allclose(delta, -0.5 * np.sign(gradient), rtol=1e-6)
    assert abs(rms(delta) - 0.5) < 1e-6


def test_relative_step_momentum_and_exclusions():
    rng = np.random.default_rng(2)
    w0 = rng.normal(size=8).astype("float32") * 3
    gradient = rng.normal(size=8)
    # learning_rate=None: min(1e-2, 1/sqrt(1)) = 0.01 with parameter scaling.
    delta, _ = one_step(AdaFactor(learning_rate=None), w0, gradient)
    np.testing.assert_allclose(delta, -0.01 * np.sign(gradient) * rms(w0), rtol=1e-5, atol=5e-7)
    # Without parameter scaling the relative step is 0.05 times smaller.
    relative_absolute = AdaFactor(learning_rate=None, multiply_by_parameter_scale=False)
    delta, _ = one_step(relative_absolute, w0, gradient)
    np.testing.assert_allclose(delta, -0.0005 * np.sign(gradient), rtol=1e-5, atol=5e-7)
    # beta1: the first step moves by (1 - beta1) of the update.
    delta, _ = one_step(AdaFactor(learning_rate=0.1, beta1=0.9), w0, gradient)
    expected = -0.1 * 0.1 * np.sign(gradient) * rms(w0)
    np.testing.assert_allclose(delta, expected, rtol=1e-5, atol=5e-7)
    # Excluded from parameter scaling: absolute steps.
    delta, _ = one_step(AdaFactor(learning_rate=0.1, exclude_from_parameter_scale=["bias"]),
                        w0, gradient, name="bias")
    np.testing.assert_allclose(delta, -0.1 * np.sign(gradient), rtol=1e-5, atol=5e-7)


def test_matches_keras_adafactor_where_conventions_coincide():
    rng = np.random.default_rng(3)
    initial = [rng.normal(size=(5, 7)).astype("float32"), rng.normal(size=7).astype("float32")]
    ours = [keras.Variable(w) for w in initial]
    theirs = [keras.Variable(w) for w in initial]
    our_optimizer = AdaFactor(learning_rate=0.01, min_dim_size_to_factor=1)
    keras_optimizer = keras.optimizers.Adafactor(learning_rate=0.01)
    for _ in range(4):
        gradients = [rng.normal(size=w.shape).astype("float32") for w in initial]
        our_optimizer.apply(gradients, ours)
        keras_optimizer.apply(gradients, theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_config_round_trip_and_bad_arguments():
    optimizer = AdaFactor(learning_rate=None, beta1=0.5, exclude_from_parameter_scale=["Norm"])
    again = AdaFactor.from_config(optimizer.get_config())
    assert again.get_config() == optimizer.get_config()
    with pytest.raises(ValueError, match=r"`beta1` must be a number in \[0, 1\); received 1.0"):
        AdaFactor(beta1=1.0)
    with pytest.raises(ValueError, match="not recognized"):
        AdaFactor(beta_1=0.9)
