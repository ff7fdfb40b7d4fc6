"""Model builders: one module per family on the shared `Transformer` builder."""
from bert4keras_ext.models.backbone import ModelParts, TransformerModel
from bert4keras_ext.models.build import MODELS, build_transformer_model
from bert4keras_ext.models.inspection import attention_probabilities, intermediate_outputs
from bert4keras_ext.models.output_head import OutputHead
from bert4keras_ext.models.transformer import Transformer, load_config

__all__ = ["MODELS", "ModelParts", "OutputHead", "Transformer", "TransformerModel",
           "attention_probabilities", "build_transformer_model", "intermediate_outputs",
           "load_config"]
