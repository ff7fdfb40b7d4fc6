"""Atomic weight files: a crash while writing keeps the previous file (reliability probe K01)."""
import keras
import numpy as np
import pytest

from bert4keras_ext.saving import save_atomically

pytestmark = pytest.mark.backend_neutral


def small_model(value):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([np.full((3, 2), value, "float32"), np.zeros(2, "float32")])
    return model


def test_a_crash_mid_write_keeps_the_previous_weights(tmp_path, monkeypatch):
    path = tmp_path / "best_model.weights.h5"
    save_atomically(small_model(1.0), path)
    newer = small_model(2.0)

    def killed_mid_write(filepath):
        with open(filepath, "wb") as file:
            file.write(b"\x89HDF partial")
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(newer, "save_weights", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_atomically(newer, path)
    reloaded = small_model(0.0)
    reloaded.load_weights(path)
    np.testing.assert_array_equal(reloaded.get_weights()[0], np.full((3, 2), 1.0))
    assert [p.name for p in tmp_path.iterdir()] == ["best_model.weights.h5"]


def test_replaces_the_file_and_saves_whole_models(tmp_path):
    path = tmp_path / "best_model.weights.h5"
    save_atomically(small_model(1.0), path)
    save_atomically(small_model(3.0), path)
    reloaded = small_model(0.0)
    reloaded.load_weights(path)
    np.testing.assert_array_equal(reloaded.get_weights()[0], np.full((3, 2), 3.0))
    save_atomically(small_model(4.0), tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(restored.get_weights()[0], np.full((3, 2), 4.0))
    with pytest.raises(ValueError, match=r"`filepath` must end in \.weights\.h5 or \.keras"):
        save_atomically(small_model(1.0), tmp_path / "best_model.weights")
