"""Keras callbacks for our optimizers: EMA weights for evaluation and saving, and a check
that reports skipped non-finite gradients."""
import keras
from keras import ops

from bert4keras_ext.saving import save_atomically


def _ema_optimizer(model):
    optimizer = model.optimizer
    if not hasattr(optimizer, "apply_ema_weights"):
        raise ValueError(
            "The model's optimizer keeps no EMA weights: build it with "
            "extend_with_exponential_moving_average."
        )
    return optimizer


class SwapEMAWeights(keras.callbacks.Callback):
    """Evaluates and predicts with the EMA weights; optionally saves them each epoch.

    During `evaluate` (also the validation inside `fit`) and `predict`, the model holds the
    EMA weights; afterwards its training weights are restored exactly. With `filepath`, the EMA
    weights are saved at the end of every epoch (`model.save` for `.keras`, otherwise
    `model.save_weights`, written atomically; `{epoch}` is formatted).

    Example:
    ```python
    model.fit(x, y, validation_data=(xv, yv), callbacks=[SwapEMAWeights("ema.weights.h5")])
    ```
    """

    def __init__(self, filepath=None):
        super().__init__()
        self.filepath = filepath
        self._swapped = False

    def _apply(self):
        optimizer = _ema_optimizer(self.model)
        if optimizer.built and not optimizer.ema_weights_applied:
            optimizer.apply_ema_weights()
            self._swapped = True

    def _reset(self):
        if self._swapped:
            self.model.optimizer.reset_old_weights()
            self._swapped = False

    def on_test_begin(self, logs=None):
        self._apply()

    def on_test_end(self, logs=None):
        self._reset()

    def on_predict_begin(self, logs=None):
        self._apply()

    def on_predict_end(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.filepath is None:
            return
        path = str(self.filepath).format(epoch=epoch + 1)
        with _ema_optimizer(self.model).ema_weights():
            save_atomically(self.model, path)


class NonFiniteGradientCheck(keras.callbacks.Callback):
    """Raises when the optimizer skipped a non-finite gradient during the last batch.

    Our optimizers never apply a NaN or infinite gradient: they skip that variable's update and
    count it in `optimizer.nonfinite_gradients`. This callback turns the count into an error
    (`FloatingPointError`) naming the step, so a run does not go on silently.
    """

    def __init__(self):
        super().__init__()
        self._seen = 0

    def on_train_begin(self, logs=None):
        counter = getattr(self.model.optimizer, "nonfinite_gradients", None)
        self._seen = int(ops.convert_to_numpy(counter)) if counter is not None else 0

    def on_train_batch_end(self, batch, logs=None):
        counter = getattr(self.model.optimizer, "nonfinite_gradients", None)
        if counter is None:
            return
        count = int(ops.convert_to_numpy(counter))
        if count > self._seen:
            raise FloatingPointError(
                f"Non-finite gradients at batch {batch}: {count - self._seen} variable "
                f"update(s) were skipped (optimizer.nonfinite_gradients = {count})."
            )
