"""Reading comprehension by UNILM seq2seq over several passages.

Source: the post "万能的seq2seq：基于seq2seq的阅读理解问答" (https://kexue.fm/archives/7115).

A sample is `[CLS] passage [SEP] question [SEP] answer [SEP]` (answer segment 1), one passage
drawn at random per question per epoch; an answer absent from the passage becomes empty, which
teaches "no answer". Decoding reads all passages of a question at once: passages whose most
likely first token is [SEP] are dropped, the others' next-token distributions are merged as
Σp²/(Σp+1) at every step, and in extractive mode only tokens continuing a span of a passage
(or [SEP]) are allowed. Each epoch prints Accuracy / F1 / Final on the validation questions.

    python examples/task_seq2seq_reading_comprehension.py --epochs 6
    python examples/task_seq2seq_reading_comprehension.py --train webqa.json --valid dev.json \
        --config bert/bert_config.json --checkpoint bert/bert_model.ckpt --vocab bert/vocab.txt
"""
import json
import os
import tempfile

import keras
import numpy as np

from bert4keras_ext.data import SeededBatches, sequence_padding
from bert4keras_ext.decoding import AutoRegressiveDecoder, softmax
from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.tasks import common as task_common
from bert4keras_ext.tasks import reading_comprehension as rc
from bert4keras_ext.tasks.synthetic.reading_comprehension import generate

SMALL_MODEL = {"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
               "intermediate_size": 512, "hidden_dropout_prob": 0.0,
               "attention_probs_dropout_prob": 0.0}


class Lengths:
    """Token budgets of passage, question and answer; the source post uses 256 / 64 / 32 on
    real data."""

    def __init__(self, passage=64, question=24, answer=16):
        self.passage, self.question, self.answer = passage, question, answer

    @property
    def total(self):
        return self.passage + self.question + self.answer


def prompt_ids(tokenizer, passage, question, lengths):
    """`[CLS] passage [SEP] question [SEP]` token ids, all in segment 0."""
    passage_ids = tokenizer.encode(rc.normalize_passage(passage), maxlen=lengths.passage)[0]
    return passage_ids + tokenizer.encode(question, maxlen=lengths.question)[0][1:]


def sample_ids(tokenizer, passage, question, answers, lengths):
    """Token and segment ids of one training sample; the answer may be empty."""
    prompt = prompt_ids(tokenizer, passage, question, lengths)
    answer = rc.training_answer(rc.normalize_passage(passage), answers, lengths.passage)
    answer_ids = tokenizer.encode(answer, maxlen=lengths.answer)[0][1:]
    return prompt + answer_ids, [0] * len(prompt) + [1] * len(answer_ids)


class Batches(SeededBatches):
    def __init__(self, items, tokenizer, lengths, batch_size, **kwargs):
        super().__init__(items, batch_size, **kwargs)
        self.tokenizer, self.lengths = tokenizer, lengths

    def make_batch(self, items, rng):
        samples = [sample_ids(self.tokenizer, item["passages"][rng.integers(len(item["passages"]))],
                              item["question"], item["answers"], self.lengths) for item in items]
        token_ids = sequence_padding([s[0] for s in samples], length=self.lengths.total)
        segment_ids = sequence_padding([s[1] for s in samples], length=self.lengths.total)
        return (token_ids, segment_ids), np.asarray(seq2seq_targets(token_ids, segment_ids))


class MultiPassageReader(AutoRegressiveDecoder):
    """Beam search over one question's passages, merged per step (as the source post does)."""

    def __init__(self, model, tokenizer, lengths, extractive=True):
        sep = tokenizer.token_to_id("[SEP]")
        super().__init__(start_id=None, end_id=sep, maxlen=lengths.answer)
        self.model, self.tokenizer, self.lengths = model, tokenizer, lengths
        self.extractive = extractive

    def passage_probas(self, prompts, output_ids):
        """Next-token probabilities [passages, vocab] of each prompt continued by output_ids."""
        rows = [list(p) + list(output_ids) for p in prompts]
        segments = [[0] * len(p) + [1] * len(output_ids) for p in prompts]
        # A direct call: predict_on_batch repeats the batch per replica under MirroredStrategy.
        logits = self.model([sequence_padding(rows), sequence_padding(segments)], training=False)
        last = np.array([len(r) - 1 for r in rows])
        logits = np.asarray(logits)[np.arange(len(rows)), last].astype("float64")
        logits[:, 0] = -np.inf
        return softmax(logits)

    @AutoRegressiveDecoder.wraps(default_rtype="probas", use_states=True)
    def predict(self, inputs, output_ids, states):
        (question_index,) = inputs
        merged = []
        for row, index in enumerate(question_index):
            prompts, passages = self._current[int(index)]
            probas = self.passage_probas(prompts, output_ids[row])
            if states is None:  # first step: drop passages that answer nothing
                active = probas.argmax(axis=1) != self.end_id
            else:
                active = states[0][row]
            merged.append(self._merge(probas, active, passages, output_ids[row]))
            if states is None:
                self._first_active = active
        if states is None:
            states = [np.repeat(self._first_active[None], len(question_index), axis=0)]
        return np.array(merged), states

    def _merge(self, probas, active, passages, prefix):
        only_end = np.zeros(probas.shape[1])
        only_end[self.end_id] = 1.0
        if not active.any():
            return only_end
        merged = rc.merge_distributions(probas[active])
        if self.extractive:
            allowed = rc.next_token_candidates([passages[k] for k in np.flatnonzero(active)],
                                               list(prefix))
            if len(prefix):
                allowed.add(self.end_id)
            mask = np.zeros_like(merged)
            mask[list(allowed)] = 1.0
            merged = merged * mask
        total = merged.sum()
        return merged / total if total > 0 else only_end

    def answer(self, question, passages, topk=1):
        prompts = [prompt_ids(self.tokenizer, p, question, self.lengths) for p in passages]
        # Passage token ids (between [CLS] and the first [SEP]) for the n-gram constraint.
        spans = [p[1:p.index(self.end_id)] for p in prompts]
        self._current = {0: (prompts, spans)}
        output = self.beam_search([np.array(0)], topk)
        return task_common.output_text(self.tokenizer, output)


class Evaluator(keras.callbacks.Callback):
    def __init__(self, reader, valid):
        super().__init__()
        self.reader, self.valid, self.history = reader, valid, []

    def on_epoch_end(self, epoch, logs=None):
        predictions = [self.reader.answer(i["question"], i["passages"]) for i in self.valid]
        result = rc.scores(predictions, [i["answers"] for i in self.valid])
        self.history.append(result)
        print(f"epoch {epoch + 1}: accuracy {result['accuracy']:.4f}, f1 {result['f1']:.4f}, "
              f"final {result['final']:.4f}; e.g. {self.valid[0]['question']} -> {predictions[0]}")


def train_and_evaluate(train, valid, epochs, batch_size=32, lr=1e-3, lengths=None,
                       config=None, checkpoint=None, vocab=None, strategy=None, extractive=True,
                       verbose=2):
    """Trains on WebQA-style items; returns the per-epoch scores (dicts of accuracy/f1/final).
    `extractive=False` decodes freely instead of within n-grams of the passages."""
    lengths = lengths or Lengths()
    texts = [t for i in train + valid for t in [i["question"], *i["passages"], *i["answers"]]]
    tokenizer = task_common.make_tokenizer(vocab, (rc.normalize_passage(t) for t in texts))
    strategy = strategy or task_common.make_strategy("default")
    with strategy.scope():
        config = task_common.model_config(config, SMALL_MODEL, tokenizer, lengths.total)
        model = build_transformer_model(config, checkpoint, application="unilm",
                                        with_mlm="linear")
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss=Seq2SeqCrossEntropy(from_logits=True))
    evaluator = Evaluator(MultiPassageReader(model, tokenizer, lengths, extractive), valid)
    model.fit(Batches(train, tokenizer, lengths, batch_size), epochs=epochs,
              callbacks=[evaluator], verbose=verbose)
    return evaluator.history


def main():
    parser = task_common.argument_parser(__doc__.splitlines()[0], "WebQA or SogouQA JSON")
    parser.add_argument("--format", choices=["webqa", "sogouqa"], default="webqa")
    parser.add_argument("--decoding", choices=["extractive", "generative"], default="extractive",
                        help="answers restricted to n-grams of the passages, or free")
    parser.add_argument("--train-size", type=task_common.positive_int, default=3000,
                        help="generated questions")
    parser.add_argument("--valid-size", type=task_common.positive_int, default=100,
                        help="generated questions")
    # The source post: BERT-base, Adam 1e-5, batch 32, 8 epochs.
    args = task_common.parse_args(parser, scratch={"epochs": 6, "batch_size": 32, "lr": 1e-3},
                                  pretrained={"epochs": 8, "batch_size": 32, "lr": 1e-5})
    load = rc.load_webqa if args.format == "webqa" else rc.load_sogouqa
    if args.train:
        train, valid = load(args.train), load(args.valid or args.train)
        lengths = Lengths(passage=256, question=64, answer=32)
    else:
        with tempfile.TemporaryDirectory() as folder:
            for name, count, seed in (("train", args.train_size, 0), ("valid", args.valid_size, 1)):
                with open(os.path.join(folder, name), "w", encoding="utf-8") as file:
                    json.dump(generate(count, seed), file, ensure_ascii=False)
            train, valid = (rc.load_webqa(os.path.join(folder, n)) for n in ("train", "valid"))
        lengths = Lengths()
    train_and_evaluate(train, valid, args.epochs, args.batch_size, args.lr, lengths,
                       config=args.config, checkpoint=args.checkpoint, vocab=args.vocab,
                       strategy=task_common.make_strategy(args.strategy),
                       extractive=args.decoding == "extractive")


if __name__ == "__main__":
    main()
