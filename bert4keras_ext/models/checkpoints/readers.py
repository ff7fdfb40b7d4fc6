"""Read-only access to checkpoint variables by name: original TF checkpoints and safetensors."""
import os


class CheckpointReader:
    """`names()` and `get(name)` over a checkpoint; `naming` is 'original' or 'hugging_face'."""

    def __init__(self, path):
        self.path = str(path)
        if self.path.endswith(".safetensors"):
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"Checkpoint file not found: {self.path}")
            from safetensors import safe_open

            self._file = safe_open(self.path, framework="numpy")
            self._names = set(self._file.keys())
            # Original (TF) names are paths ("bert/embeddings/..."); Hugging Face's use dots.
            self.naming = ("original" if self._names and all("/" in n for n in self._names)
                           else "hugging_face")
            self._get = self._file.get_tensor
        else:
            if not os.path.exists(self.path + ".index"):
                raise FileNotFoundError(
                    f"TF checkpoint not found: expected {self.path}.index (give the checkpoint "
                    "prefix, e.g. 'bert_model.ckpt', or a '.safetensors' file)."
                )
            import tensorflow as tf

            reader = tf.train.load_checkpoint(self.path)
            self._names = set(reader.get_variable_to_shape_map())
            self.naming = "original"
            self._get = reader.get_tensor

    def names(self):
        return set(self._names)

    def get(self, name):
        try:
            return self._get(name)
        except Exception as error:  # TF and safetensors raise their own types on damaged data
            raise ValueError(f"Checkpoint {self.path} is damaged: reading {name} failed "
                             f"({type(error).__name__}: {error}).") from error

    def find(self, name, prefixes=("bert.",)):
        """The stored name for `name`, allowing Hugging Face's model `prefixes` and old
        LayerNorm names."""
        if name is None:
            return None
        if self.naming == "original":
            return name if name in self._names else None
        candidates = [name]
        if name.endswith("LayerNorm.weight"):
            candidates.append(name[: -len("weight")] + "gamma")
        elif name.endswith("LayerNorm.bias"):
            candidates.append(name[: -len("bias")] + "beta")
        for candidate in candidates:
            for prefix in ("", *prefixes):
                if prefix + candidate in self._names:
                    return prefix + candidate
        return None
