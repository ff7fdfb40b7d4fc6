"""Converts Hugging Face BERT weights (safetensors) to an original-format BERT TF checkpoint.

    python -m bert4keras_ext.models.checkpoints.convert model.safetensors out/bert_model.ckpt \\
        [--config config.json]

Every BERT variable of the name map found in the safetensors file is written under its
original name (Linear weights transposed back to [in, out]); `--config` is copied to
`bert_config.json` beside the checkpoint.
"""
import argparse
import json
import os

from bert4keras_ext.models.checkpoints.export import write_original_checkpoint
from bert4keras_ext.models.checkpoints.name_map import bert_weight_names
from bert4keras_ext.models.checkpoints.readers import CheckpointReader


def convert(safetensors_path, checkpoint_path, num_hidden_layers=None):
    """Writes the checkpoint; returns the original names written."""
    reader = CheckpointReader(safetensors_path)
    if reader.naming != "hugging_face":
        raise ValueError(f"Expected a '.safetensors' file; received {safetensors_path}.")
    if num_hidden_layers is None:
        num_hidden_layers = 1 + max(
            int(name.split("encoder.layer.")[1].split(".")[0])
            for name in reader.names() if "encoder.layer." in name
        )
    tensors = {}
    for name in bert_weight_names(num_hidden_layers):
        stored = reader.find(name.hugging_face)
        if stored is not None:
            value = reader.get(stored)
            tensors[name.original] = value.T if name.transposed_in_hugging_face else value
    write_original_checkpoint(tensors, checkpoint_path)
    return sorted(tensors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("safetensors")
    parser.add_argument("checkpoint", help="output prefix, e.g. out/bert_model.ckpt")
    parser.add_argument("--config", help="Hugging Face config.json to copy as bert_config.json")
    args = parser.parse_args()
    written = convert(args.safetensors, args.checkpoint)
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
