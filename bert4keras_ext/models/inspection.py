"""Intermediate tensors of a built model: any named layer's output, and the attention
probabilities of an attention layer, for given inputs, without rebuilding the model by hand.

Example:
```python
outputs = intermediate_outputs(model, ["Embedding-Norm", "Transformer-0-FeedForward"], inputs)
probabilities = attention_probabilities(model, "Transformer-0-MultiHeadSelfAttention", inputs)
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


def attention_probabilities(model, name, inputs):
    """The probabilities [batch, heads, q_len, k_len] of the MultiHeadAttention layer `name`.

    Re-runs that layer on the tensors it receives in the model (queries, keys, values and
    `attention_mask`) with a copy that returns its scores, so the model itself is unchanged.
    """
    layer = model.get_layer(name)
    if not isinstance(layer, MultiHeadAttention):
        raise TypeError(f"Layer {name!r} is a {type(layer).__name__}, not a MultiHeadAttention.")
    # The functional graph keeps the call's arguments on the layer's first inbound node.
    arguments = layer._inbound_nodes[0].arguments
    tensors = list(arguments.args[0])
    mask = arguments.kwargs.get("attention_mask")
    values = keras.Model(model.inputs, tensors + ([mask] if mask is not None else []))(
        inputs, training=False)
    config = dict(layer.get_config(), return_attention_scores=True, name=f"{name}-scores")
    scorer = MultiHeadAttention.from_config(config)
    scorer.build([tuple(t.shape) for t in tensors])
    scorer.set_weights(layer.get_weights())
    _, probabilities = scorer(list(values[:3]), attention_mask=values[3] if mask is not None
                              else None)
    return np.asarray(probabilities)
