"""Every layer of `bert4keras_ext.layers` through the shared harness (layer_test_case.py):
config, `.keras` round trip, XLA, mixed_float16 / mixed_bfloat16, masks; both backends."""
import keras
import numpy as np
import pytest
from keras import ops

import bert4keras_ext.layers as layers
from layer_test_case import LayerCase, run_layer_test

pytestmark = pytest.mark.backend_neutral

RNG = np.random.default_rng(0)
HIDDEN = RNG.normal(size=(2, 5, 8)).astype("float32")
KEYS = RNG.normal(size=(2, 6, 8)).astype("float32")
TOKENS = np.array([[2, 7, 9, 3, 0, 0], [2, 5, 3, 8, 4, 3]], "int32")
SEGMENTS = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]], "int32")
HIDDEN_MASK = np.array([[True] * 3 + [False] * 2, [True] * 5])


@keras.saving.register_keras_serializable(package="tests")
class SquaredError(layers.Loss):
    """The smallest useful `Loss` subclass: mean squared difference of its two inputs."""

    def compute_loss(self, inputs, mask=None):
        y_true, y_pred = inputs
        return ops.mean(ops.square(ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")))


@keras.saving.register_keras_serializable(package="tests")
def first_position(x):
    return x[:, 0]


CASES = {
    "Add": LayerCase(lambda: layers.Add(), [HIDDEN, HIDDEN * 2], mask=[HIDDEN_MASK, None],
                     expected_mask=HIDDEN_MASK),
    "AttentionMask": LayerCase(lambda: layers.AttentionMask("unilm"), [TOKENS, SEGMENTS],
                               mask=[TOKENS != 0, None], expected_mask=None,
                               output_dtype="bool"),
    "BiasAdd": LayerCase(lambda: layers.BiasAdd(), HIDDEN,
                         mask=HIDDEN_MASK, expected_mask=HIDDEN_MASK),
    "Concatenate1D": LayerCase(lambda: layers.Concatenate1D(), [HIDDEN, KEYS],
                               mask=[HIDDEN_MASK, None],
                               expected_mask=np.concatenate([HIDDEN_MASK, np.ones((2, 6), bool)],
                                                            1)),
    # Called without a mask (the harness's calls have none), so no -inf reaches the checks.
    "ConditionalRandomField": LayerCase(lambda: layers.ConditionalRandomField(lr_multiplier=4),
                                        HIDDEN, mask=HIDDEN_MASK, expected_mask=None),
    "EfficientGlobalPointer": LayerCase(
        lambda: layers.EfficientGlobalPointer(2, 4, RoPE=False, tril_mask=False), HIDDEN,
        mask=HIDDEN_MASK,
        expected_mask=None),
    "Embedding": LayerCase(lambda: layers.Embedding(12, 8, mask_zero=True), TOKENS,
                           expected_mask=TOKENS != 0),
    "FeedForward": LayerCase(lambda: layers.FeedForward(12, activation=["gelu", "linear"]),
                             HIDDEN, mask=HIDDEN_MASK, expected_mask=HIDDEN_MASK),
    "GatedAttentionUnit": LayerCase(
        lambda: layers.GatedAttentionUnit(6, 4, normalization="softmax_plus"),
        HIDDEN, mask=HIDDEN_MASK, expected_mask=HIDDEN_MASK),
    "GlobalAveragePooling1D": LayerCase(lambda: layers.GlobalAveragePooling1D(), HIDDEN,
                                        mask=HIDDEN_MASK, expected_mask=None),
    "GlobalMaxPooling1D": LayerCase(lambda: layers.GlobalMaxPooling1D(keepdims=True), HIDDEN,
                                    mask=HIDDEN_MASK, expected_mask=None),
    "GlobalPointer": LayerCase(lambda: layers.GlobalPointer(2, 4, tril_mask=False), HIDDEN,
                               mask=HIDDEN_MASK, expected_mask=None),
    "Lambda": LayerCase(lambda: layers.Lambda(first_position), HIDDEN, mask=HIDDEN_MASK,
                        expected_mask=None),
    "LayerNormalization": LayerCase(
        lambda: layers.LayerNormalization(conditional=True, hidden_units=4,
                                          hidden_initializer="normal"),
        [HIDDEN, KEYS[:, 0]], mask=[HIDDEN_MASK, None], expected_mask=HIDDEN_MASK),
    "Loss": LayerCase(lambda: SquaredError(output_axis=1), [HIDDEN, HIDDEN * 2]),
    "MaximumEntropyMarkovModel": LayerCase(
        lambda: layers.MaximumEntropyMarkovModel(lr_multiplier=2, hidden_dim=3), HIDDEN,
        mask=HIDDEN_MASK, expected_mask=None),
    "MultiHeadAttention": LayerCase(
        lambda: layers.MultiHeadAttention(2, 4, normalization="softmax_plus"),
        [HIDDEN, KEYS, KEYS], mask=[HIDDEN_MASK, None, None], expected_mask=HIDDEN_MASK),
    "PerformerAttention": LayerCase(lambda: layers.PerformerAttention(2, 4, feature_seed=3),
                                    [HIDDEN, KEYS, KEYS]),
    "PositionEmbedding": LayerCase(
        lambda: layers.PositionEmbedding(16, 8, embeddings_initializer="normal"), HIDDEN,
        mask=HIDDEN_MASK, expected_mask=HIDDEN_MASK),
    "RelativePositionBias": LayerCase(
        lambda: layers.RelativePositionBias(2, embeddings_initializer="normal"), [HIDDEN, KEYS],
        output_dtype="float32"),
    "ScaleOffset": LayerCase(
        lambda: layers.ScaleOffset(conditional=True, hidden_units=4, hidden_activation="tanh"),
        [HIDDEN, KEYS[:, 0]], mask=[HIDDEN_MASK, None], expected_mask=HIDDEN_MASK),
    "SinusoidalPositionEmbedding": LayerCase(
        lambda: layers.SinusoidalPositionEmbedding(8, merge_mode="mul"), HIDDEN),
}


def test_the_harness_covers_every_layer():
    assert sorted(CASES) == sorted(layers.__all__)


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer(name, tmp_path):
    run_layer_test(CASES[name], tmp_path)
