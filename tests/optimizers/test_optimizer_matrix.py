"""Every optimizer and extension composition trains a small UNILM model (loss falls, stays
finite). Backend-neutral: `make test` runs it on TensorFlow and on JAX without TensorFlow."""
import keras
import numpy as np
import pytest

from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import (
    SGDM,
    AdaFactor,
    Adam,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_layer_adaptation,
    extend_with_lazy_optimization,
    extend_with_lookahead,
    extend_with_parameter_wise_lr,
    extend_with_weight_decay,
)

pytestmark = pytest.mark.backend_neutral

EVERYTHING = extend_with_lookahead(extend_with_lazy_optimization(extend_with_parameter_wise_lr(
    extend_with_exponential_moving_average(extend_with_layer_adaptation(
        extend_with_weight_decay(extend_with_gradient_accumulation(keras.optimizers.Adam)))))))

OPTIMIZERS = {
    "adafactor": lambda: AdaFactor(learning_rate=0.05),
    "adafactor+buffered+ema": lambda: extend_with_exponential_moving_average(
        extend_with_gradient_accumulation(AdaFactor))(0.05, grad_accum_steps=2, ema_momentum=0.9),
    "sgdm k=2": lambda: SGDM(0.5, grad_accum_steps=2),
    "adam k=2 +decay+ema": lambda: extend_with_exponential_moving_average(
        extend_with_weight_decay(Adam))(0.02, grad_accum_steps=2, weight_decay_rate=0.01,
                                        ema_momentum=0.9),
    "keras adam+buffered+decay+lamb+ema+paramwise+lazy+lookahead": lambda: EVERYTHING(
        0.02, grad_accum_steps=2, weight_decay_rate=0.01, ema_momentum=0.9,
        exclude_from_weight_decay=["Norm", "bias"], paramwise_lr_schedule={"MLM": 2.0},
        include_in_lazy_optimization="Embedding-Token", steps_per_slow_update=3),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_trains_a_unilm_model(name):
    keras.utils.set_random_seed(0)
    config = dict(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    model = build_transformer_model(config, application="unilm", with_mlm="linear")
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, 40, size=(8, 12)).astype("int32")
    segments = np.zeros_like(tokens)
    segments[:, 6:] = 1
    targets = np.asarray(seq2seq_targets(tokens, segments))
    model.compile(optimizer=OPTIMIZERS[name](), loss=Seq2SeqCrossEntropy(from_logits=True))
    losses = model.fit([tokens, segments], targets, batch_size=4, epochs=12, verbose=0,
                       shuffle=False).history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.95 * losses[0], losses
