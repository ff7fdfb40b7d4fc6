"""Class-conditioned text generation with Conditional LayerNorm.

Source: the post "基于Conditional Layer Normalization的条件文本生成"
(https://kexue.fm/archives/7124), its first demo.

A causal LM whose every LayerNorm is conditioned on a label embedding (`layer_norm_cond`)
learns short reviews of two sentiments (bundled generated data, or --train/--valid files with
one "label<TAB>text" per line). Each epoch prints the validation loss and, per label, a text
sampled with top-p; on the bundled data it also prints the share of samples that follow the
requested sentiment.

    python examples/task_conditional_language_model.py --epochs 4
    python examples/task_conditional_language_model.py --train reviews.tsv --valid dev.tsv \\
        --config bert/bert_config.json --checkpoint bert/bert_model.ckpt --vocab bert/vocab.txt
"""

import keras
import numpy as np

from bert4keras_ext.data import sequence_padding
from bert4keras_ext.decoding import AutoRegressiveDecoder
from bert4keras_ext.losses import Seq2SeqCrossEntropy
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.tasks import common as task_common
from bert4keras_ext.tasks.synthetic.sentiment_sentences import follows_label, generate

SMALL_MODEL = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 256, "hidden_dropout_prob": 0.0,
               "attention_probs_dropout_prob": 0.0}
LABEL_EMBEDDING_SIZE = 128  # As in the source post: a 128-d class embedding is the condition


def build(config, checkpoint=None, labels=2):
    """Causal LM (with MLM head as output layer) whose LayerNorms follow a label embedding."""
    label = keras.Input((), dtype="int32", name="Input-Label")
    condition = keras.layers.Embedding(labels, LABEL_EMBEDDING_SIZE, name="Label-Embedding")(label)
    return build_transformer_model(config, checkpoint, application="lm", with_mlm="linear",
                                   layer_norm_cond=condition, additional_input_layers=[label])


class LabelledSampler(AutoRegressiveDecoder):
    """Samples continuations of [CLS] for a label, re-running the model each step."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    @AutoRegressiveDecoder.wraps(default_rtype="logits")
    def predict(self, inputs, output_ids, states):
        (labels,) = inputs
        token_ids = output_ids.astype("int32")
        # A direct call, not predict_on_batch: under MirroredStrategy Keras 3.15's
        # predict_on_batch feeds the whole batch to every replica and returns it twice.
        logits = self.model([token_ids, np.zeros_like(token_ids), labels.astype("int32")],
                            training=False)
        logits = np.asarray(logits)[:, -1].astype("float64")
        logits[:, 0] = -np.inf
        return logits


def encode(tokenizer, items, maxlen):
    """Model inputs ([token ids, segment ids, labels]) and targets (the token ids)."""
    token_ids = sequence_padding([tokenizer.encode(text, maxlen=maxlen)[0] for text, _ in items])
    labels = np.array([label for _, label in items], "int32")
    return [token_ids, np.zeros_like(token_ids), labels], token_ids


class SampleReport(keras.callbacks.Callback):
    """Each epoch: one sampled text per label, and with `judge` the share that follows it."""

    def __init__(self, sampler, tokenizer, samples, judge=None):
        super().__init__()
        self.sampler, self.tokenizer, self.samples, self.judge = sampler, tokenizer, samples, judge
        self.scores = []

    def on_epoch_end(self, epoch, logs=None):
        texts = {label: [task_common.output_text(self.tokenizer, ids) for ids in
                         self.sampler.random_sample([np.array(label)], self.samples, topp=0.9,
                                                    seed=epoch)]
                 for label in (0, 1)}
        line = (f"epoch {epoch + 1}: val_loss {logs['val_loss']:.4f}; "
                f"negative: {texts[0][0]} | positive: {texts[1][0]}")
        if self.judge:
            self.scores.append(float(np.mean([self.judge(text, label)
                                              for label in texts for text in texts[label]])))
            line += f"; samples following their label {self.scores[-1]:.2f}"
        print(line)


def train(items, valid, epochs, batch_size=32, lr=2e-3, maxlen=128, config=None,
          checkpoint=None, vocab=None, strategy=None, samples=8, judge=follows_label, verbose=2):
    """Trains on (text, label) pairs; returns the per-epoch label-following shares."""
    tokenizer = task_common.make_tokenizer(vocab, (text for text, _ in items + valid))
    inputs, targets = encode(tokenizer, items, maxlen)
    length = targets.shape[1]
    strategy = strategy or task_common.make_strategy("default")
    with strategy.scope():
        model = build(task_common.model_config(config, SMALL_MODEL, tokenizer, length),
                      checkpoint)
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=Seq2SeqCrossEntropy(from_logits=True))
    sampler = LabelledSampler(model, start_id=tokenizer.token_to_id("[CLS]"),
                              end_id=tokenizer.token_to_id("[SEP]"), maxlen=length)
    report = SampleReport(sampler, tokenizer, samples, judge)
    model.fit(inputs, targets, validation_data=encode(tokenizer, valid, length),
              batch_size=batch_size, epochs=epochs, callbacks=[report], verbose=verbose)
    return report.scores


def read_labelled_lines(path):
    with open(path, encoding="utf-8") as file:
        return [(text, int(label)) for label, text in
                (line.rstrip("\n").split("\t", 1) for line in file if line.strip())]


def main():
    parser = task_common.argument_parser(__doc__.splitlines()[0], "lines 'label<TAB>text'")
    parser.add_argument("--train-size", type=task_common.positive_int, default=3000,
                        help="generated reviews")
    parser.add_argument("--valid-size", type=task_common.positive_int, default=200,
                        help="generated reviews")
    # The source post's demo: BERT-base, maxlen 128, batch 32, 20 epochs, Adam 1e-5.
    args = task_common.parse_args(parser, scratch={"epochs": 4, "batch_size": 32, "lr": 2e-3},
                                  pretrained={"epochs": 20, "batch_size": 32, "lr": 1e-5})
    if args.train:
        items = read_labelled_lines(args.train)
        valid = read_labelled_lines(args.valid) if args.valid else items[:200]
    else:
        items, valid = generate(args.train_size, seed=0), generate(args.valid_size, seed=1)
    train(items, valid, args.epochs, args.batch_size, args.lr, config=args.config,
          checkpoint=args.checkpoint, vocab=args.vocab,
          strategy=task_common.make_strategy(args.strategy),
          judge=None if args.train else follows_label)


if __name__ == "__main__":
    main()
