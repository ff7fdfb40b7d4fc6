"""ArrayRecord shards, the JAX route's data: one record per sequence, its features (the
mode's `FEATURES`) as int32 `[features, seq_len]` bytes. ArrayRecord
(https://github.com/google/array_record) reads any record by index, which is what the JAX
route's grain pipeline needs for a deterministic order, per-process shares and resuming by
arithmetic. data_utils.py writes them (`--format arrayrecord`) without TensorFlow, or converts
TFRecord shards once (`--convert`, with TensorFlow)."""
import numpy as np
from objective import FEATURES

SUFFIX = ".arrayrecord"


class ShardWriter:
    """Writes records to one ArrayRecord file (`group_size:1`: each record read alone)."""

    def __init__(self, path):
        from array_record.python.array_record_module import ArrayRecordWriter

        self._writer = ArrayRecordWriter(path, "group_size:1")

    def write(self, record):
        self._writer.write(record)

    def close(self):
        self._writer.close()


def encode(instance, mode):
    """An instance (feature name -> ids of one sequence) as a record's bytes."""
    return np.stack([np.asarray(instance[name]) for name in FEATURES[mode]]).astype(
        "<i4").tobytes()


def decode(record, mode, seq_len):
    """A record's bytes as its feature dict (int32 arrays of length `seq_len`)."""
    array = np.frombuffer(record, "<i4").reshape(len(FEATURES[mode]), seq_len)
    return dict(zip(FEATURES[mode], array))


def read_source(paths):
    """The records of `paths`, in order, as a random-access grain data source."""
    import grain

    return grain.sources.ArrayRecordDataSource(list(paths))
