"""AdaFactor with sublinear memory.

Source: "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost" (Shazeer and Stern, 2018,
https://arxiv.org/abs/1804.04235) and the post "AdaFactor优化器浅析（附开源实现）"
(https://kexue.fm/archives/7302)."""
import keras
from keras import ops

from bert4keras_ext import arguments
from bert4keras_ext.optimizers.extensible import Extensible, matches_any


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class RelativeStepSize(keras.optimizers.schedules.LearningRateSchedule):
    """AdaFactor's default step size `min(1e-2, 1 / sqrt(t))`, times `scale`."""

    def __init__(self, scale=1.0):
        self.scale = arguments.real(scale, "scale", above=0)

    def __call__(self, step):
        t = ops.cast(step, "float32") + 1.0
        return ops.minimum(1e-2, ops.rsqrt(t)) * self.scale

    def get_config(self):
        return {"scale": self.scale}


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class AdaFactor(Extensible, keras.optimizers.Optimizer):
    """AdaFactor: RMSProp-like steps with a factored second moment and update clipping.

    For a matrix gradient `g` (m x n) it keeps row and column means of `g^2 + epsilon1` and
    reconstructs the second moment as `v = R C^T / mean(R)`: m + n floats instead of m n. It
    factors over the two largest axes when the second largest has at least
    `min_dim_size_to_factor` entries; other variables keep a full `v`. One step:

        beta2_t = 1 - t^-0.8                      (when beta2 is None)
        u = g / sqrt(v);  u /= max(1, RMS(u) / clipping_threshold)
        m = beta1 m + (1 - beta1) u;  u = m        (only when beta1 > 0)
        u *= max(epsilon2, RMS(w))                 (multiply_by_parameter_scale)
        w -= learning_rate * u

    With `beta1=0` a 768 x 3072 kernel costs 3840 floats of state (0.16% of the kernel).

    Example:
    ```python
    model.compile(optimizer=AdaFactor(learning_rate=1e-3), loss="mse")
    ```

    Args:
        learning_rate: float or schedule; None means `min(1e-2, 1/sqrt(t))`, times 0.05
            without parameter scaling.
        beta1: momentum of the clipped update (0 keeps no momentum slot).
        beta2: second-moment decay; None means `1 - t^-0.8`.
        epsilon1: added to the squared gradient.
        epsilon2: lower bound of the parameter scale.
        multiply_by_parameter_scale: scale updates by the parameter's RMS (relative steps).
        clipping_threshold: cap of the update's RMS (None: no clipping).
        min_dim_size_to_factor: factor only when the second largest axis is at least this.
        exclude_from_parameter_scale: regular expressions of variable paths that take
            absolute steps.
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta1=0.0,
        beta2=None,
        epsilon1=1e-30,
        epsilon2=1e-3,
        multiply_by_parameter_scale=True,
        clipping_threshold=1.0,
        min_dim_size_to_factor=128,
        exclude_from_parameter_scale=None,
        name="adafactor",
        **kwargs,
    ):
        if learning_rate is None:
            learning_rate = RelativeStepSize(1.0 if multiply_by_parameter_scale else 0.05)
        beta1 = arguments.real(beta1, "beta1", minimum=0, below=1)
        if beta2 is not None:
            beta2 = arguments.real(beta2, "beta2", minimum=0, below=1)
        epsilon1 = arguments.real(epsilon1, "epsilon1", minimum=0)
        epsilon2 = arguments.real(epsilon2, "epsilon2", minimum=0)
        if clipping_threshold is not None:  # None: no clipping; 0 would freeze training
            clipping_threshold = arguments.real(clipping_threshold, "clipping_threshold",
                                                above=0)
        min_dim_size_to_factor = arguments.integer(min_dim_size_to_factor,
                                                   "min_dim_size_to_factor", minimum=1)
        excluded = arguments.patterns(exclude_from_parameter_scale, "exclude_from_parameter_scale")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon1 = epsilon1
        self.epsilon2 = epsilon2
        self.multiply_by_parameter_scale = multiply_by_parameter_scale
        self.clipping_threshold = clipping_threshold
        self.min_dim_size_to_factor = min_dim_size_to_factor
        self.exclude_from_parameter_scale = excluded

    def factored_axes(self, shape):
        """(row axis, column axis) to factor over, or None: the two largest axes."""
        if len(shape) < 2:
            return None
        largest, second = sorted(range(len(shape)), key=lambda axis: -shape[axis])[:2]
        if shape[second] < self.min_dim_size_to_factor:
            return None
        return largest, second

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._rows, self._columns, self._second_moments, self._momentums = [], [], [], []
        self._parameter_scaled = []
        for variable in variables:
            shape = tuple(variable.shape)
            axes = self.factored_axes(shape)
            if axes is None:
                self._rows.append(None)
                self._columns.append(None)
                self._second_moments.append(
                    self.add_variable_from_reference(variable, "second_moment")
                )
            else:
                row_axis, column_axis = axes
                # Rows average over the column axis and keep the row axis, and vice versa.
                self._rows.append(self.add_variable(
                    shape=shape[:column_axis] + shape[column_axis + 1:], name="row_moment"
                ))
                self._columns.append(self.add_variable(
                    shape=shape[:row_axis] + shape[row_axis + 1:], name="column_moment"
                ))
                self._second_moments.append(None)
            self._momentums.append(
                self.add_variable_from_reference(variable, "momentum") if self.beta1 else None
            )
            self._parameter_scaled.append(
                self.multiply_by_parameter_scale
                and not matches_any(variable.path, self.exclude_from_parameter_scale)
            )

    def update_rule(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        learning_rate = ops.cast(learning_rate, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        beta2 = 1.0 - ops.power(t, -0.8) if self.beta2 is None else ops.cast(self.beta2, dtype)
        squared = ops.square(gradient) + self.epsilon1

        axes = self.factored_axes(tuple(variable.shape))
        if axes is None:
            moment = self._second_moments[index]
            self.assign(moment, beta2 * moment + (1.0 - beta2) * squared)
            second_moment = moment
        else:
            row_axis, column_axis = axes
            rows, columns = self._rows[index], self._columns[index]
            self.assign(rows, beta2 * rows + (1.0 - beta2) * ops.mean(squared, column_axis))
            self.assign(columns, beta2 * columns + (1.0 - beta2) * ops.mean(squared, row_axis))
            row_factor = ops.expand_dims(rows, column_axis)
            column_factor = ops.expand_dims(columns, row_axis)
            second_moment = row_factor * column_factor / ops.mean(
                row_factor, axis=row_axis, keepdims=True
            )

        update = gradient / ops.sqrt(second_moment)
        if self.clipping_threshold is not None:
            update = update / ops.maximum(1.0, rms(update) / self.clipping_threshold)
        if self.beta1:
            momentum = self._momentums[index]
            self.assign(momentum, self.beta1 * momentum + (1.0 - self.beta1) * update)
            update = momentum
        if self._parameter_scaled[index]:
            update = update * ops.maximum(self.epsilon2, rms(variable))
        self.assign_sub(variable, learning_rate * update)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta1": self.beta1,
                "beta2": self.beta2,
                "epsilon1": self.epsilon1,
                "epsilon2": self.epsilon2,
                "multiply_by_parameter_scale": self.multiply_by_parameter_scale,
                "clipping_threshold": self.clipping_threshold,
                "min_dim_size_to_factor": self.min_dim_size_to_factor,
                "exclude_from_parameter_scale": self.exclude_from_parameter_scale,
            }
        )
        return config


def rms(x):
    return ops.sqrt(ops.mean(ops.square(x)))
