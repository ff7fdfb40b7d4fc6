"""Small keras.ops helpers shared by several modules, and bert4keras's `backend` names (no
TensorFlow import).

bert4keras scripts start with `from bert4keras.backend import keras, K`; here `keras` is
Keras 3 and `K` answers the Keras 2 backend functions those scripts call (`K.cast`, `K.sum`,
`K.floatx`, `K.sparse_categorical_crossentropy`, `K.eval`, `K.set_value`, ...) from `keras.ops`,
then `keras.backend` and `keras.config`. `set_gelu` chooses what 'gelu' means, as bert4keras's
does. `sequence_masking`, `batch_gather`, `search_layer`, `recompute_grad` and the multi-label
losses (from `bert4keras_ext.losses`) behave as bert4keras 0.11.5's
(https://github.com/bojone/bert4keras, `bert4keras/backend.py`); `recompute_grad` is built on
Keras 3's rematerialization ("Training Deep Nets with Sublinear Memory Cost", Chen et al., 2016,
https://arxiv.org/abs/1604.06174).
"""
import collections
import functools
import math
import os

import keras
import numpy as np
from keras import ops

from bert4keras_ext import arguments
from bert4keras_ext.activations import set_gelu  # noqa: F401  (bert4keras's home of it)
from bert4keras_ext.losses import (  # noqa: F401  (bert4keras's home of them)
    multilabel_categorical_crossentropy,
    sparse_multilabel_categorical_crossentropy,
)


class _KerasBackend:
    """`K`: Keras 2's backend functions, found in `keras.ops`, `keras.backend`, then
    `keras.config`, plus the few Keras 3 dropped that scripts still call."""

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

    @staticmethod
    def eval(x):
        """The value of a tensor or variable as a NumPy array."""
        if isinstance(x, keras.KerasTensor):
            raise TypeError(f"K.eval needs a tensor or variable with a value; received the "
                            f"symbolic {x!r} (call the model on data to get values).")
        return ops.convert_to_numpy(x)

    get_value = eval

    @staticmethod
    def set_value(variable, value):
        """Assigns the NumPy value `value` to a Keras variable, such as
        `optimizer.learning_rate`."""
        if not isinstance(variable, keras.Variable):
            raise TypeError(
                "K.set_value needs a keras.Variable (e.g. `model.optimizer.learning_rate` of "
                f"an optimizer built with a float learning rate); received {type(variable)}: "
                f"{variable!r}.")
        variable.assign(np.asarray(value, dtype=variable.dtype))


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
    """`value` as an `int` >= 1 (NumPy integers too), else an error naming `name`."""
    return arguments.integer(value, name, minimum=1)


_INFINITIES = {"-inf": -math.inf, "inf": math.inf}


def sequence_masking(x, mask=None, value=0, axis=None, bias=None, return_mask=False):
    """Replaces the positions of `x` where `mask` is 0 by `value` (bert4keras's semantics).

    `mask` is `[batch, length]` (bool or 0/1) and marks the positions of `x` along `axis`
    (default 1; a list of axes, e.g. `[2, 3]` for a `[batch, heads, length, length]` score
    matrix, keeps a position only where every one of its axes is kept). `value` is a number or
    the string '-inf' / 'inf' (infinity). `bias`: with a mask, a bool `bias` is one more mask
    and a float one is added to the kept positions; without a mask, a bool `bias` is the
    (already aligned) mask and a float one is added everywhere. `return_mask=True` also returns
    the aligned bool mask (None when none was given).

    Example: `sequence_masking(scores, mask, "-inf", axis=-1)` before a softmax over keys.
    """
    if isinstance(value, str):
        if value not in _INFINITIES:
            raise ValueError(f"`value` must be a number, '-inf' or 'inf'; received {value!r}.")
        value = _INFINITIES[value]
    if mask is not None:
        mask = _aligned_mask(x, mask, axis)
        if bias is not None and _is_bool(bias):
            mask = ops.logical_and(mask, bias)
        elif bias is not None:
            x = x + bias
        x = ops.where(mask, x, value)
    elif bias is not None and _is_bool(bias):
        mask = bias
        x = ops.where(mask, x, value)
    elif bias is not None:
        x = x + bias
    return (x, mask) if return_mask else x


def _is_bool(x):
    dtype = getattr(x, "dtype", None)
    return dtype is not None and keras.backend.standardize_dtype(dtype) == "bool"


def _aligned_mask(x, mask, axis):
    """`mask` `[batch, length]` as a bool tensor broadcastable to `x`, over each of `axis`."""
    rank = len(x.shape)
    check_rank(mask, 2, "mask", "[batch, length]")
    axes = [1] if axis is None else list(axis) if isinstance(axis, (list, tuple)) else [axis]
    mask = ops.cast(mask, "bool")
    aligned = None
    for axis_ in axes:
        position = axis_ + rank if axis_ < 0 else axis_
        if not 0 < position < rank:
            raise ValueError(f"`axis` must name axes of `x` after the batch axis (x has rank "
                             f"{rank}); received {axis!r}.")
        one_axis = mask
        for _ in range(position - 1):
            one_axis = ops.expand_dims(one_axis, 1)
        for _ in range(rank - position - 1):
            one_axis = ops.expand_dims(one_axis, -1)
        aligned = one_axis if aligned is None else ops.logical_and(aligned, one_axis)
    return aligned


def batch_gather(params, indices):
    """`params[b..., indices[b..., i], ...]`: a gather along the axis after `indices`'s batch
    axes (all of its axes but the last), as TensorFlow's `gather(batch_dims=rank - 1)`.

    `params` is `[B..., N, rest...]` and `indices` `[B..., M]`; the result is
    `[B..., M, rest...]`. Float indices are cast to int32, as bert4keras does.
    """
    indices = ops.convert_to_tensor(indices)
    if not keras.backend.standardize_dtype(indices.dtype).startswith(("int", "uint")):
        indices = ops.cast(indices, "int32")
    batch_axes = len(indices.shape) - 1
    trailing = len(params.shape) - len(indices.shape)
    if batch_axes < 0 or trailing < 0:
        raise ValueError(f"`params` must have at least the rank of `indices` (>= 1); received "
                         f"shapes {tuple(params.shape)} and {tuple(indices.shape)}.")
    for _ in range(trailing):  # take_along_axis broadcasts them over the trailing axes
        indices = ops.expand_dims(indices, -1)
    return ops.take_along_axis(params, indices, axis=batch_axes)


def search_layer(inputs, name, exclude_from=None):
    """The layer named `name` found from `inputs` upwards, or None.

    `inputs` is a model (its layers are searched, nested models included), a layer (itself,
    then the layers its input comes from) or the symbolic output of a layer (the layers it is
    computed from, the nearest first, and the layers of the models among them).
    `exclude_from`: layers to leave out (bert4keras's recursion passes the layers already
    seen): a model in it is not searched inside and the walk does not go past a layer in it;
    a layer named `name` is still found itself, as in bert4keras.

    From a tensor the walk reads the history Keras records on symbolic tensors (the one
    place this package does): Keras has no public way up a graph from a tensor, and
    `keras.utils.get_source_inputs` follows every path to the inputs, a number that
    multiplies with each residual block (days for a 12-layer model). This walk visits each
    layer once.

    Example: `search_layer(model.output, "Embedding-Token")`.
    """
    skipped = {id(layer) for layer in exclude_from or ()}
    if isinstance(inputs, keras.layers.Layer):
        layers, tensors = [inputs], []
        if not isinstance(inputs, keras.Model) and id(inputs) not in skipped:
            try:
                tensors = keras.tree.flatten(inputs.input)
            except AttributeError:  # never called on symbolic inputs: nothing upstream
                pass
    else:
        layers, tensors = [], keras.tree.flatten(inputs)
        for tensor in tensors:
            if not isinstance(tensor, keras.KerasTensor):
                raise TypeError("`inputs` must be a layer, a model or symbolic tensors "
                                f"(keras.KerasTensor); received {type(tensor)}: {tensor!r}.")
    layers += _upstream_layers(tensors, skipped)
    return _named(layers, name, skipped)


def _upstream_layers(tensors, skipped):
    """The layers `tensors` are computed from, nearest first, each once (breadth first); the
    walk does not go past the layers in `skipped`."""
    layers, seen, queue = [], set(), collections.deque(tensors)
    while queue:
        history = getattr(queue.popleft(), "_keras_history", None)
        if history is None or id(history.operation) in seen:
            continue
        operation = history.operation
        seen.add(id(operation))
        if isinstance(operation, keras.layers.Layer):
            layers.append(operation)
        if id(operation) not in skipped:
            queue.extend(operation._inbound_nodes[history.node_index].input_tensors)
    return layers


def _named(layers, name, skipped):
    """The first of `layers` named `name`, else the first found inside the models among them."""
    models = []
    for layer in layers:
        if layer.name == name:
            return layer
        if id(layer) not in skipped and isinstance(layer, keras.Model):
            models.append(layer)
    for model in models:
        found = _named(model.layers, name, skipped)
        if found is not None:
            return found
    return None


def recompute_grad(call):
    """Decorator for a layer's `call`: its activations are recomputed in the backward pass
    instead of kept (memory for time), when the environment variable RECOMPUTE is 1 / true.

    As bert4keras's, it is off unless RECOMPUTE is set (read when the layer is called or
    traced). It wraps the call in `keras.remat` (JAX's `checkpoint`, TensorFlow's
    `recompute_grad`); float tensor arguments are passed through it, the others (`training`,
    masks, token ids) are fixed. Gradients are the same as without it. To recompute every
    layer of a model instead, build and call it inside `keras.RematScope(mode="full")`.

    Example:
    ```python
    class Block(keras.layers.Layer):
        @recompute_grad
        def call(self, inputs, mask=None):
            ...
    ```
    """
    @functools.wraps(call)
    def call_recomputed(self, *args, **kwargs):
        if os.environ.get("RECOMPUTE", "0").strip().lower() not in ("1", "true", "yes", "on"):
            return call(self, *args, **kwargs)
        structure = (args, kwargs)
        values = keras.tree.flatten(structure)
        # Float tensors are differentiated through; masks and ids are fixed like flags.
        positions = [i for i, value in enumerate(values) if ops.is_tensor(value)
                     and keras.backend.is_float_dtype(value.dtype)]

        def forward(*tensors):
            filled = list(values)
            for position, tensor in zip(positions, tensors):
                filled[position] = tensor
            args_, kwargs_ = keras.tree.pack_sequence_as(structure, filled)
            return call(self, *args_, **kwargs_)

        return keras.remat(forward)(*[values[i] for i in positions])

    return call_recomputed
