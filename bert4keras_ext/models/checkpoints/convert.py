"""Converts Hugging Face weights (safetensors) to a family's original-format TF checkpoint.

    python -m bert4keras_ext.models.checkpoints.convert model.safetensors out/bert_model.ckpt \\
        [--model albert] [--config config.json]

Every variable of the family's name map found in the safetensors file is written under its
original name (Linear weights transposed back to [in, out], GPT-2's fused query/key/value
split); `--config` is copied to `bert_config.json` beside the checkpoint. A file with tensors
the family has no name for (a checkpoint of another family) is refused, naming them and the
families its names fit: nothing would hold them. Heads no family reads (such as BERT's
next-sentence head) and buffers are left out without an error.
"""
import argparse
import json
import os
import re

from bert4keras_ext.models.checkpoints.export import write_original_checkpoint
from bert4keras_ext.models.checkpoints.loading import (
    expected_unused,
    fitting_families,
    read_weight,
)
from bert4keras_ext.models.checkpoints.readers import CheckpointReader
from bert4keras_ext.models.registry import FAMILIES, get_family


def convert(safetensors_path, checkpoint_path, family="bert"):
    """Writes the checkpoint; returns the original names written."""
    record = get_family(family, "family")
    reader = CheckpointReader(safetensors_path)
    if reader.naming != "hugging_face":
        raise ValueError(f"Expected a '.safetensors' file; received {safetensors_path}.")
    # Block indices appear as 'layer.N.' (BERT-like), 'h.N.' (GPT-2) or 'block.N.' (T5, first
    # in the name); ALBERT has none.
    block = re.compile(r"(?:^|\.)(?:block|layer|h)\.(\d+)\.")
    indices = [int(found.group(1)) for found in map(block.search, reader.names()) if found]
    num_hidden_layers = 1 + max(indices, default=-1)
    prefixes = record.hugging_face_prefixes
    tensors, used = {}, set()
    for name in record.weight_names(num_hidden_layers):
        if name.original is None or name.original in tensors:
            continue
        stored, value = read_weight(reader, name, prefixes)
        if stored is not None:
            used.add(stored)
            tensors[name.original] = value.T if name.transposed_in_original else value
    if not tensors:
        raise ValueError(f"{safetensors_path} holds none of the model={family!r} weights."
                         f"{fitting_families(reader, num_hidden_layers, family)}")
    dropped = sorted(name for name in reader.names() - used
                     if not expected_unused(name, record))
    if dropped:
        raise ValueError(
            f"{safetensors_path} is not a model={family!r} checkpoint: model={family!r} has no "
            f"name for {len(dropped)} of its {len(reader.names())} tensors (e.g. {dropped[:4]}),"
            f" which would be left out; nothing was written."
            f"{fitting_families(reader, num_hidden_layers, family)}")
    write_original_checkpoint(tensors, checkpoint_path)
    return sorted(tensors)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("safetensors")
    parser.add_argument("checkpoint", help="output prefix, e.g. out/bert_model.ckpt")
    parser.add_argument("--model", default="bert", choices=sorted(FAMILIES),
                        help="the family of the weights (default: bert)")
    parser.add_argument("--config", help="Hugging Face config.json to copy as bert_config.json")
    args = parser.parse_args(argv)
    try:
        written = convert(args.safetensors, args.checkpoint, args.model)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    if args.config:
        with open(args.config, encoding="utf-8") as file:
            config = json.load(file)
        target = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)),
                              "bert_config.json")
        with open(target, "w", encoding="utf-8") as file:
            json.dump(config, file, indent=2)
    print(f"wrote {len(written)} variables to {args.checkpoint}")


if __name__ == "__main__":
    main()
