"""LM and UNILM masks from segment ids (SPEC C8 (e))."""
import numpy as np
import pytest

from bert4keras_ext.masks import attention_mask, lm_mask, padding_mask, unilm_mask

pytestmark = pytest.mark.backend_neutral


def test_unilm_mask_explicit_example():
    mask = np.asarray(unilm_mask(np.array([[0, 0, 0, 1, 1, 1]])))[0]
    expected = np.zeros((6, 6), bool)
    expected[:3, :3] = True
    for row in range(3, 6):
        expected[row, : row + 1] = True
    np.testing.assert_array_equal(mask, expected)


def test_all_source_is_bidirectional_and_lm_is_lower_triangular():
    assert np.asarray(unilm_mask(np.zeros((2, 5), "int32"))).all()
    lm = np.asarray(lm_mask(np.zeros((2, 5), "int32")))
    assert lm.shape == (2, 5, 5)
    np.testing.assert_array_equal(lm[1], np.tril(np.ones((5, 5), bool)))


def test_padding_is_blocked_in_combined_masks():
    tokens = np.array([[2, 5, 3, 7, 3, 0, 0]])
    segments = np.array([[0, 0, 0, 1, 1, 0, 0]])
    for application in ("encoder", "lm", "unilm"):
        mask = np.asarray(attention_mask(application, tokens, segments))
        assert not mask[..., 5:].any(), application  # no row sees a padding key
    unilm = np.asarray(attention_mask("unilm", tokens, segments))[0, 0]
    np.testing.assert_array_equal(unilm[4], [True] * 5 + [False] * 2)
    np.testing.assert_array_equal(unilm[1], [True] * 3 + [False] * 4)
    np.testing.assert_array_equal(np.asarray(padding_mask(tokens)), tokens != 0)
    assert np.asarray(attention_mask("encoder", tokens)).shape == (1, 1, 1, 7)


@pytest.mark.tensorflow_only
def test_masks_compile_with_xla_and_keep_static_shapes():
    import tensorflow as tf

    def masks(tokens, segments):
        return attention_mask("unilm", tokens, segments), lm_mask(segments)

    both = tf.function(masks, jit_compile=True)

    tokens = tf.constant([[2, 5, 3, 7, 0]])
    segments = tf.constant([[0, 0, 1, 1, 0]])
    unilm, lm = both(tokens, segments)
    np.testing.assert_array_equal(unilm.numpy(), attention_mask("unilm", tokens, segments))
    np.testing.assert_array_equal(lm.numpy(), lm_mask(segments))
    traced = both.get_concrete_function(
        tf.TensorSpec((4, 16), tf.int32), tf.TensorSpec((4, 16), tf.int32)
    )
    assert traced.output_shapes[0] == (4, 1, 16, 16)


def test_wrong_rank_and_application_errors():
    with pytest.raises(ValueError, match=r"`segment_ids` must be a rank-2.*\(6,\)"):
        unilm_mask(np.zeros(6, "int32"))
    with pytest.raises(ValueError, match=r"`segment_ids` must be a rank-2.*\(1, 2, 3\)"):
        lm_mask(np.zeros((1, 2, 3), "int32"))
    with pytest.raises(ValueError, match="`application` must be one of"):
        attention_mask("decoder", np.ones((1, 3), "int32"))
    with pytest.raises(ValueError, match="`segment_ids` is required"):
        attention_mask("unilm", np.ones((1, 3), "int32"))
