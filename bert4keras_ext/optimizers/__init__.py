"""Optimizers whose logic holds under tf.distribute (keras.ops only)."""
import keras

from bert4keras_ext.optimizers.adafactor import AdaFactor, RelativeStepSize
from bert4keras_ext.optimizers.callbacks import NonFiniteGradientCheck, SwapEMAWeights
from bert4keras_ext.optimizers.extensible import Extensible
from bert4keras_ext.optimizers.extensions import (
    _register_compositions,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_layer_adaptation,
    extend_with_lazy_optimization,
    extend_with_lookahead,
    extend_with_parameter_wise_lr,
    extend_with_piecewise_linear_lr,
    extend_with_weight_decay,
)
from bert4keras_ext.optimizers.momentum import SGDM, Adam
from bert4keras_ext.optimizers.schedules import PiecewiseLinearSchedule

_register_compositions([Adam, SGDM, AdaFactor] + [
    getattr(keras.optimizers, name) for name in (
        "SGD", "RMSprop", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "Adafactor",
        "Nadam", "Ftrl", "Lion", "Lamb", "Muon") if hasattr(keras.optimizers, name)])

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
    "extend_with_lazy_optimization",
    "extend_with_lookahead",
    "extend_with_parameter_wise_lr",
    "extend_with_piecewise_linear_lr",
    "extend_with_weight_decay",
]
