"""ELECTRA ("ELECTRA: Pre-training Text Encoders as Discriminators Rather Than Generators",
https://arxiv.org/abs/2003.10555): the discriminator is BERT's graph; its head predicts, per
token, whether the token was replaced (`with_discriminator`).
"""
from bert4keras_ext import activations
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
        x = self.dense(x, self.hidden_size, "Discriminator-Dense",
                       activation=activations.get(self.config["hidden_act"]))
        return self.dense(x, 1, "Discriminator-Prediction", activation=activation)
