"""bert4keras_ext: bert4keras for Keras 3.

Importing the package imports Keras. With the TensorFlow backend (the default) TensorFlow must be
installed; it is not a hard requirement of the package because the right wheel depends on the
machine, so it comes through an extra.
"""
__version__ = "0.1.0"

_MISSING_TENSORFLOW = (
    "bert4keras_ext needs TensorFlow for Keras's TensorFlow backend, and it is not installed. "
    "Install the extra that fits your machine: pip install 'bert4keras_ext[cpu]' (CPU), "
    "'bert4keras_ext[gpu]' (NVIDIA GPUs) or 'bert4keras_ext[tpu]' (TPU VMs, TensorFlow <= 2.20); "
    "or set KERAS_BACKEND=jax to use the backend-independent layers and optimizers without it."
)

try:
    import keras  # noqa: F401
except ModuleNotFoundError as error:
    if error.name and error.name.split(".")[0] == "tensorflow":
        raise ImportError(_MISSING_TENSORFLOW) from error
    raise
