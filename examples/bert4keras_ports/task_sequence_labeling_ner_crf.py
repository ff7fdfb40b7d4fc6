#! -*- coding: utf-8 -*-
# Chinese named-entity recognition with a CRF, written the way bert4keras's
# task_sequence_labeling_ner_crf.py is (same steps, same API calls) against bert4keras_ext: the
# imports name our package, the weights file ends in `.weights.h5`, and the paths and sizes are
# flags. bert4keras reads the People's Daily corpus (example.train / .dev / .test) and a Chinese
# BERT-base; without them here, --train/--valid/--test take any files of that format and, with
# no --checkpoint, the model starts from random weights over --dict-path's vocabulary.
# bert4keras reports validation F1 96.18% and test F1 95.35% with the pretrained BERT.
import argparse

import numpy as np
from keras.layers import Dense
from keras.models import Model
from tqdm import tqdm

from bert4keras_ext.backend import K, keras
from bert4keras_ext.layers import ConditionalRandomField
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import Adam
from bert4keras_ext.snippets import DataGenerator, ViterbiDecoder, open, sequence_padding, to_array
from bert4keras_ext.tokenizers import Tokenizer

parser = argparse.ArgumentParser(description="CRF named-entity recognition (bert4keras port)")
parser.add_argument("--train", required=True, help="People's Daily format: 'char tag' lines")
parser.add_argument("--valid", required=True)
parser.add_argument("--test", required=True)
parser.add_argument("--dict-path", required=True, help="vocab.txt")
parser.add_argument("--config-path", help="bert_config.json (default: a small BERT)")
parser.add_argument("--checkpoint-path", help="bert_model.ckpt (default: random weights)")
parser.add_argument("--limit", type=int, default=None, help="sentences per file (all: None)")
parser.add_argument("--maxlen", type=int, default=256)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--bert-layers", type=int, default=12)
parser.add_argument("--hidden", type=int, default=768, help="hidden size of the small BERT")
parser.add_argument("--lr", type=float, default=1e-5)
parser.add_argument("--crf-lr-multiplier", type=float, default=1000)
parser.add_argument("--output", default="best_model.weights.h5")
parser.add_argument("--seed", type=int, default=None, help="fixes weights and sampling")
args = parser.parse_args()
if args.seed is not None:
    keras.utils.set_random_seed(args.seed)

maxlen = args.maxlen
epochs = args.epochs
batch_size = args.batch_size
bert_layers = args.bert_layers
learning_rate = args.lr  # fewer bert_layers want a larger rate
crf_lr_multiplier = args.crf_lr_multiplier  # the CRF's rate, scaled up if need be
categories = set()

dict_path = args.dict_path
with open(dict_path, encoding='utf-8') as f:
    vocab_size = len(f.read().splitlines())
config_path = args.config_path or {
    'vocab_size': vocab_size, 'hidden_size': args.hidden, 'num_hidden_layers': bert_layers,
    'num_attention_heads': 12 if args.hidden % 12 == 0 else 4,
    'intermediate_size': 4 * args.hidden, 'max_position_embeddings': 512,
}
checkpoint_path = args.checkpoint_path


def load_data(filename):
    """Loads sentences as [text, [start, end, label], ...]: text[start:end + 1] is an entity
    of type label."""
    D = []
    with open(filename, encoding='utf-8') as f:
        f = f.read()
        for l in f.split('\n\n'):
            if not l.strip():
                continue
            d = ['']
            for i, c in enumerate(l.strip('\n').split('\n')):
                char, flag = c.split(' ')
                d[0] += char
                if flag[0] == 'B':
                    d.append([i, i, flag[2:]])
                    categories.add(flag[2:])
                elif flag[0] == 'I':
                    d[-1][1] = i
            D.append(d)
    return D[:args.limit]


# Labelled data.
train_data = load_data(args.train)
valid_data = load_data(args.valid)
test_data = load_data(args.test)
categories = list(sorted(categories))

# The tokenizer.
tokenizer = Tokenizer(dict_path, do_lower_case=True)


class data_generator(DataGenerator):
    """Data generator."""
    def __iter__(self, random=False):
        batch_token_ids, batch_segment_ids, batch_labels = [], [], []
        for is_end, d in self.sample(random):
            tokens = tokenizer.tokenize(d[0], maxlen=maxlen)
            mapping = tokenizer.rematch(d[0], tokens)
            start_mapping = {j[0]: i for i, j in enumerate(mapping) if j}
            end_mapping = {j[-1]: i for i, j in enumerate(mapping) if j}
            token_ids = tokenizer.tokens_to_ids(tokens)
            segment_ids = [0] * len(token_ids)
            labels = np.zeros(len(token_ids))
            for start, end, label in d[1:]:
                if start in start_mapping and end in end_mapping:
                    start = start_mapping[start]
                    end = end_mapping[end]
                    labels[start] = categories.index(label) * 2 + 1
                    labels[start + 1:end + 1] = categories.index(label) * 2 + 2
            batch_token_ids.append(token_ids)
            batch_segment_ids.append(segment_ids)
            batch_labels.append(labels)
            if len(batch_token_ids) == self.batch_size or is_end:
                batch_token_ids = sequence_padding(batch_token_ids)
                batch_segment_ids = sequence_padding(batch_segment_ids)
                batch_labels = sequence_padding(batch_labels)
                yield [batch_token_ids, batch_segment_ids], batch_labels
                batch_token_ids, batch_segment_ids, batch_labels = [], [], []


# A BERT-type model; for ALBERT, build with model='albert' and read the shared block's output
# at its last call.
model = build_transformer_model(
    config_path,
    checkpoint_path,
)

output_layer = 'Transformer-%s-FeedForward-Norm' % (bert_layers - 1)
output = model.get_layer(output_layer).output
output = Dense(len(categories) * 2 + 1)(output)
CRF = ConditionalRandomField(lr_multiplier=crf_lr_multiplier)
output = CRF(output)

model = Model(model.input, output)
model.summary()

model.compile(
    loss=CRF.sparse_loss,
    optimizer=Adam(learning_rate),
    metrics=[CRF.sparse_accuracy]
)


class NamedEntityRecognizer(ViterbiDecoder):
    """Named-entity recognizer."""
    def recognize(self, text):
        tokens = tokenizer.tokenize(text, maxlen=512)
        mapping = tokenizer.rematch(text, tokens)
        token_ids = tokenizer.tokens_to_ids(tokens)
        segment_ids = [0] * len(token_ids)
        token_ids, segment_ids = to_array([token_ids], [segment_ids])
        nodes = model.predict([token_ids, segment_ids], verbose=0)[0]
        labels = self.decode(nodes)
        entities, starting = [], False
        for i, label in enumerate(labels):
            if label > 0:
                if label % 2 == 1:
                    starting = True
                    entities.append([[i], categories[(label - 1) // 2]])
                elif starting:
                    entities[-1][0].append(i)
                else:
                    starting = False
            else:
                starting = False
        return [(mapping[w[0]][0], mapping[w[-1]][-1], l) for w, l in entities]


NER = NamedEntityRecognizer(trans=K.eval(CRF.trans), starts=[0], ends=[0])


def evaluate(data):
    """Entity-level F1, precision and recall."""
    X, Y, Z = 1e-10, 1e-10, 1e-10
    for d in tqdm(data, ncols=100):
        R = set(NER.recognize(d[0]))
        T = set([tuple(i) for i in d[1:]])
        X += len(R & T)
        Y += len(R)
        Z += len(T)
    f1, precision, recall = 2 * X / (Y + Z), X / Y, X / Z
    return f1, precision, recall


class Evaluator(keras.callbacks.Callback):
    """Evaluates and keeps the best weights."""
    def __init__(self):
        self.best_val_f1 = 0

    def on_epoch_end(self, epoch, logs=None):
        trans = K.eval(CRF.trans)
        NER.trans = trans
        print(NER.trans)
        f1, precision, recall = evaluate(valid_data)
        # Keep the best.
        if f1 >= self.best_val_f1:
            self.best_val_f1 = f1
            model.save_weights(args.output)
        print(
            'valid:  f1: %.5f, precision: %.5f, recall: %.5f, best f1: %.5f\n' %
            (f1, precision, recall, self.best_val_f1)
        )
        f1, precision, recall = evaluate(test_data)
        print(
            'test:  f1: %.5f, precision: %.5f, recall: %.5f\n' %
            (f1, precision, recall)
        )


if __name__ == '__main__':

    evaluator = Evaluator()
    train_generator = data_generator(train_data, batch_size)

    history = model.fit(
        train_generator.forfit(),
        steps_per_epoch=len(train_generator),
        epochs=epochs,
        callbacks=[evaluator]
    )
    print('loss by epoch:', ' '.join('%.4f' % l for l in history.history['loss']))

else:

    model.load_weights(args.output)
    NER.trans = K.eval(CRF.trans)
