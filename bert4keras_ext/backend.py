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
