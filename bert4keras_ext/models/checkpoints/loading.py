"""Loading checkpoints into models made by `build_transformer_model`, by each family's name map."""
import warnings
from dataclasses import dataclass, field

import numpy as np

from bert4keras_ext.models.checkpoints.export import described
from bert4keras_ext.models.checkpoints.name_map import (
    OPTIONAL_HEADS,
    VOCABULARY_WEIGHTS,
    weight_role,
)
from bert4keras_ext.models.checkpoints.readers import CheckpointReader
from bert4keras_ext.models.registry import FAMILIES, get_family


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
    the MLM output bias, so the model can use a reduced vocabulary. Errors, with nothing
    assigned: a shape mismatch (naming the family, the weight and both shapes); a checkpoint
    holding none of the family's variables; and one lacking a kind of block weight in every
    block (all norms, all feed-forward input kernels, ...), which is a checkpoint of another
    variant (T5.1.0 or mT5 loaded as 't5.1.1') or of another config. These errors name the
    families whose names fit the checkpoint best. Other weights the checkpoint lacks (a head,
    the embeddings, some of the blocks) keep their initial values and are warned about;
    checkpoint variables left unused are listed in the returned `LoadReport` (and warned about,
    except optional heads).
    """
    record = get_family(family, "family")
    reader = CheckpointReader(checkpoint_path)
    prefixes = record.hugging_face_prefixes
    ours = {variable.path: variable for variable in model.weights}
    report, assignments, mismatches = LoadReport(), [], []
    used = set()
    num_hidden_layers = described(model).num_layers
    expected = []
    for name in record.weight_names(num_hidden_layers):
        if name.ours not in ours:
            continue
        expected.append(name.ours)
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
            f"another family?{fitting_families(reader, num_hidden_layers, family)}"
        )
    absent = absent_roles(report.missing, expected)
    if absent:
        unused = sorted(reader.names() - used)
        raise ValueError(
            f"{checkpoint_path} holds no model={family!r} weights for {absent} in any block "
            f"(e.g. {report.missing[:3]}): the model would run with them as initialized. "
            f"Variables it holds that model={family!r} does not read: {unused[:5]}."
            f"{fitting_families(reader, num_hidden_layers, family)}"
        )
    for target, value in assignments:
        target.assign(value.astype(target.dtype))
    report.unused = sorted(reader.names() - used)
    if report.missing:
        warnings.warn(f"Weights not found in {checkpoint_path}, left as initialized: "
                      f"{report.missing}", stacklevel=2)
    unexpected = [n for n in report.unused if not expected_unused(n, record)]
    if unexpected:
        warnings.warn(f"Checkpoint variables of {checkpoint_path} left unused: {unexpected}",
                      stacklevel=2)
    return report


def absent_roles(missing, expected):
    """The block weight roles (`weight_role`) of which every weight in `expected` is in
    `missing`: a kind of weight the checkpoint has for no block."""
    missing = set(missing)
    roles = {}
    for path in expected:
        role = weight_role(path)
        if role is not None:
            roles.setdefault(role, []).append(path in missing)
    return sorted(role for role, absent in roles.items() if all(absent))


def fitting_families(reader, num_hidden_layers, family):
    """A sentence naming the families whose name maps find the most variables of `reader`
    (all of those tied); when `family` is one of them, advice to check the config."""
    found = {}
    for candidate in FAMILIES.values():
        stored = {reader.find(name.original if reader.naming == "original"
                              else name.hugging_face, candidate.hugging_face_prefixes)
                  for name in candidate.weight_names(num_hidden_layers)}
        found[candidate.name] = len(stored - {None})
    best = max(found.values())
    fits = [candidate for candidate, count in found.items() if count == best]
    # A T5's halves read the same names as the whole: name the whole.
    fits = [candidate for candidate in fits if FAMILIES[candidate].half_of not in fits]
    if not best or family in fits:
        return " Check the config (sizes, hidden_act, layers) against the checkpoint."
    return (f" Its variables fit model={' or '.join(map(repr, fits))} ({best} of "
            f"{len(reader.names())} found).")


def expected_unused(name, family):
    """Heads the model may leave out, variables `family` (a `Family`) leaves unused (the other
    half of a T5 checkpoint), optimizer state, buffers of training checkpoints and Hugging Face
    T5's copies of the shared embedding."""
    for prefix in family.hugging_face_prefixes:
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.startswith(OPTIONAL_HEADS + family.unused_prefixes) or name.endswith(
        ("adam_m", "adam_v", "global_step", "position_ids", "masked_bias", "attn.bias",
         "embed_positions.weight", "embed_tokens.weight")
    )
