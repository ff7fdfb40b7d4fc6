"""The file operations pretraining's small files need (run flags, the lock, shard manifests),
on local disks and object stores: `tf.io.gfile` on the TensorFlow route, `etils.epath` (which
orbax-checkpoint installs; gs:// through gcsfs) on the JAX route, so that route never imports
TensorFlow."""
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
    from etils import epath

    ERRORS = (OSError,)
    EXISTS_ERRORS = (FileExistsError,)

    def exists(path):
        return epath.Path(path).exists()

    def makedirs(path):
        epath.Path(path).mkdir(parents=True, exist_ok=True)

    def remove(path):
        epath.Path(path).unlink()

    def glob(pattern):
        if "://" not in pattern:
            return local_glob.glob(pattern)
        folder, name = os.path.split(pattern)
        return [str(path) for path in epath.Path(folder).glob(name)]

    def read_text(path):
        return epath.Path(path).read_text()

    def write_text(path, text):
        epath.Path(path).write_text(text)

    def rename(source, target, overwrite):
        if not overwrite and exists(target):
            raise FileExistsError(target)
        if overwrite:
            epath.Path(source).replace(target)
        else:
            epath.Path(source).rename(target)

    def size(path):
        return epath.Path(path).stat().length
