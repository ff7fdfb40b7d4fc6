"""Shard manifests, for both data formats: `{prefix}.manifest.json` beside the shards records
the mode, the sequence length and each shard's record count and size, so training checks the
shards before it starts and finds positions in the data without reading it."""
import json
import os

import files


def write_manifest(output_prefix, mode, seq_len, paths, records):
    """`{output_prefix}.manifest.json` for the shards `paths` holding `records` records each."""
    manifest = {"mode": mode, "seq_len": seq_len,
                "shards": {os.path.basename(path): {"records": count, "bytes": files.size(path)}
                           for path, count in zip(paths, records)}}
    files.write_text(f"{output_prefix}.manifest.json", json.dumps(manifest, indent=1))


def manifest_entries(paths):
    """{shard path: its manifest entry with the manifest's mode and seq_len} for the shards of
    `paths` that a manifest in their folder describes."""
    entries = {}
    for folder in {os.path.dirname(path) for path in paths}:
        for manifest_path in files.glob(os.path.join(folder or ".", "*.manifest.json")):
            manifest = json.loads(files.read_text(manifest_path))
            for name, entry in manifest["shards"].items():
                entries[os.path.join(folder, name)] = dict(entry, mode=manifest["mode"],
                                                           seq_len=manifest["seq_len"])
    return entries


def check_shards(paths, mode, seq_len, entry_without_manifest=None):
    """Refuses shards that cannot give what training expects, naming the file: a size other
    than its manifest's (truncated or changed after writing), another mode or sequence
    length, or no records at all. A shard without a manifest is described by
    `entry_without_manifest(path)` (TFRecord: its first record), or refused when None."""
    entries = manifest_entries(paths)
    records = 0
    for path in paths:
        entry = entries.get(path)
        if entry is None:
            if entry_without_manifest is None:
                raise ValueError(f"Shard {path} has no manifest (*.manifest.json beside it, "
                                 f"written by data_utils.py with the shards).")
            entry = entry_without_manifest(path)
        elif files.size(path) != entry["bytes"]:
            raise ValueError(f"Shard {path} has {files.size(path)} bytes; its manifest says "
                             f"{entry['bytes']} (truncated or changed after it was written).")
        for key, wanted in (("mode", mode), ("seq_len", seq_len)):
            if entry.get(key) is not None and entry[key] != wanted:
                raise ValueError(f"Shard {path} was written with {key}={entry[key]!r}; "
                                 f"training asks for {wanted!r}.")
        records += entry["records"]
    if not records:
        raise ValueError(f"The {len(paths)} shard(s) hold no records.")
