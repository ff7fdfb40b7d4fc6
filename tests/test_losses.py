"""The UNILM seq2seq loss (SPEC C8 (e): loss weights)."""
import numpy as np
import pytest
import tensorflow as tf

from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets

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


def test_padding_gets_no_gradient():
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
