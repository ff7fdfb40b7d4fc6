"""Model builders: one module per family on the shared `Transformer` builder, each registering
its `Family` record (`registry`); the typed model they return (`backbone`) and its output head
(`output_head`); typed configs (`config`); bert4keras's layer names (`names`)."""
from bert4keras_ext.models.backbone import ModelParts, TransformerModel
from bert4keras_ext.models.build import MODELS, build_transformer_model
from bert4keras_ext.models.config import TransformerConfig, load_config
from bert4keras_ext.models.inspection import attention_probabilities, intermediate_outputs
from bert4keras_ext.models.output_head import OutputHead
from bert4keras_ext.models.registry import FAMILIES, Family, get_family, register_family
from bert4keras_ext.models.transformer import Transformer

__all__ = ["FAMILIES", "MODELS", "Family", "ModelParts", "OutputHead", "Transformer",
           "TransformerConfig", "TransformerModel", "attention_probabilities",
           "build_transformer_model", "get_family", "intermediate_outputs", "load_config",
           "register_family"]
