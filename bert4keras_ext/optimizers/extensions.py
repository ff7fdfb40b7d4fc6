"""Features that compose with any optimizer, ours or Keras's, in the bert4keras style
(bert4keras's `optimizers.extend_with_*`, https://github.com/bojone/bert4keras; decoupled
weight decay from "Decoupled Weight Decay Regularization", https://arxiv.org/abs/1711.05101;
layer adaptation from LAMB, "Large Batch Optimization for Deep Learning: Training BERT in 76
minutes", https://arxiv.org/abs/1904.00962; Lookahead from "Lookahead Optimizer: k steps
forward, 1 step back", https://arxiv.org/abs/1907.08610; lazy updates from the post
"Keras实现两个优化器：Lookahead和LazyOptimizer", https://kexue.fm/archives/6869):

    Optimizer = extend_with_exponential_moving_average(
        extend_with_gradient_accumulation(keras.optimizers.Lamb))
    optimizer = Optimizer(learning_rate=1e-3, grad_accum_steps=4, ema_momentum=0.999)

The features only fill hooks of the shared `Extensible` pipeline, which gates all of them on
real updates, so any combination in any order behaves alike: weight decay, layer adaptation,
parameter-wise learning rates, lazy rows, Lookahead, then the EMA, once per real update.
`extend_with_*` therefore returns one class per (base optimizer, set of features), whatever
the order of the calls, named e.g.
`AdamWithWeightDecayAndExponentialMovingAverage` (`KerasAdamWith...` for Keras's Adam). Those
classes are registered when `bert4keras_ext.optimizers` is imported, for this package's
optimizers and Keras's, so a `.keras` file saved with any of them loads in a new process
without repeating the `extend_with_*` calls. A class given its own `name=` (bert4keras's
argument) is a subclass of that name: loading it needs the same call first, which its saved
config records (`to_load_first_call`) so that Keras's "Could not locate class" error shows it.
"""
import contextlib
import functools
import gc
import itertools

import keras
import numpy as np
from keras import ops

from bert4keras_ext import arguments
from bert4keras_ext.optimizers.extensible import (
    Extensible,
    check_grad_accum_steps,
    matches_any,
)
from bert4keras_ext.optimizers.schedules import PiecewiseLinearSchedule


class GradientAccumulation(Extensible):
    """Buffered accumulation: sum k micro-step gradients, then one update with their mean.

    Keeps one buffer per parameter. The wrapped optimizer's rule, its step counter and the
    learning-rate schedule all see real updates only, so Adam's bias correction and schedules
    behave as with a k-times larger batch.
    """

    def __init__(self, *args, grad_accum_steps=2, **kwargs):
        grad_accum_steps = check_grad_accum_steps(grad_accum_steps)
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError(
                "Use `grad_accum_steps` of extend_with_gradient_accumulation, not Keras's "
                "`gradient_accumulation_steps` (which fails under tf.distribute)."
            )
        super().__init__(*args, **kwargs)
        if getattr(self, "weight_decay", None) and grad_accum_steps > 1:
            raise ValueError(
                f"Keras's `weight_decay` ({self.weight_decay}) would be applied on every "
                "micro-step; pass weight_decay=None and use extend_with_weight_decay, which "
                "decays once per real update."
            )
        self.grad_accum_steps = grad_accum_steps

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._accumulated = [
            self.add_variable_from_reference(v, "accumulated_gradient") for v in variables
        ]

    def _accumulate(self, gradient, variable, finite):
        buffer = self._accumulated[self._get_variable_index(variable)]
        self._when(finite, lambda: self.assign_add(buffer, ops.cast(gradient, buffer.dtype)))

        def mean_and_reset():
            mean = ops.convert_to_tensor(buffer) / self.grad_accum_steps
            self.assign(buffer, ops.zeros_like(mean))
            return mean

        return mean_and_reset, self.is_update_step()

    def get_config(self):
        config = super().get_config()
        config["grad_accum_steps"] = self.grad_accum_steps
        return config


class WeightDecay(Extensible):
    """Decoupled weight decay: `w <- w_new - lr * weight_decay_rate * w_old` per real update.

    Variables whose path matches a pattern of `exclude_from_weight_decay` (regular expressions,
    e.g. `['Norm', 'bias']`) are not decayed.
    """

    _adjusts_parameters = True

    def __init__(self, *args, weight_decay_rate=0.01, exclude_from_weight_decay=None, **kwargs):
        weight_decay_rate = arguments.real(weight_decay_rate, "weight_decay_rate", minimum=0)
        patterns = arguments.patterns(exclude_from_weight_decay, "exclude_from_weight_decay")
        super().__init__(*args, **kwargs)
        self.weight_decay_rate = weight_decay_rate
        self.exclude_from_weight_decay = patterns

    def _decay(self, old, new, learning_rate, index):
        new = super()._decay(old, new, learning_rate, index)
        if matches_any(self._trainable_variables[index].path, self.exclude_from_weight_decay):
            return new
        return new - ops.cast(learning_rate, new.dtype) * self.weight_decay_rate * old

    def get_config(self):
        config = super().get_config()
        config.update({"weight_decay_rate": self.weight_decay_rate,
                       "exclude_from_weight_decay": self.exclude_from_weight_decay})
        return config


class LayerAdaptation(Extensible):
    """LAMB's trust ratio: each variable's update is rescaled to `||w|| / ||update / lr||`.

    Acts on the whole update (weight decay included). Variables matching
    `exclude_from_layer_adaptation` keep their update; a zero norm leaves it unscaled.
    """

    _adjusts_parameters = True

    def __init__(self, *args, exclude_from_layer_adaptation=None, **kwargs):
        patterns = arguments.patterns(exclude_from_layer_adaptation,
                                      "exclude_from_layer_adaptation")
        super().__init__(*args, **kwargs)
        self.exclude_from_layer_adaptation = patterns

    def _adapt(self, old, new, learning_rate, index):
        new = super()._adapt(old, new, learning_rate, index)
        if matches_any(self._trainable_variables[index].path, self.exclude_from_layer_adaptation):
            return new
        delta = new - old
        weight_norm = ops.sqrt(ops.sum(ops.square(old)))
        update_norm = ops.sqrt(ops.sum(ops.square(delta))) / ops.cast(learning_rate, old.dtype)
        usable = ops.logical_and(weight_norm > 0, update_norm > 0)
        ratio = ops.where(usable, weight_norm / ops.where(usable, update_norm, 1.0), 1.0)
        return old + delta * ratio

    def get_config(self):
        config = super().get_config()
        config["exclude_from_layer_adaptation"] = self.exclude_from_layer_adaptation
        return config


class ExponentialMovingAverage(Extensible):
    """Shadow weights `s <- m s + (1 - m) w` after every real update, inside the train step.

    As in bert4keras, shadows start at zero and `apply_ema_weights()` divides them by
    `1 - m^t` (`t` real updates of that weight: "Adam: A Method for Stochastic Optimization",
    https://arxiv.org/abs/1412.6980, section 3), so the average covers the weights of the run
    only, not an initial value that a short run would never wash out. `1 - m^t` is kept as
    a second, scalar average of ones per weight (exact when a weight skips a non-finite
    step). `apply_ema_weights()` copies the current weights to host memory and loads the
    averages; `reset_old_weights()` restores the copy bit for bit. `with
    optimizer.ema_weights(model): ...` does both around a block.
    """

    def __init__(self, *args, ema_momentum=0.999, **kwargs):
        ema_momentum = arguments.real(ema_momentum, "ema_momentum", minimum=0, below=1)
        super().__init__(*args, **kwargs)
        self.ema_momentum = ema_momentum
        self._backup = None

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._shadows = [self.add_variable_from_reference(variable, "ema")
                         for variable in variables]
        self._ema_mass = [self.add_variable(shape=(), dtype="float32", initializer="zeros",
                                            name=f"ema_mass_{index}")
                          for index in range(len(variables))]

    def _after_update(self, variable):
        super()._after_update(variable)
        index = self._get_variable_index(variable)
        shadow, mass = self._shadows[index], self._ema_mass[index]
        weight = ops.cast(variable, shadow.dtype)
        self.assign(shadow, self.ema_momentum * shadow + (1.0 - self.ema_momentum) * weight)
        self.assign(mass, self.ema_momentum * mass + (1.0 - self.ema_momentum))

    def averaged_weights(self, bias_correction=True):
        """The EMA of each trained weight (NumPy): the shadow divided by `1 - m^t`, or the raw
        zero-started shadow with `bias_correction=False`. A weight never updated gives its
        current value (corrected) or zeros (raw)."""
        averages = []
        for variable, shadow, mass in zip(self._trainable_variables, self._shadows,
                                          self._ema_mass):
            shadow, mass = ops.convert_to_numpy(shadow), float(ops.convert_to_numpy(mass))
            if bias_correction:
                shadow = (shadow / mass).astype(shadow.dtype) if mass > 0 else (
                    ops.convert_to_numpy(variable))
            averages.append(shadow)
        return averages

    @property
    def ema_weights_applied(self):
        return self._backup is not None

    def apply_ema_weights(self, bias_correction=True):
        """Backs the current weights up and loads the EMA weights (`averaged_weights`) into
        the model."""
        if not self.built:
            raise RuntimeError("The optimizer has no EMA weights before it is built.")
        if self._backup is not None:
            raise RuntimeError("EMA weights are already applied; call reset_old_weights() first.")
        averages = self.averaged_weights(bias_correction)
        self._backup = [np.array(ops.convert_to_numpy(v)) for v in self._trainable_variables]
        # Through host memory: on JAX a weight sharing its shadow's buffer would be donated
        # twice by the next step.
        for variable, average in zip(self._trainable_variables, averages):
            variable.assign(average)

    def reset_old_weights(self):
        """Restores the weights saved by `apply_ema_weights`, exactly."""
        if self._backup is None:
            raise RuntimeError("No EMA weights are applied; call apply_ema_weights() first.")
        for variable, value in zip(self._trainable_variables, self._backup):
            variable.assign(value)
        self._backup = None

    @contextlib.contextmanager
    def ema_weights(self, model=None, bias_correction=True):
        """Context manager: the model holds the EMA weights inside the block.

        If `model` is given, checks that this optimizer trains its variables.
        """
        if model is not None:
            known = {id(v) for v in self._trainable_variables}
            if not all(id(v) in known for v in model.trainable_variables):
                raise ValueError(
                    f"This optimizer does not train the variables of model {model.name!r}."
                )
        self.apply_ema_weights(bias_correction)
        try:
            yield self
        finally:
            self.reset_old_weights()

    def get_config(self):
        config = super().get_config()
        config["ema_momentum"] = self.ema_momentum
        return config


class PiecewiseLinearLearningRate:
    """The learning rate times bert4keras's piecewise-linear multiplier `lr_schedule`
    (`{step: multiplier}`, see `PiecewiseLinearSchedule`), for any optimizer. Steps are
    integers >= 0 (sorted, as in bert4keras), multipliers finite numbers >= 0: a negative one
    would climb the loss, a NaN one make every weight NaN."""

    def __init__(self, *args, lr_schedule=None, **kwargs):
        points = arguments.schedule(lr_schedule, "lr_schedule")
        if args:
            kwargs["learning_rate"], args = args[0], args[1:]
        kwargs["learning_rate"] = PiecewiseLinearSchedule(
            points, kwargs.get("learning_rate", 0.001))
        super().__init__(*args, **kwargs)
        self.lr_schedule = dict(points)

    def get_config(self):
        config = super().get_config()
        # The plain rate: `from_config` wraps it in the schedule again. The schedule as pairs,
        # as JSON would turn integer keys into strings.
        config["learning_rate"] = self._learning_rate.learning_rate
        config["lr_schedule"] = [[step, value] for step, value in self.lr_schedule.items()]
        return config


class ParameterWiseLearningRate(Extensible):
    """bert4keras's parameter-wise learning rates: `paramwise_lr_schedule={pattern: multiplier}`
    multiplies the whole update of every variable whose path matches `pattern` (a regular
    expression, e.g. `{'Embedding': 0.1, 'Transformer-11': 2.0}`) by `multiplier`; a variable
    matching several patterns takes their product. The multiplier acts on the rule's step
    with its weight decay and layer adaptation, as a learning rate for that variable would;
    the optimizer's state is that of the unscaled rule.
    """

    _adjusts_parameters = True

    def __init__(self, *args, paramwise_lr_schedule=None, **kwargs):
        schedule = _multipliers(paramwise_lr_schedule)
        super().__init__(*args, **kwargs)
        self.paramwise_lr_schedule = schedule

    def lr_multiplier(self, path):
        """The product of the multipliers whose pattern matches the variable path."""
        multiplier = 1.0
        for pattern, factor in self.paramwise_lr_schedule.items():
            if matches_any(path, [pattern]):
                multiplier *= factor
        return multiplier

    def _scale(self, old, new, index):
        new = super()._scale(old, new, index)
        multiplier = self.lr_multiplier(self._trainable_variables[index].path)
        return new if multiplier == 1.0 else old + (new - old) * multiplier

    def get_config(self):
        config = super().get_config()
        config["paramwise_lr_schedule"] = dict(self.paramwise_lr_schedule)
        return config


def _multipliers(schedule):
    """`paramwise_lr_schedule` checked: {regular expression: finite multiplier >= 0}."""
    if schedule is None:
        return {}
    if not isinstance(schedule, dict):
        raise TypeError("`paramwise_lr_schedule` must be a {pattern: multiplier} dict; "
                        f"received {schedule!r}.")
    arguments.patterns(list(schedule), "paramwise_lr_schedule")
    return {pattern: arguments.real(multiplier, f"paramwise_lr_schedule[{pattern!r}]", minimum=0)
            for pattern, multiplier in schedule.items()}


class LazyOptimization(Extensible):
    """bert4keras's lazy updates, meant for embeddings: in a variable whose path matches
    `include_in_lazy_optimization`, a row (the entries sharing all indices but the last: one
    token's vector) whose gradient is zero keeps its value, whatever momentum, weight decay or
    parameter-wise rate would move it. As in bert4keras only the parameter is held: the
    optimizer's moments decay as usual. Under buffered accumulation the gradient is the
    cycle's, so a row used by any micro-step moves.
    """

    _adjusts_parameters = True

    def __init__(self, *args, include_in_lazy_optimization=None, **kwargs):
        patterns = arguments.patterns(include_in_lazy_optimization, "include_in_lazy_optimization")
        super().__init__(*args, **kwargs)
        if patterns and self._accumulates_in_rule:
            raise ValueError(
                "`include_in_lazy_optimization` needs the gradient of a whole accumulation "
                f"cycle, which {type(self).__name__} never sees with grad_accum_steps="
                f"{self.grad_accum_steps} (it accumulates in its moments): accumulate with "
                "extend_with_gradient_accumulation instead.")
        self.include_in_lazy_optimization = patterns

    def _mask(self, old, new, gradient, index):
        new = super()._mask(old, new, gradient, index)
        if not matches_any(self._trainable_variables[index].path,
                           self.include_in_lazy_optimization):
            return new
        used = ops.not_equal(gradient, 0)
        if len(used.shape):
            used = ops.any(used, axis=-1, keepdims=True)
        return ops.where(used, new, old)

    def get_config(self):
        config = super().get_config()
        config["include_in_lazy_optimization"] = self.include_in_lazy_optimization
        return config


class Lookahead(Extensible):
    """Lookahead ("Lookahead Optimizer: k steps forward, 1 step back",
    https://arxiv.org/abs/1907.08610): every `steps_per_slow_update` (k) real updates the
    slow weights `phi`, the weights at the start of those k updates, move towards the fast
    weights `theta` the wrapped optimizer reached, and the fast weights restart from them:
    `phi <- phi + slow_step_size * (theta - phi); theta <- phi`.

    The slow weights start as the weights the optimizer is built on, and every cycle starts
    from the weights the model holds at its first update (so weights loaded between cycles
    are respected). A variable whose update at the end of a cycle is skipped (non-finite
    gradient) skips that slow step and starts a new cycle.
    """

    _adjusts_parameters = True

    def __init__(self, *args, steps_per_slow_update=5, slow_step_size=0.5, **kwargs):
        steps_per_slow_update = arguments.integer(steps_per_slow_update,
                                                  "steps_per_slow_update", minimum=1)
        slow_step_size = arguments.real(slow_step_size, "slow_step_size", above=0, maximum=1)
        super().__init__(*args, **kwargs)
        self.steps_per_slow_update = steps_per_slow_update
        self.slow_step_size = slow_step_size

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        # Initialized with a copy of the weight (on JAX a shared buffer would be donated
        # twice), by an initializer, which TensorFlow runs once even when building inside a
        # traced function.
        self._slow_weights = [
            self.add_variable_from_reference(
                v, "slow", initializer=lambda shape, dtype, weight=v: ops.copy(weight))
            for v in variables]

    def _look_ahead(self, old, new, index):
        new = super()._look_ahead(old, new, index)
        k = self.steps_per_slow_update
        position = self.iterations % k  # of this real update in its cycle
        starts, ends = ops.equal(position, 0), ops.equal(position, k - 1)
        slow = self._slow_weights[index]
        cycle_start = ops.where(starts, old, ops.convert_to_tensor(slow))
        synced = cycle_start + ops.cast(self.slow_step_size, new.dtype) * (new - cycle_start)
        self._when(ops.logical_or(starts, ends),
                   lambda: self.assign(slow, ops.where(ends, synced, old)), often_false=k > 2)
        return ops.where(ends, synced, new)

    def get_config(self):
        config = super().get_config()
        config.update({"steps_per_slow_update": self.steps_per_slow_update,
                       "slow_step_size": self.slow_step_size})
        return config


FEATURES = (GradientAccumulation, WeightDecay, LayerAdaptation, ExponentialMovingAverage,
            PiecewiseLinearLearningRate, ParameterWiseLearningRate, LazyOptimization, Lookahead)


def _extend(feature, base, name=None):
    if not (isinstance(base, type) and issubclass(base, keras.optimizers.Optimizer)):
        raise TypeError(f"Expected a Keras optimizer class; received {base!r}.")
    if issubclass(base, feature):
        raise ValueError(f"{base.__name__} already has {feature.__name__}.")
    # A class made here is rebuilt from its root and features; any other class (the user's
    # own subclass included) is the root.
    root = base.__dict__.get("_extension_root", base)
    features = frozenset(base.__dict__.get("_extensions", ())) | {feature}
    composed = _composed(root, features)
    return composed if name is None else _named(composed, name)


@functools.cache
def _composed(root, features):
    ordered = tuple(f for f in FEATURES if f in features)
    # Keras's Adam and ours share a class name: the registered names must differ.
    prefix = "Keras" if root.__module__.split(".")[0] == "keras" else ""
    name = f"{prefix}{root.__name__}With" + "And".join(f.__name__ for f in ordered)
    composed = type(name, (*ordered, root), {"__module__": __name__, "_extension_root": root,
                                             "_extensions": ordered})
    return keras.saving.register_keras_serializable(package="bert4keras_ext")(composed)


class _Named:
    """Base of the classes named by `extend_with_*(..., name=...)`: the saved config names the
    call that registers the class again (Keras prints the config when it cannot find it)."""

    _call = None

    def get_config(self):
        return {"to_load_first_call": self._call, **super().get_config()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = {key: value for key, value in config.items() if key != "to_load_first_call"}
        return super().from_config(config, custom_objects)


@functools.cache
def _named(composed, name):
    root = composed._extension_root
    package = {"keras": "keras.optimizers", "bert4keras_ext": "bert4keras_ext.optimizers"}
    call = f"{package.get(root.__module__.split('.')[0], root.__module__)}.{root.__qualname__}"
    for index, feature in enumerate(composed._extensions, 1):
        last = index == len(composed._extensions)
        call = f"{EXTEND_CALLS[feature]}({call}{f', name={name!r}' if last else ''})"
    named = type(name, (_Named, composed), {"__module__": __name__, "_call": call,
                                            "_extension_root": root,
                                            "_extensions": composed._extensions})
    return keras.saving.register_keras_serializable(package="bert4keras_ext")(named)


def _register_compositions(roots):
    """Every feature set on every root, so that saved files find their class."""
    # Thousands of new classes would trigger collections that walk the whole heap (Keras's
    # and the backend's) and find no garbage: collection waits until they exist (2-3x faster).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for root in roots:
            for count in range(1, len(FEATURES) + 1):
                for features in itertools.combinations(FEATURES, count):
                    _composed(root, frozenset(features))
    finally:
        if collecting:
            gc.enable()


# `name` names the new class, as bert4keras's `extend_with_*(base, name=...)` do.
def extend_with_gradient_accumulation(base, name=None):
    """`base` with buffered gradient accumulation (argument `grad_accum_steps`)."""
    return _extend(GradientAccumulation, base, name)


def extend_with_weight_decay(base, name=None):
    """`base` with decoupled weight decay (`weight_decay_rate`, `exclude_from_weight_decay`)."""
    return _extend(WeightDecay, base, name)


def extend_with_layer_adaptation(base, name=None):
    """`base` with LAMB's layer adaptation (`exclude_from_layer_adaptation`)."""
    return _extend(LayerAdaptation, base, name)


def extend_with_exponential_moving_average(base, name=None):
    """`base` with weight EMA (`ema_momentum`), swap methods and `ema_weights()`."""
    return _extend(ExponentialMovingAverage, base, name)


def extend_with_piecewise_linear_lr(base, name=None):
    """`base` whose learning rate follows `lr_schedule` (bert4keras's piecewise-linear
    multiplier of the learning rate, by real update)."""
    return _extend(PiecewiseLinearLearningRate, base, name)


def extend_with_parameter_wise_lr(base, name=None):
    """`base` with per-variable learning-rate multipliers (`paramwise_lr_schedule`)."""
    return _extend(ParameterWiseLearningRate, base, name)


def extend_with_lazy_optimization(base, name=None):
    """`base` whose matching variables (`include_in_lazy_optimization`) change only in the
    rows their gradient touches."""
    return _extend(LazyOptimization, base, name)


def extend_with_lookahead(base, name=None):
    """`base` with Lookahead (`steps_per_slow_update`, `slow_step_size`)."""
    return _extend(Lookahead, base, name)


# The function adding each feature (the saved config of a named class names the calls).
EXTEND_CALLS = {feature: f"extend_with_{function}" for feature, function in zip(FEATURES, (
    "gradient_accumulation", "weight_decay", "layer_adaptation", "exponential_moving_average",
    "piecewise_linear_lr", "parameter_wise_lr", "lazy_optimization", "lookahead"))}
