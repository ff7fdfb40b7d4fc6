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

from bert4keras_ext.layers import GlobalPointer
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import Adam
from bert4keras_ext.tasks import common as task_common
from bert4keras_ext.tasks import ner

SMALL_MODEL = {"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
               "intermediate_size": 512, "hidden_dropout_prob": 0.1,
               "attention_probs_dropout_prob": 0.1}
HEAD_SIZE = 64


def recognizer(model, tokenizer, types, maxlen):
    """texts -> their `(start, end, type)` entities: the pairs scored above 0."""
    def recognize(texts):
        token_ids, spans = ner.encode(tokenizer, texts, maxlen)
        scores = model.predict([token_ids, np.zeros_like(token_ids)], batch_size=64, verbose=0)
        return [ner.pointer_entities(row, row_spans, types)
                for row, row_spans in zip(scores, spans)]

    return recognize


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
    evaluator = ner.EntityEvaluator(recognizer(model, tokenizer, types, maxlen), valid, output)
    batches = ner.Batches(train, tokenizer, maxlen, batch_size, lambda spans, entities: (
        ner.pointer_labels(spans, entities, types, maxlen)))
    model.fit(batches, epochs=epochs, callbacks=[evaluator], verbose=verbose)
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
