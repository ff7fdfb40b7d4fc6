"""SGDM and Adam with accumulation hidden in the momentum (SPEC C5 (e))."""
import keras
import numpy as np
import pytest

from bert4keras_ext.optimizers import SGDM, Adam, extend_with_gradient_accumulation

pytestmark = pytest.mark.backend_neutral


def run(optimizer, gradients, w0):
    """Applies the gradient sequence; returns the weights after every micro-step."""
    variable = keras.Variable(w0)
    history = []
    for gradient in gradients:
        optimizer.apply([gradient], [variable])
        history.append(np.asarray(variable).copy())
    return history, variable


def test_sgdm_closed_form_without_accumulation():
    rng = np.random.default_rng(0)
    gradients = rng.normal(size=(5, 4)).astype("float32")
    w0 = rng.normal(size=4).astype("float32")
    history, _ = run(SGDM(learning_rate=0.1, momentum=0.8), gradients, w0)
    w, m = w0.astype("float64"), np.zeros(4)
    for gradient, actual in zip(gradients, history):
        m = 0.8 * m + 0.2 * gradient
        w = w - 0.1 * m
        np.testing.assert_allclose(actual, w, rtol=1e-6, atol=1e-7)


def test_sgdm_chi_form_equals_buffered_accumulation_exactly():
    rng = np.random.default_rng(1)
    k = 3
    gradients = rng.normal(size=(4 * k, 6)).astype("float32")
    w0 = rng.normal(size=6).astype("float32")
    optimizer = SGDM(learning_rate=0.1, momentum=0.9, grad_accum_steps=k)
    chi, variable = run(optimizer, gradients, w0)
    buffered, _ = run(
        extend_with_gradient_accumulation(SGDM)(learning_rate=0.1, momentum=0.9,
                                                grad_accum_steps=k),
        gradients, w0,
    )
    np.testing.assert_allclose(np.array(chi), np.array(buffered), atol=1e-6)
    # Closed form per cycle: m = beta m + (1 - beta) mean(g); weights move on cycle ends only.
    w, m = w0.astype("float64"), np.zeros(6)
    for step, actual in enumerate(chi, start=1):
        if step % k == 0:
            m = 0.9 * m + 0.1 * gradients[step - k: step].mean(0)
            w = w - 0.1 * m
        np.testing.assert_allclose(actual, w, atol=1e-6)
    np.testing.assert_allclose(np.asarray(optimizer._momentums[0]), m, atol=1e-6)


def test_adam_chi_form_moves_on_cycle_ends_with_real_update_bias_correction():
    rng = np.random.default_rng(2)
    k = 4
    gradients = rng.normal(size=(3 * k, 5)).astype("float32")
    w0 = rng.normal(size=5).astype("float32")
    history, _ = run(Adam(learning_rate=0.01, grad_accum_steps=k), gradients, w0)
    w, m, v = w0.astype("float64"), np.zeros(5), np.zeros(5)
    for step, actual in enumerate(history, start=1):
        gradient = gradients[step - 1].astype("float64")
        starts = (step - 1) % k == 0
        m = (0.9 if starts else 1.0) * m + 0.1 / k * gradient
        v = (0.999 if starts else 1.0) * v + 0.001 / k * gradient**2
        if step % k == 0:
            updates = step // k
            m_hat, v_hat = m / (1 - 0.9**updates), v / (1 - 0.999**updates)
            w = w - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-6)
        np.testing.assert_allclose(actual, w, rtol=1e-5, atol=1e-6)


def test_accumulation_adds_no_state():
    variables = [keras.Variable(np.zeros((8, 3), "float32")), keras.Variable(np.zeros(3))]
    for cls in (SGDM, Adam):
        sizes = []
        for k in (1, 4):
            optimizer = cls(grad_accum_steps=k)
            optimizer.build(variables)
            sizes.append(sum(int(np.prod(v.shape)) for v in optimizer.variables))
        assert sizes[0] == sizes[1]


def test_config_round_trip_and_bad_arguments():
    optimizer = Adam(learning_rate=0.002, beta_1=0.8, bias_correction=False, grad_accum_steps=3)
    assert Adam.from_config(optimizer.get_config()).get_config() == optimizer.get_config()
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=r"`grad_accum_steps` must be a positive integer"):
            SGDM(grad_accum_steps=bad)
    with pytest.raises(ValueError, match=r"`momentum` must be a number in \[0, 1\)"):
        SGDM(momentum=1.0)
    with pytest.raises(ValueError, match="not recognized"):
        Adam(beta1=0.9)


@pytest.mark.parametrize("make", [
    lambda: SGDM(learning_rate=1.0, momentum=0.9, grad_accum_steps=2),
    lambda: Adam(learning_rate=1.0, beta_1=0.9, grad_accum_steps=2),
])
def test_nonfinite_micro_step_adds_nothing_but_keeps_the_cycle(make):
    """Reliability probe O15/O16: NaN on a cycle's first micro-step used to skip the cycle's
    momentum decay too; now it counts as a zero gradient, as buffered accumulation does."""
    clean = [np.array([g], "float32") for g in (10.0, 10.0, 0.0, 0.0)]
    with_nan = [np.array([g], "float32") for g in (10.0, 10.0, np.nan, 0.0)]
    clean_history, _ = run(clean_optimizer := make(), clean, np.zeros(1, "float32"))
    nan_history, _ = run(nan_optimizer := make(), with_nan, np.zeros(1, "float32"))
    np.testing.assert_allclose(nan_history, clean_history, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(nan_optimizer._momentums[0]),
                               np.asarray(clean_optimizer._momentums[0]), rtol=1e-6)
    assert int(nan_optimizer.nonfinite_gradients) == 1
    if isinstance(clean_optimizer, SGDM):  # the probe's numbers: momentum 0.9, weight -1.9
        np.testing.assert_allclose([clean_history[-1][0], np.asarray(
            clean_optimizer._momentums[0])[0]], [-1.9, 0.9], rtol=1e-6)
