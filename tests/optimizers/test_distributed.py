"""Optimizers under MirroredStrategy on two logical CPU devices, inside `model.fit`."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from bert4keras_ext.optimizers import (
    SGDM,
    AdaFactor,
    Adam,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_lookahead,
    extend_with_parameter_wise_lr,
)
from conftest import mirrored_strategy

MICRO_BATCH, K, UPDATES = 8, 2, 3


def data():
    rng = np.random.default_rng(0)
    n = MICRO_BATCH * K * UPDATES
    return rng.normal(size=(n, 8)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def train(strategy, make_optimizer, batch_size, weights):
    x, y = data()
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                                  keras.layers.Dense(1)])
        model.set_weights(weights)
        model.compile(optimizer=make_optimizer(), loss="mse")
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return model


OPTIMIZERS = {
    "Adam": (Adam, {"learning_rate": 0.01}),
    "AdaFactor": (AdaFactor, {"learning_rate": 0.01, "min_dim_size_to_factor": 4}),
    "SGDM": (SGDM, {"learning_rate": 0.1}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_buffered_accumulation_on_two_replicas_equals_one_big_batch(name):
    """With Lookahead (a slow step after the second update) and a parameter-wise rate on both
    sides."""
    base, kwargs = OPTIMIZERS[name]
    base = extend_with_lookahead(extend_with_parameter_wise_lr(base))
    kwargs = dict(kwargs, steps_per_slow_update=2, paramwise_lr_schedule={"bias": 2.0})
    Accumulating = extend_with_exponential_moving_average(extend_with_gradient_accumulation(base))
    weights = _initial_weights()
    reference = train(tf.distribute.get_strategy(), lambda: base(**kwargs), MICRO_BATCH * K,
                      weights)
    distributed = train(
        mirrored_strategy(),
        lambda: Accumulating(grad_accum_steps=K, ema_momentum=0.9, **kwargs),
        MICRO_BATCH,
        weights,
    )
    assert int(distributed.optimizer.iterations) == UPDATES
    moved = max(np.abs(a - b).max() for a, b in zip(reference.get_weights(), weights))
    assert moved > 1e-3
    for a, b in zip(distributed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_chi_form_sgdm_matches_buffered_sgdm_on_two_replicas():
    weights = _initial_weights()
    chi = train(mirrored_strategy(), lambda: SGDM(0.1, grad_accum_steps=K), MICRO_BATCH, weights)
    buffered = train(
        mirrored_strategy(),
        lambda: extend_with_gradient_accumulation(SGDM)(0.1, grad_accum_steps=K),
        MICRO_BATCH,
        weights,
    )
    for a, b in zip(chi.get_weights(), buffered.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def _initial_weights():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(1)])
    return model.get_weights()
