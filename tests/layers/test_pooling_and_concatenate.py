"""Masked GlobalAveragePooling1D / GlobalMaxPooling1D (bert4keras 0.11.5's outputs,
tests/fixtures/make_sequence_labeling_reference.py) and Concatenate1D's masks; both
backends."""
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from bert4keras_ext.layers import Concatenate1D, GlobalAveragePooling1D, GlobalMaxPooling1D

pytestmark = pytest.mark.backend_neutral

REFERENCE = np.load(Path(__file__).parents[1] / "fixtures" / "sequence_labeling_reference.npz")
HIDDEN, MASK = REFERENCE["hidden"], REFERENCE["mask"]


def numpy(x):
    return ops.convert_to_numpy(x)


def test_pooling_equals_bert4keras_and_the_valid_steps():
    average = numpy(GlobalAveragePooling1D()(HIDDEN, mask=MASK))
    maximum = numpy(GlobalMaxPooling1D()(HIDDEN, mask=MASK))
    np.testing.assert_allclose(average, REFERENCE["average_pooling/output"], rtol=1e-5)
    np.testing.assert_allclose(maximum, REFERENCE["max_pooling/output"], rtol=1e-6)
    for row, valid in enumerate(MASK):
        np.testing.assert_allclose(average[row], HIDDEN[row][valid].mean(0), rtol=1e-5)
        np.testing.assert_allclose(maximum[row], HIDDEN[row][valid].max(0), rtol=1e-6)


@pytest.mark.parametrize("layer_class", [GlobalAveragePooling1D, GlobalMaxPooling1D])
def test_pooling_layouts_and_empty_rows(layer_class):
    mask = MASK.copy()
    mask[2] = False
    last = numpy(layer_class(keepdims=True)(HIDDEN, mask=mask))
    first = numpy(layer_class(data_format="channels_first")(HIDDEN.transpose(0, 2, 1), mask=mask))
    np.testing.assert_allclose(last[:, 0], first, rtol=1e-6)
    np.testing.assert_array_equal(first[2], 0)
    assert layer_class().compute_mask(HIDDEN, mask) is None


def test_concatenate1d_joins_masks_and_lengths():
    short = HIDDEN[:, :2] * 3
    layer = Concatenate1D()
    np.testing.assert_array_equal(numpy(layer([HIDDEN, short])),
                                  np.concatenate([HIDDEN, short], 1))
    mask = numpy(layer.compute_mask([HIDDEN, short], [MASK, None]))
    np.testing.assert_array_equal(mask, np.concatenate([MASK, np.ones((3, 2), bool)], 1))
    assert layer.compute_mask([HIDDEN, short], [None, None]) is None
    assert layer.compute_output_shape([(3, 6, 5), (3, 2, 5)]) == (3, 8, 5)
    assert layer.compute_output_shape([(3, None, 5), (3, 2, 5)]) == (3, None, 5)
