"""Checkpoints of every family: name maps, readers, loading into our models and exporting."""
from bert4keras_ext.models.checkpoints.export import (
    config_from_model,
    save_as_bert_checkpoint,
    save_checkpoint,
)
from bert4keras_ext.models.checkpoints.loading import LoadReport, load_checkpoint
from bert4keras_ext.models.checkpoints.name_map import WeightName, weight_names

__all__ = [
    "LoadReport",
    "WeightName",
    "config_from_model",
    "load_checkpoint",
    "save_as_bert_checkpoint",
    "save_checkpoint",
    "weight_names",
]
