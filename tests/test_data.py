"""Data: padding, DataGenerator, the process-safe PyDataset source and parallel_apply."""
import os
import time

import keras
import numpy as np
import pytest

from bert4keras_ext.data import DataGenerator, SeededBatches, parallel_apply, sequence_padding


def test_sequence_padding_post_pre_and_nested():
    np.testing.assert_array_equal(sequence_padding([[1, 2, 3], [4]]), [[1, 2, 3], [4, 0, 0]])
    np.testing.assert_array_equal(sequence_padding([[1, 2, 3], [4]], length=2, mode="pre"),
                                  [[1, 2], [0, 4]])  # bert4keras keeps the head
    nested = sequence_padding([[[1, 2], [3]], [[4]]], seq_dims=2, value=-1)
    np.testing.assert_array_equal(nested, [[[1, 2], [3, -1]], [[4, -1], [-1, -1]]])
    with pytest.raises(ValueError, match="`mode` must be 'post' or 'pre'"):
        sequence_padding([[1]], mode="middle")


def test_sequence_padding_dtype_holds_every_element():
    """Reliability probe DA05 / DA06: the dtype is no longer the first element's."""
    np.testing.assert_array_equal(sequence_padding([[1, 2], [1.5, 2.5]]), [[1, 2], [1.5, 2.5]])
    assert sequence_padding([["a", "b"], ["ccc"]], value="").tolist() == [["a", "b"],
                                                                          ["ccc", ""]]
    assert sequence_padding([[], []]).shape == (2, 0)


@pytest.mark.parametrize("arguments,message", [
    (dict(inputs=[[1, 2, 3], [4]], length=-1), r"`length` must be None, a non-negative int "
                                                r"or 1 of them; received -1"),  # DA03
    (dict(inputs=[[1, 2, 3], [4]], length=2.0), r"received 2.0"),  # DA04
    (dict(inputs=[[1, 2], [[3, 4], [5]]]), r"below the 1 padded axes \(`seq_dims`\) must "
                                           r"all have one shape"),  # DA07
])
def test_sequence_padding_bad_input_names_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        sequence_padding(**arguments)


class Pairs(DataGenerator):
    def __iter__(self, random=False):
        batch = []
        for is_end, item in self.sample(random):
            batch.append([item] * (item % 3 + 1))
            if len(batch) == self.batch_size or is_end:
                yield sequence_padding(batch), np.array([len(b) for b in batch])
                batch = []


def test_data_generator_sample_and_last_partial_batch():
    generator = Pairs(list(range(1, 11)), batch_size=4)
    assert len(generator) == 3
    batches = list(generator)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(item for is_end, item in generator.sample(random=True)) == list(range(1, 11))
    flags = [is_end for is_end, _ in generator.sample()]
    assert flags == [False] * 9 + [True]
    streamed = Pairs(iter(range(1, 11)), batch_size=4, buffer_size=3)
    assert sorted(item for _, item in streamed.sample(random=True)) == list(range(1, 11))


def test_to_dataset_with_padded_batch_and_names():
    class Samples(DataGenerator):
        def __iter__(self, random=False):
            for _, item in self.sample(random):
                yield np.arange(1, item + 1), np.array(item)

    dataset = Samples([1, 3, 2], batch_size=3).to_dataset(
        types=("int64", "int64"), shapes=([None], []), names=("tokens", "length"),
        padded_batch=True,
    )
    batch = next(iter(dataset))  # shuffled (forfit samples randomly)
    rows = sorted(map(tuple, batch["tokens"].numpy()))
    assert rows == [(1, 0, 0), (1, 2, 0), (1, 2, 3)]
    assert sorted(batch["length"].numpy().tolist()) == [1, 2, 3]


def test_to_dataset_batches_single_samples_as_bert4keras():
    class Samples(DataGenerator):
        def __iter__(self, random=False):
            for _, item in self.sample(random):
                yield np.array([item, item]), np.array(item)

    x, y = next(iter(Samples([1, 2, 3, 4], batch_size=2).to_dataset(
        types=("int64", "int64"), shapes=([2], []))))
    assert x.shape == (2, 2) and y.shape == (2,)


@pytest.mark.backend_neutral
def test_forfit_feeds_fit_lists_and_batches_of_changing_length():
    """A bert4keras generator (lists, per-batch padding) trains with Keras 3's fit: the two
    first batches have the same length, the third another."""
    class Batches(DataGenerator):
        def __iter__(self, random=False):
            for length in (3, 3, 5):
                ids = np.ones((2, length), "int32")
                yield [ids, ids], np.zeros((2, length, 1), "float32")

    ids = keras.Input((None,), dtype="int32")
    segments = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(4, 1)(keras.layers.Add()([ids, segments]))
    model = keras.Model([ids, segments], embedded)
    model.compile(optimizer="sgd", loss="mse")
    generator = Batches(list(range(6)), batch_size=2)
    history = model.fit(generator.forfit(), steps_per_epoch=3, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    with pytest.raises(ValueError, match=r"Pairs yielded no batch from its data \(0 items\)"):
        next(iter(Pairs([], batch_size=2).forfit()))


class RandomMasks(SeededBatches):
    def make_batch(self, items, rng):
        ids = np.array(items, "float32")[:, None]
        return np.concatenate([ids, rng.random((len(items), 1))], axis=1), np.zeros(len(items))


class Recorder(keras.Model):
    """Records every batch fit delivers (eagerly)."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.seen = []

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        self.seen.append(np.asarray(data[0]))
        return {"batches": len(self.seen)}


@pytest.mark.slow
def test_four_processes_deliver_each_sample_once_per_epoch_reproducibly():
    source = RandomMasks(list(range(50)), batch_size=8, seed=3, workers=4,
                         use_multiprocessing=True)
    model = Recorder()
    model.compile(run_eagerly=True)
    model.fit(source, epochs=2, verbose=0)
    assert len(model.seen) == 2 * len(source) == 14
    epochs = [np.concatenate(model.seen[:7]), np.concatenate(model.seen[7:])]
    for batches in epochs:
        assert sorted(batches[:, 0].astype(int).tolist()) == list(range(50))
    assert not np.array_equal(epochs[0][:, 0], epochs[1][:, 0])  # reshuffled
    # Random draws differ between batches and between epochs, never repeat across workers ...
    assert len(np.unique(np.concatenate(epochs)[:, 1])) == 100
    # ... and a batch is a function of (seed, epoch, index) only.
    again = RandomMasks(list(range(50)), batch_size=8, seed=3)
    again.epoch = 1
    delivered = {tuple(batch[:, 0].astype(int)): batch for batch in model.seen[7:]}
    for index in range(len(again)):
        x, _ = again[index]
        np.testing.assert_allclose(delivered[tuple(x[:, 0].astype(int))], x, rtol=1e-6)


class Failing(SeededBatches):
    def make_batch(self, items, rng):
        if 13 in items:
            raise ValueError("cannot build the batch holding item 13")
        return np.array(items, "float32")[:, None], np.zeros(len(items))


@pytest.mark.slow
def test_worker_error_fails_fit_quickly():
    source = Failing(list(range(40)), batch_size=4, workers=4, use_multiprocessing=True)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    start = time.time()
    # Keras re-raises it through tf.data, with the worker's traceback in the message.
    with pytest.raises(Exception, match="ValueError: cannot build the batch holding item 13"):
        model.fit(source, epochs=1, verbose=0)
    assert time.time() - start < 60


def square_plus_noise(x):
    return x * x, np.random.randint(1 << 30)


@pytest.mark.slow
@pytest.mark.parametrize("dummy", [False, True])
def test_parallel_apply_orders_seeds_and_raises(dummy):
    results = parallel_apply(square_plus_noise, range(40), workers=3, max_queue_size=5,
                             dummy=dummy)
    assert [r[0] for r in results] == [x * x for x in range(40)]
    if not dummy:
        assert len({r[1] for r in results}) > 35  # workers draw different random numbers
    collected = []
    parallel_apply(lambda x: -x, range(10), workers=2, max_queue_size=3, dummy=dummy,
                   callback=collected.append, ordered=False)
    assert sorted(collected) == sorted(-x for x in range(10))

    def explode(x):
        if x == 7:
            raise RuntimeError("worker failed on 7")
        return x

    with pytest.raises(RuntimeError, match="worker failed on 7"):
        parallel_apply(explode, range(20), workers=2, max_queue_size=4, dummy=dummy)


class Dying(SeededBatches):
    def make_batch(self, items, rng):
        if 13 in items:
            os._exit(1)  # as an out-of-memory kill
        return np.array(items, "float32")[:, None], np.zeros(len(items))


@pytest.mark.slow
def test_worker_death_fails_fit_quickly():
    """Reliability probe DA20: Keras's own process pool waited forever for the lost batch."""
    source = Dying(list(range(40)), batch_size=4, workers=2, use_multiprocessing=True)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    start = time.time()
    with pytest.raises(Exception, match="worker process died"):
        model.fit(source, epochs=1, verbose=0)
    assert time.time() - start < 60
