"""Small keras.ops helpers shared by several modules (no TensorFlow import)."""
from keras import ops


def check_rank(x, rank, name, meaning=""):
    """Raises a ValueError naming `name` unless `x` has exactly `rank` axes."""
    shape = tuple(ops.shape(x))
    if len(shape) != rank:
        meaning = f" {meaning}" if meaning else ""
        raise ValueError(
            f"`{name}` must be a rank-{rank} tensor{meaning}; received shape {shape}."
        )
    return shape


def check_positive_int(value, name):
    """Raises a ValueError naming `name` unless `value` is an integer >= 1."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
