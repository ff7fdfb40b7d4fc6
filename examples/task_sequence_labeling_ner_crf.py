"""Chinese named-entity recognition with a CRF on a Transformer's hidden states.

Source: the post "简明条件随机场CRF介绍（附带纯Keras实现）" (https://kexue.fm/archives/5542) and
bert4keras's task_sequence_labeling_ner_crf.py (https://github.com/bojone/bert4keras).

Every character gets a label (outside, first character of a type, inside a type); the CRF
scores whole label paths (`ConditionalRandomField`, its loss over the padding mask the model
carries), and Viterbi decoding (`ViterbiDecoder`, paths start and end outside) reads the
entities back. Each epoch prints the entity-level precision, recall and F1 on held-out
sentences and keeps the best weights.

With no data arguments it trains a small model from scratch on seeded generated sentences in
the People's Daily format (`bert4keras_ext.tasks.synthetic.ner_sentences`); --train reads the
real corpus (one character and its BIO tag per line), holding --valid-size sentences out when
no --valid is given; --config/--checkpoint/--vocab fine-tune a pretrained Chinese BERT.

    python examples/task_sequence_labeling_ner_crf.py \
        --train ../shared/data/people_daily_ner/example.test --epochs 10
"""
import keras
import numpy as np

from bert4keras_ext.backend import K
from bert4keras_ext.layers import ConditionalRandomField
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import Adam
from bert4keras_ext.snippets import ViterbiDecoder
from bert4keras_ext.tasks import common as task_common
from bert4keras_ext.tasks import ner

SMALL_MODEL = {"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
               "intermediate_size": 512, "hidden_dropout_prob": 0.1,
               "attention_probs_dropout_prob": 0.1}


def recognizer(model, crf, tokenizer, types, maxlen):
    """texts -> their `(start, end, type)` entities: label scores from the model, then the best
    path of each sentence's tokens under the CRF's current transitions (paths start and end
    outside an entity, as bert4keras's recognizer asks)."""
    def recognize(texts):
        decoder = ViterbiDecoder(trans=K.eval(crf.trans), starts=[0], ends=[0])
        token_ids, spans = ner.encode(tokenizer, texts, maxlen)
        scores = model.predict([token_ids, np.zeros_like(token_ids)], batch_size=64, verbose=0)
        return [ner.crf_entities(decoder.decode(row[:len(row_spans)]), row_spans, types)
                for row, row_spans in zip(scores, spans)]

    return recognize


def train_and_evaluate(train, valid, epochs, batch_size, lr, maxlen=128, crf_lr_multiplier=100,
                       output=None, config=None, checkpoint=None, vocab=None, strategy=None,
                       verbose=2):
    """Trains on `(text, entities)` sentences; returns (model, evaluator)."""
    types = ner.entity_types(train + valid)
    tokenizer = task_common.make_tokenizer(vocab, (text for text, _ in train + valid))
    maxlen = min(maxlen, max(len(tokenizer.tokenize(text)) for text, _ in train + valid))
    strategy = strategy or task_common.make_strategy("default")
    with strategy.scope():
        config = task_common.model_config(config, SMALL_MODEL, tokenizer, maxlen)
        encoder = build_transformer_model(config, checkpoint)
        # The hidden states carry the padding mask: the CRF scores real characters only.
        scores = keras.layers.Dense(2 * len(types) + 1)(encoder.output)
        crf = ConditionalRandomField(lr_multiplier=crf_lr_multiplier)
        model = keras.Model(encoder.inputs, crf(scores))
        model.compile(optimizer=Adam(lr), loss=crf.sparse_loss, metrics=[crf.sparse_accuracy])
    evaluator = ner.EntityEvaluator(recognizer(model, crf, tokenizer, types, maxlen), valid,
                                    output)
    batches = ner.Batches(train, tokenizer, maxlen, batch_size,
                          lambda spans, entities: ner.crf_labels(spans, entities, types, maxlen))
    model.fit(batches, epochs=epochs, callbacks=[evaluator], verbose=verbose)
    return model, evaluator


def main():
    parser = task_common.argument_parser(
        __doc__.splitlines()[0], "People's Daily BIO file (a character and its tag per line)")
    ner.add_data_arguments(parser)
    parser.add_argument("--crf-lr-multiplier", type=task_common.positive_float, default=100,
                        help="the CRF's transitions learn this much faster (bert4keras: 1000 "
                             "for a pretrained BERT)")
    parser.add_argument("--output", default="best_model.weights.h5")
    # bert4keras's script: BERT-base, Adam 1e-5, batch 32, 10 epochs, CRF multiplier 1000.
    args = task_common.parse_args(parser, scratch={"epochs": 10, "batch_size": 32, "lr": 1e-3},
                                  pretrained={"epochs": 10, "batch_size": 32, "lr": 1e-5})
    train, valid = ner.load_sentences(parser, args)
    print(f"{len(train)} training and {len(valid)} validation sentences; entity types "
          f"{ner.entity_types(train + valid)}")
    _, evaluator = train_and_evaluate(
        train, valid, args.epochs, args.batch_size, args.lr, args.maxlen,
        args.crf_lr_multiplier, args.output, args.config, args.checkpoint, args.vocab,
        task_common.make_strategy(args.strategy))
    print(f"best validation F1: {evaluator.best:.4f}")


if __name__ == "__main__":
    main()
