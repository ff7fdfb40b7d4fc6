"""Class-conditioned text generation with Conditional LayerNorm (SPEC C2, demo 1).

A causal LM whose every LayerNorm is conditioned on a label embedding (`layer_norm_cond`)
learns short reviews of two sentiments (bundled generated data, or --train with one
"label<TAB>text" per line). Each epoch it samples texts per label (top-p) and prints the share
that follow the requested sentiment.

    python examples/task_conditional_language_model.py --epochs 4
"""
import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from datasets.sentiment_sentences import follows_label, generate  # noqa: E402
from task_seq2seq_math_word_problem import character_vocabulary, output_text  # noqa: E402

from bert4keras_ext.data import sequence_padding  # noqa: E402
from bert4keras_ext.decoding import AutoRegressiveDecoder  # noqa: E402
from bert4keras_ext.losses import Seq2SeqCrossEntropy  # noqa: E402
from bert4keras_ext.models import build_transformer_model  # noqa: E402
from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402

CONFIG = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
          "intermediate_size": 256, "hidden_dropout_prob": 0.0,
          "attention_probs_dropout_prob": 0.0}


def build(vocab_size, maxlen, labels=2):
    label = keras.Input((), dtype="int32", name="Input-Label")
    condition = keras.layers.Embedding(labels, 64, name="Label-Embedding")(label)
    return build_transformer_model(
        dict(CONFIG, vocab_size=vocab_size, max_position_embeddings=maxlen), application="lm",
        with_mlm="linear", layer_norm_cond=condition, additional_input_layers=[label],
    )


class LabelledSampler(AutoRegressiveDecoder):
    """Samples continuations of [CLS] for a label, re-running the model each step."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    @AutoRegressiveDecoder.wraps(default_rtype="logits")
    def predict(self, inputs, output_ids, states):
        (labels,) = inputs
        token_ids = output_ids.astype("int32")
        logits = self.model.predict_on_batch(
            [token_ids, np.zeros_like(token_ids), labels.astype("int32")]
        )[:, -1].astype("float64")
        logits[:, 0] = -np.inf
        return logits


def agreement(sampler, tokenizer, label, count, seed):
    outputs = sampler.random_sample([np.array(label)], count, topp=0.9, seed=seed)
    texts = [output_text(tokenizer, output) for output in outputs]
    return sum(follows_label(t, label) for t in texts) / len(texts), texts[0]


def train(items, epochs, batch_size=32, samples=8, verbose=2):
    tokenizer = Tokenizer(character_vocabulary(text for text, _ in items))
    token_ids = sequence_padding([tokenizer.encode(text)[0] for text, _ in items])
    labels = np.array([label for _, label in items], "int32")
    model = build(tokenizer.vocab_size, token_ids.shape[1])
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=Seq2SeqCrossEntropy(from_logits=True))
    sampler = LabelledSampler(model, start_id=tokenizer.token_to_id("[CLS]"),
                              end_id=tokenizer.token_to_id("[SEP]"), maxlen=token_ids.shape[1])
    scores = []
    for epoch in range(epochs):
        model.fit([token_ids, np.zeros_like(token_ids), labels], token_ids,
                  batch_size=batch_size, epochs=1, verbose=verbose)
        results = [agreement(sampler, tokenizer, label, samples, epoch) for label in (0, 1)]
        scores.append(float(np.mean([share for share, _ in results])))
        print(f"epoch {epoch + 1}: samples following their label {scores[-1]:.2f}; "
              f"negative: {results[0][1]} | positive: {results[1][1]}")
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", help="lines 'label<TAB>text' (default: generated)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-size", type=int, default=3000)
    args = parser.parse_args()
    if args.train:
        with open(args.train, encoding="utf-8") as file:
            items = [(text, int(label)) for label, text in
                     (line.rstrip("\n").split("\t", 1) for line in file if line.strip())]
    else:
        items = generate(args.train_size)
    train(items, args.epochs, args.batch_size)


if __name__ == "__main__":
    main()
