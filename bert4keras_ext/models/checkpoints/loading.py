"""Loading checkpoints into models made by `build_transformer_model`, by each family's name map."""
import warnings
from dataclasses import dataclass, field

import numpy as np

from bert4keras_ext.models.checkpoints.name_map import (
    HUGGING_FACE_PREFIXES,
    OPTIONAL_HEADS,
    VOCABULARY_WEIGHTS,
    num_layers_of,
    weight_names,
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


def read_weight(reader, name, prefixes=()):
    """The array for one `WeightName` in our layout ([in, out] kernels), or None."""
    source = name.original if reader.naming == "original" else name.hugging_face
    stored = reader.find(source, prefixes)
    if stored is None:
        return None, None
    value = reader.get(stored)
    if reader.naming == "original" and name.transposed_in_original:
        value = value.T
    if reader.naming == "hugging_face":
        if name.hugging_face_part is not None:
            axis, index, parts = name.hugging_face_part
            value = np.split(value, parts, axis=axis)[index]
        if name.transposed_in_hugging_face:
            value = value.T
    return stored, value


def load_checkpoint(model, checkpoint_path, keep_tokens=None, family="bert"):
    """Loads a checkpoint of `family` (original TF prefix or `.safetensors`) into `model`.

    `keep_tokens` (a list of vocabulary ids) selects the rows of the token embeddings and of
    the MLM output bias, so the model can use a reduced vocabulary. A shape mismatch is an error
    naming the family, the weight and both shapes, and nothing is assigned then; so is a
    checkpoint holding none of the family's variables. Weights the checkpoint lacks keep their
    initial values and are warned about; checkpoint variables left unused are listed in the
    returned `LoadReport` (and warned about, except optional heads).
    """
    reader = CheckpointReader(checkpoint_path)
    prefixes = HUGGING_FACE_PREFIXES.get(family, ())
    ours = {variable.path: variable for variable in model.weights}
    report, assignments, mismatches = LoadReport(), [], []
    used = set()
    for name in weight_names(family, num_layers_of(model)):
        if name.ours not in ours:
            continue
        stored, value = read_weight(reader, name, prefixes)
        if stored is None:
            report.missing.append(name.ours)
            continue
        used.add(stored)
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise ValueError(f"Checkpoint {checkpoint_path} holds NaN or infinite values in "
                             f"{stored} (a damaged file?).")
        if keep_tokens is not None and name.ours in VOCABULARY_WEIGHTS:
            axis = VOCABULARY_WEIGHTS[name.ours]
            if max(keep_tokens) >= value.shape[axis]:
                raise ValueError(f"`keep_tokens` holds id {max(keep_tokens)}, beyond the "
                                 f"{value.shape[axis]} rows of {stored} in the checkpoint.")
            value = np.take(value, np.asarray(keep_tokens), axis=axis)
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
            f"Shape mismatch between the model={family!r} model and {checkpoint_path}:\n  "
            + "\n  ".join(mismatches)
        )
    if not report.loaded:
        sample = sorted(reader.names())[:5]
        raise ValueError(
            f"{checkpoint_path} holds none of the model={family!r} variables (for weights "
            f"like {report.missing[:2]}); its variables start {sample}. Is it a checkpoint of "
            "another family?"
        )
    for target, value in assignments:
        target.assign(value.astype(target.dtype))
    report.unused = sorted(reader.names() - used)
    if report.missing:
        warnings.warn(f"Weights not found in {checkpoint_path}, left as initialized: "
                      f"{report.missing}", stacklevel=2)
    unexpected = [n for n in report.unused if not _expected_unused(n, prefixes, family)]
    if unexpected:
        warnings.warn(f"Checkpoint variables of {checkpoint_path} left unused: {unexpected}",
                      stacklevel=2)
    return report


def _expected_unused(name, prefixes, family):
    """Heads the model may leave out, the other half of a T5 checkpoint, optimizer state and
    buffers of training checkpoints."""
    for prefix in prefixes:
        if name.startswith(prefix):
            name = name[len(prefix):]
    other_half = {"encoder": ("decoder", "lm_head"), "decoder": ("encoder",)}.get(
        family.rsplit("_", 1)[-1], ())
    return name.startswith(OPTIONAL_HEADS + other_half) or name.endswith(
        ("adam_m", "adam_v", "global_step", "position_ids", "masked_bias", "attn.bias",
                         "embed_positions.weight")
    )
