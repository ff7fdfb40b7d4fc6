"""ELECTRA ("ELECTRA: Pre-training Text Encoders as Discriminators Rather Than Generators",
https://arxiv.org/abs/2003.10555): the discriminator is BERT's graph; its head predicts, per
token, whether the token was replaced (`with_discriminator`).
"""
from bert4keras_ext import activations
from bert4keras_ext.models import names
from bert4keras_ext.models.bert import bert_block_weights, bert_embedding_weights
from bert4keras_ext.models.checkpoints.name_map import dense_weights
from bert4keras_ext.models.registry import register_family
from bert4keras_ext.models.transformer import Transformer


class ELECTRA(Transformer):
    applications = ("encoder",)

    def __init__(self, config, with_discriminator=False, **options):
        for head in ("with_mlm", "with_pool"):
            if options.get(head):
                raise ValueError(f"model='electra' has no {head[5:]} head; use "
                                 "with_discriminator for the replaced-token head.")
        super().__init__(config, **options)
        self.with_discriminator = with_discriminator

    def heads(self, x):
        if not self.with_discriminator:
            return x
        activation = "sigmoid" if self.with_discriminator is True else self.with_discriminator
        x = self.dense(x, self.hidden_size, names.DISCRIMINATOR_DENSE,
                       activation=activations.get(self.config["hidden_act"]))
        return self.dense(x, 1, names.DISCRIMINATOR_PREDICTION, activation=activation)


def electra_weight_names(num_hidden_layers):
    """ELECTRA's discriminator: BERT's names under 'electra/' and the replaced-token head."""
    weights = bert_embedding_weights("electra")
    weights += dense_weights(names.EMBEDDING_MAPPING, "electra/embeddings_project",
                             "embeddings_project")
    for i in range(num_hidden_layers):
        weights += bert_block_weights(names.block(i), f"electra/encoder/layer_{i}",
                                      f"encoder.layer.{i}")
    return (weights
            + dense_weights(names.DISCRIMINATOR_DENSE, "discriminator_predictions/dense",
                            "discriminator_predictions.dense")
            + dense_weights(names.DISCRIMINATOR_PREDICTION, "discriminator_predictions/dense_1",
                            "discriminator_predictions.dense_prediction"))


register_family("electra", ELECTRA, electra_weight_names, hugging_face_prefixes=("electra.",))
