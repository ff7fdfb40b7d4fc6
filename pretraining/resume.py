"""Resuming a pretraining run safely: the flags it was started with, and the newest checkpoint
that can actually be read.

A run directory holds `run_flags.json` (the flags that fix what the checkpoints mean) and
`ckpt-N.*` files. A rerun with other values for those flags is refused: the update count, the
optimizer's slots, the data order or the learning-rate schedule would silently mean something
else. A newest checkpoint that cannot be read (a deleted index, a truncated data file) is moved
aside as `damaged-ckpt-N.*` and the run resumes from the newest one that restores; it never
starts over while checkpoints exist, and never rotates a good checkpoint away because of a
damaged one.

Only one run may write a directory: the first start claims it with `run.lock` (the owner's pid
and host); a second run is refused while the owner is alive, and a lock whose owner died
on this host (killed, machine restarted) is taken over with a message. A lock of a run on
another host cannot be checked from here: it is refused, as is one whose pid another program
has taken since, saying which file to delete once that run is over.
"""
import json
import os
import re
import socket
import sys

import tensorflow as tf

FLAGS_FILE = "run_flags.json"
LOCK_FILE = "run.lock"
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


def lock_model_dir(model_dir):
    """Claims `model_dir` for this process (see the module docstring) and returns the lock
    file's path; a directory that cannot be written is an error naming `--model-dir`."""
    path = os.path.join(model_dir, LOCK_FILE)
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    try:
        tf.io.gfile.makedirs(model_dir)
        while not _create_new(path, json.dumps(owner)):
            holder = _read_lock(path)
            if holder == owner:
                return path
            if holder is not None and _alive(holder):
                raise ValueError(
                    f"`--model-dir` {model_dir!r} is in use by process {holder['pid']} on "
                    f"{holder['host']} (its lock file {path}); two runs would overwrite each "
                    "other's checkpoints. Wait for it to end or use another --model-dir; if "
                    f"that run has ended (its pid now another program's), delete {path}.")
            if tf.io.gfile.exists(path):  # (not released in the meantime)
                print(f"taking over {path}: its owner " + (
                    f"(process {holder['pid']} on {holder['host']})" if holder
                    else "(unreadable)") + " is no longer running", file=sys.stderr)
                tf.io.gfile.remove(path)
    except (OSError, tf.errors.OpError) as error:
        raise ValueError(f"`--model-dir` {model_dir!r} cannot be written: "
                         f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
    return path


def unlock_model_dir(path):
    """Removes the lock file `path` if this process holds it."""
    if _read_lock(path) == {"pid": os.getpid(), "host": socket.gethostname()}:
        tf.io.gfile.remove(path)


def _create_new(path, text):
    """Writes `text` to `path` whole, only if `path` does not exist; returns whether it did."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with tf.io.gfile.GFile(temporary, "w") as file:
        file.write(text)
    try:
        if "://" in path:  # object stores: no atomic create, the check and the move are close
            tf.io.gfile.rename(temporary, path, overwrite=False)
        else:
            os.link(temporary, path)  # fails if `path` exists, atomically
        return True
    except (FileExistsError, tf.errors.AlreadyExistsError):
        return False
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)


def _read_lock(path):
    try:
        with tf.io.gfile.GFile(path) as file:
            holder = json.load(file)
        return {"pid": int(holder["pid"]), "host": str(holder["host"])}
    except (OSError, tf.errors.OpError, ValueError, KeyError, TypeError):
        return None


def _alive(holder):
    """Whether the lock's owner may still run: certainly on another host (it cannot be
    checked), else whether its process exists."""
    if holder["host"] != socket.gethostname():
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
