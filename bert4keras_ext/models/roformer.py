"""RoFormer ("RoFormer: Enhanced Transformer with Rotary Position Embedding",
https://arxiv.org/abs/2104.09864) and RoFormer-V2 (post "RoFormerV2：自然语言理解的极限探索",
https://kexue.fm/archives/8998).

RoFormer is BERT without a position table, with rotary positions in every attention layer;
with the config's `rotary_value` (Hugging Face's RoFormer key) the values are rotated by their
positions too, as transformers' `RoFormerSelfAttention` does.
RoFormer-V2 also drops every bias and every LayerNorm parameter (parameter-free RMSNorm,
applied after dropout at the embeddings), and its MLM head is the tied embedding alone.
"""
from bert4keras_ext.models import names
from bert4keras_ext.models.bert import bert_weight_names
from bert4keras_ext.models.registry import register_family
from bert4keras_ext.models.transformer import Transformer


class RoFormer(Transformer):
    position_scheme = "rotary"

    def position_options(self):
        return {"rotary_value": self.config["rotary_value"]}


class RoFormerV2(RoFormer):
    use_bias = False

    def layer_norm(self, x, name, **options):
        if self.cond is not None:
            raise ValueError("RoFormer-V2's norms have no parameters to condition: "
                             "layer_norm_cond is not supported for model='roformer_v2'.")
        return super().layer_norm(x, name, zero_mean=False, center=False, scale=False,
                                  **options)

    def embeddings(self, inputs):
        x = self.dropout(self.token_and_segment(inputs), self.config["hidden_dropout_prob"],
                         names.EMBEDDING_DROPOUT)
        return self.embedding_mapping(self.layer_norm(x, names.EMBEDDING_NORM))

    def heads(self, x):
        if self.with_pool:
            raise ValueError("model='roformer_v2' has no pooler; with_pool is not supported.")
        if not self.with_mlm:
            return x
        y = x
        if self.embedding_size != self.hidden_size:
            y = self.dense(y, self.embedding_size, names.OUTPUT_MAPPING)
        y = self.dropout(y, self.config["hidden_dropout_prob"], names.OUTPUT_MLM_DROPOUT)
        logits = self.token_embedding()(y, mode="dense")
        outputs = self.output_activation(logits, self.with_mlm, names.OUTPUT_MLM_ACTIVATION)
        self.record_head(x, [names.OUTPUT_MAPPING, names.OUTPUT_MLM_DROPOUT, self.tied_output],
                         names.OUTPUT_MLM_ACTIVATION)
        return outputs


# RoFormer-V2's checkpoints have BERT's names less the biases and norm parameters it lacks.
register_family("roformer", RoFormer, bert_weight_names, hugging_face_prefixes=("roformer.",))
register_family("roformer_v2", RoFormerV2, bert_weight_names,
                hugging_face_prefixes=("roformer.",))
