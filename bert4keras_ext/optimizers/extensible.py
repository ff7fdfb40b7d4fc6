"""The update pipeline every optimizer of this package runs, and that `extend_with_*` adds.

Under `tf.distribute` only `update_step` sees gradients that are already all-reduced, so all
logic lives there or in code it calls (Keras 3.15's `apply_gradients` runs under
the replica context, `update_step` under the cross-replica one). One update step is:

1. a gradient that is not finite is counted in `nonfinite_gradients` and nothing of that step
   is written for that variable (reported by `callbacks.NonFiniteGradientCheck`); under
   accumulation (buffered, or inside the momentum) it adds nothing to the cycle, and the
   cycle's update uses the rest;
2. `_accumulate` may replace the gradient (buffered accumulation gives the cycle's mean and
   runs the rule only on the cycle's last micro-step);
3. the optimizer's rule, `update_rule`, runs; for a Keras optimizer that is its `update_step`;
4. on real updates only, the new parameter value may be changed by `_decay` (weight decay),
   `_adapt` (layer adaptation), `_scale` (parameter-wise learning rates), `_mask` (lazy
   updates, which see the gradient the rule used) and `_look_ahead` (Lookahead's slow
   weights), in that order, and `_after_update` may record it (EMA).

Conditional writes go through `_when(condition, update)`: on TensorFlow a `keras.ops.cond` for
the micro-steps an accumulation cycle skips, so skipped work costs nothing; otherwise (and on
other backends, as JAX traces `cond` branches without side effects) every write inside is
blended with the old value by `keras.ops.where`. Either way the graph
has no Python branching on tensor values. `iterations` counts real updates, and learning-rate
schedules receive it.
"""
import numbers
import re

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule

from bert4keras_ext import arguments


def check_grad_accum_steps(value):
    return arguments.integer(value, "grad_accum_steps", minimum=1)


def matches_any(path, patterns):
    """Whether a variable path contains a match of any of the regular expressions."""
    return any(re.search(pattern, path) for pattern in patterns or ())


class Extensible:
    """Mixin placed before a Keras optimizer class; see the module docstring."""

    # Micro-steps per real update: set by gradient accumulation, buffered or in the momentum.
    grad_accum_steps = 1
    # Whether a hook changes the new parameter value, so the old one must be kept.
    _adjusts_parameters = False

    def __init__(self, *args, **kwargs):
        # A number as a Python float (Keras refuses NumPy ones); a schedule, variable or tensor
        # is Keras's to check.
        if isinstance(kwargs.get("learning_rate"), numbers.Number):
            kwargs["learning_rate"] = arguments.real(kwargs["learning_rate"], "learning_rate",
                                                     minimum=0)
        elif args and isinstance(args[0], numbers.Number):
            args = (arguments.real(args[0], "learning_rate", minimum=0), *args[1:])
        super().__init__(*args, **kwargs)
        self._gate = None

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.nonfinite_gradients = self.add_variable(
            shape=(), dtype="int64", name="nonfinite_gradients"
        )

    @property
    def iterations(self):
        """Real updates so far (micro-steps // grad_accum_steps)."""
        if self.grad_accum_steps == 1:
            return self._iterations
        return ops.floor_divide(self._iterations, self.grad_accum_steps)

    def _get_current_learning_rate(self):
        if isinstance(self._learning_rate, LearningRateSchedule):
            return self._learning_rate(self.iterations)
        return super()._get_current_learning_rate()

    def is_update_step(self):
        """True on micro-steps that end an accumulation cycle; None without accumulation."""
        if self.grad_accum_steps == 1:
            return None
        return ops.equal((self._iterations + 1) % self.grad_accum_steps, 0)

    def update_step(self, gradient, variable, learning_rate):
        if hasattr(gradient, "indices"):
            # Embedding gradients may arrive sparse (IndexedSlices on TensorFlow): densify
            # those only, so dense gradients cost no extra pass.
            gradient = ops.add(gradient, ops.zeros(variable.shape, gradient.dtype))
        finite = ops.all(ops.isfinite(gradient))
        self.nonfinite_gradients.assign_add(ops.cast(ops.logical_not(finite), "int64"))
        gradient_fn, accumulated = self._accumulate(gradient, variable, finite)
        if accumulated is not None:
            rule_condition = real_update = accumulated
        elif self._accumulates_in_rule:
            # The rule's state holds the cycle (momentum accumulation): a non-finite
            # micro-step contributes zero, and the cycle's decay and update still happen.
            zeroed = ops.where(finite, gradient, ops.zeros_like(gradient))
            gradient_fn, rule_condition, real_update = (lambda: zeroed), None, self.is_update_step()
        else:
            # No accumulation: a non-finite step is skipped entirely for this variable.
            rule_condition = real_update = finite
            if self.is_update_step() is not None:
                real_update = ops.logical_and(finite, self.is_update_step())
        old = ops.copy(variable) if self._adjusts_parameters else None

        cycling = self.grad_accum_steps > 1
        if rule_condition is real_update:
            # One gate for the rule and what follows it, so that the finishing hooks see the
            # gradient the rule used (the cycle's mean under buffered accumulation).
            def rule_and_finish():
                rule_gradient = gradient_fn()
                self.update_rule(rule_gradient, variable, learning_rate)
                self._finish_update(old, rule_gradient, variable, learning_rate)

            self._when(real_update, rule_and_finish, often_false=cycling)
            return
        # The rule runs on micro-steps that are not real updates (accumulation in its state).
        self._when(rule_condition, lambda: self.update_rule(gradient_fn(), variable, learning_rate),
                   often_false=cycling)
        self._when(real_update, lambda: self._finish_update(old, None, variable, learning_rate),
                   often_false=cycling)

    def _finish_update(self, old, gradient, variable, learning_rate):
        """The hooks of a real update; `gradient` is the rule's, or None where the rule saw
        only micro-steps."""
        if self._adjusts_parameters:
            index = self._get_variable_index(variable)
            new = self._decay(old, ops.convert_to_tensor(variable), learning_rate, index)
            new = self._adapt(old, new, learning_rate, index)
            new = self._mask(old, self._scale(old, new, index), gradient, index)
            self.assign(variable, self._look_ahead(old, new, index))
        self._after_update(variable)

    # Conditional execution of state writes.
    _gate_with_cond = keras.backend.backend() == "tensorflow"

    def _when(self, condition, update, often_false=False):
        """Runs `update`, which writes optimizer state, only where `condition` is True (always
        for None). `often_false` (the micro-steps inside an accumulation cycle) asks for a
        `cond` on TensorFlow, which skips the work; a condition that is almost always True
        (a finite gradient) is cheaper blended, as a `cond` per variable is slow to trace."""
        if condition is None:
            update()
            return
        if self._gate_with_cond and often_false:
            ops.cond(condition, update, lambda: None)
            return
        outer = self._gate
        self._gate = condition if outer is None else ops.logical_and(outer, condition)
        try:
            update()
        finally:
            self._gate = outer

    def update_rule(self, gradient, variable, learning_rate):
        """The optimizer's own rule; by default the Keras base class's `update_step`."""
        super().update_step(gradient, variable, learning_rate)

    # Hooks, overridden by the extensions (each calls super() so that they compose).
    _accumulates_in_rule = False  # True where `update_rule` itself accumulates a cycle
    def _accumulate(self, gradient, variable, finite):
        """(function giving the gradient for the rule, condition for the rule or None)."""
        return (lambda: gradient), None

    def _decay(self, old, new, learning_rate, index):
        return new

    def _adapt(self, old, new, learning_rate, index):
        return new

    def _scale(self, old, new, index):
        return new

    def _mask(self, old, new, gradient, index):
        return new

    def _look_ahead(self, old, new, index):
        return new

    def _after_update(self, variable):
        pass

    # Writes, blended with the old value under `_when` when not using `cond`.
    def assign(self, variable, value):
        if self._gate is not None:
            # The variable's value, not the variable: JAX refuses variables inside jnp.where.
            value = ops.where(self._gate, value, ops.convert_to_tensor(variable))
        super().assign(variable, value)

    def assign_add(self, variable, value):
        if self._gate is not None:
            value = ops.where(self._gate, value, ops.zeros_like(value))
        super().assign_add(variable, value)

    def assign_sub(self, variable, value):
        if self._gate is not None:
            value = ops.where(self._gate, value, ops.zeros_like(value))
        super().assign_sub(variable, value)
