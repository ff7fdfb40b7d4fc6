"""GlobalPointer and EfficientGlobalPointer: bert4keras 0.11.5's scores
(tests/fixtures/make_sequence_labeling_reference.py), RoPE's relative positions, the masked
pairs; both backends."""
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from bert4keras_ext.layers import EfficientGlobalPointer, GlobalPointer

pytestmark = pytest.mark.backend_neutral

REFERENCE = np.load(Path(__file__).parents[1] / "fixtures" / "sequence_labeling_reference.npz")
CASES = {
    "global_pointer": lambda: GlobalPointer(2, 4),
    "global_pointer_no_rope": lambda: GlobalPointer(2, 4, RoPE=False, tril_mask=False),
    "efficient_global_pointer": lambda: EfficientGlobalPointer(2, 4),
    "efficient_global_pointer_no_rope": lambda: EfficientGlobalPointer(2, 4, RoPE=False),
}


def reference_weights(name):
    return [REFERENCE[f"{name}/weight_{i}"] for i in range(len(REFERENCE.files))
            if f"{name}/weight_{i}" in REFERENCE.files]


def test_scores_equal_bert4keras():
    for name, make in CASES.items():
        layer = make()
        layer(REFERENCE["hidden"])
        layer.set_weights(reference_weights(name))
        scores = ops.convert_to_numpy(layer(REFERENCE["hidden"], mask=REFERENCE["mask"]))
        expected = REFERENCE[f"{name}/output"]
        finite = np.isfinite(expected)
        assert 0 < finite.sum() < finite.size, name
        np.testing.assert_allclose(scores[finite], expected[finite], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        assert np.all(np.isneginf(scores[~finite])), name


def test_rope_makes_scores_depend_on_the_span_length_only():
    """With the same token at every position, RoPE scores depend on `end - start` alone."""
    same = np.repeat(REFERENCE["hidden"][:, :1], 6, axis=1)
    scores = ops.convert_to_numpy(GlobalPointer(2, 4, tril_mask=False)(same))
    starts, ends = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    for offset in range(-5, 6):
        band = scores[:, :, starts - ends == offset]
        np.testing.assert_allclose(band, band[..., :1].repeat(band.shape[-1], -1), atol=1e-5)
    assert np.abs(np.diff(scores[0, 0, 0])).max() > 1e-3


def test_tril_mask_blocks_spans_that_end_before_they_start():
    scores = ops.convert_to_numpy(GlobalPointer(2, 4)(REFERENCE["hidden"]))
    below = np.tril(np.ones((6, 6), bool), -1)
    assert np.all(np.isneginf(scores[..., below])) and np.all(np.isfinite(scores[..., ~below]))


def test_rope_needs_an_even_head_size():
    with pytest.raises(ValueError, match="head_size"):
        GlobalPointer(2, 5)
    assert GlobalPointer(2, 5, RoPE=False).head_size == 5
