"""Resuming a pretraining run safely: the flags it was started with, and the newest checkpoint
that can actually be read.

A run directory holds `run_flags.json` (the flags that fix what the checkpoints mean) and
`ckpt-N.*` files. A rerun with other values for those flags is refused: the update count, the
optimizer's slots, the data order or the learning-rate schedule would silently mean something
else. A newest checkpoint that cannot be read (a deleted index, a truncated data file) is moved
aside as `damaged-ckpt-N.*` and the run resumes from the newest one that restores; it never
starts over while checkpoints exist, and never rotates a good checkpoint away because of a
damaged one.
"""
import json
import os
import re
import sys

import tensorflow as tf

FLAGS_FILE = "run_flags.json"
# Flags whose change would reinterpret the saved state (update count = micro-steps // k,
# optimizer slots, data position and order, schedule).
FIXED_FLAGS = ("mode", "seq_len", "global_batch_size", "grad_accum_steps", "optimizer", "lr",
               "warmup_steps", "total_steps", "weight_decay", "ema", "max_predictions", "seed")


def check_run_flags(args, write):
    """Refuses flags that differ from the run's first start; records them on a first start
    (`write`: the chief)."""
    path = os.path.join(args.model_dir, FLAGS_FILE)
    current = {name: getattr(args, name) for name in FIXED_FLAGS}
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as file:
            saved = json.load(file)
        changed = [f"--{name.replace('_', '-')} {current[name]!r} (the run used "
                   f"{saved[name]!r})" for name in FIXED_FLAGS
                   if name in saved and saved[name] != current[name]]
        if changed:
            raise ValueError(f"`--model-dir` {args.model_dir!r} holds a run started with other "
                             f"flags: {'; '.join(changed)}. Rerun with the same flags to "
                             f"resume, or use a new --model-dir.")
    elif write:
        tf.io.gfile.makedirs(args.model_dir)
        write_atomically(path, json.dumps(current, indent=1))


def write_atomically(path, text):
    """Writes a file whole or not at all (a temporary file renamed over it)."""
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as file:
        file.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def checkpoint_prefixes(model_dir):
    """`ckpt-N` prefixes with any file in `model_dir`, newest first (the state file may be
    missing or name a checkpoint whose files are gone)."""
    numbers = set()
    for path in tf.io.gfile.glob(os.path.join(model_dir, "ckpt-*")):
        match = re.fullmatch(r"ckpt-(\d+)\..+", os.path.basename(path))
        if match:
            numbers.add(int(match.group(1)))
    return [os.path.join(model_dir, f"ckpt-{n}") for n in sorted(numbers, reverse=True)]


def restore_newest_good(checkpoint, prefixes, chief):
    """Restores the newest readable checkpoint of `prefixes` and returns its prefix; the
    newer, damaged ones are moved aside (by the chief) and named on stderr. Raises if none
    restores, with each checkpoint's error."""
    errors = []
    for prefix in prefixes:
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
        except (tf.errors.OpError, IndexError, ValueError, AssertionError) as error:
            errors.append((prefix, f"{type(error).__name__}: {str(error).splitlines()[0]}"))
            continue
        if errors:
            print(f"resuming from {prefix}: newer checkpoints could not be read and were moved "
                  f"aside as damaged-*: " + "; ".join(f"{p} ({e})" for p, e in errors),
                  file=sys.stderr)
            if chief:
                _set_aside([p for p, _ in errors], prefix, prefixes)
        return prefix
    raise ValueError("No checkpoint in `--model-dir` could be restored: " +
                     "; ".join(f"{p}: {e}" for p, e in errors))


def _set_aside(damaged, restored, prefixes):
    for prefix in damaged:
        folder, name = os.path.split(prefix)
        for path in tf.io.gfile.glob(prefix + ".*"):
            suffix = os.path.basename(path)[len(name):]
            tf.io.gfile.rename(path, os.path.join(folder, f"damaged-{name}{suffix}"),
                               overwrite=True)
    # The state file lists only readable checkpoints, oldest first, so rotation counts them.
    kept = [p for p in reversed(prefixes) if p not in damaged]
    tf.compat.v1.train.update_checkpoint_state(os.path.dirname(restored), restored,
                                               all_model_checkpoint_paths=kept)
