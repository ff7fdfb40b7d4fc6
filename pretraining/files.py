"""The file operations pretraining's small files need (run flags, the lock, shard manifests),
on local disks and object stores: `tf.io.gfile` on the TensorFlow route; on the JAX route, which
never imports TensorFlow, pathlib for local paths and `etils.epath` (installed with
orbax-checkpoint; gs:// through gcsfs) for URLs."""
import glob as local_glob
import os

import keras

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    ERRORS = (OSError, tf.errors.OpError)
    EXISTS_ERRORS = (FileExistsError, tf.errors.AlreadyExistsError)
    exists, makedirs, remove, glob = (tf.io.gfile.exists, tf.io.gfile.makedirs,
                                      tf.io.gfile.remove, tf.io.gfile.glob)

    def read_text(path):
        with tf.io.gfile.GFile(path) as file:
            return file.read()

    def write_text(path, text):
        with tf.io.gfile.GFile(path, "w") as file:
            file.write(text)

    def rename(source, target, overwrite):
        tf.io.gfile.rename(source, target, overwrite=overwrite)

    def size(path):
        return tf.io.gfile.stat(path).length
else:
    import pathlib

    ERRORS = (OSError,)
    EXISTS_ERRORS = (FileExistsError,)

    def _path(path):
        """A local path as it is; an object-store URL through etils.epath (gs:// needs
        gcsfs)."""
        if "://" in str(path):
            from etils import epath

            return epath.Path(path)
        return pathlib.Path(path)

    def exists(path):
        return _path(path).exists()

    def makedirs(path):
        _path(path).mkdir(parents=True, exist_ok=True)

    def remove(path):
        _path(path).unlink()

    def glob(pattern):
        if "://" not in pattern:
            return local_glob.glob(pattern)
        folder, name = os.path.split(pattern)
        return [str(path) for path in _path(folder).glob(name)]

    def read_text(path):
        return _path(path).read_text(encoding="utf-8")

    def write_text(path, text):
        _path(path).write_text(text, encoding="utf-8")

    def rename(source, target, overwrite):
        if overwrite:
            _path(source).replace(target)
        elif exists(target):
            raise FileExistsError(target)
        else:
            _path(source).rename(target)

    def size(path):
        if "://" in path:
            return _path(path).stat().length
        return os.path.getsize(path)
