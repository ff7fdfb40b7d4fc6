"""Lookahead, lazy optimization and parameter-wise learning rates: their rules against NumPy
on tiny problems, bert4keras 0.11.5's numbers (bert4keras_optimizer_reference.npz, made by
make_bert4keras_optimizer_reference.py), composition with the other extensions in any order,
and `.keras` round trips."""
from pathlib import Path

import keras
import numpy as np
import pytest

from bert4keras_ext.optimizers import (
    SGDM,
    Adam,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_lazy_optimization,
    extend_with_lookahead,
    extend_with_parameter_wise_lr,
    extend_with_weight_decay,
)

pytestmark = pytest.mark.backend_neutral

REFERENCE = Path(__file__).with_name("bert4keras_optimizer_reference.npz")


def test_lookahead_follows_the_paper_on_sgd():
    """k = 3 fast SGD steps, then phi <- phi + alpha (theta - phi), theta <- phi; weights set
    between two cycles start the next cycle (the slow weights are the cycle's start)."""
    lr, k, alpha = 0.1, 3, 0.5
    target = np.array([1.0, -2.0, 0.5])
    optimizer = extend_with_lookahead(keras.optimizers.SGD)(
        lr, steps_per_slow_update=k, slow_step_size=alpha)
    variable = keras.Variable(np.array([3.0, 1.0, -1.0], "float32"), name="kernel")
    fast = np.asarray(variable, "float64")
    slow = fast.copy()
    for step in range(9):
        if step == 6:
            variable.assign(np.array([0.0, 2.0, 2.0], "float32"))
            fast = slow = np.asarray(variable, "float64")
        gradient = 2.0 * (fast - target)  # of |w - target|^2
        optimizer.apply([gradient.astype("float32")], [variable])
        fast = fast - lr * gradient
        if (step + 1) % k == 0:
            slow = slow + alpha * (fast - slow)
            fast = slow.copy()
            np.testing.assert_allclose(np.asarray(optimizer._slow_weights[0]), slow, atol=1e-6)
        np.testing.assert_allclose(np.asarray(variable), fast, atol=1e-6)


def test_lookahead_counts_real_updates_under_accumulation():
    """Least squares: Lookahead over buffered accumulation of 2 micro-batches equals
    Lookahead on the batches they make up (6 real updates, 3 slow steps), and differs from
    Adam alone."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 8, 4)), rng.normal(size=(12, 8, 1))

    def gradient(weight, batch):  # of the mean squared error of x w against y
        return (2 * x[batch].T @ (x[batch] @ weight - y[batch]) / 8).astype("float32")

    kwargs = {"learning_rate": 0.05, "steps_per_slow_update": 2, "slow_step_size": 0.5}
    initial = rng.normal(size=(4, 1)).astype("float32")
    runs = {}
    for name, optimizer, micro_batches in (
        ("accumulated", extend_with_lookahead(extend_with_gradient_accumulation(
            keras.optimizers.Adam))(grad_accum_steps=2, **kwargs), 2),
        ("big batch", extend_with_lookahead(keras.optimizers.Adam)(**kwargs), 1),
        ("adam", keras.optimizers.Adam(0.05), 1),
    ):
        weight = keras.Variable(initial, name="kernel")
        for update in range(6):
            batches = np.arange(2 * update, 2 * update + 2).reshape(micro_batches, -1)
            for batch in batches:  # one micro-batch of 16, or two of 8
                current = np.asarray(weight)
                optimizer.apply([np.mean([gradient(current, b) for b in batch], 0)], [weight])
        runs[name] = np.asarray(weight)
    np.testing.assert_allclose(runs["accumulated"], runs["big batch"], atol=1e-6)
    assert np.abs(runs["big batch"] - runs["adam"]).max() > 1e-2


def adam_reference(weight, gradients, lr, lazy, beta_1=0.9, beta_2=0.999, epsilon=1e-6):
    """bert4keras's Adam in NumPy; `lazy` holds the rows of zero gradient (not the moments)."""
    m, v = np.zeros_like(weight), np.zeros_like(weight)
    for t, gradient in enumerate(gradients, start=1):
        m = beta_1 * m + (1 - beta_1) * gradient
        v = beta_2 * v + (1 - beta_2) * gradient ** 2
        step = lr * m / (1 - beta_1 ** t) / (np.sqrt(v / (1 - beta_2 ** t)) + epsilon)
        if lazy:
            step = step * np.any(gradient != 0, axis=-1, keepdims=True)
        weight = weight - step
    return weight, m, v


def test_lazy_rows_hold_their_value_while_adam_moves_them():
    """Row 1 has a gradient at step 1 only: Adam's momentum moves it at step 2, the lazy
    optimizer holds it there, while its moments decay as in bert4keras; the kernel, not
    included, is not lazy."""
    rng = np.random.default_rng(1)
    initial = rng.normal(size=(4, 3))
    gradients = [rng.normal(size=(4, 3)) * np.array([[0], [1], [1], [0]]),
                 rng.normal(size=(4, 3)) * np.array([[0], [0], [1], [1]])]
    results = {}
    for lazy in (False, True):
        optimizer = extend_with_lazy_optimization(Adam)(
            0.1, include_in_lazy_optimization="embed" if lazy else None)
        embeddings = keras.Variable(initial.astype("float32"), name="embeddings")
        kernel = keras.Variable(initial.astype("float32"), name="kernel")
        for gradient in gradients:
            optimizer.apply([gradient.astype("float32")] * 2, [embeddings, kernel])
        weight, m, v = adam_reference(initial, gradients, 0.1, lazy)
        np.testing.assert_allclose(np.asarray(embeddings), weight, atol=1e-5)
        np.testing.assert_allclose(np.asarray(optimizer._momentums[0]), m, atol=1e-7)
        np.testing.assert_allclose(np.asarray(optimizer._velocities[0]), v, atol=1e-7)
        np.testing.assert_allclose(np.asarray(kernel), adam_reference(
            initial, gradients, 0.1, lazy=False)[0], atol=1e-5)
        results[lazy] = np.asarray(embeddings)
    np.testing.assert_array_equal(results[True][[0]], initial[[0]].astype("float32"))
    assert np.abs(results[False][1] - results[True][1]).min() > 1e-3


def test_lazy_and_parameter_wise_lr_match_bert4keras():
    """Three steps of bert4keras's extend_with_lazy_optimization and
    extend_with_parameter_wise_lr on its Adam (embedding rows used once, twice, never)."""
    reference = np.load(REFERENCE)
    tokens = keras.Input((3,), dtype="int32")
    hidden = keras.layers.Embedding(6, 4, name="Embedding-Token")(tokens)
    outputs = keras.layers.Dense(2, name="Dense-Out")(keras.layers.Flatten()(hidden))
    model = keras.Model(tokens, outputs)
    names = ["embeddings", "kernel", "bias"]
    model.set_weights([reference[f"initial_{name}"] for name in names])
    optimizer = extend_with_parameter_wise_lr(extend_with_lazy_optimization(Adam))(
        learning_rate=0.05, include_in_lazy_optimization=["Embedding"],
        paramwise_lr_schedule={"Dense": 0.5, "bias": 3.0})
    model.compile(optimizer=optimizer, loss="mse")
    for step, (batch, target) in enumerate(zip(reference["tokens"], reference["targets"])):
        model.train_on_batch(batch, target)
        for index, name in enumerate(names):
            np.testing.assert_allclose(model.get_weights()[index],
                                       reference[f"weight_{name}"][step], atol=2e-6)
            np.testing.assert_allclose(np.asarray(optimizer._momentums[index]),
                                       reference[f"m_{name}"][step], atol=2e-6)
            np.testing.assert_allclose(np.asarray(optimizer._velocities[index]),
                                       reference[f"v_{name}"][step], atol=2e-6)


def test_parameter_wise_multiplier_scales_the_whole_step():
    """SGD: a variable moves its multiplier (the product of its matching patterns) times as
    far as without, weight decay included; 0 freezes."""
    rng = np.random.default_rng(2)
    initial = rng.normal(size=(4, 2, 3)).astype("float32")
    gradient = rng.normal(size=(2, 3)).astype("float32")
    names = ["dense_kernel", "dense_bias", "embeddings", "frozen"]
    schedule = {"kernel": 3.0, "dense": 0.5, "frozen": 0.0}
    multipliers = [1.5, 0.5, 1.0, 0.0]
    for decay in (False, True):
        extend = extend_with_weight_decay if decay else (lambda base: base)
        kwargs = {"weight_decay_rate": 0.1} if decay else {}
        steps = []
        for optimizer in (extend(keras.optimizers.SGD)(0.5, **kwargs),
                          extend_with_parameter_wise_lr(extend(keras.optimizers.SGD))(
                              0.5, paramwise_lr_schedule=schedule, **kwargs)):
            variables = [keras.Variable(w, name=n) for w, n in zip(initial, names)]
            optimizer.apply([gradient] * 4, variables)
            steps.append(np.stack([np.asarray(v) for v in variables]) - initial)
        expected = -0.5 * (gradient + (0.1 * initial if decay else 0))
        np.testing.assert_allclose(steps[0], np.broadcast_to(expected, initial.shape),
                                   atol=1e-6)
        for plain, scaled, multiplier in zip(steps[0], steps[1], multipliers):
            np.testing.assert_allclose(scaled, multiplier * plain, atol=1e-6)


def test_one_string_is_one_pattern():
    """exclude_from_weight_decay='bias' excludes 'bias', not every path containing b, i, a
    or s (a list of its characters; reliability probe 2, O09)."""
    optimizer = extend_with_weight_decay(keras.optimizers.SGD)(
        0.5, weight_decay_rate=0.2, exclude_from_weight_decay="bias")
    assert optimizer.get_config()["exclude_from_weight_decay"] == ["bias"]
    scale = keras.Variable(np.ones(2, "float32"), name="scale")
    bias = keras.Variable(np.ones(2, "float32"), name="bias")
    optimizer.apply([np.zeros(2, "float32")] * 2, [scale, bias])
    np.testing.assert_allclose(np.asarray(scale), 1 - 0.5 * 0.2, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(bias), 1.0)


FEATURE_KWARGS = {"weight_decay_rate": 0.1, "exclude_from_weight_decay": ["bias"],
                  "ema_momentum": 0.5, "paramwise_lr_schedule": {"embed": 2.0},
                  "include_in_lazy_optimization": ["embed"], "steps_per_slow_update": 2,
                  "slow_step_size": 0.25}


def pipeline_reference(weights, gradients, lr=0.1):
    """SGD, then weight decay, the parameter-wise multiplier, lazy rows, Lookahead and the EMA,
    once per step, in NumPy."""
    weights = [w.astype("float64") for w in weights]
    slows = [w.copy() for w in weights]
    shadows = [np.zeros_like(w) for w in weights]
    for step, step_gradients in enumerate(gradients):
        for i, (name, gradient) in enumerate(zip(["embeddings", "bias"], step_gradients)):
            old = weights[i]
            new = old - lr * gradient - (0 if name == "bias" else lr * 0.1 * old)
            if name == "embeddings":
                new = old + 2.0 * (new - old)
                new = np.where(np.any(gradient != 0, axis=-1, keepdims=True), new, old)
            if step % 2 == 1:
                slows[i] = slows[i] + 0.25 * (new - slows[i])
                new = slows[i].copy()
            weights[i] = new
            shadows[i] = 0.5 * shadows[i] + 0.5 * new
    return weights, shadows


def test_all_features_in_any_order_are_one_class_with_the_documented_order():
    first = extend_with_lookahead(extend_with_exponential_moving_average(
        extend_with_lazy_optimization(extend_with_weight_decay(extend_with_parameter_wise_lr(
            keras.optimizers.SGD)))))
    second = extend_with_weight_decay(extend_with_parameter_wise_lr(extend_with_lookahead(
        extend_with_lazy_optimization(extend_with_exponential_moving_average(
            keras.optimizers.SGD)))))
    assert first is second
    name = ("KerasSGDWithWeightDecayAndExponentialMovingAverageAndParameterWiseLearningRate"
            "AndLazyOptimizationAndLookahead")
    assert first.__name__ == name
    assert keras.saving.get_registered_object(f"bert4keras_ext>{name}") is first

    rng = np.random.default_rng(3)
    initial = [rng.normal(size=(3, 2)), rng.normal(size=(2,))]
    gradients = [[rng.normal(size=(3, 2)) * np.array([[1], [0], [1]]), rng.normal(size=(2,))]
                 for _ in range(4)]
    gradients[3][0][0] = 0.0  # row 0 idle on the step that ends the second Lookahead cycle
    optimizer = first(0.1, **FEATURE_KWARGS)
    variables = [keras.Variable(initial[0].astype("float32"), name="embeddings"),
                 keras.Variable(initial[1].astype("float32"), name="bias")]
    for step_gradients in gradients:
        optimizer.apply([g.astype("float32") for g in step_gradients], variables)
    weights, shadows = pipeline_reference(initial, gradients)
    for variable, shadow, weight, expected_shadow in zip(variables, optimizer._shadows, weights,
                                                         shadows):
        np.testing.assert_allclose(np.asarray(variable), weight, atol=1e-6)
        np.testing.assert_allclose(np.asarray(shadow), expected_shadow, atol=1e-6)


def embedding_model():
    keras.utils.set_random_seed(0)
    tokens = keras.Input((3,), dtype="int32")
    hidden = keras.layers.Embedding(8, 4, name="Embedding-Token")(tokens)
    outputs = keras.layers.Dense(1, name="Dense-Out")(keras.layers.Flatten()(hidden))
    return keras.Model(tokens, outputs)


def test_keras_round_trip_mid_cycle_continues_identically(tmp_path):
    """Saved in the middle of an accumulation cycle and of a Lookahead cycle: the reloaded
    model continues as if never stopped (slow weights, shadows and buffers included)."""
    Optimizer = extend_with_lookahead(extend_with_parameter_wise_lr(
        extend_with_lazy_optimization(extend_with_exponential_moving_average(
            extend_with_gradient_accumulation(Adam)))))
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 5, size=(12, 4, 3))  # rows 5 to 7 never used
    targets = rng.normal(size=(12, 4, 1)).astype("float32")

    def fresh():
        model = embedding_model()
        model.compile(optimizer=Optimizer(
            0.05, grad_accum_steps=2, ema_momentum=0.5, steps_per_slow_update=3,
            include_in_lazy_optimization="Embedding", paramwise_lr_schedule={"Dense": 0.5}),
            loss="mse")
        return model

    straight = fresh()
    initial = straight.get_weights()[0]
    for batch, target in zip(tokens, targets):
        straight.train_on_batch(batch, target)
    interrupted = fresh()
    for batch, target in zip(tokens[:5], targets[:5]):  # 2 real updates and a micro-step
        interrupted.train_on_batch(batch, target)
    interrupted.save(tmp_path / "mid.keras")
    resumed = keras.saving.load_model(tmp_path / "mid.keras")
    assert type(resumed.optimizer) is Optimizer
    assert resumed.optimizer.get_config() == interrupted.optimizer.get_config()
    for batch, target in zip(tokens[5:], targets[5:]):
        resumed.train_on_batch(batch, target)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(resumed.optimizer.variables, straight.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    np.testing.assert_array_equal(straight.get_weights()[0][5:], initial[5:])


@pytest.mark.parametrize("make, error, message", [
    (lambda: extend_with_lookahead(Adam)(steps_per_slow_update=0), ValueError,
     r"`steps_per_slow_update` must be a positive integer; received 0"),
    (lambda: extend_with_lookahead(Adam)(steps_per_slow_update=2.5), ValueError,
     r"`steps_per_slow_update` must be a positive integer; received 2.5"),
    (lambda: extend_with_lookahead(Adam)(slow_step_size=0.0), ValueError,
     r"`slow_step_size` must be a number in \(0, 1\]; received 0.0"),
    (lambda: extend_with_lookahead(Adam)(slow_step_size=1.5), ValueError,
     r"`slow_step_size` must be a number in \(0, 1\]; received 1.5"),
    (lambda: extend_with_parameter_wise_lr(Adam)(paramwise_lr_schedule={"Dense": -1}),
     ValueError, r"`paramwise_lr_schedule\['Dense'\]` must be a finite number >= 0; "
                 r"received -1.0"),
    (lambda: extend_with_parameter_wise_lr(Adam)(paramwise_lr_schedule={"x": float("nan")}),
     ValueError, r"`paramwise_lr_schedule\['x'\]` must be a finite number >= 0; "
                 r"received nan"),
    (lambda: extend_with_parameter_wise_lr(Adam)(paramwise_lr_schedule={"x": float("inf")}),
     ValueError, r"`paramwise_lr_schedule\['x'\]` must be a finite number >= 0; "
                 r"received inf"),
    (lambda: extend_with_parameter_wise_lr(Adam)(paramwise_lr_schedule=[("x", 2.0)]),
     TypeError, r"`paramwise_lr_schedule` must be a \{pattern: multiplier\} dict"),
    (lambda: extend_with_parameter_wise_lr(Adam)(paramwise_lr_schedule={"(": 2.0}),
     ValueError, r"`paramwise_lr_schedule` holds '\(', which is not a regular expression"),
    (lambda: extend_with_lazy_optimization(Adam)(include_in_lazy_optimization=5),
     TypeError, r"`include_in_lazy_optimization` must be a regular expression or a list"),
    (lambda: extend_with_weight_decay(Adam)(exclude_from_weight_decay=["bias", None]),
     TypeError, r"`exclude_from_weight_decay` must be a regular expression or a list"),
    (lambda: extend_with_lazy_optimization(SGDM)(grad_accum_steps=2,
                                                 include_in_lazy_optimization="Embedding"),
     ValueError, r"`include_in_lazy_optimization` needs the gradient of a whole accumulation"),
])
def test_bad_arguments_are_refused_by_name(make, error, message):
    with pytest.raises(error, match=message):
        make()
