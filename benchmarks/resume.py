"""Time to the first batch when a pretraining run resumes at sequence N: a shuffle buffer
followed by `skip(N)` (the usual tf.data way, and this project's loader before) against
`pretraining/data_utils.load_dataset`, whose order is found from the shards' record counts.

Data: 40 shards x 1,000 masked-LM records of length 128 (random tokens) with their manifest;
batch 32; both pipelines shuffle over 10,000 records and parse the same way. Each figure is the
median over `--repeats` fresh pipelines; the ratio row compares resuming at 10,000 with 100.

    python benchmarks/resume.py [--repeats 5]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "pretraining"))

from data_utils import (  # noqa: E402
    _parsed,
    load_dataset,
    serialize,
    training_example,
    write_manifest,
)

SHARDS, PER_SHARD, LENGTH, BATCH, BUFFER = 40, 1000, 128, 32, 10000
POSITIONS = (100, 10_000, 1_000_000)


def write_shards(folder):
    rng = np.random.default_rng(0)
    prefix = os.path.join(folder, "bench")
    paths = [f"{prefix}-{i:05d}-of-{SHARDS:05d}.tfrecord" for i in range(SHARDS)]
    for path in paths:
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(PER_SHARD):
                tokens = rng.integers(1000, 21128, size=LENGTH)
                masked = rng.random(LENGTH) < 0.15
                writer.write(serialize({"token_ids": tokens,
                                        "mask_ids": np.where(masked, 104, 0)}))
    write_manifest(prefix, "roberta", LENGTH, paths, [PER_SHARD] * SHARDS)
    return paths


def buffer_then_skip(paths, skip):
    records = tf.data.TFRecordDataset(paths).repeat().shuffle(BUFFER, seed=0).skip(skip)
    dataset = _parsed(records, "roberta", LENGTH).map(
        lambda features: training_example(features, "roberta"))
    return dataset.batch(BATCH, drop_remainder=True)


def seconds_to_first_batch(make_dataset):
    start = time.perf_counter()
    next(iter(make_dataset()))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_shards(folder)
        pattern = os.path.join(folder, "bench-*")
        candidates = {
            "shuffle buffer + skip": lambda skip: buffer_then_skip(paths, skip),
            "load_dataset": lambda skip: load_dataset(pattern, "roberta", LENGTH, BATCH,
                                                      shuffle_block=BUFFER, skip=skip),
        }
        medians = {}
        for name, make in candidates.items():
            for skip in POSITIONS:
                times = [seconds_to_first_batch(lambda: make(skip))
                         for _ in range(args.repeats)]
                medians[name, skip] = statistics.median(times)
    print(f"{SHARDS} shards x {PER_SHARD} records, length {LENGTH}, batch {BATCH}, "
          f"shuffle over {BUFFER}; median of {args.repeats} fresh pipelines (ms to first batch)")
    print(f"{'resume at sequence':<24}" + "".join(f"{name:>24}" for name in candidates))
    for skip in POSITIONS:
        print(f"{skip:<24,}" + "".join(f"{medians[name, skip] * 1e3:>24.1f}"
                                        for name in candidates))
    print(f"{'10,000 / 100':<24}" + "".join(
        f"{medians[name, 10_000] / medians[name, 100]:>24.2f}" for name in candidates))


if __name__ == "__main__":
    main()
