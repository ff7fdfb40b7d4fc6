"""`OutputHead`: a model's MLM / language-model head as the steps it runs, so that training,
pretraining and decoding all score hidden states through the same layers, and may score only
some positions (the masked ones in pretraining, the last one when decoding) instead of
projecting every position onto the vocabulary.

The builder records each step as it lays out the head (`Transformer.head_step`): BERT's
`MLM-Dense -> MLM-Norm -> Embedding-Token (dense mode, tied) -> MLM-Bias`, GPT-2's
`Output-Norm -> Output-Dropout -> Embedding-Token`, T5's output norm, scale and projection,
and the final `Activation` apart, so logits are available without it.

Example:
```python
model = build_transformer_model(config, with_mlm="linear")
hidden = model.backbone(inputs)                               # [batch, length, hidden]
logits = model.lm_head.logits(hidden, positions=masked)       # [batch, count, vocab]
```
"""
from keras import ops

from bert4keras_ext.layers import LayerNormalization


class OutputHead:
    """The head's `steps` (`(layer, call keyword arguments)` in order, from the last hidden
    states to the logits) and its final `activation` layer (None when the model outputs
    logits without one)."""

    def __init__(self, steps, activation=None):
        self.steps = tuple((layer, dict(kwargs)) for layer, kwargs in steps)
        self.activation = activation
        conditional = [layer.name for layer, _ in self.steps
                       if isinstance(layer, LayerNormalization) and layer.conditional]
        # A Conditional LayerNorm head also needs the model's condition; it runs only inside
        # the model's graph.
        self.conditional = bool(conditional)

    @property
    def entry(self):
        """The first step `(layer, kwargs)`: where the hidden states enter the head."""
        return self.steps[0]

    def logits(self, hidden, positions=None, training=False):
        """Logits [batch, ..., vocab] of `hidden` [batch, length, hidden_size]; with
        `positions` (int [batch, count]) only those positions of each row are scored."""
        if self.conditional:
            raise ValueError("The output head of a Conditional LayerNorm model needs the "
                             "condition: score its hidden states by running the model itself.")
        if positions is not None:
            hidden = ops.take_along_axis(hidden, ops.expand_dims(positions, -1), axis=1)
        for layer, kwargs in self.steps:
            hidden = layer(hidden, training=training, **kwargs)
        return hidden

    def __call__(self, hidden, positions=None, training=False):
        """The head's output: `logits` through the final activation."""
        logits = self.logits(hidden, positions, training)
        return logits if self.activation is None else self.activation(logits)
