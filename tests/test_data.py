"""Data: padding, DataGenerator, the process-safe PyDataset source and parallel_apply, with
worker processes that end with their parent (SIGKILL, Ctrl-C) tested on real processes."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

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


@pytest.mark.backend_neutral
@pytest.mark.parametrize("arguments,error,message", [
    (dict(seq_dims=0), ValueError, r"`seq_dims` must be a positive integer; received 0"),  # S08
    (dict(seq_dims=1.0), TypeError, r"`seq_dims` must be a positive integer; received 1.0"),
    (dict(inputs=[[1, 2], None]), TypeError, r"inputs\[1\] is None, which is not a sequence"),
    (dict(inputs=[[[1], 5]], seq_dims=2), TypeError, r"inputs\[0\]\[1\] is 5, which is not"),
    (dict(inputs=None), TypeError, r"`inputs` must hold sequences .* inputs is None"),
    # A bool is not a length (S11, debatable: refused rather than read as 1).
    (dict(length=True), TypeError, r"`length` must be None, a non-negative int or 1 of them; "
                                   r"received True"),
    (dict(length=[2, 2]), ValueError, r"1 of them; received \[2, 2\]"),
])
def test_sequence_padding_names_a_bad_argument_or_element(arguments, error, message):
    """Reliability probe 2, S08, S10, S11: errors name `seq_dims`, the element that is not a
    sequence (by its position) and `length`."""
    with pytest.raises(error, match=message):
        sequence_padding(**{"inputs": [[1, 2], [3]], **arguments})


@pytest.mark.backend_neutral
def test_sequence_padding_takes_numpy_integers():
    padded = sequence_padding([[1, 2], [3]], length=np.int64(3), seq_dims=np.int32(1))
    np.testing.assert_array_equal(padded, [[1, 2, 0], [3, 0, 0]])


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


class Listed(DataGenerator):
    """Yields the batches it is given, as they are."""

    def __init__(self, batches):
        super().__init__(list(range(2 * len(batches))), batch_size=2)
        self.batches = batches

    def __iter__(self, random=False):
        yield from self.batches


def sequence_classifier(learning_rate=0.0):
    ids = keras.Input((None,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 4)(ids))
    model = keras.Model(ids, keras.layers.Dense(2, activation="softmax")(pooled))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.backend_neutral
def test_forfit_trains_from_a_first_batch_of_length_1_with_plain_list_labels():
    """Reliability probe 2, F02 (a first batch padded to length 1 fixed that axis on
    TensorFlow) and F03 (a label given as a plain list became a tuple of scalars): every batch
    is fed as it is, so the loss `fit` reports (weights frozen) is the mean of the losses the
    model gives each batch."""
    batches = [(np.array([[3], [4]]), [0, 1]), (np.array([[3, 4, 5], [6, 0, 0]]), [1, 1]),
               (np.array([[1, 2, 3, 4, 5], [2, 2, 0, 0, 0]]), [0, 0])]
    model = sequence_classifier()
    history = model.fit(Listed(batches).forfit(), steps_per_epoch=3, epochs=1, verbose=0)
    expected = np.mean([keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(
        np.array(y), model(x))).mean() for x, y in batches])
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def one_shot_batches():
    class OneShot(DataGenerator):
        def __iter__(self, random=False):
            for _, item in self.sample(random):
                yield np.array([[item + 1]]), np.array([[0]])

    return OneShot((i for i in range(2)), batch_size=1)


@pytest.mark.backend_neutral
@pytest.mark.parametrize("generator,message", [
    # F04: forgotten padding.
    (Listed([([[3, 4, 5], [6]], np.zeros(2))]), r"Batch 1 of Listed.__iter__: inputs is a "
                                                r"ragged list \(\[\[3, 4, 5\], \[6\]\]\).*"
                                                r"pad it, e.g. with sequence_padding"),
    # F07: labels in the first batch, None in the second.
    (Listed([(np.ones((2, 3)), np.zeros(2)), (np.ones((2, 3)), None)]),
     r"Batch 2 of Listed.__iter__ holds inputs, but the first batch held inputs, targets"),
    (Listed([([np.ones((2, 3)), None], np.zeros(2))]),
     r"Batch 1 of Listed.__iter__: inputs\[1\] is None"),
    (Listed([(np.ones(2), np.ones(2), np.ones(2), np.ones(2))]),
     r"it has 4 parts, but a batch is `inputs`, `\(inputs, targets\)`"),
    # F05: a generator serves one pass.
    (one_shot_batches(), r"OneShot's data \(generator\) was exhausted after the first pass "
                         r"\(2 batches\): a generator or iterator can be read only once"),
])
def test_forfit_names_the_batch_and_part_that_cannot_be_fed(generator, message):
    """Reliability probe 2, F04, F05, F07: TensorFlow or Keras structure errors before. On
    TensorFlow an error in a later batch comes wrapped in tf.data's error, with this text."""
    with pytest.raises(Exception, match=message):
        batches = iter(generator.forfit())
        for _ in range(4):
            next(batches)


def test_forfit_dataset_opens_every_axis_but_a_label_axis_and_checks_later_batches():
    """On TensorFlow, `tf.data` would truncate floats to a first batch's integer dtype without
    a word; the spec keeps a target's last axis of size 1 (sparse losses need it) only."""
    first = ({"ids": np.ones((2, 1), "int32")}, np.zeros((2, 1), "int64"), np.ones((2, 1)))
    dataset = Listed([first]).forfit()
    assert [spec.shape.as_list() for spec in keras.tree.flatten(dataset.element_spec)] == [
        [None, None], [None, 1], [None, 1]]
    for later, message in [
            ((first[0], np.full((2, 1), 0.5), first[2]), r"Batch 2 of Listed.__iter__: targets "
                                                          r"has dtype float64, but the first "
                                                          r"batch's had int64"),
            ((first[0], np.zeros((2, 2), "int64"), first[2]), r"targets has shape \(2, 2\), but "
                                                              r"the first batch's had shape "
                                                              r"\(2, 1\), whose last axis"),
            (({"ids": np.ones(2, "int32")}, *first[1:]), r"inputs\['ids'\] has shape \(2,\), of "
                                                          r"rank 1, but")]:
        batches = iter(Listed([first, later]).forfit())
        next(batches)
        with pytest.raises(Exception, match=message):
            next(batches)
    # Narrower integers, and integers after floats, cast safely.
    later = (first[0], np.zeros((2, 1), "int8"), np.ones((2, 1), "int32"))
    _, (_, targets, weights) = Listed([first, later]).forfit().take(2)
    assert (targets.dtype, weights.dtype) == ("int64", "float64")


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

    def interrupt(x):
        if x == 3:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):  # reliability probe 2, P03
        parallel_apply(interrupt, range(20), workers=2, max_queue_size=4, dummy=dummy)


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


# Four workers busy with 6-s items: two SeededBatches workers, forked by a thread that has
# ended by then, and two parallel_apply workers, whose results the main thread waits for.
BUSY_WORKERS = """
import os, threading, time
from bert4keras_ext.data import SeededBatches, parallel_apply

def slow(item):
    os.write(1, f"started {os.getpid()}\\n".encode())  # one write: lines never interleave
    time.sleep(6)
    return item

class SlowBatches(SeededBatches):
    def make_batch(self, items, rng):
        if items[0]:
            slow(items)
        return items

batches = SlowBatches(list(range(8)), batch_size=1, shuffle=False, workers=2,
                      use_multiprocessing=True, max_queue_size=4)
reader = threading.Thread(target=batches.__getitem__, args=(0,))
reader.start()
reader.join()
parallel_apply(slow, range(8), workers=2, max_queue_size=4)
"""


def _alive(pid):
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads process states from /proc")
@pytest.mark.parametrize("stop", ["SIGKILL", "Ctrl-C", "SIGINT to the parent"])
def test_worker_processes_stop_with_their_parent(stop):
    """Reliability probe 2, P06 and P07 (workers of parallel_apply and SeededBatches outlived a
    SIGKILLed parent), P05 and P04 (Ctrl-C, or a SIGINT to the parent alone, waited for the
    running and queued items): the workers are gone at once, and no queued item starts."""
    # `python -c` imports bert4keras_ext from its working directory: this checkout's.
    parent = subprocess.Popen([sys.executable, "-c", BUSY_WORKERS], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True,
                              cwd=Path(__file__).parents[1],
                              env=dict(os.environ, KERAS_BACKEND="numpy"))
    lines, errors = [], []
    for stream, sink in ((parent.stdout, lines), (parent.stderr, errors)):
        threading.Thread(target=lambda s=stream, k=sink: k.extend(s), daemon=True).start()

    def workers():
        return {int(line.split()[1]) for line in list(lines)}

    try:
        assert _wait_for(lambda: len(workers()) == 4, 60), errors
        busy = workers()
        assert all(map(_alive, busy))  # SeededBatches' outlived the thread that forked them
        started = len(lines)
        if stop == "SIGKILL":
            parent.kill()
        elif stop == "Ctrl-C":
            os.killpg(parent.pid, signal.SIGINT)  # a terminal signals the whole group
        else:
            parent.send_signal(signal.SIGINT)
        assert _wait_for(lambda: not any(map(_alive, busy)), 3), [
            pid for pid in busy if _alive(pid)]
        assert parent.wait(3) == -(signal.SIGKILL if stop == "SIGKILL" else signal.SIGINT)
        assert len(lines) == started  # the queued items were cancelled
        if stop != "SIGKILL":
            assert "KeyboardInterrupt" in "".join(errors)
    finally:
        for pid in workers():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
