"""Performer / FAVOR+ (SPEC S2 (e)): unbiased positive features, lower variance when
orthogonal, causal prefix sums equal the masked quadratic form, convergence to softmax
attention, and the attention-layer option."""
import keras
import numpy as np
import pytest

from bert4keras_ext import performer
from bert4keras_ext.layers import PerformerAttention
from bert4keras_ext.models import build_transformer_model
from conftest import assert_keras_round_trip

pytestmark = pytest.mark.backend_neutral


def features(x, projection):
    """phi(x) without the stabilizing shift, for single vectors [n, d]."""
    return np.exp(x @ projection.T - (x * x).sum(-1, keepdims=True) / 2) / np.sqrt(len(projection))


def test_random_features_are_unbiased_and_positive():
    rng = np.random.default_rng(0)
    q, k = rng.normal(scale=0.4, size=(2, 1, 8))
    projection = performer.gaussian_features(200000, 8, seed=1, orthogonal=False)
    phi_q, phi_k = features(q, projection), features(k, projection)
    assert (phi_q > 0).all() and (phi_k > 0).all()
    assert (phi_q @ phi_k.T).item() == pytest.approx(np.exp(q @ k.T).item(), rel=0.02)


def test_orthogonal_features_have_lower_variance_than_iid():
    rng = np.random.default_rng(2)
    q, k = rng.normal(scale=0.5, size=(2, 1, 16))

    def estimates(orthogonal):
        return [(features(q, p) @ features(k, p).T).item() for p in
                (performer.gaussian_features(16, 16, seed=s, orthogonal=orthogonal)
                 for s in range(400))]

    iid, orthogonal = np.var(estimates(False)), np.var(estimates(True))
    assert orthogonal < 0.8 * iid, (orthogonal, iid)
    rows = performer.gaussian_features(16, 16, seed=3)
    directions = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    np.testing.assert_allclose(directions @ directions.T, np.eye(16), atol=1e-5)


def qkv(length=12, heads=2, dim=8, seed=4):
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.5, size=(2, length, heads, dim)).astype("float32")
            for _ in range(3)]


def test_causal_prefix_sums_equal_the_masked_quadratic_form():
    q, k, v = qkv()
    projection = performer.gaussian_features(32, 8, seed=5)
    q_features = performer.positive_features(q, projection, is_query=True)
    k_features = performer.positive_features(k, projection, is_query=False)
    key_mask = np.ones((2, 12), bool)
    key_mask[1, 9:] = False
    for causal in (False, True):
        probs = np.asarray(performer.quadratic_attention(q_features, k_features, key_mask, causal))
        expected = np.einsum("bhqk,bkhd->bqhd", probs, v)
        got = performer.linear_attention(q_features, k_features, v, key_mask, causal)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.triu(probs, 1) == 0) and np.all(probs[1, :, :, 9:] == 0)


def test_error_against_softmax_attention_falls_as_features_grow():
    q, k, v = qkv(length=32, seed=6)
    logits = np.einsum("bqhd,bkhd->bhqk", q, k)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    exact = np.einsum("bhqk,bkhd->bqhd", weights / weights.sum(-1, keepdims=True), v)
    errors = []
    for m in (8, 64, 512, 4096):
        trials = []
        for seed in range(3):
            projection = performer.gaussian_features(m, 8, seed=seed)
            approximation = performer.linear_attention(
                performer.positive_features(q, projection, True),
                performer.positive_features(k, projection, False), v)
            trials.append(np.abs(np.asarray(approximation) - exact).mean())
        errors.append(np.mean(trials))
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.25 * errors[0]


def test_performer_attention_layer(tmp_path):
    layer = PerformerAttention(2, 4, num_random_features=64, causal=True, feature_seed=0,
                               return_attention_scores=True)
    x = np.random.default_rng(7).normal(size=(2, 6, 8)).astype("float32")
    output, probs = layer([x, x, x])
    assert np.all(np.triu(np.asarray(probs), 1) == 0)
    # The output is the returned probabilities applied to the value heads.
    values = np.asarray(layer.v_dense(x)).reshape(2, 6, 2, 4)
    mixed = np.einsum("bhqk,bkhd->bqhd", np.asarray(probs), values).reshape(2, 6, 8)
    np.testing.assert_allclose(np.asarray(output), np.asarray(layer.o_dense(mixed)), atol=1e-5)
    before = np.asarray(layer([x, x, x])[0])
    layer.redraw_features(seed=1)
    assert np.abs(np.asarray(layer([x, x, x])[0]) - before).max() > 1e-4
    with pytest.raises(ValueError, match="cannot be linearized"):
        layer([x, x, x], attention_mask=np.ones((2, 1, 6, 6), bool))

    inputs = keras.Input((None, 8))
    masked = keras.layers.Masking()(inputs)
    attention = PerformerAttention(2, 4, num_random_features=16)
    model = keras.Model(inputs, attention([masked, masked, masked]))
    assert_keras_round_trip(model, x, tmp_path)


def test_builder_option(tiny_config):
    model = build_transformer_model(tiny_config, application="lm", normalization="performer")
    token_ids = np.array([[2, 7, 8, 9, 3, 0, 0]])
    out = np.asarray(model([token_ids, np.zeros_like(token_ids)]))
    longer = np.array([[2, 7, 8, 9, 3, 0, 0, 0, 0]])
    np.testing.assert_allclose(np.asarray(model([longer, np.zeros_like(longer)]))[:, :5],
                               out[:, :5], atol=1e-5)
    with pytest.raises(ValueError, match="UNILM's attention mask cannot be linearized"):
        build_transformer_model(tiny_config, application="unilm", normalization="performer")
