"""Forward+backward time of MultiHeadAttention, normalization 'softmax' vs 'softmax_plus'.

Batch 16, length 512, 12 heads of 64 (hidden 768), with and without a key-padding mask (valid
lengths spread over 256..512). Both layers run in the same process on the same inputs and
weights, interleaved; the median over repetitions is reported with the ratio.

    python benchmarks/attention.py [--repeats 7]
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert4keras_ext.layers import MultiHeadAttention  # noqa: E402
from common import interleaved_medians  # noqa: E402


def make_step(layer, x, mask):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer([x, x, x], attention_mask=mask)))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    return lambda: [g.numpy() for g in step()]


def main():
    parser = argparse.ArgumentParser(description="softmax vs softmax_plus attention timing")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
