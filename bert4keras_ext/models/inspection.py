"""Intermediate tensors of a built model: any named layer's output, and the attention
probabilities of an attention layer, for given inputs, without rebuilding the model by hand.

Example:
```python
outputs = intermediate_outputs(model, ["Embedding-Norm", "Transformer-0-FeedForward"], inputs)
probabilities = attention_probabilities(model, 0, inputs)  # the first self-attention call
```
"""
import keras
import numpy as np

from bert4keras_ext.layers import MultiHeadAttention


def intermediate_outputs(model, names, inputs):
    """{name: NumPy output} of the named layers of a functional `model` for `inputs`."""
    layers = [model.get_layer(name) for name in names]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    values = probe(inputs, training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    return {name: np.asarray(value) for name, value in zip(names, values)}


def attention_probabilities(model, layer, inputs):
    """The probabilities [batch, heads, q_len, k_len] of a self-attention call of `model` (a
    `TransformerModel`): `layer` is its index in `model.attention_layers` (call order, so
    ALBERT's shared layer has one per block) or a layer name (its first call).

    Runs the model's graph (`TransformerModel.run_graph`) and, at that call, a copy of the
    layer that also returns its probabilities on the same arguments, so the model itself is
    unchanged.
    """
    if isinstance(layer, str):
        named = model.get_layer(layer)
        if not isinstance(named, MultiHeadAttention):
            raise TypeError(f"Layer {layer!r} is a {type(named).__name__}, not a "
                            "MultiHeadAttention.")
        if named not in model.attention_layers:
            raise ValueError(f"Layer {layer!r} is not one of the model's self-attention "
                             "layers (`model.attention_layers`).")
        layer = model.attention_layers.index(named)
    count = len(model.attention_layers)
    if not isinstance(layer, int) or not 0 <= layer < count:
        raise ValueError(f"`layer` must be a self-attention index in [0, {count}) or a layer "
                         f"name; received {layer!r}.")
    target, calls, probabilities = model.attention_layers[layer], [], []

    def call(operation, *args, **kwargs):
        if operation is target and args[0][0] is args[0][1]:  # self-attention calls only
            calls.append(None)
            if len(calls) == layer - model.attention_layers.index(target) + 1:
                config = dict(operation.get_config(), return_attention_scores=True,
                              name=f"{operation.name}-scores")
                scorer = MultiHeadAttention.from_config(config)
                scorer.build([tuple(t.shape) for t in args[0]])
                scorer.set_weights(operation.get_weights())
                output, scores = scorer(*args, **kwargs)
                probabilities.append(scores)
                return output
        return operation(*args, **kwargs)

    inputs = [keras.ops.convert_to_tensor(x) for x in
              (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    model.run_graph(inputs, call)
    return np.asarray(probabilities[0])
