"""Trains a small UNILM seq2seq model from scratch to reverse digit strings, then decodes greedily.

`[CLS] 3 1 4 [SEP] 4 1 3 [SEP]`: the source is seen bidirectionally, the target is generated
left to right (the UNILM mask, https://kexue.fm/archives/6933). Runs in about a minute on two
CPU cores:

    python examples/basic_unilm_reverse_digits.py --epochs 12
"""
import argparse
import time

import keras
import numpy as np

from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets
from bert4keras_ext.models import build_transformer_model

PAD, CLS, SEP = 0, 1, 2
FIRST_DIGIT = 3  # token id of the digit 0
MAX_DIGITS = 8
LENGTH = 2 * MAX_DIGITS + 3

CONFIG = {
    "vocab_size": FIRST_DIGIT + 10,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": LENGTH,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def encode(source, target=()):
    """Ids of `[CLS] source [SEP] target [SEP]`; without a target, of `[CLS] source [SEP]`."""
    tokens = [CLS, *source, SEP]
    segments = [0] * len(tokens)
    if len(target):
        tokens += [*target, SEP]
        segments += [1] * (len(target) + 1)
    return tokens, segments


def make_dataset(count, rng):
    tokens = np.zeros((count, LENGTH), "int32")
    segments = np.zeros((count, LENGTH), "int32")
    for row in range(count):
        digits = rng.integers(FIRST_DIGIT, FIRST_DIGIT + 10, size=rng.integers(3, MAX_DIGITS + 1))
        ids, segs = encode(digits, digits[::-1])
        tokens[row, : len(ids)], segments[row, : len(segs)] = ids, segs
    return tokens, segments


def greedy_decode(model, source, max_new_tokens=MAX_DIGITS + 1):
    """Appends the most probable next token until [SEP]; re-runs the model at every step."""
    tokens, segments = encode(source)
    generated = []
    for _ in range(max_new_tokens):
        logits = model.predict_on_batch([np.array([tokens]), np.array([segments])])
        next_id = int(np.argmax(logits[0, -1]))
        if next_id == SEP:
            break
        generated.append(next_id)
        tokens, segments = tokens + [next_id], segments + [1]
    return generated


def as_text(ids):
    return "".join(str(i - FIRST_DIGIT) for i in ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-size", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    tokens, segments = make_dataset(args.train_size, rng)
    model = build_transformer_model(CONFIG, application="unilm", with_mlm="linear")
    model.compile(
        optimizer=keras.optimizers.Adam(5e-4),
        loss=Seq2SeqCrossEntropy(from_logits=True),
    )
    start = time.time()
    history = model.fit(
        [tokens, segments],
        seq2seq_targets(tokens, segments),
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=2,
    )
    losses = ", ".join(f"{value:.3f}" for value in history.history["loss"])
    print(f"trained {args.epochs} epochs in {time.time() - start:.0f} s; loss per epoch: {losses}")

    correct, shown = 0, 0
    for _ in range(50):
        length = rng.integers(3, MAX_DIGITS + 1)
        digits = list(rng.integers(FIRST_DIGIT, FIRST_DIGIT + 10, size=length))
        output = greedy_decode(model, digits)
        correct += output == digits[::-1]
        if shown < 5:
            print(f"  {as_text(digits):>8} -> {as_text(output)}")
            shown += 1
    print(f"exact reversals on 50 new strings (greedy): {correct}/50")


if __name__ == "__main__":
    main()
