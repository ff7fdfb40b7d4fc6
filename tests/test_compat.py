"""bert4keras names and semantics that ported scripts rely on (see MIGRATION.md)."""
import importlib
from pathlib import Path

import keras
import numpy as np
import pytest

from bert4keras_ext import activations
from bert4keras_ext.backend import K
from bert4keras_ext.decoding import AutoRegressiveDecoder, filter_probas
from bert4keras_ext.layers.loss import Loss
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.optimizers import (
    Adam,
    PiecewiseLinearSchedule,
    extend_with_exponential_moving_average,
    extend_with_piecewise_linear_lr,
)
from bert4keras_ext.snippets import sequence_padding, text_segmentate, to_array

pytestmark = pytest.mark.backend_neutral

CONFIG = dict(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=32)


class CrossEntropy(Loss):
    """bert4keras's language-model loss, as its scripts write it."""

    def compute_loss(self, inputs, mask=None):
        y_true, y_pred = inputs
        y_mask = 1.0 if mask[1] is None else K.cast(mask[1], K.floatx())[:, 1:]
        loss = K.sparse_categorical_crossentropy(y_true[:, 1:], y_pred[:, :-1])
        return K.sum(loss * y_mask) / K.sum(y_mask)


def test_loss_layer_gets_the_padding_mask_and_averages_over_real_tokens():
    model = build_transformer_model(config_path=CONFIG, application="lm")  # with_mlm default
    output = CrossEntropy(1)([model.inputs[0], model.outputs[0]])
    trainer = keras.Model(model.inputs, output)
    ids = sequence_padding([[2, 5, 6, 7, 3], [2, 8, 3]])
    segments = np.zeros_like(ids)
    probas = np.asarray(model([ids, segments]), "float64")
    picked = np.take_along_axis(probas[:, :-1], ids[:, 1:, None], axis=2)[..., 0]
    real = ids[:, 1:] != 0
    expected = -np.log(picked)[real].mean()
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))
    loss = trainer.evaluate([ids, segments], verbose=0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert Loss.from_config(CrossEntropy(1).get_config()).output_axis == 1


class SegmentCrossEntropy(Loss):
    """bert4keras's seq2seq loss: integer segment ids weight the float loss directly."""

    def compute_loss(self, inputs, mask=None):
        y_true, y_mask, y_pred = inputs
        loss = K.sparse_categorical_crossentropy(y_true[:, 1:], y_pred[:, :-1])
        return K.sum(loss * y_mask[:, 1:]) / K.sum(y_mask[:, 1:])


def test_loss_layer_gives_integer_inputs_as_floats_like_bert4keras():
    model = build_transformer_model(config_path=CONFIG, application="unilm")
    output = SegmentCrossEntropy(2)(model.inputs + model.outputs)
    trainer = keras.Model(model.inputs, output)
    ids = np.array([[2, 5, 6, 3, 7, 8, 3]])
    segments = np.array([[0, 0, 0, 0, 1, 1, 1]])
    probas = np.asarray(model([ids, segments]), "float64")
    picked = np.take_along_axis(probas[:, :-1], ids[:, 1:, None], axis=2)[..., 0]
    expected = -np.log(picked)[segments[:, 1:] == 1].mean()
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))
    np.testing.assert_allclose(trainer.evaluate([ids, segments], verbose=0), expected,
                               rtol=1e-5)
    assert output.dtype == "float32"  # the passed-through output keeps its own dtype


class MaskedCount(Loss):
    """Reads `mask[1]` unconditionally, as many bert4keras losses do."""

    def compute_loss(self, inputs, mask=None):
        return K.sum(K.cast(mask[1], "float32"))


def test_loss_layer_output_axis_is_checked_by_name():
    """Reliability probe 2, L01: an `output_axis` outside the inputs is refused naming it
    (was an IndexError)."""
    token_ids, hidden = keras.Input((None,), dtype="int32"), keras.Input((None, 4))
    for axis, message in [(3, r"received 3"), ([0, -3], r"received \[0, -3\]")]:
        with pytest.raises(ValueError, match=r"`output_axis` must index the layer's 2 inputs "
                                             r"\(in \[-2, 2\)\); " + message):
            MaskedCount(output_axis=axis)([token_ids, hidden])
    with pytest.raises(ValueError, match=r"`output_axis` picks among a list of inputs; with one "
                                         r"input it must be None; received 0"):
        MaskedCount(output_axis=0)(hidden)
    with pytest.raises(TypeError, match=r"`output_axis` must be an integer; received True"):
        MaskedCount(output_axis=True)
    assert MaskedCount(output_axis=(np.int64(1), -2)).get_config()["output_axis"] == [1, -2]
    selected = MaskedCount(output_axis=-1)([token_ids, hidden])
    assert tuple(selected.shape) == (None, None, 4)


def test_loss_layer_says_which_mask_could_not_be_derived():
    """Reliability probe 2, L02: predictions one position shorter than the token ids get no
    derived mask (None, as documented); a `compute_loss` that reads it fails with an error
    naming that input, its shape and why, instead of only "None values not supported"."""
    ids, shifted = np.array([[2, 5, 0]], "int32"), np.zeros((1, 2, 4), "float32")
    for first, message in [
        (ids, r"`mask\[i\]` being None for the inputs \[1\] \(shapes \[\(1, 2, 4\)\]\).*"
              r"length axis differs from that of the token ids \(1, 3\)"),
        (np.zeros((1, 3, 4), "float32"), r"no input is integer token ids of rank 2"),
    ]:
        inputs = [keras.Input(first.shape[1:], dtype=first.dtype), keras.Input((2, 4))]
        trainer = keras.Model(inputs, MaskedCount(output_axis=1)(inputs))
        with pytest.raises((TypeError, ValueError, AttributeError), match=message):
            trainer([first, shifted])


def test_last_token_and_wider_topp():
    model = build_transformer_model(CONFIG, application="lm")
    decoder = AutoRegressiveDecoder(start_id=None, end_id=3, maxlen=4)
    last = decoder.last_token(model)
    assert decoder.last_token(model) is last
    ids = np.array([[2, 5, 6]])
    np.testing.assert_allclose(last.predict([ids, np.zeros_like(ids)]),
                               np.asarray(model([ids, np.zeros_like(ids)]))[:, -1], atol=1e-6)
    probas = np.array([[0.5, 0.3, 0.2]])
    np.testing.assert_allclose(filter_probas(probas, topp=5), probas)  # bert4keras: no cut


def test_snippets_helpers():
    assert text_segmentate("一句。二句。三句。", 4, seps="。") == ["一句。", "二句。", "三句。"]
    assert text_segmentate("短。", 4, seps="。") == ["短。"]
    a, b = to_array([1, 2], [[3]])
    assert a.shape == (2,) and b.shape == (1, 1)
    assert to_array([1]).shape == (1,)


def test_piecewise_linear_lr_extension_and_names(tmp_path):
    Optimizer = extend_with_piecewise_linear_lr(Adam, name="AdamLR")
    assert Optimizer.__name__ == "AdamLR"
    optimizer = Optimizer(1e-3, lr_schedule={10: 1.0, 20: 0.1})
    schedule = PiecewiseLinearSchedule({10: 1.0, 20: 0.1}, 1e-3)
    for step in (0, 5, 15, 30):
        np.testing.assert_allclose(float(optimizer._learning_rate(step)),
                                   float(schedule(step)), rtol=1e-6)
    clone = Optimizer.from_config(optimizer.get_config())
    assert clone.lr_schedule == {10: 1.0, 20: 0.1}
    np.testing.assert_allclose(float(clone._learning_rate(15)), float(schedule(15)), rtol=1e-6)
    ema = extend_with_exponential_moving_average(Adam, name="AdamEMA")
    assert ema.__name__ == "AdamEMA" and ema(1e-3).ema_momentum == 0.999
    with pytest.raises(ValueError, match="`lr_schedule` must be a non-empty"):
        Optimizer(1e-3)


def test_set_gelu_and_backend_names():
    try:
        activations.set_gelu("tanh")
        assert activations.get("gelu") is activations.gelu_tanh
    finally:
        activations.set_gelu("erf")
    assert activations.get("gelu") is activations.gelu_erf
    with pytest.raises(ValueError, match="`version` must be 'erf' or 'tanh'"):
        activations.set_gelu("fast")
    assert K.floatx() == "float32" and K.int_shape(np.zeros((2, 3))) == (2, 3)
    with pytest.raises(AttributeError, match="K.batch_dot_2 is not in keras.ops"):
        K.batch_dot_2


def test_builder_object_and_single_condition_input():
    builder = build_transformer_model(config_path=CONFIG, return_keras_model=False)
    assert isinstance(builder.model, keras.Model)
    assert isinstance(builder.initializer, keras.initializers.TruncatedNormal)
    cond = keras.Input((4,))
    model = build_transformer_model(CONFIG, application="lm", layer_norm_cond=cond,
                                    additional_input_layers=cond)
    assert len(model.inputs) == 3
    with pytest.raises(TypeError, match="exactly one of `config` and `config_path`"):
        build_transformer_model(CONFIG, config_path=CONFIG)


def bert4keras_example_imports():
    """script -> the `bert4keras.<module>.<name>` imports of bert4keras 0.11.5's example
    scripts (its examples/ folder, listed once in the fixture)."""
    path = Path(__file__).parent / "fixtures" / "bert4keras_example_imports.txt"
    scripts = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            script, names = line.split("\t")
            scripts[script] = [name.strip() for name in names.split(",")]
    return scripts


EXAMPLE_IMPORTS = bert4keras_example_imports()


def test_the_fixture_lists_all_32_bert4keras_examples():
    assert len(EXAMPLE_IMPORTS) == 32


@pytest.mark.parametrize("script", sorted(EXAMPLE_IMPORTS))
def test_every_name_a_bert4keras_example_imports_resolves_after_the_rename(script):
    missing = []
    for dotted in EXAMPLE_IMPORTS[script]:
        module, name = dotted.replace("bert4keras.", "bert4keras_ext.", 1).rsplit(".", 1)
        if not hasattr(importlib.import_module(module), name):
            missing.append(f"{module}.{name}")
    assert missing == []
