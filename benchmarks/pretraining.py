"""Tokens per second of a masked-LM pretraining step: our loop against Keras `fit` with
`keras.optimizers.Adam`, same model, same data, same run.

Model: BERT-base width with 4 layers (hidden 768, 12 heads, intermediate 3072, vocab 21128),
length 256, batch 8, masked LM over random token records (15% masked). The baseline compiles
the builder's model with Adam and a weighted sparse cross-entropy and runs `fit`, which projects
every position onto the vocabulary. Ours is `pretraining/pretraining.py`'s training step
(custom `strategy.run` loop) twice: at equal work (Adam, the MLM head on all 256 positions) and
as pretraining runs by default here (AdaFactor, the head on at most 64 masked positions per
sequence). Rounds alternate between the candidates; each figure is the median step time.
Model FLOPs utilization is each step's own matmul FLOPs (3x forward) over this machine's
float32 matmul peak, measured here too.

    python benchmarks/pretraining.py [--rounds 3 --steps 4]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "pretraining"))

from data_utils import load_dataset, serialize  # noqa: E402

from bert4keras_ext.models import build_transformer_model  # noqa: E402
from common import StepTimer, matmul_peak_flops  # noqa: E402
from options import argument_parser  # noqa: E402
from tf_route import prepare  # noqa: E402

LAYERS, HIDDEN, HEADS, INTERMEDIATE, VOCAB = 4, 768, 12, 3072, 21128
BATCH, LENGTH = 8, 256
# MLM head positions per sequence of each candidate.
HEAD_POSITIONS = {"Keras fit + Adam": LENGTH, "ours + Adam, equal work": LENGTH,
                  "ours + AdaFactor": LENGTH // 4}
CONFIG = {"vocab_size": VOCAB, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
          "num_attention_heads": HEADS, "intermediate_size": INTERMEDIATE,
          "max_position_embeddings": 512}


def step_flops(head_positions):
    """Matmul FLOPs of one training step: 3x the forward pass, attention scores included, the
    MLM head on `head_positions` of each sequence."""
    per_layer = 2 * 4 * HIDDEN**2 + 2 * 2 * LENGTH * HIDDEN + 2 * 2 * HIDDEN * INTERMEDIATE
    head = 2 * HIDDEN**2 + 2 * HIDDEN * VOCAB
    return 3 * BATCH * (LAYERS * per_layer * LENGTH + head * head_positions)


def write_records(folder, count=64):
    """Random masked-LM records: 15% of the positions masked with [MASK] (id 103)."""
    rng = np.random.default_rng(0)
    path = os.path.join(folder, "bench-00000-of-00001.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(count):
            tokens = rng.integers(1000, VOCAB, size=LENGTH)
            masked = rng.random(LENGTH) < 0.15
            writer.write(serialize({"token_ids": tokens, "mask_ids": np.where(masked, 104, 0)}))
    return os.path.join(folder, "bench-*")


def ours(folder, data, optimizer, head_positions):
    config = os.path.join(folder, "config.json")
    Path(config).write_text(json.dumps(CONFIG))
    args = argument_parser().parse_args([
        "--config", config, "--data", data, "--seq-len", str(LENGTH), "--global-batch-size",
        str(BATCH), "--grad-accum-steps", "1", "--optimizer", optimizer, "--lr", "1e-3",
        "--warmup-steps", "0", "--total-steps", "100000", "--weight-decay", "0",
        "--max-predictions", str(head_positions),
        "--model-dir", os.path.join(folder, f"run-{optimizer}-{head_positions}"),
    ])
    trainer = prepare(args, tf.distribute.get_strategy())
    iterator, one = iter(trainer.dataset()), tf.constant(1, tf.int64)

    def times(steps):
        values = []
        for _ in range(steps):
            start = time.perf_counter()
            trainer.train_steps(iterator, one)
            trainer.metric_sums.numpy()  # waits for the step
            values.append(time.perf_counter() - start)
        return values

    return times, trainer.optimizer


def keras_fit(data):
    model = build_transformer_model(dict(CONFIG), application="encoder", with_mlm="linear",
                                    sequence_length=LENGTH)
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = load_dataset(data, "roberta", LENGTH, BATCH).map(
        lambda inputs, labels, weights: ((inputs[0], inputs[1]), labels, weights))

    def times(steps):
        timer = StepTimer()
        model.fit(dataset, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[timer])
        return timer.intervals

    return times, model.optimizer


def state_megabytes(optimizer):
    return sum(int(np.prod(v.shape)) * 4 for v in optimizer.variables) / 2**20


def main():
    parser = argparse.ArgumentParser(description="masked-LM pretraining step throughput")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = write_records(folder)
        candidates = {name: ours(folder, data, optimizer, HEAD_POSITIONS[name])
                      for name, optimizer in (("ours + Adam, equal work", "adam"),
                                              ("ours + AdaFactor", "adafactor"))}
        candidates = {"Keras fit + Adam": keras_fit(data), **candidates}
        for run, _ in candidates.values():  # warm-up: tracing and the first steps
            run(2)
        times = {name: [] for name in candidates}
        for _ in range(args.rounds):
            for name, (run, _) in candidates.items():
                times[name] += run(args.steps)
    peak = matmul_peak_flops()

    print(f"masked-LM step, batch {BATCH} x length {LENGTH}, {LAYERS} layers / hidden {HIDDEN} / "
          f"vocab {VOCAB}; median of {args.rounds * args.steps} steps")
    print(f"float32 matmul peak of this machine: {peak / 1e9:.1f} GFLOP/s")
    print(f"{'':<28}{'ms/step':>9}{'tokens/s':>10}{'GFLOP/step':>12}{'MFU':>7}"
          f"{'optimizer state MiB':>21}")
    speed = {}
    for name, values in times.items():
        seconds = statistics.median(values)
        speed[name] = BATCH * LENGTH / seconds
        flops = step_flops(HEAD_POSITIONS[name])
        print(f"{name:<28}{seconds * 1e3:>9.0f}{speed[name]:>10.0f}{flops / 1e9:>12.0f}"
              f"{flops / seconds / peak:>7.1%}{state_megabytes(candidates[name][1]):>21.1f}")
    for name in list(candidates)[1:]:
        print(f"speed ratio {name} / Keras fit: {speed[name] / speed['Keras fit + Adam']:.2f}")


if __name__ == "__main__":
    main()
