"""NEZHA ("NEZHA: Neural Contextualized Representation for Chinese Language Understanding",
https://arxiv.org/abs/1909.00204): BERT without a position table; every attention layer adds
the functional (fixed sinusoidal) relative positions of its keys to the logits and the output.
Distances are clipped to the config's `max_relative_position`, as in NEZHA's reference code
(https://github.com/huawei-noah/Pretrained-Language-Model, NEZHA-TensorFlow) and Hugging Face's;
its released models use 64, which bert4keras 0.11.5 fixes.
"""
from bert4keras_ext.models.bert import bert_weight_names
from bert4keras_ext.models.registry import register_family
from bert4keras_ext.models.transformer import Transformer


class NEZHA(Transformer):
    position_scheme = "functional_relative"

    def position_options(self):
        return {"max_relative_position": self.config["max_relative_position"]}


register_family("nezha", NEZHA, bert_weight_names, hugging_face_prefixes=("nezha.",))
