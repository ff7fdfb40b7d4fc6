"""One UNILM training step under MirroredStrategy on two logical CPU devices."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets
from bert4keras_ext.models import build_transformer_model
from conftest import TINY_CONFIG, mirrored_strategy


def make_batch(rng, batch=4, length=16):
    """Every sample has the same number of target tokens, so replica means equal the global one."""
    tokens = rng.integers(3, TINY_CONFIG["vocab_size"], size=(batch, length))
    segments = np.zeros((batch, length), "int32")
    segments[:, 10:] = 1
    return tokens, segments


def train_one_step(strategy, weights, tokens, segments):
    with strategy.scope():
        model = build_transformer_model(TINY_CONFIG, application="unilm", with_mlm="linear",
                                        normalization="softmax_plus")
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=Seq2SeqCrossEntropy(from_logits=True))
    targets = np.asarray(seq2seq_targets(tokens, segments))
    model.fit([tokens, segments], targets, batch_size=len(tokens), epochs=1, verbose=0)
    return model.get_weights()


@pytest.mark.slow
def test_mirrored_step_equals_single_device_step():
    assert len(tf.config.list_logical_devices("CPU")) == 2
    rng = np.random.default_rng(0)
    tokens, segments = make_batch(rng)
    initial = build_transformer_model(TINY_CONFIG, application="unilm",
                                      with_mlm="linear").get_weights()
    mirrored = mirrored_strategy()
    assert mirrored.num_replicas_in_sync == 2
    after_mirrored = train_one_step(mirrored, initial, tokens, segments)
    after_single = train_one_step(tf.distribute.get_strategy(), initial, tokens, segments)
    moved = max(np.abs(a - b).max() for a, b in zip(after_single, initial))
    assert moved > 1e-3
    for a, b in zip(after_mirrored, after_single):
        np.testing.assert_allclose(a, b, atol=1e-5)
