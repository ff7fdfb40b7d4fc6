"""BERT checkpoints: name maps, readers, loading into our models and exporting from them."""
from bert4keras_ext.models.checkpoints.export import config_from_model, save_as_bert_checkpoint
from bert4keras_ext.models.checkpoints.loading import LoadReport, load_checkpoint
from bert4keras_ext.models.checkpoints.name_map import WeightName, bert_weight_names

__all__ = [
    "LoadReport",
    "WeightName",
    "bert_weight_names",
    "config_from_model",
    "load_checkpoint",
    "save_as_bert_checkpoint",
]
