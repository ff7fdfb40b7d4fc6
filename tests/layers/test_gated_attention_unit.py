"""GatedAttentionUnit and ScaleOffset: bert4keras 0.11.5's outputs
(tests/fixtures/make_sequence_labeling_reference.py), masks against truncated inputs, closed
forms; both backends."""
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from bert4keras_ext.layers import GatedAttentionUnit, ScaleOffset

pytestmark = pytest.mark.backend_neutral

REFERENCE = np.load(Path(__file__).parents[1] / "fixtures" / "sequence_labeling_reference.npz")
HIDDEN, MASK = REFERENCE["hidden"], REFERENCE["mask"]
CAUSAL = np.tril(np.ones((6, 6), bool))[None]
# name -> (layer, inputs, call keywords); bert4keras's `a_bias` / `p_bias='rotary'` inputs
# become `attention_mask=` and `position_scheme='rotary'`.
CASES = {
    "gau": (lambda: GatedAttentionUnit(8, 4), HIDDEN, {"mask": MASK}),
    "gau_rotary": (lambda: GatedAttentionUnit(8, 4, normalization="softmax_plus",
                                              position_scheme="rotary"),
                   HIDDEN, {"mask": MASK, "attention_mask": CAUSAL}),
    "gau_cross": (lambda: GatedAttentionUnit(8, 4, use_bias=False, normalization="softmax",
                                             self_attention=False),
                  [HIDDEN, REFERENCE["gau_keys"], REFERENCE["gau_keys"]], {"mask": [MASK] * 3}),
}


def reference_weights(name):
    return [REFERENCE[f"{name}/weight_{i}"] for i in range(len(REFERENCE.files))
            if f"{name}/weight_{i}" in REFERENCE.files]


def numpy(x):
    return ops.convert_to_numpy(x)


def test_outputs_equal_bert4keras():
    for name, (make, inputs, options) in CASES.items():
        layer = make()
        layer(inputs, **options)
        layer.set_weights(reference_weights(name))
        np.testing.assert_allclose(numpy(layer(inputs, **options)), REFERENCE[f"{name}/output"],
                                   rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_causal_mask_equals_attending_over_the_prefix():
    """Also the squared ReLU's `n`: the keys a row may see, not the sequence length."""
    layer = GatedAttentionUnit(8, 4, position_scheme="rotary")
    causal = numpy(layer(HIDDEN, attention_mask=CAUSAL))
    for end in (3, 6):
        prefix = numpy(layer(HIDDEN[:, :end]))
        np.testing.assert_allclose(causal[:, end - 1], prefix[:, -1], rtol=1e-5, atol=1e-6)


def test_padded_keys_do_not_reach_valid_rows():
    layer = GatedAttentionUnit(8, 4)
    changed = np.where(MASK[..., None], HIDDEN, 100.0).astype("float32")
    np.testing.assert_allclose(numpy(layer(changed, mask=MASK))[MASK],
                               numpy(layer(HIDDEN, mask=MASK))[MASK], rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="normalization"):
        GatedAttentionUnit(8, 4, normalization="relu")
    with pytest.raises(ValueError, match="position_scheme"):
        GatedAttentionUnit(8, 4, position_scheme="functional_relative")
    with pytest.raises(TypeError, match="attention_bias"):
        GatedAttentionUnit(8, 4)(HIDDEN, attention_mask=CAUSAL.astype("float32"))
    with pytest.raises(ValueError, match=r"\[q, k, v\]"):
        GatedAttentionUnit(8, 4, self_attention=False)(HIDDEN)


def test_scale_offset_equals_bert4keras_conditional():
    inputs = [HIDDEN, REFERENCE["scale_offset/condition"]]
    layer = ScaleOffset(conditional=True, hidden_units=3, hidden_activation="tanh")
    layer(inputs)
    layer.set_weights(reference_weights("scale_offset"))
    np.testing.assert_allclose(numpy(layer(inputs)), REFERENCE["scale_offset/output"],
                               rtol=1e-5, atol=1e-6)


def test_scale_offset_fixed_and_absent_factors():
    np.testing.assert_allclose(numpy(ScaleOffset(scale=2.0, offset=0.5)(HIDDEN)),
                               HIDDEN * 2 + 0.5, rtol=1e-6)
    layer = ScaleOffset(scale=False)
    layer.build(HIDDEN.shape)
    assert [w.name for w in layer.weights] == ["beta"]
    layer.set_weights([np.arange(5, dtype="float32")])
    np.testing.assert_allclose(numpy(layer(HIDDEN)), HIDDEN + np.arange(5), rtol=1e-6)
    with pytest.raises(TypeError, match="scale"):
        ScaleOffset(scale="ones")
