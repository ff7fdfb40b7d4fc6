"""Buffered accumulation (SPEC C4 (e)), weight decay, layer adaptation, EMA (SPEC C6 (e)),
schedules, non-finite gradients and mid-cycle save/restore."""
import json

import keras
import numpy as np
import pytest

from bert4keras_ext.optimizers import (
    SGDM,
    AdaFactor,
    Adam,
    NonFiniteGradientCheck,
    PiecewiseLinearSchedule,
    SwapEMAWeights,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_layer_adaptation,
    extend_with_lazy_optimization,
    extend_with_lookahead,
    extend_with_parameter_wise_lr,
    extend_with_piecewise_linear_lr,
    extend_with_weight_decay,
)

pytestmark = pytest.mark.backend_neutral


def linear_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def test_buffered_sgd_equals_one_step_on_the_concatenated_batch():
    x, y = data(16)
    accumulated = linear_model()
    initial = accumulated.get_weights()
    Optimizer = extend_with_gradient_accumulation(keras.optimizers.SGD)
    accumulated.compile(optimizer=Optimizer(0.1, grad_accum_steps=4), loss="mse")
    for micro_step in range(3):
        accumulated.train_on_batch(x[4 * micro_step: 4 * micro_step + 4],
                                   y[4 * micro_step: 4 * micro_step + 4])
        for a, b in zip(accumulated.get_weights(), initial):
            np.testing.assert_array_equal(a, b)
    accumulated.train_on_batch(x[12:], y[12:])
    assert all(np.abs(np.asarray(b)).max() == 0 for b in accumulated.optimizer._accumulated)

    big_batch = linear_model()
    big_batch.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    big_batch.train_on_batch(x, y)
    for a, b in zip(accumulated.get_weights(), big_batch.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert accumulated.optimizer.iterations == 1


@pytest.mark.parametrize("base", [keras.optimizers.Adam, keras.optimizers.Lamb, AdaFactor])
def test_buffered_accumulation_counts_real_updates(base):
    """Adam's bias correction sees real updates: 2 x 2 micro-steps equal 2 big steps."""
    x, y = data(16)
    kwargs = {"min_dim_size_to_factor": 2} if base is AdaFactor else {}
    accumulated = linear_model()
    accumulated.compile(
        optimizer=extend_with_gradient_accumulation(base)(learning_rate=0.01,
                                                          grad_accum_steps=2, **kwargs),
        loss="mse",
    )
    accumulated.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    big_batch = linear_model()
    big_batch.compile(optimizer=base(learning_rate=0.01, **kwargs), loss="mse")
    big_batch.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(accumulated.get_weights(), big_batch.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_schedule_counts_real_updates_and_interpolates():
    schedule = PiecewiseLinearSchedule({2: 1.0, 4: 0.5}, learning_rate=0.1)
    np.testing.assert_allclose([float(schedule(s)) for s in range(6)],
                               [0.0, 0.05, 0.1, 0.075, 0.05, 0.05], atol=1e-7)
    optimizer = extend_with_gradient_accumulation(SGDM)(schedule, grad_accum_steps=3)
    variable = keras.Variable(np.zeros(2, "float32"))
    for _ in range(7):
        optimizer.apply([np.ones(2, "float32")], [variable])
    assert int(optimizer.iterations) == 2  # 7 micro-steps = 2 real updates (+1 pending)
    np.testing.assert_allclose(float(optimizer.learning_rate), 0.1, atol=1e-7)
    again = PiecewiseLinearSchedule.from_config(schedule.get_config())
    assert again.get_config() == schedule.get_config()


def test_weight_decay_once_per_real_update_with_exclusions():
    Optimizer = extend_with_weight_decay(extend_with_gradient_accumulation(keras.optimizers.SGD))
    optimizer = Optimizer(0.1, grad_accum_steps=2, weight_decay_rate=0.5,
                          exclude_from_weight_decay=["bias"])
    kernel = keras.Variable(np.full(3, 2.0, "float32"), name="kernel")
    bias = keras.Variable(np.full(3, 2.0, "float32"), name="bias")
    for _ in range(4):
        optimizer.apply([np.zeros(3, "float32")] * 2, [kernel, bias])
    np.testing.assert_allclose(np.asarray(kernel), 2.0 * (1 - 0.1 * 0.5) ** 2, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(bias), 2.0)


def test_layer_adaptation_trust_ratio():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(4, 3)).astype("float32")
    gradient = rng.normal(size=(4, 3)).astype("float32")
    Optimizer = extend_with_layer_adaptation(keras.optimizers.SGD)
    optimizer = Optimizer(0.01, exclude_from_layer_adaptation=["bias"])
    kernel, bias = keras.Variable(w0, name="kernel"), keras.Variable(w0[0], name="bias")
    optimizer.apply([gradient, gradient[0]], [kernel, bias])
    delta = np.asarray(kernel) - w0
    # The update keeps its direction and gets norm lr * ||w||.
    np.testing.assert_allclose(np.linalg.norm(delta), 0.01 * np.linalg.norm(w0), rtol=1e-4)
    cosine = np.sum(delta * -gradient) / np.linalg.norm(delta) / np.linalg.norm(gradient)
    assert cosine > 0.9999
    np.testing.assert_allclose(np.asarray(bias), w0[0] - 0.01 * gradient[0], rtol=1e-6)


def make_ema_model(ema=True, k=1):
    model = linear_model()
    base = extend_with_gradient_accumulation(SGDM) if k > 1 else SGDM
    kwargs = {"grad_accum_steps": k} if k > 1 else {}
    if ema:
        base = extend_with_exponential_moving_average(base)
        kwargs["ema_momentum"] = 0.9
    model.compile(optimizer=base(learning_rate=0.1, **kwargs), loss="mse")
    return model


def test_ema_never_changes_the_trajectory_and_matches_closed_form():
    """Shadows start at zero; the applied average is the shadow over 1 - m^t (bert4keras's
    `apply_ema_weights(bias_correction=True)`), the raw shadow without correction."""
    x, y = data(32)
    with_ema, without = make_ema_model(True), make_ema_model(False)
    shadows = [np.zeros_like(w, "float64") for w in with_ema.get_weights()]
    for step in range(8):
        batch = slice(4 * step, 4 * step + 4)
        with_ema.train_on_batch(x[batch], y[batch])
        without.train_on_batch(x[batch], y[batch])
        shadows = [0.9 * s + 0.1 * w for s, w in zip(shadows, with_ema.get_weights())]
    for a, b in zip(with_ema.get_weights(), without.get_weights()):
        np.testing.assert_array_equal(a, b)
    for shadow, expected in zip(with_ema.optimizer._shadows, shadows):
        np.testing.assert_allclose(np.asarray(shadow), expected, atol=1e-6)
    corrected = with_ema.optimizer.averaged_weights()
    for average, expected in zip(corrected, shadows):
        np.testing.assert_allclose(average, expected / (1 - 0.9 ** 8), atol=1e-6)
    with with_ema.optimizer.ema_weights(bias_correction=False):
        for weight, expected in zip(with_ema.get_weights(), shadows):
            np.testing.assert_allclose(weight, expected, atol=1e-6)


def test_bias_corrected_ema_averages_the_run_not_the_initialization():
    """Linear regression, 320 updates, m = 0.999 (the porting report's case): the corrected
    average is close to the trained weights, where a shadow started at the initial weights
    is still mostly the initialization."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(320 * 8, 4)).astype("float32")
    true = rng.normal(size=(4, 1)).astype("float32")
    y = x @ true
    model = linear_model()
    model.compile(optimizer=extend_with_exponential_moving_average(SGDM)(
        learning_rate=0.05, ema_momentum=0.999), loss="mse")
    initial = [w.astype("float64") for w in model.get_weights()]
    started_at_init = [w.copy() for w in initial]
    for step in range(320):
        model.train_on_batch(x[8 * step: 8 * step + 8], y[8 * step: 8 * step + 8])
        started_at_init = [0.999 * s + 0.001 * w
                           for s, w in zip(started_at_init, model.get_weights())]
    with model.optimizer.ema_weights(model):
        ema_mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    model.set_weights([w.astype("float32") for w in started_at_init])
    init_mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    assert ema_mse < 0.1 and init_mse > 10 * ema_mse


def test_ema_updates_once_per_real_update_under_accumulation():
    x, y = data(16)
    model = make_ema_model(True, k=2)
    model.optimizer.build(model.trainable_variables)
    before = [np.asarray(s).copy() for s in model.optimizer._shadows]
    model.train_on_batch(x[:4], y[:4])
    for a, b in zip(model.optimizer._shadows, before):
        np.testing.assert_array_equal(np.asarray(a), b)
    model.train_on_batch(x[4:8], y[4:8])
    expected = [0.9 * b + 0.1 * w for b, w in zip(before, model.get_weights())]
    for a, b in zip(model.optimizer._shadows, expected):
        np.testing.assert_allclose(np.asarray(a), b, atol=1e-7)


def test_ema_swap_and_restore_is_bit_exact():
    x, y = data(16)
    model = make_ema_model()
    model.fit(x, y, batch_size=4, verbose=0)
    tiny = [w * 0 + 1e-7 * (1 + np.arange(w.size).reshape(w.shape)) for w in model.get_weights()]
    model.set_weights(tiny)
    raw = model.get_weights()
    averages = model.optimizer.averaged_weights()
    with model.optimizer.ema_weights(model):
        for weight, average in zip(model.get_weights(), averages):
            np.testing.assert_array_equal(weight, average)
    for a, b in zip(model.get_weights(), raw):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="does not train the variables"):
        with model.optimizer.ema_weights(linear_model(1)):
            pass
    with pytest.raises(RuntimeError, match="No EMA weights are applied"):
        model.optimizer.reset_old_weights()


def test_swap_ema_weights_callback_validates_and_saves_with_ema(tmp_path):
    x, y = data(32)
    model = make_ema_model()
    path = str(tmp_path / "ema-{epoch}.weights.h5")
    history = model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0,
                        callbacks=[SwapEMAWeights(path)])
    raw = model.get_weights()
    with model.optimizer.ema_weights():
        ema_loss = model.evaluate(x, y, verbose=0)
        ema = model.get_weights()
    np.testing.assert_allclose(history.history["val_loss"][-1], ema_loss, rtol=1e-6)
    for a, b in zip(model.get_weights(), raw):
        np.testing.assert_array_equal(a, b)
    saved = linear_model(3)
    saved.load_weights(str(tmp_path / "ema-2.weights.h5"))
    for a, b in zip(saved.get_weights(), ema):
        np.testing.assert_array_equal(a, b)


def test_nonfinite_gradient_is_skipped_counted_and_reported():
    optimizer = extend_with_gradient_accumulation(keras.optimizers.Adam)(0.1, grad_accum_steps=2)
    variable = keras.Variable(np.ones(3, "float32"))
    optimizer.apply([np.array([np.nan, 1.0, 1.0], "float32")], [variable])
    optimizer.apply([np.ones(3, "float32")], [variable])
    assert int(optimizer.nonfinite_gradients) == 1
    assert np.all(np.isfinite(np.asarray(variable)))
    assert not np.allclose(np.asarray(variable), 1.0)  # the finite micro-step still counts

    x, y = data(16)
    y[5] = np.nan
    model = linear_model()
    model.compile(optimizer=SGDM(0.1), loss="mse")
    with pytest.raises(FloatingPointError, match="Non-finite gradients at batch 1"):
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[NonFiniteGradientCheck()])
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_save_mid_cycle_and_resume_equals_never_stopping(tmp_path):
    x, y = data(32)
    Optimizer = extend_with_exponential_moving_average(extend_with_gradient_accumulation(SGDM))

    def fresh():
        model = linear_model()
        model.compile(optimizer=Optimizer(0.1, grad_accum_steps=4, ema_momentum=0.5),
                      loss="mse")
        return model

    straight = fresh()
    for step in range(8):
        straight.train_on_batch(x[4 * step: 4 * step + 4], y[4 * step: 4 * step + 4])

    interrupted = fresh()
    for step in range(6):  # micro-step 2 of the second cycle
        interrupted.train_on_batch(x[4 * step: 4 * step + 4], y[4 * step: 4 * step + 4])
    interrupted.save(tmp_path / "mid.keras")
    resumed = keras.models.load_model(tmp_path / "mid.keras")
    assert type(resumed.optimizer) is Optimizer
    assert resumed.optimizer.get_config() == interrupted.optimizer.get_config()
    for step in range(6, 8):
        resumed.train_on_batch(x[4 * step: 4 * step + 4], y[4 * step: 4 * step + 4])
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-7)
    for a, b in zip(resumed.optimizer._shadows, straight.optimizer._shadows):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7)


def test_bad_arguments():
    Accumulating = extend_with_gradient_accumulation(keras.optimizers.Adam)
    for bad in (0, -2, 2.5):
        with pytest.raises(ValueError, match=r"`grad_accum_steps` must be a positive integer"):
            Accumulating(grad_accum_steps=bad)
    Averaging = extend_with_exponential_moving_average(keras.optimizers.Adam)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"`ema_momentum` must be a number in \[0, 1\)"):
            Averaging(ema_momentum=bad)
    with pytest.raises(ValueError, match="not recognized"):
        Accumulating(grad_accum_step=2)
    with pytest.raises(ValueError, match="weight_decay"):
        extend_with_gradient_accumulation(keras.optimizers.AdamW)(grad_accum_steps=2)
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        Accumulating(gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="already has GradientAccumulation"):
        extend_with_gradient_accumulation(Accumulating)
    with pytest.raises(TypeError, match="Keras optimizer class"):
        extend_with_weight_decay("adam")


@pytest.mark.parametrize("chi_form", [False, True])
@pytest.mark.tensorflow_only  # compares with cond gating, which only TensorFlow uses
def test_where_gating_of_other_backends_equals_cond_gating(chi_form):
    """JAX cannot write state inside `cond`; the `where` blending must give the same result."""
    rng = np.random.default_rng(4)
    gradients = [rng.normal(size=(2, 3)).astype("float32") for _ in range(7)]
    gradients[4] = np.full((2, 3), np.inf, "float32")
    for gradient in gradients[:3]:  # row 0 idle for the first accumulation cycle
        gradient[0] = 0.0
    accumulation = SGDM if chi_form else extend_with_lazy_optimization(
        extend_with_gradient_accumulation(SGDM))
    lazy = {} if chi_form else {"include_in_lazy_optimization": "kernel"}
    base = extend_with_exponential_moving_average(extend_with_lookahead(
        extend_with_parameter_wise_lr(extend_with_layer_adaptation(extend_with_weight_decay(
            accumulation)))))
    states = []
    for use_cond in (True, False):
        Optimizer = type("Probe", (base,), {"_gate_with_cond": use_cond})
        optimizer = Optimizer(0.1, grad_accum_steps=3, weight_decay_rate=0.1, ema_momentum=0.5,
                              steps_per_slow_update=3, paramwise_lr_schedule={"kern": 0.5},
                              **lazy)
        variable = keras.Variable(np.ones((2, 3), "float32"), name="kernel")
        for gradient in gradients:
            optimizer.apply([gradient], [variable])
        states.append([np.asarray(v) for v in optimizer.variables] + [np.asarray(variable)])
    for a, b in zip(*states):
        np.testing.assert_allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("optimizer", [
    lambda: SGDM(0.1, grad_accum_steps=2),
    lambda: AdaFactor(0.01, min_dim_size_to_factor=2),
    lambda: extend_with_exponential_moving_average(extend_with_gradient_accumulation(
        keras.optimizers.Adam))(0.01, grad_accum_steps=2),
])
def test_sparse_embedding_gradients_are_densified(optimizer):
    model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(10, 4),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer(), loss="mse")
    before = model.get_weights()[0].copy()
    tokens = np.array([[1, 2, 3], [4, 5, 6]])
    model.fit(tokens, np.ones((2, 1)), batch_size=2, epochs=2, verbose=0)
    after = model.get_weights()[0]
    assert np.abs(after[1:7] - before[1:7]).max() > 0  # used rows moved
    np.testing.assert_array_equal(after[7:], before[7:])  # unused rows did not


@pytest.mark.parametrize("case, make, message", [
    ("O01", lambda: Adam(learning_rate=-1e-3), r"`learning_rate` must be a finite number >= 0"),
    ("O02", lambda: AdaFactor(learning_rate=float("nan")), r"`learning_rate` must be a finite"),
    ("O02", lambda: extend_with_weight_decay(keras.optimizers.SGD)(learning_rate=float("inf")),
     r"`learning_rate` must be a finite"),
    ("O13", lambda: AdaFactor(clipping_threshold=0.0), r"`clipping_threshold` must be a "
                                                       r"finite number > 0; received 0.0"),
    ("O23", lambda: Adam(epsilon=0.0), r"`epsilon` must be a finite number > 0"),
])
def test_hyper_parameters_that_silently_break_training_are_refused(case, make, message):
    """Reliability probe O01, O02, O13, O23 (Keras's own optimizers accept the first two)."""
    with pytest.raises(ValueError, match=message):
        make()


RELOAD_AND_STEP = """
import sys
import keras, numpy as np
import bert4keras_ext.optimizers  # registers the composed optimizer classes
model = keras.saving.load_model(sys.argv[1])
rng = np.random.default_rng(1)
model.train_on_batch(rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)))
np.save(sys.argv[2], np.concatenate([np.ravel(w) for w in model.get_weights()]))
print(type(model.optimizer).__name__)
"""


@pytest.mark.tensorflow_only
def test_extended_optimizer_reloads_from_keras_file_in_a_new_process(tmp_path):
    """The .keras file names the composed class; a new process that imports the package loads
    it without repeating the extend_with_* calls, and training continues identically
    (in-momentum accumulation mid-cycle, EMA, decay and Lookahead state included)."""
    import subprocess
    import sys

    optimizer_class = extend_with_lookahead(extend_with_parameter_wise_lr(
        extend_with_exponential_moving_average(extend_with_weight_decay(Adam))))
    assert optimizer_class is extend_with_weight_decay(extend_with_exponential_moving_average(
        extend_with_parameter_wise_lr(extend_with_lookahead(Adam))))  # whatever the order
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer_class(learning_rate=0.01, grad_accum_steps=2,
                                            weight_decay_rate=0.1, ema_momentum=0.9,
                                            steps_per_slow_update=2,
                                            paramwise_lr_schedule={"bias": 3.0}),
                  loss="mse")
    rng = np.random.default_rng(0)
    for _ in range(3):  # ends mid-cycle
        model.train_on_batch(rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)))
    model.save(tmp_path / "model.keras")
    result = subprocess.run([sys.executable, "-c", RELOAD_AND_STEP, str(tmp_path / "model.keras"),
                             str(tmp_path / "reloaded.npy")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == ("AdamWithWeightDecayAndExponentialMovingAverageAnd"
                                         "ParameterWiseLearningRateAndLookahead")
    rng = np.random.default_rng(1)
    model.train_on_batch(rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)))
    expected = np.concatenate([np.ravel(w) for w in model.get_weights()])
    np.testing.assert_array_equal(np.load(tmp_path / "reloaded.npy"), expected)


def test_lr_schedule_multipliers_and_steps_are_checked_and_sorted():
    """Reliability probe 2, O01, O02 (a negative or NaN multiplier climbed the loss or made the
    weights NaN), O04 (float steps were truncated) and O03 (unsorted steps are sorted, as
    bert4keras sorts them)."""
    Scheduled = extend_with_piecewise_linear_lr(keras.optimizers.SGD)
    for schedule, message in [
        ({0: -1.0, 10: -1.0}, r"`lr_schedule\[0\]` must be a finite number >= 0; received -1.0"),
        ({0: float("nan"), 10: 1.0}, r"`lr_schedule\[0\]` must be a finite number >= 0; "
                                     r"received nan"),
        ({0.5: 1.0, 1.5: 0.1}, r"`lr_schedule` steps must be integers >= 0; received the step "
                               r"0.5"),
    ]:
        with pytest.raises(ValueError, match=message):
            Scheduled(learning_rate=0.1, lr_schedule=schedule)
    with pytest.raises(ValueError, match=r"`schedule\[10\]` must be a finite number >= 0"):
        PiecewiseLinearSchedule({10: -0.5})
    with pytest.raises(ValueError, match=r"`learning_rate` must be a finite number >= 0"):
        Scheduled(learning_rate=-0.1, lr_schedule={10: 1.0})
    optimizer = Scheduled(0.1, lr_schedule={1000: 1.0, 0: 0.0, 2000: 0.1})
    np.testing.assert_allclose([float(optimizer._learning_rate(step))
                                for step in (0, 500, 1500, 3000)],
                               [0.0, 0.05, 0.055, 0.01], rtol=1e-6)
    config = json.loads(json.dumps(optimizer.get_config()))  # as a .keras file stores it
    assert Scheduled.from_config(config).lr_schedule == {0: 0.0, 1000: 1.0, 2000: 0.1}


def test_numpy_scalars_configure_optimizers_as_python_numbers():
    """Reliability probe 2, O07: NumPy scalars (e.g. read from a config array) work as the
    numbers they hold and are stored as Python numbers, so configs serialize; bool and NaN
    are refused by name."""
    made = [Adam(np.float32(0.5), beta_1=np.float64(0.8), epsilon=np.float64(1e-3),
                 grad_accum_steps=np.int64(2)),
            Adam(0.5, beta_1=0.8, epsilon=1e-3, grad_accum_steps=2)]
    assert made[0].get_config() == made[1].get_config()
    Stacked = extend_with_lookahead(extend_with_weight_decay(
        extend_with_exponential_moving_average(SGDM)))
    stacked = Stacked(np.float32(0.1), momentum=np.float32(0.5), weight_decay_rate=np.float64(0.01),
                      ema_momentum=np.float64(0.9), steps_per_slow_update=np.int64(3),
                      slow_step_size=np.float64(0.5))
    json.dumps(stacked.get_config())
    assert type(stacked.steps_per_slow_update) is int and type(stacked.ema_momentum) is float
    factored = AdaFactor(beta1=np.float64(0.5), min_dim_size_to_factor=np.int64(4))
    assert factored.min_dim_size_to_factor == 4 and factored.factored_axes((4, 6)) is not None
    for make, message in [
        (lambda: Adam(grad_accum_steps=True), r"`grad_accum_steps` must be a positive integer; "
                                              r"received True \(bool\)"),
        (lambda: Adam(learning_rate=True), r"`learning_rate` must be a finite number >= 0; "
                                           r"received True"),
        (lambda: SGDM(momentum=float("nan")), r"`momentum` must be a number in \[0, 1\); "
                                              r"received nan"),
        (lambda: Adam(beta_2=np.float32(1.0)), r"`beta_2` must be a number in \[0, 1\)"),
        (lambda: extend_with_weight_decay(keras.optimizers.SGD)(weight_decay_rate=float("nan")),
         r"`weight_decay_rate` must be a finite number >= 0; received nan"),
        (lambda: extend_with_exponential_moving_average(keras.optimizers.SGD)(
            ema_momentum=float("nan")), r"`ema_momentum` must be a number in \[0, 1\)"),
        (lambda: AdaFactor(beta1=float("nan")), r"`beta1` must be a number in \[0, 1\)"),
        (lambda: AdaFactor(epsilon1=-1e-30), r"`epsilon1` must be a finite number >= 0"),
        (lambda: AdaFactor(min_dim_size_to_factor=0.5), r"`min_dim_size_to_factor` must be a"),
    ]:
        with pytest.raises(ValueError, match=message):
            make()


def test_edge_values_that_were_already_right():
    """Reliability probe 2, O05 (grad_accum_steps=1 is plain SGD), O06 (a cycle longer than
    the run: no update yet) and O08 (ema_momentum=0: the average is the current weight)."""
    def run(optimizer, steps=3):
        variable = keras.Variable(np.zeros(2, "float32"))
        for _ in range(steps):
            optimizer.apply([np.ones(2, "float32")], [variable])
        return optimizer, np.asarray(variable)

    accumulating = extend_with_gradient_accumulation(keras.optimizers.SGD)
    np.testing.assert_allclose(run(accumulating(0.1, grad_accum_steps=1))[1],
                               run(keras.optimizers.SGD(0.1))[1], atol=1e-7)
    waiting, weights = run(accumulating(0.1, grad_accum_steps=10**9))
    np.testing.assert_array_equal(weights, 0.0)
    assert int(waiting.iterations) == 0
    averaged, weights = run(extend_with_exponential_moving_average(keras.optimizers.SGD)(
        0.1, ema_momentum=0.0), steps=2)
    np.testing.assert_allclose(averaged.averaged_weights()[0], weights, atol=1e-7)
    np.testing.assert_allclose(weights, -0.2, atol=1e-7)


def test_named_class_saved_in_a_model_names_the_call_that_loads_it(tmp_path):
    """Reliability probe 2, K03: a class named by `extend_with_*(..., name=...)` must be made
    again before loading. Keras's error on a load without the call (here: the name taken out
    of the registry, as in a new process) shows the call; with it the model loads."""
    named = extend_with_exponential_moving_average(extend_with_weight_decay(Adam),
                                                   name="MyEMAAdam")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=named(learning_rate=0.01, ema_momentum=0.9), loss="mse")
    model.train_on_batch(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"))
    model.save(tmp_path / "model.keras")
    registry = keras.saving.get_custom_objects()
    registered = registry.pop("bert4keras_ext>MyEMAAdam")
    try:
        with pytest.raises(TypeError, match=r"Could not locate class 'MyEMAAdam'.*"
                                            r"'to_load_first_call': \"extend_with_exponential_"
                                            r"moving_average\(extend_with_weight_decay\("
                                            r"bert4keras_ext.optimizers.Adam\), "
                                            r"name='MyEMAAdam'\)\""):
            keras.saving.load_model(tmp_path / "model.keras")
    finally:
        registry["bert4keras_ext>MyEMAAdam"] = registered
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is named and loaded.optimizer.ema_momentum == 0.9
