"""Makes bert4keras_optimizer_reference.npz: bert4keras 0.11.5's lazy optimization and
parameter-wise learning rates, on its Adam, for three steps of a tiny embedding model.

    TF_KERAS=1 TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 \
        /tmp/ref/bin/python tests/optimizers/make_bert4keras_optimizer_reference.py

(/tmp/ref: TensorFlow 2.21, tf-keras and bert4keras==0.11.5.) bert4keras's optimizers derive
from `keras.optimizers.Optimizer`, which was tf.keras's OptimizerV2 when it was written; since
TensorFlow 2.11 that class lives at `keras.optimizers.legacy.Optimizer`, so it is put back
before bert4keras is imported.

The file holds the token batches, targets, initial weights and, after each step, every weight
with its Adam moments `m` and `v` (the model: Embedding-Token (6 x 4) -> Flatten -> Dense-Out
(12 -> 2), mean squared error). The test suite replays it with our optimizers and never needs
bert4keras or tf-keras.
"""
from pathlib import Path

import numpy as np
import tensorflow as tf

tf.keras.optimizers.Optimizer = tf.keras.optimizers.legacy.Optimizer

from bert4keras.backend import keras  # noqa: E402  (after the class is put back)
from bert4keras.optimizers import (  # noqa: E402
    Adam,
    extend_with_lazy_optimization,
    extend_with_parameter_wise_lr,
)

TOKENS = np.array([[[1, 2, 3], [2, 3, 1]],
                   [[4, 4, 2], [2, 4, 4]],
                   [[1, 5, 1], [5, 5, 1]]], "int32")  # row 0 is never used, row 3 once
LEARNING_RATE = 0.05
LAZY = ["Embedding"]
MULTIPLIERS = {"Dense": 0.5, "bias": 3.0}  # Dense-Out/kernel x0.5, Dense-Out/bias x1.5


def main():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=TOKENS.shape[:2] + (2,)).astype("float32")
    tokens = keras.layers.Input((3,), dtype="int32")
    hidden = keras.layers.Embedding(6, 4, name="Embedding-Token")(tokens)
    outputs = keras.layers.Dense(2, name="Dense-Out")(keras.layers.Flatten()(hidden))
    model = keras.Model(tokens, outputs)
    initial = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(initial)
    optimizer = extend_with_parameter_wise_lr(extend_with_lazy_optimization(Adam))(
        learning_rate=LEARNING_RATE, include_in_lazy_optimization=LAZY,
        paramwise_lr_schedule=MULTIPLIERS)
    model.compile(optimizer=optimizer, loss="mse")
    weights, moments, velocities = [], [], []
    for batch, target in zip(TOKENS, targets):
        model.train_on_batch(batch, target)
        weights.append([w.numpy() for w in model.weights])
        moments.append([optimizer.get_slot(w, "m").numpy() for w in model.weights])
        velocities.append([optimizer.get_slot(w, "v").numpy() for w in model.weights])
    arrays = {"tokens": TOKENS, "targets": targets}
    names = ["embeddings", "kernel", "bias"]
    for index, name in enumerate(names):
        arrays[f"initial_{name}"] = initial[index]
        for label, steps in (("weight", weights), ("m", moments), ("v", velocities)):
            arrays[f"{label}_{name}"] = np.stack([step[index] for step in steps])
    np.savez_compressed(Path(__file__).with_name("bert4keras_optimizer_reference.npz"), **arrays)


if __name__ == "__main__":
    main()
