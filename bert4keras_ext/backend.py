"""Small keras.ops helpers shared by several modules, and bert4keras's `backend` names (no
TensorFlow import).

bert4keras scripts start with `from bert4keras.backend import keras, K`; here `keras` is
Keras 3 and `K` answers the Keras 2 backend functions those scripts call (`K.cast`, `K.sum`,
`K.floatx`, `K.sparse_categorical_crossentropy`, ...) from `keras.ops`, then `keras.backend`
and `keras.config`. `set_gelu` chooses what 'gelu' means, as bert4keras's does.
"""
import keras
from keras import ops

from bert4keras_ext.activations import set_gelu  # noqa: F401  (bert4keras's home of it)


class _KerasBackend:
    """`K`: Keras 2's backend functions, found in `keras.ops`, `keras.backend`, then
    `keras.config`."""

    def __getattr__(self, name):
        for source in (ops, keras.backend, keras.config):
            if hasattr(source, name):
                return getattr(source, name)
        raise AttributeError(
            f"K.{name} is not in keras.ops, keras.backend or keras.config (Keras 3); see "
            "MIGRATION.md for its replacement."
        )

    @staticmethod
    def int_shape(x):
        return tuple(x.shape)


K = _KerasBackend()


def check_rank(x, rank, name, meaning=""):
    """Raises a ValueError naming `name` unless `x` has exactly `rank` axes."""
    shape = tuple(ops.shape(x))
    if len(shape) != rank:
        meaning = f" {meaning}" if meaning else ""
        raise ValueError(
            f"`{name}` must be a rank-{rank} tensor{meaning}; received shape {shape}."
        )
    return shape


def one_of(value, alias, name, alias_name):
    """The argument given under its name or under bert4keras's name for it, not both."""
    if (value is None) == (alias is None):
        raise TypeError(f"Pass exactly one of `{name}` and `{alias_name}` (bert4keras's name); "
                        f"received {name}={value!r}, {alias_name}={alias!r}.")
    return value if alias is None else alias


def check_positive_int(value, name):
    """Raises a ValueError naming `name` unless `value` is an integer >= 1."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
