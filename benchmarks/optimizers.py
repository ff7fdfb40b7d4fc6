"""Optimizer state size and step time for BERT-base shapes, ours against Keras's, one run.

Variables have the shapes of BERT-base (vocab 21128, hidden 768, 12 layers, MLM head); each
optimizer applies fixed random gradients to them inside a `tf.function`. State bytes count
every optimizer variable (slots, buffers, counters) against the parameters' bytes; the step
time is the median over repetitions after warm-up.

    python benchmarks/optimizers.py [--repeats 5]
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert4keras_ext.optimizers import (  # noqa: E402
    AdaFactor,
    Adam,
    extend_with_gradient_accumulation,
)
from common import median_seconds  # noqa: E402

MICRO_STEPS = 4  # one measurement: a whole accumulation cycle


def bert_base_shapes(vocab=21128, hidden=768, layers=12, intermediate=3072, positions=512):
    shapes = [(vocab, hidden), (positions, hidden), (2, hidden), (hidden,), (hidden,)]
    for _ in range(layers):
        shapes += [(hidden, hidden), (hidden,)] * 4  # query, key, value, output
        shapes += [(hidden,), (hidden,)]  # attention LayerNorm
        shapes += [(hidden, intermediate), (intermediate,), (intermediate, hidden), (hidden,)]
        shapes += [(hidden,), (hidden,)]  # feed-forward LayerNorm
    shapes += [(hidden, hidden), (hidden,)]  # pooler
    shapes += [(hidden, hidden), (hidden,), (hidden,), (hidden,), (vocab,)]  # MLM head
    return shapes


def nbytes(variables):
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


OPTIMIZERS = {
    "keras Adam": lambda: keras.optimizers.Adam(1e-4),
    "keras Adafactor": lambda: keras.optimizers.Adafactor(1e-3),
    "ours AdaFactor beta1=0": lambda: AdaFactor(1e-3),
    "ours AdaFactor beta1=0.9": lambda: AdaFactor(1e-3, beta1=0.9),
    "ours Adam grad_accum_steps=4": lambda: Adam(1e-4, grad_accum_steps=4),
    "ours buffered Adam grad_accum_steps=4":
        lambda: extend_with_gradient_accumulation(Adam)(1e-4, grad_accum_steps=4),
    "keras Adam gradient_accumulation_steps=4":
        lambda: keras.optimizers.Adam(1e-4, gradient_accumulation_steps=4),
}


def measure(make_optimizer, shapes, gradients, repeats):
    """(optimizer state bytes, seconds per micro-step) on fresh BERT-base variables."""
    variables = [keras.Variable(np.zeros(s, "float32") + 0.02) for s in shapes]
    optimizer = make_optimizer()
    optimizer.build(variables)

    @tf.function
    def step():
        optimizer.apply(gradients, variables)

    def cycle():
        for _ in range(MICRO_STEPS):
            step()

    return nbytes(optimizer.variables), median_seconds(cycle, repeats) / MICRO_STEPS


def main():
    parser = argparse.ArgumentParser(description="optimizer state and step time, BERT-base")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    shapes = bert_base_shapes()
    gradients = [tf.constant(rng.normal(size=s).astype("float32") * 1e-3) for s in shapes]
    parameter_bytes = sum(int(np.prod(s)) * 4 for s in shapes)
    print(f"BERT-base shapes: {len(shapes)} variables, {parameter_bytes / 4e6:.1f} M parameters "
          f"({parameter_bytes / 2**20:.0f} MiB); ms per micro-step, median of {args.repeats} "
          f"{MICRO_STEPS}-step runs")
    print(f"{'optimizer':<42}{'state / params':>15}{'state MiB':>11}{'ms/step':>9}")
    for name, make in OPTIMIZERS.items():
        state, seconds = measure(make, shapes, gradients, args.repeats)
        print(f"{name:<42}{state / parameter_bytes:>14.4f}x{state / 2**20:>11.1f}"
              f"{seconds * 1e3:>9.0f}")

if __name__ == "__main__":
    main()
