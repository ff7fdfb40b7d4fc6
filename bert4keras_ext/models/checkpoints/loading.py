"""Loading BERT checkpoints into models made by `build_transformer_model`."""
import warnings
from dataclasses import dataclass, field

import numpy as np

from bert4keras_ext.models.checkpoints.name_map import (
    OPTIONAL_HEADS,
    VOCABULARY_WEIGHTS,
    bert_weight_names,
)
from bert4keras_ext.models.checkpoints.readers import CheckpointReader


@dataclass
class LoadReport:
    """What a load did: weights filled, weights left at their initial values, and checkpoint
    variables nothing used."""

    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unused: list = field(default_factory=list)

    def __str__(self):
        return (f"loaded {len(self.loaded)} weights; not in the checkpoint: {self.missing}; "
                f"unused checkpoint variables: {self.unused}")


def num_layers_of(model):
    return sum(1 for layer in model.layers if layer.name.endswith("-MultiHeadSelfAttention"))


def load_checkpoint(model, checkpoint_path, keep_tokens=None):
    """Loads a BERT checkpoint (original TF prefix or `.safetensors`) into `model` by name.

    `keep_tokens` (a list of vocabulary ids) selects the rows of the token embeddings and of
    the MLM output bias, so the model can use a reduced vocabulary. A shape mismatch is an error
    naming the weight and both shapes, and nothing is assigned then. Weights the checkpoint
    lacks keep their initial values and are warned about; checkpoint variables left unused are
    listed in the returned `LoadReport` (and warned about, except pooler/MLM/NSP heads).
    """
    reader = CheckpointReader(checkpoint_path)
    ours = {variable.path: variable for variable in model.weights}
    report, assignments, mismatches = LoadReport(), [], []
    used = set()
    for name in bert_weight_names(num_layers_of(model)):
        if name.ours not in ours:
            continue
        source = name.original if reader.naming == "original" else name.hugging_face
        stored = reader.find(source)
        if stored is None:
            report.missing.append(name.ours)
            continue
        used.add(stored)
        value = reader.get(stored)
        if reader.naming == "hugging_face" and name.transposed_in_hugging_face:
            value = value.T
        if keep_tokens is not None and name.ours in VOCABULARY_WEIGHTS:
            value = value[np.asarray(keep_tokens)]
        target = ours[name.ours]
        if tuple(value.shape) != tuple(target.shape):
            mismatches.append(
                f"{name.ours}: model shape {tuple(target.shape)}, checkpoint variable {stored} "
                f"gives {tuple(value.shape)}"
            )
            continue
        assignments.append((target, value))
        report.loaded.append(name.ours)
    if mismatches:
        raise ValueError(
            f"Shape mismatch between the model and {checkpoint_path}:\n  " + "\n  ".join(mismatches)
        )
    for target, value in assignments:
        target.assign(value.astype(target.dtype))
    report.unused = sorted(reader.names() - used)
    if report.missing:
        warnings.warn(f"Weights not found in {checkpoint_path}, left as initialized: "
                      f"{report.missing}", stacklevel=2)
    unexpected = [n for n in report.unused if not _expected_unused(n)]
    if unexpected:
        warnings.warn(f"Checkpoint variables of {checkpoint_path} left unused: {unexpected}",
                      stacklevel=2)
    return report


def _expected_unused(name):
    """Heads the model may leave out, optimizer state and buffers of training checkpoints."""
    name = name[len("bert."):] if name.startswith("bert.") else name
    return name.startswith(OPTIONAL_HEADS) or name.endswith(
        ("adam_m", "adam_v", "global_step", "position_ids")
    )
