"""Chinese named-entity recognition with GlobalPointer: every (start, end) pair of characters is
scored for every entity type.

Source: the post "GlobalPointer：用统一的方式处理嵌套和非嵌套NER" (https://kexue.fm/archives/8373)
and bert4keras's task_sequence_labeling_ner_global_pointer.py
(https://github.com/bojone/bert4keras).

`GlobalPointer` turns the hidden states into `[types, length, length]` scores (rotary
positions, padding and pairs with end < start at -inf); the loss is the multi-label "softmax +
cross entropy" of the post "将“softmax+交叉熵”推广到多标签分类问题"
(https://kexue.fm/archives/7359) over all pairs of a type; an entity is a pair scored above 0,
so nested entities come out too. Each epoch prints entity-level precision, recall and F1 on
held-out sentences and keeps the best weights.

Data flags as in task_sequence_labeling_ner_crf.py: generated People's-Daily-format sentences
by default, the real corpus with --train, a pretrained Chinese BERT with
--config/--checkpoint/--vocab.

    python examples/task_sequence_labeling_ner_global_pointer.py \
        --train ../shared/data/people_daily_ner/example.test --epochs 10
"""
import keras
import numpy as np

from bert4keras_ext.data import SeededBatches, sequence_padding
from bert4keras_ext.layers import GlobalPointer
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import Adam
from bert4keras_ext.saving import save_atomically
from bert4keras_ext.tasks import common as task_common
from bert4keras_ext.tasks import ner

SMALL_MODEL = {"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
               "intermediate_size": 512, "hidden_dropout_prob": 0.1,
               "attention_probs_dropout_prob": 0.1}
HEAD_SIZE = 64


class Batches(SeededBatches):
    """Token ids, segment ids and `[types, maxlen, maxlen]` targets, padded to `maxlen` (one
    shape for every batch: Keras fixes the shapes it sees first)."""

    def __init__(self, sentences, tokenizer, types, maxlen, batch_size, **kwargs):
        super().__init__(sentences, batch_size, **kwargs)
        self.tokenizer, self.types, self.maxlen = tokenizer, types, maxlen

    def make_batch(self, items, rng):
        token_ids, labels = [], []
        for text, entities in items:
            ids, spans = ner.token_spans(self.tokenizer, text, self.maxlen)
            token_ids.append(ids)
            labels.append(ner.pointer_labels(spans, entities, self.types, self.maxlen))
        token_ids = sequence_padding(token_ids, length=self.maxlen)
        return (token_ids, np.zeros_like(token_ids)), np.stack(labels)


def recognize(model, tokenizer, texts, types, maxlen, batch_size=64):
    """The `(start, end, type)` entities of each text: the pairs scored above 0."""
    found = []
    for start in range(0, len(texts), batch_size):
        encoded = [ner.token_spans(tokenizer, text, maxlen) for text in texts[start:start +
                                                                                batch_size]]
        token_ids = sequence_padding([ids for ids, _ in encoded], length=maxlen)
        scores = model.predict([token_ids, np.zeros_like(token_ids)], verbose=0)
        found += [ner.pointer_entities(row, spans, types) for row, (_, spans) in
                  zip(scores, encoded)]
    return found


class Evaluator(keras.callbacks.Callback):
    """Entity-level scores on the held-out sentences each epoch; keeps the best weights."""

    def __init__(self, tokenizer, valid, types, maxlen, path):
        super().__init__()
        self.tokenizer, self.valid, self.types = tokenizer, valid, types
        self.maxlen, self.path = maxlen, path
        self.best, self.history = -1.0, []

    def on_epoch_end(self, epoch, logs=None):
        predicted = recognize(self.model, self.tokenizer, [text for text, _ in self.valid],
                              self.types, self.maxlen)
        f1, precision, recall = ner.scores(predicted, [entities for _, entities in self.valid])
        self.history.append((f1, precision, recall))
        if f1 > self.best:
            self.best = f1
            if self.path:
                save_atomically(self.model, self.path)
        print(f"epoch {epoch + 1}: valid precision {precision:.4f} recall {recall:.4f} "
              f"F1 {f1:.4f} (best {self.best:.4f})")


def train_and_evaluate(train, valid, epochs, batch_size, lr, maxlen=128, output=None,
                       config=None, checkpoint=None, vocab=None, strategy=None, verbose=2):
    """Trains on `(text, entities)` sentences; returns (model, evaluator)."""
    types = ner.entity_types(train + valid)
    tokenizer = task_common.make_tokenizer(vocab, (text for text, _ in train + valid))
    maxlen = min(maxlen, max(len(tokenizer.tokenize(text)) for text, _ in train + valid))
    strategy = strategy or task_common.make_strategy("default")
    with strategy.scope():
        config = task_common.model_config(config, SMALL_MODEL, tokenizer, maxlen)
        encoder = build_transformer_model(config, checkpoint)
        # The hidden states carry the padding mask: padded pairs score -inf.
        scores = GlobalPointer(len(types), HEAD_SIZE)(encoder.output)
        model = keras.Model(encoder.inputs, scores)
        model.compile(optimizer=Adam(lr), loss=ner.global_pointer_crossentropy)
    evaluator = Evaluator(tokenizer, valid, types, maxlen, output)
    model.fit(Batches(train, tokenizer, types, maxlen, batch_size), epochs=epochs,
              callbacks=[evaluator], verbose=verbose)
    return model, evaluator


def main():
    parser = task_common.argument_parser(
        __doc__.splitlines()[0], "People's Daily BIO file (a character and its tag per line)")
    ner.add_data_arguments(parser)
    parser.add_argument("--output", default="best_model.weights.h5")
    # bert4keras's script: BERT-base, Adam 2e-5, batch 16, 10 epochs.
    args = task_common.parse_args(parser, scratch={"epochs": 10, "batch_size": 32, "lr": 1e-3},
                                  pretrained={"epochs": 10, "batch_size": 16, "lr": 2e-5})
    train, valid = ner.load_sentences(parser, args)
    print(f"{len(train)} training and {len(valid)} validation sentences; entity types "
          f"{ner.entity_types(train + valid)}")
    _, evaluator = train_and_evaluate(
        train, valid, args.epochs, args.batch_size, args.lr, args.maxlen, args.output,
        args.config, args.checkpoint, args.vocab, task_common.make_strategy(args.strategy))
    print(f"best validation F1: {evaluator.best:.4f}")


if __name__ == "__main__":
    main()
