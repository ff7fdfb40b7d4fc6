"""Named-entity recognition data and scores, for the sequence-labelling examples.

Data: the People's Daily (人民日报) corpus format that bert4keras's NER examples read
(https://github.com/bojone/bert4keras, `examples/task_sequence_labeling_ner_crf.py`): one
character and its BIO tag per line (`北 B-LOC`), sentences separated by a blank line. A sentence
becomes `(text, [(start, end, type), ...])`, the entity being `text[start:end + 1]`.

Without the corpus, `load_sentences` generates sentences in its format
(`tasks.synthetic.ner_sentences`).

Labels: bert4keras's scheme for a CRF over characters, 0 for outside, `2k + 1` for the first
character of an entity of type k and `2k + 2` for the others; and the `[types, length,
length]` start/end matrix of GlobalPointer ("GlobalPointer：用统一的方式处理嵌套和非嵌套NER",
https://kexue.fm/archives/8373). Scores are entity-level: an entity counts as found when its
start, end and type all match.
"""
import keras
import numpy as np
from keras import ops

from bert4keras_ext.data import SeededBatches, sequence_padding
from bert4keras_ext.losses import multilabel_categorical_crossentropy
from bert4keras_ext.saving import save_atomically
from bert4keras_ext.tasks.common import positive_int
from bert4keras_ext.tasks.synthetic import ner_sentences


def load_bio(path):
    """Sentences of a BIO file as `(text, entities)`; a malformed line is named by number."""
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    sentences, tagged = [], []
    for number, line in enumerate(lines + [""], start=1):
        if not line.strip():
            if tagged:
                sentences.append(from_tagged(tagged))
            tagged = []
            continue
        parts = line.split(" ")
        if len(parts) != 2 or len(parts[0]) != 1 or not _is_tag(parts[1]):
            raise ValueError(f"{path}, line {number}: expected a character, a space and a BIO "
                             f"tag such as 'B-LOC'; received {line!r}.")
        tagged.append(tuple(parts))
    return sentences


def from_tagged(tagged):
    """`(text, entities)` of a sentence given as `(character, BIO tag)` pairs; an I- tag that
    does not continue an entity of its type starts one."""
    text, entities = "", []
    for position, (character, tag) in enumerate(tagged):
        text += character
        continues = (tag.startswith("I-") and entities and entities[-1][1] == position - 1
                     and entities[-1][2] == tag[2:])
        if continues:
            entities[-1][1] = position
        elif tag != "O":
            entities.append([position, position, tag[2:]])
    return text, [tuple(entity) for entity in entities]


def _is_tag(tag):
    return tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)


def add_data_arguments(parser, train_size=3000, valid_size=500):
    """The data flags of the NER examples (besides the common --train / --valid)."""
    parser.add_argument("--train-size", type=positive_int, default=train_size,
                        help="generated sentences")
    parser.add_argument("--valid-size", type=positive_int, default=valid_size,
                        help="generated sentences, or sentences held out of --train without "
                             "--valid")
    parser.add_argument("--maxlen", type=positive_int, default=128,
                        help="tokens per sentence, [CLS] and [SEP] included")


def load_sentences(parser, args):
    """(train, valid) sentences from the flags: two files, one file with its last
    --valid-size sentences held out, or generated sentences."""
    if args.valid and not args.train:
        parser.error("--valid needs --train")
    if args.valid:
        return load_bio(args.train), load_bio(args.valid)
    if args.train:
        sentences = load_bio(args.train)
        if len(sentences) <= args.valid_size:
            parser.error(f"--train has {len(sentences)} sentences; --valid-size "
                         f"{args.valid_size} would leave none to train on")
        return sentences[:-args.valid_size], sentences[-args.valid_size:]
    return tuple([from_tagged(tagged) for tagged in ner_sentences.generate(size, seed)]
                 for size, seed in ((args.train_size, 0), (args.valid_size, 1)))


def entity_types(sentences):
    """The sorted entity types of `(text, entities)` sentences."""
    return sorted({label for _, entities in sentences for _, _, label in entities})


def token_spans(tokenizer, text, maxlen):
    """`(token_ids, spans)`: the ids of `text` cut to `maxlen` tokens, and for each token the
    `(first, last)` character indices it covers (None for tokens of no character, such as
    [CLS] and [SEP])."""
    tokens = tokenizer.tokenize(text, maxlen=maxlen)
    spans = [(chars[0], chars[-1]) if chars else None
             for chars in tokenizer.rematch(text, tokens)]
    return tokenizer.tokens_to_ids(tokens), spans


def encode(tokenizer, texts, maxlen):
    """`(token_ids, spans)` of several texts: the ids padded to `maxlen` (one shape for every
    batch: Keras fixes the shapes it sees first) and each text's token spans."""
    encoded = [token_spans(tokenizer, text, maxlen) for text in texts]
    return sequence_padding([ids for ids, _ in encoded], length=maxlen), [
        spans for _, spans in encoded]


class Batches(SeededBatches):
    """`([token_ids, segment_ids], labels)` batches of `(text, entities)` sentences, the
    labels of each sentence made by `make_labels(spans, entities)` at one shape."""

    def __init__(self, sentences, tokenizer, maxlen, batch_size, make_labels, **kwargs):
        super().__init__(sentences, batch_size, **kwargs)
        self.tokenizer, self.maxlen, self.make_labels = tokenizer, maxlen, make_labels

    def make_batch(self, items, rng):
        token_ids, spans = encode(self.tokenizer, [text for text, _ in items], self.maxlen)
        labels = [self.make_labels(row, entities) for row, (_, entities) in zip(spans, items)]
        return (token_ids, np.zeros_like(token_ids)), np.stack(labels)


class EntityEvaluator(keras.callbacks.Callback):
    """Entity-level scores of `recognize(texts)` (a list of `(start, end, type)` per text) on
    the held-out sentences each epoch, printed and kept in `history`; the best weights are
    saved to `path`."""

    def __init__(self, recognize, valid, path=None):
        super().__init__()
        self.recognize, self.valid, self.path = recognize, valid, path
        self.best, self.history = -1.0, []

    def on_epoch_end(self, epoch, logs=None):
        predicted = self.recognize([text for text, _ in self.valid])
        f1, precision, recall = scores(predicted, [entities for _, entities in self.valid])
        self.history.append((f1, precision, recall))
        if f1 > self.best:
            self.best = f1
            if self.path:
                save_atomically(self.model, self.path)
        print(f"epoch {epoch + 1}: valid precision {precision:.4f} recall {recall:.4f} "
              f"F1 {f1:.4f} (best {self.best:.4f})")


def crf_labels(spans, entities, types, length=None):
    """bert4keras's CRF label of every token: 0 outside, `2k + 1` at the first token of an
    entity of type k, `2k + 2` inside, padded with 0 to `length` (default: the tokens');
    entities cut off by `maxlen` are dropped."""
    starts = {span[0]: index for index, span in enumerate(spans) if span}
    ends = {span[1]: index for index, span in enumerate(spans) if span}
    labels = np.zeros(length or len(spans), "int32")
    for start, end, label in entities:
        if start in starts and end in ends:
            kind = types.index(label)
            labels[starts[start]] = 2 * kind + 1
            labels[starts[start] + 1:ends[end] + 1] = 2 * kind + 2
    return labels


def crf_entities(labels, spans, types):
    """The `(start, end, type)` character spans of a CRF label path (bert4keras's reading: a
    run starts at an odd label and continues over the following even labels of its type)."""
    entities, current = [], None
    for index, label in enumerate(labels):
        label = int(label)
        if label % 2 == 1 and spans[index]:
            current = [index, index, (label - 1) // 2]
            entities.append(current)
        elif label and label % 2 == 0 and current and current[2] == (label - 2) // 2 and (
                spans[index]):
            current[1] = index
        else:
            current = None
    return [(spans[first][0], spans[last][1], types[kind]) for first, last, kind in entities]


def pointer_labels(spans, entities, types, length):
    """GlobalPointer's targets: `[types, length, length]` with 1 at (type, first token, last
    token) of every entity that fits in the tokens."""
    starts = {span[0]: index for index, span in enumerate(spans) if span}
    ends = {span[1]: index for index, span in enumerate(spans) if span}
    labels = np.zeros((len(types), length, length), "int32")
    for start, end, label in entities:
        if start in starts and end in ends:
            labels[types.index(label), starts[start], ends[end]] = 1
    return labels


def pointer_entities(scores, spans, types, threshold=0.0):
    """The `(start, end, type)` spans whose GlobalPointer score `[types, length, length]` is
    above `threshold` (padding and the lower triangle are scored far below it)."""
    entities = []
    for kind, first, last in zip(*np.nonzero(scores > threshold)):
        if first < len(spans) and last < len(spans) and spans[first] and spans[last]:
            entities.append((spans[first][0], spans[last][1], types[kind]))
    return entities


def global_pointer_crossentropy(y_true, y_pred):
    """GlobalPointer's loss, per sample: for each type, the multi-label cross entropy of the
    post "将“softmax+交叉熵”推广到多标签分类问题" (https://kexue.fm/archives/7359) over all of
    its `length x length` pairs (the entities' pairs positive), averaged over the types."""
    batch, heads = ops.shape(y_pred)[0], ops.shape(y_pred)[1]
    flat_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (batch * heads, -1))
    flat_pred = ops.reshape(y_pred, (batch * heads, -1))
    losses = multilabel_categorical_crossentropy(flat_true, flat_pred)
    return ops.mean(ops.reshape(losses, (batch, heads)), axis=1)


def scores(predicted, gold):
    """Entity-level `(f1, precision, recall)` of predicted against gold entity lists (one list
    of `(start, end, type)` per sentence); 0 where undefined."""
    found = sum(len(set(p) & set(g)) for p, g in zip(predicted, gold))
    predicted_count = sum(len(set(p)) for p in predicted)
    gold_count = sum(len(set(g)) for g in gold)
    precision = found / predicted_count if predicted_count else 0.0
    recall = found / gold_count if gold_count else 0.0
    f1 = 2 * found / (predicted_count + gold_count) if predicted_count + gold_count else 0.0
    return f1, precision, recall
