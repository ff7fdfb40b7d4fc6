"""MultiHeadAttention: entropy-invariant closed forms (SPEC C1 (e)), masks, paths, round trips."""
import keras
import numpy as np
import pytest
from keras import ops

from bert4keras_ext.layers import MultiHeadAttention, PerformerAttention
from bert4keras_ext.masks import lm_mask, unilm_mask
from conftest import assert_keras_round_trip

pytestmark = pytest.mark.backend_neutral


def pair(heads=2, head_size=8, dim=16, **kwargs):
    """A softmax and a softmax_plus layer with identical weights, both returning probabilities."""
    layers = []
    for normalization in ("softmax", "softmax_plus"):
        layer = MultiHeadAttention(
            heads, head_size, normalization=normalization, return_attention_scores=True, **kwargs
        )
        layer.build([(None, None, dim)] * 3)
        layers.append(layer)
    layers[1].set_weights(layers[0].get_weights())
    return layers


def expected_factor(n):
    return np.log(np.maximum(n, 16)) / np.log(512)


def powered(probs, factor):
    """normalize(p ** c) per row, keeping rows of all zeros at zero."""
    raised = np.where(probs > 0, probs, 0.0) ** factor
    total = raised.sum(-1, keepdims=True)
    return np.divide(raised, total, out=np.zeros_like(raised), where=total > 0)


@pytest.mark.parametrize("kind", ["padding", "lm", "unilm"])
def test_softmax_plus_is_power_of_softmax_probabilities(kind):
    rng = np.random.default_rng(0)
    batch, length, dim = 2, 48, 16
    x = rng.normal(size=(batch, length, dim)).astype("float32")
    valid = np.ones((batch, length), bool)
    valid[1, 30:] = False  # the second sample is padded after 30 tokens
    if kind == "padding":
        mask = valid[:, None, None, :]
    elif kind == "lm":
        mask = np.asarray(lm_mask(valid.astype("int32"))) & valid[:, None, :]
        mask = mask[:, None]
    else:
        segments = np.zeros((batch, length), "int32")
        segments[:, 20:] = 1
        segments[1, 30:] = 0
        mask = (np.asarray(unilm_mask(segments)) & valid[:, None, :])[:, None]
    standard, plus = pair(dim=dim)
    _, p_standard = standard([x, x, x], attention_mask=mask)
    _, p_plus = plus([x, x, x], attention_mask=mask)
    n = np.broadcast_to(mask, p_standard.shape).sum(-1, keepdims=True)
    np.testing.assert_allclose(
        np.asarray(p_plus), powered(np.asarray(p_standard), expected_factor(n)), atol=2e-6
    )
    # Masked keys get exactly zero weight; rows sum to one.
    assert np.all(np.asarray(p_plus)[~np.broadcast_to(mask, p_plus.shape)] == 0)
    np.testing.assert_allclose(np.asarray(p_plus).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "n, factor", [(8, 4 / 9), (64, 2 / 3), (512, 1.0), (4096, 4 / 3)]
)
def test_softmax_plus_scale_factor_values(n, factor):
    """log p_plus is c times log p_standard up to a per-row constant: recover c."""
    rng = np.random.default_rng(1)
    q = rng.normal(size=(1, 1, 16)).astype("float32")
    k = rng.normal(size=(1, n, 16)).astype("float32")
    standard, plus = pair(dim=16)
    logits_standard = np.log(np.asarray(standard([q, k, k])[1]))
    logits_plus = np.log(np.asarray(plus([q, k, k])[1]))
    centred_standard = logits_standard - logits_standard.mean(-1, keepdims=True)
    centred_plus = logits_plus - logits_plus.mean(-1, keepdims=True)
    recovered = (centred_plus * centred_standard).sum(-1) / (centred_standard**2).sum(-1)
    np.testing.assert_allclose(recovered, factor, rtol=1e-4)


def test_softmax_plus_equals_softmax_with_512_visible_keys():
    rng = np.random.default_rng(2)
    standard, plus = pair(dim=16)
    x = rng.normal(size=(1, 512, 16)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(plus([x, x, x])[0]), np.asarray(standard([x, x, x])[0]), atol=1e-5
    )
    # Padded to 1024 with 512 valid keys: still the standard attention on those keys.
    padded = np.concatenate([x, rng.normal(size=(1, 512, 16)).astype("float32")], axis=1)
    keys = np.zeros((1, 1, 1, 1024), bool)
    keys[..., :512] = True
    np.testing.assert_allclose(
        np.asarray(plus([padded, padded, padded], attention_mask=keys)[0])[:, :512],
        np.asarray(standard([x, x, x])[0]),
        atol=1e-5,
    )


@pytest.mark.tensorflow_only  # float64 closed forms; JAX computes in float32
def test_exact_identity_softmax_of_scaled_logits():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 100)).astype("float64") * 3
    for n in (20, 100, 2000):
        c = expected_factor(n)
        lhs = np.asarray(ops.softmax(c * logits, axis=-1))
        rhs = powered(np.asarray(ops.softmax(logits, axis=-1)), c)
        np.testing.assert_allclose(lhs, rhs, atol=1e-12)


def identity_attention(normalization):
    """One head whose projections are the identity, so logits are q.k / sqrt(d)."""
    layer = MultiHeadAttention(1, 64, normalization=normalization, use_bias=False,
                               return_attention_scores=True)
    layer.build([(None, None, 64)] * 3)
    layer.set_weights([np.eye(64, dtype="float32")] * 4)
    return layer


def test_entropy_grows_more_slowly_under_softmax_plus():
    """Random q, k on the sphere of radius sqrt(d): entropy vs n for O and E (SPEC C1 (e))."""
    rng = np.random.default_rng(4)

    def sphere(count):
        v = rng.normal(size=(1, count, 64))
        return (8.0 * v / np.linalg.norm(v, axis=-1, keepdims=True)).astype("float32")

    def mean_entropy(layer, n):
        q, k = sphere(32), sphere(n)
        p = np.asarray(layer([q, k, k])[1], dtype="float64")
        return float(-(p * np.log(np.maximum(p, 1e-30))).sum(-1).mean())

    o, e = identity_attention("softmax"), identity_attention("softmax_plus")
    rise_o = mean_entropy(o, 4096) - mean_entropy(o, 64)
    rise_e = mean_entropy(e, 4096) - mean_entropy(e, 64)
    assert rise_e < rise_o - 0.3, (rise_o, rise_e)
    assert abs(mean_entropy(o, 512) - mean_entropy(e, 512)) < 0.05


def test_fused_path_matches_explicit_path_and_zeroes_blocked_rows():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 12, 16)).astype("float32")
    mask = np.ones((2, 1, 12, 12), bool)
    mask[0, :, 3, :] = False  # a row that sees nothing
    mask[1, :, :, 7:] = False
    for normalization in ("softmax", "softmax_plus"):
        explicit = MultiHeadAttention(2, 8, normalization=normalization,
                                      return_attention_scores=True)
        fused = MultiHeadAttention(2, 8, normalization=normalization)
        explicit.build([(None, None, 16)] * 3)
        fused.build([(None, None, 16)] * 3)
        fused.set_weights(explicit.get_weights())
        out_explicit, probs = explicit([x, x, x], attention_mask=mask)
        out_fused = fused([x, x, x], attention_mask=mask)
        np.testing.assert_allclose(np.asarray(out_fused), np.asarray(out_explicit), atol=1e-5)
        assert np.all(np.isfinite(np.asarray(out_fused)))
        # A row with no visible key: zero probabilities and output = o_dense bias only.
        assert np.all(np.asarray(probs)[0, :, 3] == 0)
        bias = fused.o_dense.bias.numpy()
        np.testing.assert_allclose(np.asarray(out_fused)[0, 3], bias, atol=1e-6)


def test_keras_masks_block_padded_keys_and_zero_padded_queries():
    tokens = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 1]])
    embedding = keras.layers.Embedding(10, 16, mask_zero=True)
    x = embedding(tokens)
    layer = MultiHeadAttention(2, 8, return_attention_scores=True)
    out, probs = layer([x, x, x])
    probs = np.asarray(probs)
    assert np.all(probs[0, :, :3, 3:] == 0)  # padded keys get no weight
    np.testing.assert_allclose(probs[0, :, :3].sum(-1), 1.0, atol=1e-6)
    assert np.all(probs[0, :, 3:] == 0)  # padded query rows are empty
    # The same padding given as an explicit mask gives the same result.
    explicit = np.asarray(tokens != 0)[:, None, None, :] & np.asarray(tokens != 0)[:, None, :, None]
    out2, _ = layer([np.asarray(x), np.asarray(x), np.asarray(x)], attention_mask=explicit)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out2), atol=1e-6)


@pytest.mark.tensorflow_only
def test_gradients_finite_for_long_sequences():
    rng = np.random.default_rng(7)
    import tensorflow as tf

    layer = MultiHeadAttention(1, 16, normalization="softmax_plus")
    q = tf.constant(rng.normal(size=(1, 4, 16)).astype("float32") * 4)
    k = tf.constant(rng.normal(size=(1, 16384, 16)).astype("float32") * 4)
    with tf.GradientTape() as tape:
        tape.watch([q, k])
        loss = tf.reduce_sum(layer([q, k, k]) ** 2)
    grads = tape.gradient(loss, [q, k] + layer.trainable_weights)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_round_trip_and_jit_compile(tmp_path):
    rng = np.random.default_rng(8)
    x_in = keras.Input((None, 16))
    mask_in = keras.Input((1, None, None), dtype="bool")
    layer = MultiHeadAttention(2, 8, out_dim=12, key_size=4, normalization="softmax_plus",
                               softmax_plus_base=256, softmax_plus_floor=4,
                               attention_dropout=0.1, return_attention_scores=True)
    model = keras.Model([x_in, mask_in], layer([x_in, x_in, x_in], attention_mask=mask_in))
    x = rng.normal(size=(2, 6, 16)).astype("float32")
    mask = np.tril(np.ones((6, 6), bool))[None, None].repeat(2, 0)
    restored = assert_keras_round_trip(model, [x, mask], tmp_path)
    assert restored.layers[-1].get_config() == layer.get_config()

    model.compile(optimizer="sgd", loss=["mse", None], jit_compile=True)
    model.train_on_batch([x, mask], [np.zeros((2, 6, 12)), None])
    out = model.predict([x, mask], verbose=0)
    assert out[0].shape == (2, 6, 12) and out[1].shape == (2, 2, 6, 6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    rng = np.random.default_rng(9)
    x = (rng.normal(size=(2, 40, 32)) * 30).astype("float32")
    layer = MultiHeadAttention(4, 8, normalization="softmax_plus", return_attention_scores=True)
    out, probs = layer([x, x, x], attention_mask=np.tril(np.ones((40, 40), bool)))
    assert out.dtype == policy.split("_")[1]
    assert probs.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(out, dtype="float32")))
    np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-6)
    fused = MultiHeadAttention(4, 8, normalization="softmax_plus")
    assert np.all(np.isfinite(np.asarray(fused([x, x, x]), dtype="float32")))


def test_bad_input_errors():
    with pytest.raises(ValueError, match="normalization.*softmax_plus.*'sparsemax'"):
        MultiHeadAttention(2, 8, normalization="sparsemax")
    with pytest.raises(ValueError, match="heads"):
        MultiHeadAttention(0, 8)
    x = np.zeros((1, 5, 16), "float32")
    with pytest.raises(ValueError, match=r"list `\[q, k, v\]`"):
        MultiHeadAttention(2, 8)(x)
    same_length = r"`k` and `v` must have the same length.*\(1, 5, 16\).*\(1, 4, 16\)"
    with pytest.raises(ValueError, match=same_length):
        MultiHeadAttention(2, 8)([x, x, x[:, :4]])
    with pytest.raises(ValueError, match=r"axis 1 must be 1 or heads=2.*\(1, 3, 5, 5\)"):
        MultiHeadAttention(2, 8)([x, x, x], attention_mask=np.ones((1, 3, 5, 5), bool))
    with pytest.raises(ValueError, match=r"broadcast to \[batch, heads, q_len, k_len\]"):
        MultiHeadAttention(2, 8)([x, x, x], attention_mask=np.ones((1, 1, 1, 5, 5), bool))


def test_mask_dtype_shape_and_empty_sequences_are_refused_clearly():
    """Reliability probe L06 (a mask one key too long), L09 (an additive float mask, which a
    cast to bool would invert) and L14 (zero-length sequences)."""
    layer = MultiHeadAttention(heads=2, head_size=8)
    x = np.random.default_rng(0).normal(size=(2, 6, 16)).astype("float32")
    with pytest.raises(ValueError, match=r"must broadcast to \[batch, heads, q_len=6, k_len=6\]; "
                                         r"received shape \(2, 6, 7\)"):
        layer([x, x, x], attention_mask=np.ones((2, 6, 7), bool))
    additive = np.where(np.arange(6) < 4, 0.0, -1e9).astype("float32")[None, None]
    with pytest.raises(TypeError, match="must be boolean .* received float32"):
        layer([x, x, x], attention_mask=additive)
    empty = np.zeros((2, 0, 16), "float32")
    for attention in (layer, PerformerAttention(heads=2, head_size=8, num_random_features=8)):
        with pytest.raises(ValueError, match=r"sequences of length >= 1; received q shape "
                                             r"\(2, 0, 16\)"):
            attention([empty, empty, empty])
    assert layer([x, x, x], attention_mask=np.ones((2, 1, 6), "int32")).shape == (2, 6, 16)
