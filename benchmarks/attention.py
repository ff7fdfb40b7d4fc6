"""Attention timings: 'softmax' vs 'softmax_plus', and 'softmax' vs 'performer'.

1. Forward+backward of MultiHeadAttention, batch 16, length 512, 12 heads of 64 (hidden 768),
   with and without a key-padding mask (valid lengths spread over 256..512); both layers in the
   same process on the same inputs and weights, interleaved; medians and their ratio.
2. Forward time and peak memory of 'softmax' vs 'performer' (256 features) at lengths 512, 2048
   and 8192, batch 1, 12 heads of 64. Each (normalization, length) runs in a fresh process so
   that its peak resident memory (above the process's memory before the first call) is its own.

    python benchmarks/attention.py [--repeats 7] [--skip-performer]
"""
import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert4keras_ext.layers import MultiHeadAttention, PerformerAttention  # noqa: E402
from common import interleaved_medians, median_seconds  # noqa: E402

PERFORMER_LENGTHS = (512, 2048, 8192)


def make_step(layer, x, mask):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer([x, x, x], attention_mask=mask)))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    return lambda: [g.numpy() for g in step()]


def measure_forward(normalization, length, repeats):
    """In this process: median forward ms and peak RSS growth (MiB) of one configuration."""
    x = tf.constant(np.random.default_rng(0).normal(size=(1, length, 768)).astype("float32"))
    if normalization == "performer":
        layer = PerformerAttention(12, 64, num_random_features=256, feature_seed=0)
    else:
        layer = MultiHeadAttention(12, 64, normalization=normalization)
    layer.build([x.shape] * 3)
    forward = tf.function(lambda: layer([x, x, x]))
    before = _status_kib("VmRSS")
    # Writing 5 to clear_refs resets the peak (VmHWM) to the current resident size (Linux).
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")
    seconds = median_seconds(lambda: forward().numpy(), repeats)
    return {"ms": seconds * 1e3, "peak_mib": (_status_kib("VmHWM") - before) / 1024}


def _status_kib(field):
    with open("/proc/self/status") as file:
        line = next(line for line in file if line.startswith(field + ":"))
    return int(line.split()[1])


def performer_comparison(repeats):
    print(f"\nforward, batch 1, 12 heads x 64, Performer with 256 features; median of {repeats} "
          f"runs, peak memory above the process's baseline")
    print(f"{'length':>7}{'softmax ms':>12}{'performer ms':>14}{'speed-up':>10}"
          f"{'softmax MiB':>13}{'performer MiB':>15}")
    faster_from = None
    for length in PERFORMER_LENGTHS:
        result = {}
        for normalization in ("softmax", "performer"):
            command = [sys.executable, __file__, "--measure", normalization, str(length),
                       "--repeats", str(repeats)]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            result[normalization] = json.loads(output.strip().splitlines()[-1])
        speedup = result["softmax"]["ms"] / result["performer"]["ms"]
        if speedup > 1 and faster_from is None:
            faster_from = length
        print(f"{length:>7}{result['softmax']['ms']:>12.1f}{result['performer']['ms']:>14.1f}"
              f"{speedup:>10.2f}{result['softmax']['peak_mib']:>13.0f}"
              f"{result['performer']['peak_mib']:>15.0f}")
    print("performer is faster from length "
          f"{faster_from}" if faster_from else "performer is not faster at these lengths")


def main():
    parser = argparse.ArgumentParser(description="attention timings")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-performer", action="store_true")
    parser.add_argument("--measure", nargs=2, metavar=("NORMALIZATION", "LENGTH"),
                        help=argparse.SUPPRESS)  # one configuration, in a child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_forward(args.measure[0], int(args.measure[1]), args.repeats)))
        return

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, args.length, 768)).astype("float32"))
    valid = rng.integers(args.length // 2, args.length + 1, size=args.batch)
    padding = (np.arange(args.length)[None, :] < valid[:, None])[:, None, None, :]

    layers = {}
    for normalization in ("softmax", "softmax_plus"):
        layers[normalization] = MultiHeadAttention(12, 64, normalization=normalization)
        layers[normalization].build([x.shape] * 3)
    layers["softmax_plus"].set_weights(layers["softmax"].get_weights())

    print(f"MultiHeadAttention forward+backward, batch {args.batch}, length {args.length}, "
          f"12 heads x 64; median of {args.repeats} runs")
    print(f"{'mask':<14}{'softmax (ms)':>14}{'softmax_plus (ms)':>19}{'ratio':>8}")
    for label, mask in (("none", None), ("key padding", tf.constant(padding))):
        medians = interleaved_medians(
            {name: make_step(layer, x, mask) for name, layer in layers.items()}, args.repeats
        )
        ratio = medians["softmax_plus"] / medians["softmax"]
        print(f"{label:<14}{medians['softmax'] * 1e3:>14.1f}"
              f"{medians['softmax_plus'] * 1e3:>19.1f}{ratio:>8.3f}")
    if not args.skip_performer:
        performer_comparison(args.repeats)


if __name__ == "__main__":
    main()
