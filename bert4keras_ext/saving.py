"""Model and weight files written whole or not at all.

Keras writes `save_weights` and `save` in place: a process killed while it rewrites
`best_model.weights.h5` leaves a file that neither the old nor the new weights can be read
from. `save_atomically` writes a temporary file beside the target, flushes it to disk and
renames it over the target (an atomic replace), so the previous file survives any crash.
"""
import os

SUFFIXES = (".weights.h5", ".keras")


def save_atomically(model, filepath):
    """`model.save_weights(filepath)` (`.weights.h5`) or `model.save(filepath)` (`.keras`),
    replacing an existing file only once the new one is complete.

    Example:
    ```python
    save_atomically(model, "best_model.weights.h5")
    ```
    """
    filepath = os.fspath(filepath)
    suffix = next((s for s in SUFFIXES if filepath.endswith(s)), None)
    if suffix is None:
        raise ValueError(f"`filepath` must end in {' or '.join(SUFFIXES)} (Keras 3); "
                         f"received {filepath!r}.")
    folder, name = os.path.split(os.path.abspath(filepath))
    # Keras checks the suffix, so the temporary name keeps it.
    temporary = os.path.join(folder, f".{name[:-len(suffix)]}.tmp-{os.getpid()}{suffix}")
    try:
        if suffix == ".keras":
            model.save(temporary)
        else:
            model.save_weights(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, filepath)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
