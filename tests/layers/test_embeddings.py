"""Tied Embedding, learned and sinusoidal position embeddings (SPEC S1 (e)), FeedForward."""
import math

import keras
import numpy as np
import pytest

from bert4keras_ext.layers import (
    Embedding,
    FeedForward,
    PositionEmbedding,
    SinusoidalPositionEmbedding,
)
from conftest import assert_keras_round_trip

pytestmark = pytest.mark.backend_neutral


def test_embedding_dense_mode_is_tied_projection():
    layer = Embedding(20, 8)
    tokens = np.array([[1, 5, 7]])
    hidden = layer(tokens)
    table = layer.embeddings.numpy()
    np.testing.assert_allclose(np.asarray(hidden), table[tokens])
    logits = layer(hidden, mode="dense")
    np.testing.assert_allclose(np.asarray(logits), np.asarray(hidden) @ table.T, atol=1e-6)
    with pytest.raises(ValueError, match="`mode` must be 'embedding' or 'dense'; received 'lm'"):
        layer(hidden, mode="lm")


def test_embedding_round_trip_with_both_modes(tmp_path):
    tokens_in = keras.Input((None,), dtype="int32")
    layer = Embedding(20, 8)
    model = keras.Model(tokens_in, layer(layer(tokens_in), mode="dense"))
    assert_keras_round_trip(model, np.array([[1, 5, 7, 0]]), tmp_path)


@pytest.mark.parametrize("merge_mode", ["add", "mul", "zero", "concat"])
def test_position_embedding_merge_modes(merge_mode):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    layer = PositionEmbedding(10, 4, merge_mode=merge_mode, embeddings_initializer="normal")
    out = np.asarray(layer(x))
    p = layer.embeddings.numpy()[:5][None]
    expected = {
        "add": x + p,
        "mul": x * (p + 1),
        "zero": np.broadcast_to(p, x.shape),
        "concat": np.concatenate([x, np.broadcast_to(p, x.shape)], -1),
    }[merge_mode]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_custom_position_ids_and_length_check():
    x = np.zeros((1, 2, 4), "float32")
    layer = PositionEmbedding(10, 4, custom_position_ids=True, embeddings_initializer="normal")
    out = np.asarray(layer([x, np.array([[7, 3]])]))
    np.testing.assert_allclose(out[0], layer.embeddings.numpy()[[7, 3]])
    with pytest.raises(ValueError, match=r"Sequence length 11 exceeds the 10 positions"):
        PositionEmbedding(10, 4)(np.zeros((1, 11, 4), "float32"))
    with pytest.raises(ValueError, match="merge_mode"):
        PositionEmbedding(10, 4, merge_mode="sum")


def test_sinusoidal_closed_form_and_relative_property():
    d = 16
    layer = SinusoidalPositionEmbedding(d, merge_mode="zero")
    p = np.asarray(layer(np.zeros((1, 200, 4), "float32")))[0].astype("float64")
    np.testing.assert_allclose(p[0], np.tile([0.0, 1.0], d // 2), atol=1e-7)
    theta = 10000.0 ** (-2 * np.arange(d // 2) / d)
    np.testing.assert_allclose(p[37, 0::2], np.sin(37 * theta), atol=1e-5)
    np.testing.assert_allclose(p[37, 1::2], np.cos(37 * theta), atol=1e-5)
    gram = p @ p.T
    for m, n in [(3, 10), (50, 120), (199, 0)]:
        np.testing.assert_allclose(gram[m, n], np.cos((m - n) * theta).sum(), atol=1e-4)
    # Long-range decay: the mean inner product at distance 1..10 exceeds that at 100..110.
    near = np.mean([gram[i, i + k] for i in range(50) for k in range(1, 11)])
    far = np.mean([gram[i, i + k] for i in range(50) for k in range(100, 111) if i + k < 200])
    assert near > far + 2
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositionEmbedding(15)


def test_position_layers_round_trip(tmp_path):
    x_in, ids_in = keras.Input((None, 4)), keras.Input((None,), dtype="int32")
    y = PositionEmbedding(10, 4, embeddings_initializer="normal")(x_in)
    y = SinusoidalPositionEmbedding(4, merge_mode="concat", custom_position_ids=True)([y, ids_in])
    model = keras.Model([x_in, ids_in], y)
    x = np.random.default_rng(1).normal(size=(2, 3, 4)).astype("float32")
    assert_keras_round_trip(model, [x, np.array([[0, 5, 9], [1, 1, 2]])], tmp_path)


def test_feedforward_closed_form_uses_exact_gelu(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 6)).astype("float32")
    layer = FeedForward(10)
    out = np.asarray(layer(x))
    w1, b1, w2, b2 = [w.astype("float64") for w in layer.get_weights()]
    h = x @ w1 + b1
    gelu = 0.5 * h * (1 + np.vectorize(math.erf)(h / np.sqrt(2)))
    np.testing.assert_allclose(out, gelu @ w2 + b2, atol=1e-5)
    x_in = keras.Input((None, 6))
    assert_keras_round_trip(keras.Model(x_in, FeedForward(10, activation="relu")(x_in)), x,
                            tmp_path)
    with pytest.raises(ValueError, match="`units` must be a positive integer"):
        FeedForward(0)


def test_one_hot_lookup_equals_the_gather_and_round_trips(tmp_path):
    ids = np.array([[0, 1, 1, 0, 2]])
    gather = Embedding(3, 4)
    one_hot = Embedding(3, 4, one_hot_lookup=True)
    gather.build(ids.shape)
    one_hot.build(ids.shape)
    one_hot.set_weights(gather.get_weights())
    np.testing.assert_array_equal(np.asarray(one_hot(ids)), np.asarray(gather(ids)))
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, one_hot(inputs))
    restored = assert_keras_round_trip(model, ids, tmp_path)
    assert restored.layers[-1].one_hot_lookup


def _compiled_predict(layer, inputs, input_shape, dtype="int32"):
    """`layer` inside a model compiled with XLA (Keras's default on GPU), as `predict` runs it."""
    x = keras.Input(input_shape, dtype=dtype)
    model = keras.Model(x, layer(x))
    model.compile(jit_compile=True)
    return model.predict(inputs, verbose=0)


def test_out_of_range_ids_embed_as_nan_instead_of_a_wrong_row():
    """Reliability probe L19, M35x (ids wrap or clamp under XLA) and L17, L18, M33x
    (positions): a bad id gives NaN, never another row's vector."""
    embedding = Embedding(10, 4)
    eager = np.asarray(embedding(np.array([[1, -1]])))
    assert np.isfinite(eager[0, 0]).all() and np.isnan(eager[0, 1]).all()  # L19
    compiled = _compiled_predict(Embedding(10, 4), np.array([[3, 10, 1000]]), (3,))
    assert np.isfinite(compiled[0, 0]).all() and np.isnan(compiled[0, 1:]).all()  # M35x
    one_hot = Embedding(10, 4, one_hot_lookup=True)(np.array([[2, 12]]))
    assert np.isfinite(np.asarray(one_hot)[0, 0]).all() and np.isnan(one_hot[0, 1]).all()
    positions = _compiled_predict(PositionEmbedding(16, 4), np.zeros((1, 20, 4), "float32"),
                                  (None, 4), dtype="float32")
    assert np.isfinite(positions[0, :16]).all() and np.isnan(positions[0, 16:]).all()  # L17
    custom = PositionEmbedding(16, 4, custom_position_ids=True)
    out = np.asarray(custom([np.zeros((1, 2, 4), "float32"), np.array([[1, -3]])]))
    assert np.isfinite(out[0, 0]).all() and np.isnan(out[0, 1]).all()  # L18
