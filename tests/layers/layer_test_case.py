"""One call runs the checks every layer of `bert4keras_ext.layers` must pass: `get_config`
names every constructor argument and rebuilds an equal layer; the layer inside a functional
model survives a `.keras` round trip with identical outputs; the model compiled with XLA
(`jit_compile=True`) gives the eager outputs; under `mixed_float16` and `mixed_bfloat16` the
layer with the same weights computes in the policy's dtype and stays close to float32; the
Keras mask it returns for a given input mask is the expected one. The test modules that use it
are backend-neutral, so it runs on TensorFlow and on JAX."""
import copy
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import keras
import numpy as np

# Mixed-precision outputs must stay within this fraction of the float32 output's scale.
TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 5e-2}
NOT_CHECKED = "not checked"


@dataclass
class LayerCase:
    """`make()` returns a fresh layer; `inputs` is one NumPy array or a list of them (the call's
    first argument); `mask` / `expected_mask`: a Keras mask given with the inputs and the one
    the layer must return (a list where the inputs are a list; None: no mask); `output_dtype`:
    the dtype of every output whatever the policy (None: the policy's compute dtype)."""

    make: Callable[[], keras.layers.Layer]
    inputs: Any
    mask: Any = None
    expected_mask: Any = NOT_CHECKED
    output_dtype: str = None
    call_kwargs: dict = field(default_factory=dict)


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _numpy(value):
    return [keras.ops.convert_to_numpy(v) for v in _as_list(value)]


def _symbolic(inputs):
    tensors = [keras.Input(shape=x.shape[1:], batch_size=x.shape[0], dtype=str(x.dtype))
               for x in _as_list(inputs)]
    return tensors if isinstance(inputs, (list, tuple)) else tensors[0]


def _check_config(layer):
    config = layer.get_config()
    arguments = [name for name, parameter in inspect.signature(type(layer)).parameters.items()
                 if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)]
    assert [name for name in arguments if name not in config] == [], type(layer).__name__
    # A copy: some from_config (Keras's Lambda) write into the dict they are given.
    assert type(layer).from_config(copy.deepcopy(config)).get_config() == config


def _check_round_trip_and_xla(case, layer, expected, tmp_path):
    symbolic = _symbolic(case.inputs)
    model = keras.Model(symbolic, layer(symbolic, **case.call_kwargs))
    path = os.path.join(tmp_path, "layer.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    for want, got in zip(expected, _numpy(restored(case.inputs))):
        np.testing.assert_array_equal(got, want)
    model.compile(jit_compile=True)
    for want, got in zip(expected, _as_list(model.predict(case.inputs, verbose=0))):
        np.testing.assert_allclose(np.asarray(got, want.dtype), want, atol=1e-5)


def _check_mixed_precision(case, weights, expected):
    for policy, tolerance in TOLERANCE.items():
        keras.config.set_dtype_policy(policy)
        try:
            layer = case.make()
            layer(case.inputs, **case.call_kwargs)
            layer.set_weights(weights)
            outputs = _numpy(layer(case.inputs, **case.call_kwargs))
        finally:
            keras.config.set_dtype_policy("float32")
        dtype = case.output_dtype or keras.DTypePolicy(policy).compute_dtype
        for got, want in zip(outputs, expected):
            assert keras.backend.standardize_dtype(got.dtype) == dtype, (policy, got.dtype)
            if "float" in dtype:
                got = got.astype("float32")
                assert np.all(np.isfinite(got)), policy
                scale = max(1.0, float(np.abs(want).max()))
                np.testing.assert_allclose(got, want, atol=tolerance * scale, err_msg=policy)
            else:
                np.testing.assert_array_equal(got, want)


def run_layer_test(case, tmp_path):
    layer = case.make()
    expected = _numpy(layer(case.inputs, **case.call_kwargs))
    _check_config(layer)
    if case.expected_mask is not NOT_CHECKED:
        mask = [None if m is None else keras.ops.convert_to_numpy(m)
                for m in _as_list(layer.compute_mask(case.inputs, case.mask))]
        for got, want in zip(mask, _as_list(case.expected_mask)):
            assert (got is None) == (want is None) and (want is None
                                                        or np.array_equal(got, want))
    _check_round_trip_and_xla(case, layer, expected, tmp_path)
    _check_mixed_precision(case, layer.get_weights(), expected)
