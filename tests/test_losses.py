"""The UNILM seq2seq loss, focal loss and soft truncation."""
import keras
import numpy as np
import pytest

from bert4keras_ext.losses import (
    BinaryFocalLoss,
    BinarySoftTruncationLoss,
    Seq2SeqCrossEntropy,
    SparseCategoricalFocalLoss,
    SparseCategoricalSoftTruncationLoss,
    seq2seq_targets,
)

pytestmark = pytest.mark.backend_neutral

TOKENS = np.array([[1, 5, 6, 2, 7, 8, 2, 0, 0], [1, 9, 2, 4, 2, 0, 0, 0, 0]])
SEGMENTS = np.array([[0, 0, 0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0, 0, 0, 0]])


def test_targets_score_only_target_tokens_and_final_sep():
    targets = np.asarray(seq2seq_targets(TOKENS, SEGMENTS))
    np.testing.assert_array_equal(targets[0], [0, 0, 0, 0, 7, 8, 2, 0, 0])
    np.testing.assert_array_equal(targets[1], [0, 0, 0, 4, 2, 0, 0, 0, 0])


@pytest.mark.parametrize("from_logits", [True, False])
def test_loss_is_mean_over_scored_next_tokens(from_logits):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 9, 12)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    loss = Seq2SeqCrossEntropy(from_logits=from_logits)
    value = float(loss(seq2seq_targets(TOKENS, SEGMENTS), logits if from_logits else probs))
    # Position i predicts token i + 1; scored where token i + 1 is in the target segment.
    terms = []
    for b in range(2):
        for i in range(8):
            if SEGMENTS[b, i + 1] == 1:
                terms.append(-np.log(probs[b, i, TOKENS[b, i + 1]]))
    assert len(terms) == 5
    np.testing.assert_allclose(value, np.mean(terms), rtol=1e-5)


def test_the_models_padding_mask_does_not_reweight_the_loss_in_compile():
    from bert4keras_ext.models import build_transformer_model

    model = build_transformer_model(dict(vocab_size=12, hidden_size=8, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=16),
                                    application="unilm", with_mlm="linear")
    model.compile(loss=Seq2SeqCrossEntropy(from_logits=True))
    logits = np.asarray(model.predict([TOKENS, SEGMENTS], verbose=0), "float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    scored = SEGMENTS[:, 1:] == 1
    picked = np.take_along_axis(log_probs[:, :-1], TOKENS[:, 1:, None], axis=2)[..., 0]
    value = model.evaluate([TOKENS, SEGMENTS], seq2seq_targets(TOKENS, SEGMENTS), verbose=0)
    np.testing.assert_allclose(value, -picked[scored].mean(), rtol=1e-5)


@pytest.mark.tensorflow_only
def test_padding_gets_no_gradient():
    import tensorflow as tf

    logits = tf.Variable(np.zeros((2, 9, 12), "float32"))
    with tf.GradientTape() as tape:
        loss = Seq2SeqCrossEntropy(from_logits=True)(seq2seq_targets(TOKENS, SEGMENTS), logits)
    grad = tape.gradient(loss, logits).numpy()
    scored = np.zeros((2, 9), bool)
    scored[:, :-1] = SEGMENTS[:, 1:] == 1
    assert np.abs(grad[~scored]).max() == 0
    assert np.abs(grad[scored]).min() > 0


def test_loss_round_trips_its_config():
    loss = Seq2SeqCrossEntropy(from_logits=True, ignore_id=-1)
    again = Seq2SeqCrossEntropy.from_config(loss.get_config())
    assert again.from_logits and again.ignore_id == -1


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_focal_and_soft_truncation_closed_forms():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3, size=(6, 5)).astype("float32")
    labels = (rng.random((6, 5)) < 0.5).astype("float32")
    cross_entropy = np.asarray(keras.losses.binary_crossentropy(labels, logits, from_logits=True))
    focal_0 = BinaryFocalLoss(gamma=0.0, from_logits=True)
    np.testing.assert_allclose(focal_0(labels, logits), cross_entropy.mean(), rtol=1e-5)
    # K = gamma = 1: the soft truncation is the focal loss.
    np.testing.assert_allclose(BinarySoftTruncationLoss(k=1.0)(labels, logits),
                               BinaryFocalLoss(gamma=1.0, from_logits=True)(labels, logits),
                               rtol=1e-5)
    # Against the closed form with alpha weighting, from probabilities.
    p = _sigmoid(logits.astype("float64"))
    p_t = np.where(labels == 1, p, 1 - p)
    alpha_t = np.where(labels == 1, 0.25, 0.75)
    expected = (-alpha_t * (1 - p_t) ** 2 * np.log(p_t)).mean()
    loss = BinaryFocalLoss(gamma=2.0, alpha=0.25)(labels, p.astype("float32"))
    np.testing.assert_allclose(loss, expected, rtol=1e-3)
    # Soft truncation for large K hardly penalizes samples already on the right side.
    right = np.array([[4.0]], "float32")
    assert float(BinarySoftTruncationLoss(k=10.0)(np.ones((1, 1)), right)) < 1e-18


def test_multi_class_focal_and_soft_truncation():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=2, size=(8, 4)).astype("float32")
    labels = rng.integers(0, 4, size=8)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(SparseCategoricalFocalLoss(gamma=0.0, from_logits=True)(
        labels, logits), cross_entropy, rtol=1e-5)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    p_t = probs[np.arange(8), labels]
    np.testing.assert_allclose(
        SparseCategoricalFocalLoss(gamma=2.0, alpha=0.5)(labels, probs),
        (-0.5 * (1 - p_t) ** 2 * np.log(p_t)).mean(), rtol=1e-4)
    reverse = np.exp(-2 * logits) / np.exp(-2 * logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(
        SparseCategoricalSoftTruncationLoss(k=2.0)(labels, logits),
        (-reverse[np.arange(8), labels] * np.log(p_t)).mean(), rtol=1e-4)


@pytest.mark.parametrize("loss", [
    BinaryFocalLoss(gamma=2.0, alpha=0.25, from_logits=True), BinarySoftTruncationLoss(k=3.0),
])
@pytest.mark.tensorflow_only
def test_binary_gradients_finite_at_extreme_logits(loss):
    import tensorflow as tf

    logits = tf.Variable([[-100.0, 100.0, 0.0]])
    with tf.GradientTape() as tape:
        value = loss(np.array([[1.0, 0.0, 1.0]]), logits)
    assert np.isfinite(float(value)) and np.isfinite(tape.gradient(value, logits).numpy()).all()


@pytest.mark.parametrize("loss", [
    BinaryFocalLoss(gamma=1.5, alpha=0.3), BinarySoftTruncationLoss(k=2.0),
    SparseCategoricalFocalLoss(gamma=2.0, alpha=0.5, from_logits=True),
    SparseCategoricalSoftTruncationLoss(k=1.5),
])
def test_new_losses_compile_and_round_trip(loss, tmp_path):
    sparse = "Sparse" in type(loss).__name__
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(4 if sparse else 1,
                                 activation=None if loss.from_logits else "sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("adam", loss=loss)
    x = np.random.default_rng(2).normal(size=(16, 3)).astype("float32")
    y = np.arange(16) % 4 if sparse else (x[:, :1] > 0).astype("float32")
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored.loss) is type(loss) and restored.loss.get_config() == loss.get_config()
    np.testing.assert_allclose(restored.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0),
                               rtol=1e-6)
