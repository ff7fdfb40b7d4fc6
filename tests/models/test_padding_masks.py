"""Built models carry bert4keras's Keras padding mask from the token embedding to every
sequence output, so layers a user adds (and `Loss`) receive it as `mask`; both backends, XLA."""
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from bert4keras_ext.layers import Loss
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.models.registry import FAMILIES

pytestmark = pytest.mark.backend_neutral

CONFIG = dict(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=32)
# One name per builder ('roberta' is 'bert', 'mt5.1.1' is 't5.1.1' in other names).
BUILDERS = sorted({family.builder: name for name, family in reversed(FAMILIES.items())}.values())
TOKENS = np.array([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0]], "int32")
# A T5 decoder's input starts with the start id 0, which bert4keras never masks.
DECODER_TOKENS = np.array([[0, 4, 9, 8, 7, 0], [0, 6, 0, 0, 0, 0]], "int32")
SEGMENTS = np.array([[0, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0]], "int32")


def expected_mask(token_ids):
    """bert4keras's rule: id 0 is padding, except at the first position."""
    mask = token_ids != 0
    mask[:, 0] = True
    return mask


class MaskProbe(keras.layers.Layer):
    """Outputs the Keras mask it receives as 0/1 (-1 everywhere when none arrives)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.full(ops.shape(inputs)[:2], -1, dtype="int32")
        return ops.cast(mask, "int32")

    def compute_mask(self, inputs, mask=None):
        return None


def sequence_outputs(model, every_layer=True):
    """(name, tensor) of the model's outputs and of every layer output that is a [batch,
    length, features] sequence, besides the inputs and the segment table (segment ids carry
    no padding)."""
    found = [(f"output {index}", tensor) for index, tensor in enumerate(model.outputs)
             if len(tensor.shape) == 3]
    for layer in model.layers if every_layer else []:
        if isinstance(layer, keras.layers.InputLayer) or layer.name == "Embedding-Segment":
            continue
        try:
            output = layer.output  # a shared layer (ALBERT's block) has no single output
        except (AttributeError, ValueError):
            continue
        for index, tensor in enumerate(output if isinstance(output, (list, tuple)) else [output]):
            if len(tensor.shape) == 3 and tensor.shape[1] is None:
                found.append((f"{layer.name}[{index}]", tensor))
    return found


def model_inputs(family, model):
    if family.endswith("_decoder"):
        context = np.random.default_rng(0).normal(size=(2, 6, 16)).astype("float32")
        return [context, DECODER_TOKENS]
    if family.startswith(("t5", "mt5")) and not family.endswith("_encoder"):
        return [TOKENS, DECODER_TOKENS]
    return [TOKENS, SEGMENTS] if len(model.inputs) == 2 else TOKENS


def check_masks(model, inputs, decoder=False, every_layer=True, outputs_decoded=False):
    """Every sequence output of `model` on `inputs` carries the padding mask of its ids: the
    decoder's ids for a decoder's layers ('Decoder-' names, or all of a `decoder` model) and
    for the outputs when `outputs_decoded` (T5's pair)."""
    outputs = sequence_outputs(model, every_layer)
    probe = keras.Model(model.inputs, [MaskProbe()(tensor) for _, tensor in outputs])
    probe.compile(jit_compile=True)
    received = probe.predict(inputs, verbose=0)
    for (name, _), got in zip(outputs, received if len(outputs) > 1 else [received]):
        from_decoder = decoder or name.startswith("Decoder-") or (
            outputs_decoded and name.startswith("output"))
        want = expected_mask(DECODER_TOKENS if from_decoder else TOKENS)
        np.testing.assert_array_equal(got, want.astype("int32"), err_msg=name)


@pytest.mark.parametrize("family", BUILDERS)
def test_every_family_passes_the_padding_mask_to_every_sequence_output(family):
    config = dict(CONFIG, embedding_size=8) if family.startswith("albert") else CONFIG
    with warnings.catch_warnings():
        # A layer that cannot pass a mask on warns while the graph is built: none may.
        warnings.filterwarnings("error", message=".*destroy the mask.*")
        model = build_transformer_model(config, model=family)
    # T5's pair reuses the layers of its halves, whose own models are checked layer by layer.
    pair = family.startswith(("t5", "mt5")) and not family.endswith(("_encoder", "_decoder"))
    check_masks(model, model_inputs(family, model), decoder=family.endswith("_decoder"),
                every_layer=not pair, outputs_decoded=pair)


@pytest.mark.parametrize("application,options,extra_inputs", [
    ("encoder", dict(with_pool=True, with_mlm=True), []),
    ("unilm", dict(with_mlm="linear", layer_norm_cond=4, layer_norm_cond_hidden_size=8),
     [np.ones((2, 4), "float32")]),
    ("lm", dict(with_mlm=True), []),
])
def test_heads_and_conditional_norms_pass_the_mask(application, options, extra_inputs):
    model = build_transformer_model(CONFIG, application=application, **options)
    check_masks(model, [TOKENS, SEGMENTS, *extra_inputs])


@keras.saving.register_keras_serializable(package="tests")
class RealTokenCount(Loss):
    """The loss is the number of positions `mask[1]` keeps, so the test reads which mask the
    layer handed to `compute_loss`."""

    def compute_loss(self, inputs, mask=None):
        return ops.sum(ops.cast(mask[1], "float32"))


def test_loss_layer_uses_the_models_mask_and_derives_one_only_without_it():
    model = build_transformer_model(CONFIG, application="lm")
    token_ids, segment_ids = model.inputs
    # The output carries the model's mask (first position kept); `token_ids` carries none,
    # so its mask is derived from the ids (first position 0 counts as padding).
    from_model = RealTokenCount(output_axis=1)([token_ids, model.output])
    derived = RealTokenCount(output_axis=1)([model.output, token_ids])
    tokens = np.array([[0, 5, 6, 0, 0]], "int32")
    for layer_output, want in ((from_model, 3.0), (derived, 2.0)):
        trainer = keras.Model(model.inputs, layer_output)
        trainer([tokens, np.zeros_like(tokens)])
        assert float(ops.convert_to_numpy(trainer.losses[0])) == want
