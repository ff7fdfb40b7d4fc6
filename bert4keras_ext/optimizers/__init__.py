"""Optimizers whose logic holds under tf.distribute (keras.ops only)."""
from bert4keras_ext.optimizers.adafactor import AdaFactor, RelativeStepSize
from bert4keras_ext.optimizers.callbacks import NonFiniteGradientCheck, SwapEMAWeights
from bert4keras_ext.optimizers.extensible import Extensible
from bert4keras_ext.optimizers.extensions import (
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_layer_adaptation,
    extend_with_piecewise_linear_lr,
    extend_with_weight_decay,
)
from bert4keras_ext.optimizers.momentum import SGDM, Adam
from bert4keras_ext.optimizers.schedules import PiecewiseLinearSchedule

__all__ = [
    "AdaFactor",
    "Adam",
    "Extensible",
    "NonFiniteGradientCheck",
    "PiecewiseLinearSchedule",
    "RelativeStepSize",
    "SGDM",
    "SwapEMAWeights",
    "extend_with_exponential_moving_average",
    "extend_with_gradient_accumulation",
    "extend_with_layer_adaptation",
    "extend_with_piecewise_linear_lr",
    "extend_with_weight_decay",
]
