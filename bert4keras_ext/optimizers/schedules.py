"""Learning-rate schedules: bert4keras's piecewise-linear schedule
(https://github.com/bojone/bert4keras)."""
import keras
from keras import ops

from bert4keras_ext import arguments


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class PiecewiseLinearSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """bert4keras's `piecewise_linear`: `learning_rate` times a piecewise-linear multiplier.

    `schedule` maps steps to multipliers, e.g. `{1000: 1.0, 2000: 0.1}`: linear from 0 at step
    0 (unless step 0 is given) to 1.0 at step 1000, down to 0.1 at 2000, constant afterwards.
    Steps are distinct integers >= 0, taken in increasing order (bert4keras sorts them too);
    multipliers are finite numbers >= 0. `(step, multiplier)` pairs work as well as a dict.
    Our optimizers pass the number of real updates, so under gradient accumulation the keys
    count updates, not micro-steps.

    Example:
    ```python
    warmup_then_decay = PiecewiseLinearSchedule({1000: 1.0, 10000: 0.0}, learning_rate=1e-4)
    optimizer = Adam(learning_rate=warmup_then_decay)
    ```
    """

    def __init__(self, schedule, learning_rate=1.0):
        points = arguments.schedule(schedule, "schedule")
        if points[0][0] != 0:
            points = [(0, 0.0)] + points
        self.points = points
        self.learning_rate = arguments.real(learning_rate, "learning_rate", minimum=0)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        multiplier = ops.full_like(step, self.points[-1][1])
        # From the last segment backwards, so earlier segments take precedence.
        for (x0, y0), (x1, y1) in reversed(list(zip(self.points, self.points[1:]))):
            inside = y0 + (y1 - y0) * (step - x0) / (x1 - x0)
            multiplier = ops.where(step < x1, inside, multiplier)
        return self.learning_rate * multiplier

    def get_config(self):
        return {"schedule": [list(point) for point in self.points],
                "learning_rate": self.learning_rate}
