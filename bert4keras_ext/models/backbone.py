"""`TransformerModel`: what `build_transformer_model` returns, a functional Keras model that
knows what it is.

In the spirit of keras-hub's `Backbone` (https://keras.io/keras_hub/api/base_classes/backbone/),
the model carries its family, application and config, and hands out the parts consumers need,
so none of them finds a part by a layer-name string or a Keras private attribute:

- `token_embedding`: the token table (`Embedding-Token`, also the tied output projection);
- `attention_layers`: the self-attention layers in call order (ALBERT's shared one repeated),
  `cross_attention_layers` for T5's decoder, and `num_layers`;
- `max_positions`: the size of the learned position table (None without one);
- `backbone`: a functional model from the inputs to the last hidden states, before any head;
- `lm_head`: the MLM / language-model head (`OutputHead`), None without one;
- `encoder`, `decoder`: T5's halves (themselves `TransformerModel`s), None elsewhere;
- `run_graph(inputs, call_fn)`: the model's own graph with every layer call going through
  `call_fn`, which is how cached decoding and attention inspection run the model's layers
  with other arguments.

The layers keep bert4keras's names ('Embedding-Token', 'Transformer-0-MultiHeadSelfAttention'),
which checkpoint maps and bert4keras scripts (through `model.get_layer`) use.

Saving: `get_config()` is the `build_transformer_model` call that made the model (family,
application, config and builder options), and `from_config` makes it again, as keras-hub's
backbones do, so a `.keras` file reloads into a `TransformerModel` with all its parts. A model
built from objects that have no config (a Conditional LayerNorm condition computed by another
model) cannot be saved that way; `save_weights` still works. `.keras` files of plain functional
models saved by earlier versions load as they did.
"""
import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class ModelParts:
    """The handles a `TransformerModel` hands out (kept outside Keras's attribute tracking, so
    the model's weights and `.weights.h5` layout stay those of its graph)."""

    backbone: keras.Model
    token_embedding: keras.layers.Layer
    attention_layers: tuple
    id_inputs: int = 1  # the leading inputs that are ids: tokens, and segments where taken
    max_positions: int = None  # the learned position table's size (None: no table)
    cross_attention_layers: tuple = ()
    lm_head: object = None
    encoder: keras.Model = None
    decoder: keras.Model = None


@keras.saving.register_keras_serializable(package="bert4keras_ext")
class TransformerModel(keras.Model):
    """A functional model made by `build_transformer_model`; see the module docstring.

    Built by the family builders (`Transformer.build`) with `describe`, not by hand.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.family = self.application = self.transformer_config = None
        self.build_arguments = None
        self.parts = None

    def describe(self, family, application, config, parts, build_arguments=None):
        """Records what the model is. `config` is the full model config (a mapping);
        `build_arguments` the builder options that, with the family, application and
        config, make the model again (None: it cannot be made again from a config)."""
        self.family, self.application = family, application
        self.transformer_config = config
        self.parts = parts
        self.build_arguments = build_arguments
        return self

    # The parts.
    @property
    def backbone(self):
        return self._part("backbone")

    @property
    def token_embedding(self):
        return self._part("token_embedding")

    @property
    def attention_layers(self):
        return self._part("attention_layers")

    @property
    def cross_attention_layers(self):
        return self._part("cross_attention_layers")

    @property
    def num_layers(self):
        """The number of Transformer blocks the model runs (T5: its longer stack)."""
        if self._part("encoder") is not None:
            return max(self.encoder.num_layers, self.decoder.num_layers)
        return len(self.attention_layers)

    @property
    def max_positions(self):
        """The longest input the model's learned position table covers (None: any length)."""
        return self._part("max_positions")

    @property
    def lm_head(self):
        return self._part("lm_head")

    @property
    def encoder(self):
        return self._part("encoder")

    @property
    def decoder(self):
        return self._part("decoder")

    def _part(self, name):
        if self.parts is None:
            raise ValueError(f"Model {self.name!r} was not described by its builder; build "
                             "it with `build_transformer_model`.")
        return getattr(self.parts, name)

    def run_graph(self, inputs, call_fn):
        """The model's outputs on `inputs` (a list, in the order of `model.inputs`), each
        layer called as `call_fn(layer, *args, **kwargs)` with the arguments it receives in
        the graph, so a caller may change them (key/value caches, positions) or return
        something else; `call_fn` must return what the layer would (same structure)."""
        # Keras offers no public way to run a functional model's nodes with other arguments;
        # this is the one place that uses its graph walker.
        return self._run_through_graph(inputs, call_fn=call_fn)

    # Saving.
    def get_config(self):
        if self.build_arguments is None:
            raise NotImplementedError(
                f"Model {self.name!r} cannot be saved as a .keras file: it was built from "
                "objects without a config (a Conditional LayerNorm condition or inputs of "
                "another model, or it is a part of a larger model). Save its weights "
                "(`save_weights`) and rebuild it in code.")
        return {"model": self.family, "application": self.application,
                "config": dict(self.transformer_config), "name": self.name,
                **self.build_arguments}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Imported here: the builders import this module.
        from bert4keras_ext.models.build import build_transformer_model

        return build_transformer_model(**config)
