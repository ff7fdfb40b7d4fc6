"""SGD with momentum and Adam with gradient accumulation hidden in the momentum.

Source: the post "隐藏在动量中的梯度累积：少更新几步，效果反而更好？" (https://kexue.fm/archives/8634).

With `grad_accum_steps=k` no buffer is kept: the momentum is decayed only on the first
micro-step of each k-cycle and otherwise accumulates `(1 - beta) / k * g`, so at the end of the
cycle it equals `beta m + (1 - beta) mean(g)` exactly, and parameters move on the cycle's last
micro-step only. The state is the same as with k = 1.
"""
import keras
from keras import ops

from bert4keras_ext import arguments
from bert4keras_ext.optimizers.extensible import Extensible, check_grad_accum_steps


class _MomentumAccumulation(Extensible, keras.optimizers.Optimizer):
    """What SGDM and Adam share: `grad_accum_steps` and the chi factors of the source post."""

    def __init__(self, learning_rate, grad_accum_steps=1, **kwargs):
        grad_accum_steps = check_grad_accum_steps(grad_accum_steps)
        super().__init__(learning_rate=learning_rate, **kwargs)
        # Micro-steps per real update for the pipeline; the momentum's own cycle length stays
        # separate, as buffered accumulation may wrap this optimizer (it then sees k = 1).
        self.grad_accum_steps = grad_accum_steps
        self._momentum_accum_steps = grad_accum_steps

    @property
    def _accumulates_in_rule(self):
        return self._momentum_accum_steps > 1

    def _cycle_starts(self, dtype):
        """1.0 on the first micro-step of an accumulation cycle, else 0.0."""
        return ops.cast(ops.equal(self._iterations % self._momentum_accum_steps, 0), dtype)

    def _accumulate_moment(self, moment, value, beta, starts):
        """moment <- [(beta - 1) starts + 1] moment + (1 - beta) / k * value."""
        decay = (beta - 1.0) * starts + 1.0
        self.assign(moment, moment * decay + value * ((1.0 - beta) / self._momentum_accum_steps))

    def _on_cycle_end(self, update):
        """Runs `update` on the last micro-step of each cycle (always when k = 1)."""
        if self._momentum_accum_steps == 1:
            update()
        else:
            self._when(ops.equal((self._iterations + 1) % self._momentum_accum_steps, 0), update,
                       often_false=True)

    def get_config(self):
        config = super().get_config()
        config["grad_accum_steps"] = self._momentum_accum_steps
        return config


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class SGDM(_MomentumAccumulation):
    """SGD with an exponential-average momentum: `m = beta m + (1 - beta) g; w -= lr m`.

    Example:
    ```python
    optimizer = SGDM(learning_rate=0.1, momentum=0.9, grad_accum_steps=4)
    ```
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, grad_accum_steps=1, name="sgdm",
                 **kwargs):
        momentum = arguments.real(momentum, "momentum", minimum=0, below=1)
        super().__init__(learning_rate, grad_accum_steps, name=name, **kwargs)
        self.momentum = momentum

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums = [self.add_variable_from_reference(v, "momentum") for v in variables]

    def update_rule(self, gradient, variable, learning_rate):
        momentum = self._momentums[self._get_variable_index(variable)]
        starts = self._cycle_starts(variable.dtype)
        self._accumulate_moment(momentum, ops.cast(gradient, variable.dtype), self.momentum,
                                starts)
        learning_rate = ops.cast(learning_rate, variable.dtype)
        self._on_cycle_end(lambda: self.assign_sub(variable, momentum * learning_rate))

    def get_config(self):
        config = super().get_config()
        config["momentum"] = self.momentum
        return config


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class Adam(_MomentumAccumulation):
    """Adam with accumulation in the moments; epsilon outside the root, `sqrt(v_hat) + eps`.

    The second moment accumulates the mean of squared gradients over a cycle (the source
    post's approximation of the square of the mean). Bias correction counts real updates.

    Example:
    ```python
    optimizer = Adam(learning_rate=1e-4, grad_accum_steps=8)
    ```
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 bias_correction=True, grad_accum_steps=1, name="adam", **kwargs):
        beta_1 = arguments.real(beta_1, "beta_1", minimum=0, below=1)
        beta_2 = arguments.real(beta_2, "beta_2", minimum=0, below=1)
        epsilon = arguments.real(epsilon, "epsilon", above=0)  # 0 gives 0/0 at a zero gradient
        super().__init__(learning_rate, grad_accum_steps, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.bias_correction = bias_correction

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums = [self.add_variable_from_reference(v, "momentum") for v in variables]
        self._velocities = [self.add_variable_from_reference(v, "velocity") for v in variables]

    def update_rule(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        starts = self._cycle_starts(dtype)
        self._accumulate_moment(momentum, gradient, self.beta_1, starts)
        self._accumulate_moment(velocity, ops.square(gradient), self.beta_2, starts)
        learning_rate = ops.cast(learning_rate, dtype)
        root_correction = ops.cast(1.0, dtype)
        if self.bias_correction:
            # The real update this micro-step belongs to (1-based, never 0).
            updates = ops.cast(self.iterations + 1, dtype)
            learning_rate = learning_rate / (1.0 - ops.power(ops.cast(self.beta_1, dtype), updates))
            root_correction = ops.rsqrt(1.0 - ops.power(ops.cast(self.beta_2, dtype), updates))

        def step():
            # lr * m_hat / (sqrt(v_hat) + epsilon), with scalar corrections folded in.
            denominator = ops.sqrt(velocity) * root_correction + self.epsilon
            self.assign_sub(variable, momentum * learning_rate / denominator)

        self._on_cycle_end(step)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "bias_correction": self.bias_correction,
            }
        )
        return config
