"""Tokens per second of one UNILM training step: bert4keras_ext against keras-hub, same run.

Model: 4 layers, hidden 256, 4 heads, intermediate 1024, vocab 8000, dropout 0.1, tanh-GELU
(keras-hub's); batch 16,
length 256 (192 source + 64 target); Adam; `fit` on fixed batches. The baseline is keras-hub's
`BertBackbone` with a full-sequence Dense output layer of the same shapes (install it with
`pip install -e '.[bench]'`). Both models are timed in alternating rounds; each figure is the
median step time over all rounds after warm-up. The step's FLOPs (3x the forward matmuls) are
shown as a fraction of this machine's float32 matmul peak, measured in the same run.

    python benchmarks/train_step.py [--rounds 3 --steps 8]
"""
import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets  # noqa: E402
from bert4keras_ext.models import build_transformer_model  # noqa: E402
from common import StepTimer, matmul_peak_flops  # noqa: E402

LAYERS, HIDDEN, HEADS, INTERMEDIATE, VOCAB = 4, 256, 4, 1024, 8000
BATCH, SOURCE, TARGET = 16, 192, 64
LENGTH = SOURCE + TARGET


def forward_flops_per_token(mlm_transform):
    """Matmul FLOPs of one token's forward pass (attention scores and weighted sums included)."""
    per_layer = 2 * 4 * HIDDEN**2 + 2 * 2 * LENGTH * HIDDEN + 2 * 2 * HIDDEN * INTERMEDIATE
    head = 2 * HIDDEN * VOCAB + (2 * HIDDEN**2 if mlm_transform else 0)
    return LAYERS * per_layer + head


def make_batches(steps):
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, VOCAB, size=(BATCH, LENGTH)).astype("int32")
    tokens[:, 0], tokens[:, SOURCE - 1], tokens[:, -1] = 2, 3, 3
    segments = np.zeros_like(tokens)
    segments[:, SOURCE:] = 1
    repeat = lambda a: np.tile(a, (steps, 1))  # noqa: E731
    return repeat(tokens), repeat(segments)


def ours(steps, jit_compile):
    tokens, segments = make_batches(steps)
    # keras-hub's BertBackbone hard-codes the tanh approximation of GELU: use the same.
    config = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                  max_position_embeddings=LENGTH, hidden_act="gelu_tanh")
    model = build_transformer_model(config, application="unilm", with_mlm="linear")
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=Seq2SeqCrossEntropy(from_logits=True), jit_compile=jit_compile)
    targets = np.asarray(seq2seq_targets(tokens, segments))
    return model, [tokens, segments], targets, None


def keras_hub_baseline(steps):
    import keras_hub

    tokens, segments = make_batches(steps)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, hidden_dim=HIDDEN,
        intermediate_dim=INTERMEDIATE, max_sequence_length=LENGTH, dropout=0.1,
    )
    logits = keras.layers.Dense(VOCAB)(backbone.output["sequence_output"])
    model = keras.Model(backbone.input, logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = {"token_ids": tokens, "segment_ids": segments, "padding_mask": tokens > 0}
    labels = np.roll(tokens, -1, axis=1)
    weights = np.roll(segments, -1, axis=1).astype("float32")
    return model, inputs, labels, weights


def step_times(setup, steps):
    model, x, y, weights = setup
    timer = StepTimer()
    model.fit(x, y, sample_weight=weights, batch_size=BATCH, epochs=1, verbose=0,
              shuffle=False, callbacks=[timer])
    return timer.intervals


def main():
    parser = argparse.ArgumentParser(description="UNILM training-step throughput")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("--jit-compile", default="true", choices=["true", "false"])
    args = parser.parse_args()

    steps = args.steps + 1  # the first step of each round only starts the clock
    candidates = {
        "bert4keras_ext": ours(steps, args.jit_compile == "true"),
        "keras-hub BertBackbone": keras_hub_baseline(steps),
    }
    flops = {
        "bert4keras_ext": 3 * forward_flops_per_token(True) * BATCH * LENGTH,
        "keras-hub BertBackbone": 3 * forward_flops_per_token(False) * BATCH * LENGTH,
    }
    for setup in candidates.values():  # warm-up: tracing and the first steps
        step_times(setup, steps)
    times = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, setup in candidates.items():
            times[name] += step_times(setup, steps)
    peak = matmul_peak_flops()

    print(f"UNILM training step, batch {BATCH} x length {LENGTH}, 4 layers / hidden 256 / "
          f"vocab 8000, Adam; median of {args.rounds * args.steps} steps")
    print(f"float32 matmul peak of this machine: {peak / 1e9:.1f} GFLOP/s")
    print(f"{'model':<26}{'ms/step':>9}{'tokens/s':>10}{'GFLOP/step':>12}{'of peak':>9}")
    speed = {}
    for name, values in times.items():
        seconds = statistics.median(values)
        speed[name] = BATCH * LENGTH / seconds
        print(f"{name:<26}{seconds * 1e3:>9.1f}{speed[name]:>10.0f}{flops[name] / 1e9:>12.1f}"
              f"{flops[name] / seconds / peak:>9.1%}")
    print(f"speed ratio bert4keras_ext / keras-hub: "
          f"{speed['bert4keras_ext'] / speed['keras-hub BertBackbone']:.2f}")


if __name__ == "__main__":
    main()
