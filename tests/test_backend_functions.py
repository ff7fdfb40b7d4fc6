"""bert4keras's `backend` functions: the multi-label losses, `sequence_masking` and
`batch_gather` against bert4keras 0.11.5 (tests/fixtures/make_backend_reference.py), closed
forms and brute force; `search_layer`, `recompute_grad` and `K.eval` / `K.set_value`."""
from pathlib import Path

import keras
import numpy as np
import pytest

from bert4keras_ext.backend import (
    K,
    batch_gather,
    multilabel_categorical_crossentropy,
    recompute_grad,
    search_layer,
    sequence_masking,
    sparse_multilabel_categorical_crossentropy,
)

pytestmark = pytest.mark.backend_neutral

REFERENCE = np.load(Path(__file__).parent / "fixtures" / "backend_reference.npz")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def compiled(function, *args, **kwargs):
    """`function(*args, **kwargs)` as NumPy; jitted on JAX (faster than op-by-op there, and
    shows the function traces)."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.jit(lambda *a: function(*a, **kwargs))(*args))
    return numpy(function(*args, **kwargs))


def gradient(function, x):
    """d sum(function(x)) / dx, as NumPy, on the current backend."""
    x = np.asarray(x, "float32")
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.jit(jax.grad(lambda v: function(v).sum()))(x))
    import tensorflow as tf

    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(function(variable))
    return tape.gradient(total, variable).numpy()


@pytest.mark.parametrize("labels,loss", [("mcc_labels", "mcc_loss"),
                                         ("mcc_soft_labels", "mcc_soft_loss")])
def test_multilabel_loss_matches_bert4keras(labels, loss):
    value = compiled(multilabel_categorical_crossentropy, REFERENCE[labels],
                     REFERENCE["mcc_logits"])
    np.testing.assert_allclose(value, REFERENCE[loss], rtol=1e-5)


def test_multilabel_loss_closed_form_and_gradient():
    """log(1 + sum_neg e^s) + log(1 + sum_pos e^-s); -inf classes drop out of both sums and get
    a zero (not NaN) gradient."""
    logits, labels = REFERENCE["mcc_logits"], REFERENCE["mcc_labels"].astype(bool)
    kept = np.isfinite(logits)
    e = np.exp(np.where(kept, logits, 0.0).astype("float64"))
    negative = 1 + np.where(~labels & kept, e, 0).sum(-1)
    positive = 1 + np.where(labels & kept, 1 / e, 0).sum(-1)
    np.testing.assert_allclose(REFERENCE["mcc_loss"], np.log(negative) + np.log(positive),
                               rtol=1e-12)  # the fixture is this formula
    expected = np.where(kept, np.where(labels, -1 / e / positive[:, None],
                                       e / negative[:, None]), 0.0)
    grad = gradient(lambda s: multilabel_categorical_crossentropy(labels, s), logits)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_sparse_multilabel_loss_matches_bert4keras(mask_zero):
    value = compiled(sparse_multilabel_categorical_crossentropy, REFERENCE["smcc_indices"],
                     REFERENCE["smcc_logits"], mask_zero=mask_zero)
    expected = REFERENCE[f"smcc_loss_mask_zero_{mask_zero}"]
    assert np.isinf(expected).sum() == 1  # the row whose positive logit is -inf
    np.testing.assert_allclose(value, expected, rtol=1e-5)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_sparse_loss_equals_the_dense_loss_on_multi_hot_labels(mask_zero):
    """Brute force: the dense loss on the same (distinct) positives, without class 0 under
    mask_zero, where 0 pads the lists; gradients stay finite though -inf logits abound."""
    rng = np.random.default_rng(1)
    logits = REFERENCE["smcc_logits"].copy()
    logits[0, 3] = np.nan_to_num(logits[0, 3], neginf=-30.0)  # keep every loss finite
    indices = np.zeros(logits.shape[:2] + (3,), "int32")
    multi_hot = np.zeros(logits.shape, "float32")
    for b, r in np.ndindex(*logits.shape[:2]):
        count = rng.integers(1 if mask_zero else 3, 4)  # lists with padding under mask_zero
        positives = rng.choice(np.flatnonzero(np.isfinite(logits[b, r])), count, replace=False)
        if mask_zero:
            positives = positives[positives != 0]
        indices[b, r, :len(positives)] = positives
        multi_hot[b, r, positives] = 1
    dense_logits, dense_labels = logits, multi_hot
    if mask_zero:
        dense_logits, dense_labels = logits[..., 1:], multi_hot[..., 1:]
    expected = compiled(multilabel_categorical_crossentropy, dense_labels, dense_logits)
    sparse = compiled(sparse_multilabel_categorical_crossentropy, indices, logits,
                      mask_zero=mask_zero)
    np.testing.assert_allclose(sparse, expected, rtol=1e-5)
    grad = gradient(lambda s: sparse_multilabel_categorical_crossentropy(
        indices, s, mask_zero=mask_zero), logits)
    assert np.isfinite(grad).all()
    assert (grad[np.isneginf(logits)] == 0).all()


def test_multilabel_losses_compile_save_and_compute_in_float32(tmp_path):
    logits, labels = REFERENCE["mcc_logits"], REFERENCE["mcc_labels"]
    half = multilabel_categorical_crossentropy(labels, logits.astype("float16"))
    assert keras.backend.standardize_dtype(half.dtype) == "float32"
    model = keras.Sequential([keras.Input((7,)), keras.layers.Identity()])
    model.compile(loss=multilabel_categorical_crossentropy)
    loss = model.evaluate(logits, labels, verbose=0)
    np.testing.assert_allclose(loss, REFERENCE["mcc_loss"].mean(), rtol=1e-5)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert restored.loss is multilabel_categorical_crossentropy


def test_sequence_masking_matches_bert4keras():
    x, mask = REFERENCE["masking_x"], REFERENCE["masking_mask"]
    for fill, value in [("zero", 0), ("minus_inf", "-inf"), ("minus_inf", -np.inf),
                        ("five", 5.0)]:
        for axis in (None, 1, -2):
            np.testing.assert_array_equal(numpy(sequence_masking(x, mask, value, axis)),
                                          REFERENCE[f"masking_{fill}_axis_{axis}"])


def test_sequence_masking_over_two_axes_and_with_biases_matches_bert4keras():
    scores, mask = REFERENCE["masking_scores"], REFERENCE["masking_mask"]
    lower = np.tril(np.ones((4, 4), bool))[None, None]
    float_bias = REFERENCE["masking_float_bias"]
    masked, aligned = sequence_masking(scores, mask, "-inf", [2, 3], ~lower, return_mask=True)
    np.testing.assert_array_equal(numpy(masked), REFERENCE["masking_two_axes_bool_bias"])
    np.testing.assert_array_equal(numpy(aligned), REFERENCE["masking_two_axes_mask"])
    np.testing.assert_allclose(numpy(sequence_masking(scores, mask, -1e4, [2, 3], float_bias)),
                               REFERENCE["masking_two_axes_float_bias"], rtol=1e-6)
    np.testing.assert_array_equal(numpy(sequence_masking(scores, None, "-inf", bias=lower)),
                                  REFERENCE["masking_bool_bias_only"])
    np.testing.assert_allclose(numpy(sequence_masking(scores, None, bias=float_bias)),
                               REFERENCE["masking_float_bias_only"], rtol=1e-6)
    assert sequence_masking(scores, None, return_mask=True)[1] is None
    x = np.ones((2, 4), "float16")
    assert keras.backend.standardize_dtype(sequence_masking(x, mask, "inf").dtype) == "float16"


def test_sequence_masking_and_batch_gather_refuse_bad_arguments():
    x, mask = REFERENCE["masking_x"], REFERENCE["masking_mask"]
    for arguments, message in [
        (dict(value="-infinity"),
         "`value` must be a number, '-inf' or 'inf'; received '-infinity'"),
        (dict(axis=0), "`axis` must name axes of `x` after the batch axis .* received 0"),
        (dict(axis=[1, 3]), "`axis` must name axes .* received \\[1, 3\\]"),
        (dict(mask=np.ones((2, 4, 1))), "`mask` must be a rank-2 tensor \\[batch, length\\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            sequence_masking(x, **dict(dict(mask=mask), **arguments))
    with pytest.raises(ValueError, match="`params` must have at least the rank of `indices`"):
        batch_gather(np.zeros((2, 3)), np.zeros((2, 3, 1), "int32"))


def test_batch_gather_matches_bert4keras():
    for case in ("rank2", "rank3", "two_batch_axes"):
        params, indices = REFERENCE[f"gather_{case}_params"], REFERENCE[f"gather_{case}_indices"]
        expected = REFERENCE[f"gather_{case}"]
        np.testing.assert_array_equal(numpy(batch_gather(params, indices)), expected)
        # Float indices are cast to int32, as bert4keras does.
        np.testing.assert_array_equal(numpy(batch_gather(params, indices.astype("float32"))),
                                      expected)


def build_graph():
    """x -> Dense 'a' (shared: called twice) -> a nested model holding 'deep' -> Add 'sum'."""
    x = keras.Input((4,), name="x")
    shared = keras.layers.Dense(4, name="a")
    inner_input = keras.Input((4,), name="inner_x")
    inner = keras.Model(inner_input, keras.layers.Dense(4, name="deep")(inner_input),
                        name="inner")
    h = shared(x)
    total = keras.layers.Add(name="sum")([inner(shared(h)), h])
    return keras.Model(x, keras.layers.Dense(2, name="head")(total), name="outer")


def test_search_layer_finds_layers_upstream_of_tensors_layers_and_models():
    model = build_graph()
    for start in (model.output, model.get_layer("head"), model):
        assert search_layer(start, "a") is model.get_layer("a")
        assert search_layer(start, "x") is model.get_layer("x")
        assert search_layer(start, "deep") is model.get_layer("inner").get_layer("deep")
        assert search_layer(start, "missing") is None
    assert search_layer(model.get_layer("sum").output, "head") is None  # downstream
    assert search_layer(model.get_layer("head"), "head") is model.get_layer("head")
    inner = model.get_layer("inner")
    assert search_layer(model.output, "deep", exclude_from=[inner]) is None
    assert search_layer(model.output, "inner", exclude_from=[inner]) is inner
    head = model.get_layer("head")
    assert search_layer(head, "a", exclude_from={head}) is None
    assert search_layer(keras.layers.Dense(2, name="alone"), "x") is None  # never called
    with pytest.raises(TypeError, match="`inputs` must be a layer, a model or symbolic"):
        search_layer(np.zeros(3), "a")


@pytest.mark.tensorflow_only  # the same graph API on JAX, where building the model is slower
def test_search_layer_finds_the_token_embeddings_of_a_deep_transformer():
    from bert4keras_ext.models import build_transformer_model

    # 12 blocks: a walk along every path (keras.utils.get_source_inputs) would never end.
    model = build_transformer_model(config=dict(
        vocab_size=20, hidden_size=8, num_hidden_layers=12, num_attention_heads=2,
        intermediate_size=16), with_mlm=True)
    embedding = model.get_layer("Embedding-Token")
    assert search_layer(model.output, "Embedding-Token") is embedding
    assert search_layer(model, "Embedding-Token") is embedding


class Block(keras.layers.Layer):
    """Dense + tanh, masked and with dropout: kwargs of each kind reach the recomputed call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.dense = keras.layers.Dense(3)
        self.dropout = keras.layers.Dropout(0.5, seed=1)

    @recompute_grad
    def call(self, inputs, mask=None, training=None):
        h = keras.ops.tanh(self.dense(inputs)) * inputs
        if mask is not None:
            h = h * keras.ops.cast(mask, h.dtype)[..., None]
        return self.dropout(h, training=training)


def block_gradients(model, x, mask):
    """Gradients of sum(output^2) with respect to the weights and the inputs (eval mode)."""
    if keras.backend.backend() == "jax":
        import jax

        def loss(weights, x):
            y, _ = model.stateless_call(weights, [v.value for v in model.non_trainable_variables],
                                        [x, mask], training=False)
            return (y**2).sum()

        grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(
            [v.value for v in model.trainable_variables], x)
        return [np.asarray(g) for g in grads[0]] + [np.asarray(grads[1])]
    import tensorflow as tf

    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(model([x, tf.constant(mask)], training=False) ** 2)
        return tape.gradient(loss, model.trainable_variables + [x])

    return [g.numpy() for g in run(tf.constant(x))]


def test_recompute_grad_gives_the_same_gradients_through_keras_remat(monkeypatch):
    x_in, mask_in = keras.Input((5, 3)), keras.Input((5,), dtype="bool")
    model = keras.Model([x_in, mask_in], Block()(x_in, mask=mask_in))
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    monkeypatch.delenv("RECOMPUTE", raising=False)
    plain = block_gradients(model, x, mask)
    remat_calls = []

    def counting_remat(f):
        remat_calls.append(f)
        return remat(f)

    remat = keras.remat
    monkeypatch.setattr(keras, "remat", counting_remat)
    monkeypatch.setenv("RECOMPUTE", "1")
    recomputed = block_gradients(model, x, mask)
    assert remat_calls  # the decorated call went through keras.remat
    assert len(plain) == 3 and np.abs(plain[-1]).max() > 0
    for expected, actual in zip(plain, recomputed):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
    outputs = model([x, mask], training=True)  # dropout still sees `training`
    assert (numpy(outputs) == 0).mean() > (numpy(model([x, mask])) == 0).mean()


def test_k_eval_get_value_and_set_value():
    variable = keras.Variable(np.zeros((2, 2)), dtype="float32")
    K.set_value(variable, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(K.get_value(variable), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(K.eval(keras.ops.ones((2,)) * 3), [3, 3])
    optimizer = keras.optimizers.Adam(1e-3)
    K.set_value(optimizer.learning_rate, 5e-4)
    np.testing.assert_allclose(K.get_value(optimizer.learning_rate), 5e-4)
    with pytest.raises(TypeError, match="K.set_value needs a keras.Variable .* received <class "
                                        "'float'>: 0.5"):
        K.set_value(0.5, 1.0)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(TypeError, match="K.set_value needs a keras.Variable"):
        K.set_value(keras.optimizers.Adam(schedule).learning_rate, 1.0)
    with pytest.raises(TypeError, match="K.eval needs a tensor or variable with a value"):
        K.eval(keras.Input((2,)))
