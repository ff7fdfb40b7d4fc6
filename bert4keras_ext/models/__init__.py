"""Model builders."""
from bert4keras_ext.models.bert import build_transformer_model, load_config

__all__ = ["build_transformer_model", "load_config"]
