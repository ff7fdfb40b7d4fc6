"""Timing helpers shared by the benchmarks: medians of repeated runs, per-step times of `fit`
and the matmul peak."""
import statistics
import time

import keras
import numpy as np
import tensorflow as tf


def median_seconds(function, repeats, warmup=2):
    """Median wall time of `function()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(functions, repeats, warmup=2):
    """Medians for several functions timed in turn, so drifts in machine load hit all alike."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


class StepTimer(keras.callbacks.Callback):
    """Per-step wall times of `fit`, end to end (data included): `intervals` has one fewer
    entry than the steps run, the first step only starting the clock."""

    def __init__(self):
        super().__init__()
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        self.marks.append(time.perf_counter())

    @property
    def intervals(self):
        return list(np.diff(self.marks))


def matmul_peak_flops(size=2048, repeats=7):
    """float32 FLOP/s of a large square matmul on this machine: the practical peak."""
    a = tf.constant(np.random.default_rng(0).normal(size=(size, size)).astype("float32"))

    @tf.function
    def product():
        return tf.matmul(a, a)

    seconds = median_seconds(lambda: product().numpy(), repeats)
    return 2 * size**3 / seconds
