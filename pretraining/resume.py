"""Resuming a pretraining run safely, on both routes: the flags it was started with, and one
run per directory.

A run directory holds `run_flags.json` (the flags that fix what the checkpoints mean). A rerun
with other values for those flags is refused: the update count, the optimizer's slots, the
data order or the learning-rate schedule would silently mean something else. (Each route
restores the newest checkpoint that can actually be read: tf_route.py, jax_route.py.)

Only one run may write a directory: the first start claims it with `run.lock` (the owner's pid
and host); a second run is refused while the owner is alive, and a lock whose owner died
on this host (killed, machine restarted) is taken over with a message. A lock of a run on
another host cannot be checked from here: it is refused, as is one whose pid another program
has taken since, saying which file to delete once that run is over.
"""
import json
import os
import socket
import sys

import files

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
    if files.exists(path):
        saved = json.loads(files.read_text(path))
        changed = [f"--{name.replace('_', '-')} {current[name]!r} (the run used "
                   f"{saved[name]!r})" for name in FIXED_FLAGS
                   if name in saved and saved[name] != current[name]]
        if changed:
            raise ValueError(f"`--model-dir` {args.model_dir!r} holds a run started with other "
                             f"flags: {'; '.join(changed)}. Rerun with the same flags to "
                             f"resume, or use a new --model-dir.")
    elif write:
        files.makedirs(args.model_dir)
        write_atomically(path, json.dumps(current, indent=1))


def lock_model_dir(model_dir):
    """Claims `model_dir` for this process (see the module docstring) and returns the lock
    file's path; a directory that cannot be written is an error naming `--model-dir`."""
    path = os.path.join(model_dir, LOCK_FILE)
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    try:
        files.makedirs(model_dir)
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
            if files.exists(path):  # (not released in the meantime)
                print(f"taking over {path}: its owner " + (
                    f"(process {holder['pid']} on {holder['host']})" if holder
                    else "(unreadable)") + " is no longer running", file=sys.stderr)
                files.remove(path)
    except files.ERRORS as error:
        raise ValueError(f"`--model-dir` {model_dir!r} cannot be written: "
                         f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
    return path


def build_with_lock(model_dir, claim, build):
    """`build()`'s result (a run), with `model_dir` claimed first when `claim` (the run's chief)
    and given back if building fails; the lock's path (or None) is the result's `lock`."""
    lock = lock_model_dir(model_dir) if claim else None
    try:
        run = build()
    except BaseException:
        if lock:
            unlock_model_dir(lock)
        raise
    run.lock = lock
    return run


def unlock_model_dir(path):
    """Removes the lock file `path` if this process holds it."""
    if _read_lock(path) == {"pid": os.getpid(), "host": socket.gethostname()}:
        files.remove(path)


def _create_new(path, text):
    """Writes `text` to `path` whole, only if `path` does not exist; returns whether it did."""
    temporary = f"{path}.{os.getpid()}.tmp"
    files.write_text(temporary, text)
    try:
        if "://" in path:  # object stores: no atomic create, the check and the move are close
            files.rename(temporary, path, overwrite=False)
        else:
            os.link(temporary, path)  # fails if `path` exists, atomically
        return True
    except files.EXISTS_ERRORS:
        return False
    finally:
        if files.exists(temporary):
            files.remove(temporary)


def _read_lock(path):
    try:
        holder = json.loads(files.read_text(path))
        return {"pid": int(holder["pid"]), "host": str(holder["host"])}
    except (*files.ERRORS, ValueError, KeyError, TypeError):
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
    files.write_text(temporary, text)
    files.rename(temporary, path, overwrite=True)
