"""Batches for training: padding, bert4keras's DataGenerator, a process-safe PyDataset source
and `parallel_apply` / `parallel_apply_generator`.

Source: bert4keras's `snippets.DataGenerator`, `parallel_apply` and `parallel_apply_generator`
(https://github.com/bojone/bert4keras), and the post "让Keras更酷一些！"
(https://kexue.fm/archives/6575) on process-safe generators."""
import collections
import collections.abc
import concurrent.futures
import concurrent.futures.process
import contextlib
import functools
import math
import multiprocessing
import numbers
import os
import reprlib
import signal
import threading
import time
import weakref

import keras
import numpy as np

from bert4keras_ext import arguments
from bert4keras_ext.backend import check_positive_int


def sequence_padding(inputs, length=None, value=0, seq_dims=1, mode="post"):
    """Pads (or truncates) ragged nested sequences into one NumPy array.

    `inputs` is a batch of sequences; the first `seq_dims` axes after the batch are padded to
    `length` (an int or one int per axis; default: the longest). `mode='post'` pads at the
    end, `'pre'` at the start; longer sequences keep their first `length` items in both modes,
    as in bert4keras. The array's dtype holds every element (ints and floats give floats,
    strings keep their longest length); elements must all have one shape. `length=True` is
    refused, not read as 1 (a bool is not a length).

    Example:
    ```python
    sequence_padding([[1, 2, 3], [4]])  # array([[1, 2, 3], [4, 0, 0]])
    ```
    """
    seq_dims = arguments.integer(seq_dims, "seq_dims", minimum=1)
    if mode not in ("post", "pre"):
        raise ValueError(f"`mode` must be 'post' or 'pre'; received {mode!r}.")
    if not _length_of(inputs, "inputs"):
        raise ValueError("`inputs` is empty.")
    longest = _longest(inputs, seq_dims, "inputs")
    lengths = longest if length is None else _lengths(length, seq_dims)
    # The innermost padded sequences, each as one array of its elements.
    rows = [_as_array(row, seq_dims) for row in _elements(inputs, seq_dims - 1) if len(row)]
    shapes = {row.shape[1:] for row in rows}
    if len(shapes) > 1:
        raise ValueError(f"The elements below the {seq_dims} padded axes (`seq_dims`) must "
                         f"all have one shape; received shapes {sorted(shapes)}.")
    shape = shapes.pop() if shapes else ()
    dtype = np.result_type(*rows) if rows else np.asarray(value).dtype
    output = np.full((len(inputs), *lengths, *shape), value, dtype=dtype)
    for row, item in enumerate(inputs):
        _place(output[row], item, lengths, mode)
    return output


def _lengths(length, seq_dims):
    """`length` (an int, or one per padded axis) as a list of `seq_dims` ints >= 0."""
    values = list(length) if isinstance(length, (list, tuple)) else [length] * seq_dims
    try:
        if len(values) != seq_dims:
            raise ValueError(f"received {len(values)} lengths")
        return [arguments.integer(n, "length", minimum=0) for n in values]
    except ValueError as error:  # also the checks' TypeError, which is a ValueError too
        raise type(error)(f"`length` must be None, a non-negative int or {seq_dims} of them; "
                          f"received {length!r}.") from None


def _length_of(sequence, path):
    try:
        return len(sequence)
    except TypeError:
        raise TypeError(f"`inputs` must hold sequences down to the `seq_dims` padded axes; "
                        f"{path} is {sequence!r}, which is not a sequence.") from None


def _longest(sequences, depth, path):
    """The longest length at each of the `depth` nesting levels below `sequences` (every
    item at those levels must be a sequence: an error names the first that is not)."""
    lengths = [0] * depth
    for index, item in enumerate(sequences):
        where = f"{path}[{index}]"
        lengths[0] = max(lengths[0], _length_of(item, where))
        if depth > 1:
            lengths[1:] = map(max, lengths[1:], _longest(item, depth - 1, where))
    return lengths


def _as_array(row, seq_dims):
    try:
        array = np.asarray(row)
    except ValueError as error:  # ragged below the padded axes
        raise ValueError(f"The elements below the {seq_dims} padded axes (`seq_dims`) must "
                         f"all have one shape: {error}") from None
    if array.dtype == object:
        raise ValueError(f"The elements below the {seq_dims} padded axes (`seq_dims`) must "
                         "all have one shape (and be numbers or strings).")
    return array


def _elements(sequences, depth):
    """The elements `depth` levels below the batch (below the padded axes)."""
    if depth == 0:
        return list(sequences)
    return [element for item in sequences for element in _elements(item, depth - 1)]


def _place(target, item, length, mode):
    """Writes `item` into `target` (already padded), cutting it to `length`."""
    size = length[0]
    kept = list(item)[:size]
    offset = 0 if mode == "post" else size - len(kept)
    for i, element in enumerate(kept):
        if len(length) > 1:
            _place(target[offset + i], element, length[1:], mode)
        else:
            target[offset + i] = element


class DataGenerator:
    """bert4keras's data generator: subclass it and write `__iter__(self, random=False)`.

    `sample(random)` yields `(is_end, item)` over `data`: a full permutation for sized data, a
    buffered shuffle (`buffer_size`, default 1000 batches) for plain iterables. `forfit()`
    cycles forever for `fit(steps_per_epoch=len(generator))`; `to_dataset` wraps it into a
    `tf.data.Dataset` for tf.distribute. A generator or iterator as `data` is read once: it
    serves one pass, and cycling it (`forfit`) fails at the second with an error saying so.

    Example:
    ```python
    class Batches(DataGenerator):
        def __iter__(self, random=False):
            tokens = []
            for is_end, (text, label) in self.sample(random):
                tokens.append(tokenizer.encode(text)[0])
                if len(tokens) == self.batch_size or is_end:
                    yield sequence_padding(tokens)
                    tokens = []
    ```
    """

    def __init__(self, data, batch_size=32, buffer_size=None):
        batch_size = check_positive_int(batch_size, "batch_size")
        if buffer_size is not None:
            buffer_size = check_positive_int(buffer_size, "buffer_size")
        self.data = data
        self.batch_size = batch_size
        self.buffer_size = buffer_size or batch_size * 1000
        if hasattr(data, "__len__"):
            self.steps = math.ceil(len(data) / batch_size)
        else:
            self.steps = None

    def __len__(self):
        if self.steps is None:
            raise TypeError("The data has no length, so neither has the generator.")
        return self.steps

    def sample(self, random=False):
        """Yields `(is_end, item)`; `is_end` is True for the last item."""
        if random and self.steps is not None:
            items = (self.data[i] for i in np.random.permutation(len(self.data)))
        elif random:
            items = self._buffered_shuffle()
        else:
            items = iter(self.data)
        previous = next(items, _NOTHING)
        if previous is _NOTHING:
            return
        for item in items:
            yield False, previous
            previous = item
        yield True, previous

    def _buffered_shuffle(self):
        buffer = []
        for item in self.data:
            buffer.append(item)
            if len(buffer) >= self.buffer_size:
                yield buffer.pop(np.random.randint(len(buffer)))
        while buffer:
            yield buffer.pop(np.random.randint(len(buffer)))

    def __iter__(self, random=False):
        raise NotImplementedError(f"{type(self).__name__} must define `__iter__(random)`.")

    def forfit(self, random=True):
        """Batches without end, for `fit(generator.forfit(), steps_per_epoch=len(generator))`.

        A batch is read as Keras reads one: `inputs`, or a tuple (a list too, as tf.keras read
        it) `(inputs, targets)` or `(inputs, targets, sample_weights)`, whose trailing `None`
        is dropped (`yield x, None` for a model trained by a Loss layer). Inside it, lists of
        arrays become tuples (Keras would stack a list into one tensor) and lists of plain
        numbers become arrays. A ragged list (forgotten padding), a `None` inside a batch, or
        a batch whose parts differ from the first batch's (say, targets missing from one)
        raises an error naming the batch and the part.

        On TensorFlow the result is a `tf.data.Dataset` whose spec comes from the first batch
        with every axis open, so per-batch padding works whatever the first batch's lengths;
        only a last axis of size 1 in the targets or sample weights stays fixed, for a label
        axis such as `(batch, 1)` (Keras's sparse losses squeeze it only when it is known).
        Later batches must keep each array's rank, that fixed axis, and a dtype that casts to
        the first batch's within its kind (floats after integers would be truncated): else an
        error names the batch and the array.
        """
        batches = self._batches_forever(random)
        if keras.backend.backend() != "tensorflow":
            return batches
        return _tf_dataset(batches, f"{type(self).__name__}.__iter__")

    def fortest(self, random=False):
        """The inputs of every batch (its first element), without end, as bert4keras's."""
        for batch in self._batches_forever(random):
            yield batch[0]

    def _passes(self, random):
        """What `__iter__(random)` yields, pass after pass, without end; a pass that yields
        nothing raises, since cycling it would loop forever."""
        earlier = 0  # items of the passes before this one
        while True:
            count = 0
            for item in self.__iter__(random):
                count += 1
                yield item
            if count:
                earlier += count
            elif not earlier:
                raise ValueError(f"{type(self).__name__} yielded no batch from its data "
                                 f"({_describe(self.data)}); there is nothing to train on.")
            elif isinstance(self.data, collections.abc.Iterator):
                raise ValueError(
                    f"{type(self).__name__}'s data ({_describe(self.data)}) was exhausted "
                    f"after the first pass ({earlier} batches): a generator or iterator can "
                    "be read only once, so it cannot be cycled for further passes (epochs). "
                    "Pass a list, or an object whose `__iter__` starts over, as `data`.")
            else:
                raise ValueError(f"{type(self).__name__} yielded no batch in a pass over its "
                                 f"data ({_describe(self.data)}), after {earlier} in earlier "
                                 "passes.")

    def _batches_forever(self, random=True):
        """Standardized batches of `_passes`, each checked to have the first one's parts."""
        owner = f"{type(self).__name__}.__iter__"
        first_paths = None
        for number, batch in enumerate(self._passes(random), 1):
            try:
                batch = _standardize_batch(batch)
            except ValueError as error:
                raise ValueError(f"Batch {number} of {owner}: {error}") from None
            paths = _leaf_names(batch)
            if first_paths is None:
                first_paths = paths
            elif paths != first_paths:
                raise ValueError(
                    f"Batch {number} of {owner} holds {', '.join(paths)}, but the first batch "
                    f"held {', '.join(first_paths)}: every batch must have the same parts "
                    "and nesting (a None target is dropped, so batches with and without "
                    "targets cannot be mixed).")
            yield batch

    def to_dataset(self, types, shapes, names=None, padded_batch=False):
        """A `tf.data.Dataset` of batches, as bert4keras's: `__iter__` yields single samples
        (described by `types` / `shapes`, nested like them), which the dataset groups into
        batches of `batch_size`, padded to the longest with `padded_batch=True`. With `names`,
        the structure is given names (`names=('x', 'y')` with `types=('int32', 'int32')`
        gives dicts).
        """
        import tensorflow as tf

        def samples():
            for item in self._passes(True):
                item = _lists_to_tuples(item)
                yield item if names is None else _named(names, item)

        dataset = tf.data.Dataset.from_generator(samples,
                                                 output_signature=_signature(types, shapes, names))
        if padded_batch:
            return dataset.padded_batch(self.batch_size)
        return dataset.batch(self.batch_size)


_NOTHING = object()


def _describe(data):
    return f"{len(data)} items" if hasattr(data, "__len__") else type(data).__name__


# The parts of a batch, as Keras reads a tuple.
_PARTS = ("inputs", "targets", "sample_weights")


def _standardize_batch(batch):
    """`batch` as Keras reads it: a tuple of its parts (without trailing Nones) or the
    inputs alone, with lists of arrays as tuples and lists of plain numbers as arrays."""
    if not isinstance(batch, (list, tuple)):
        return _standardize(batch, "inputs")
    parts = list(batch)
    while len(parts) > 1 and parts[-1] is None:  # `yield x, None`: inputs only
        parts.pop()
    if not 1 <= len(parts) <= len(_PARTS):
        raise ValueError(f"it has {len(parts)} parts, but a batch is `inputs`, `(inputs, "
                         "targets)` or `(inputs, targets, sample_weights)`; give several "
                         "inputs as one list: `yield [x1, x2], y`.")
    return tuple(_standardize(part, name) for name, part in zip(_PARTS, parts))


def _standardize(value, path):
    if value is None:
        raise ValueError(f"{path} is None (only the last parts of a batch may be None, as in "
                         "`yield x, None`).")
    if isinstance(value, dict):
        return {key: _standardize(item, f"{path}[{key!r}]") for key, item in value.items()}
    if not isinstance(value, (list, tuple)):
        return value
    if not _plain_data(value):  # a nesting of arrays, e.g. `[token_ids, segment_ids]`
        return tuple(_standardize(item, f"{path}[{index}]") for index, item in enumerate(value))
    try:
        return np.asarray(value)
    except ValueError:
        raise ValueError(f"{path} is a ragged list ({reprlib.repr(value)}): its rows differ in "
                         "length, so it is not an array; pad it, e.g. with sequence_padding."
                         ) from None


def _plain_data(values):
    """Whether a list holds numbers or strings only, at any depth (one array's data)."""
    return all(_plain_data(value) if isinstance(value, (list, tuple))
               else isinstance(value, (numbers.Number, str, bytes, np.generic))
               for value in values)


def _leaf_names(batch):
    """The names of a standardized batch's arrays, e.g. `['inputs[0]', 'targets']`."""
    names = []
    for path, _ in keras.tree.flatten_with_path(batch):
        if isinstance(batch, tuple):
            part, path = _PARTS[path[0]], path[1:]
        else:
            part = "inputs"
        names.append(part + "".join(f"[{step!r}]" for step in path))
    return names


def _tf_dataset(batches, owner):
    """A `tf.data.Dataset` of `batches` (standardized, each with the first one's parts) whose
    spec leaves every axis open but a size-1 last axis of the targets and sample weights,
    with each later batch checked against that spec (`tf.data` would truncate floats to a
    first batch's integer dtype, and its own errors name neither the batch nor the array)."""
    import tensorflow as tf

    first = next(batches)
    names = _leaf_names(first)
    leaves = [np.asarray(leaf) for leaf in keras.tree.flatten(first)]
    fixed = [not name.startswith("inputs") and leaf.ndim > 1 and leaf.shape[-1] == 1
             for name, leaf in zip(names, leaves)]
    specs = [tf.TensorSpec((None,) * (leaf.ndim - 1) + (1,) if keep else (None,) * leaf.ndim,
                           tf.string if leaf.dtype.kind in "US" else leaf.dtype)
             for leaf, keep in zip(leaves, fixed)]

    def checked():
        yield first
        for number, batch in enumerate(batches, 2):
            for name, expected, keep, leaf in zip(names, leaves, fixed,
                                                    keras.tree.flatten(batch)):
                _check_like_first(np.asarray(leaf), expected, keep, f"Batch {number} of "
                                  f"{owner}: {name}")
            yield batch

    return tf.data.Dataset.from_generator(
        checked, output_signature=keras.tree.pack_sequence_as(first, specs))


def _check_like_first(leaf, first, fixed, where):
    """Refuses an array that the first batch's spec would reject or silently change."""
    if leaf.ndim != first.ndim:
        raise ValueError(f"{where} has shape {leaf.shape}, of rank {leaf.ndim}, but the first "
                         f"batch's had shape {first.shape}, of rank {first.ndim}.")
    if fixed and leaf.shape[-1] != 1:
        raise ValueError(f"{where} has shape {leaf.shape}, but the first batch's had shape "
                         f"{first.shape}, whose last axis of size 1 stays fixed in targets and "
                         "sample weights (a label axis such as (batch, 1)); make the first "
                         "batch's as long, or use `to_dataset` with explicit shapes.")
    if not np.can_cast(leaf.dtype, first.dtype, "same_kind"):
        raise ValueError(f"{where} has dtype {leaf.dtype}, but the first batch's had "
                         f"{first.dtype}, which it cannot be cast to without loss; give every "
                         "batch one dtype (e.g. `np.asarray(..., 'float32')`).")


def _lists_to_tuples(structure):
    if isinstance(structure, (list, tuple)):
        return tuple(_lists_to_tuples(item) for item in structure)
    if isinstance(structure, dict):
        return {key: _lists_to_tuples(value) for key, value in structure.items()}
    return structure


def _signature(types, shapes, names):
    import tensorflow as tf

    if isinstance(types, (list, tuple)):
        specs = [_signature(t, s, None) for t, s in zip(types, shapes)]
        if names is not None:
            return {name: spec for name, spec in zip(names, specs)}
        return tuple(specs)
    return tf.TensorSpec(shape=shapes, dtype=types)


def _named(names, item):
    return {name: value for name, value in zip(names, item)}


class SeededBatches(keras.utils.PyDataset):
    """An index-based, process-safe batch source with reproducible randomness.

    Every batch of an epoch is produced exactly once, whichever worker builds it. The sample
    order is a permutation drawn from `(seed, epoch)`, so epochs differ but runs repeat; the
    random generator handed to `make_batch` is seeded from `(seed, epoch, index)`, so forked
    workers never share random streams and a batch is the same whoever builds it. An
    exception in a worker is raised in `fit`. Override `make_batch(items, rng)`.

    With `use_multiprocessing=True` the `workers` processes are this class's own (forked,
    keeping up to `max_queue_size` batches in flight), not Keras's pool: Keras's waits forever
    for a batch whose worker died (killed, out of memory), while here `fit` fails at once with
    an error saying so. The workers end with the training process, also when it is killed;
    Ctrl-C ends them at once, and the run exits without waiting for the batches in flight (a
    SIGINT sent to the training process alone reaches TensorFlow's `fit` only once the batch
    it waits for is built; Ctrl-C in a terminal reaches the workers too).

    Example:
    ```python
    class MaskedBatches(SeededBatches):
        def make_batch(self, items, rng):
            tokens = sequence_padding(items)
            masked = rng.random(tokens.shape) < 0.15
            return np.where(masked, MASK_ID, tokens), tokens

    model.fit(MaskedBatches(corpus, batch_size=32, workers=4, use_multiprocessing=True))
    ```
    """

    def __init__(self, data, batch_size, seed=0, shuffle=True, workers=1,
                 use_multiprocessing=False, max_queue_size=10):
        workers = check_positive_int(workers, "workers")
        max_queue_size = check_positive_int(max_queue_size, "max_queue_size")
        self.processes = workers if use_multiprocessing else 0
        super().__init__(workers=1 if self.processes else workers, use_multiprocessing=False,
                         max_queue_size=max_queue_size)
        batch_size = check_positive_int(batch_size, "batch_size")
        if not len(data):
            raise ValueError("`data` is empty.")
        self.data = data
        self.batch_size = batch_size
        # NumPy seeds random generators with non-negative integers only.
        self.seed = arguments.integer(seed, "seed", minimum=0)
        self.shuffle = shuffle
        self.epoch = 0
        self._epoch_started = False
        self._pool = None
        self._pool_epoch, self._pending, self._submitted, self._cursor = None, {}, set(), 0

    def __len__(self):
        return math.ceil(len(self.data) / self.batch_size)

    def indices(self, index, epoch=None):
        """Sample indices of batch `index` in `epoch` (default: the current one)."""
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range [0, {len(self)}).")
        order = np.arange(len(self.data))
        if self.shuffle:
            epoch = self.epoch if epoch is None else epoch
            order = np.random.default_rng([self.seed, epoch]).permutation(order)
        return order[index * self.batch_size: (index + 1) * self.batch_size]

    def __getitem__(self, index):
        if self.processes:
            return self._from_workers(index)
        return self.build(index, self.epoch)

    def build(self, index, epoch):
        """Batch `index` of `epoch`, built in this process."""
        items = [self.data[i] for i in self.indices(index, epoch)]
        return self.make_batch(items, np.random.default_rng([self.seed, epoch, index]))

    def _from_workers(self, index):
        if self._pool is None:
            self._pool = _WorkerProcesses(self.processes, _set_worker_batches, (self,))
        if self._pool_epoch != self.epoch:
            for future in self._pending.values():
                future.cancel()
            self._pool_epoch, self._pending, self._submitted, self._cursor = (
                self.epoch, {}, set(), 0)

        def submit(batch):
            self._submitted.add(batch)
            self._pending[batch] = self._pool.submit(_build_in_worker, batch, self.epoch)

        try:
            if index not in self._pending:
                submit(index)
            # Read ahead in index order (Keras's order unless `fit` shuffles batches).
            while len(self._pending) <= self.max_queue_size and self._cursor < len(self):
                if self._cursor not in self._submitted:
                    submit(self._cursor)
                self._cursor += 1
            return self._pending.pop(index).result()
        except concurrent.futures.process.BrokenProcessPool as error:
            self._pool.close()
            self._pool = None
            raise RuntimeError(
                f"A {type(self).__name__} worker process died (killed, e.g. out of memory) "
                f"while batch {index} of epoch {self.epoch} was being built.") from error

    def make_batch(self, items, rng):
        """Builds the batch from its items; `rng` is this batch's own random generator."""
        return sequence_padding(items)

    def on_epoch_begin(self):
        self._epoch_started = True

    def on_epoch_end(self):
        # Keras also calls this once before the first epoch; count finished epochs only. The
        # count changes here, not in on_epoch_begin, because Keras forks the next epoch's
        # workers before calling on_epoch_begin.
        if self._epoch_started:
            self.epoch += 1
            self._epoch_started = False


# SeededBatches workers hold the (forked) batch source here.
_worker_batches = None


def _set_worker_batches(batches):
    global _worker_batches
    _worker_batches = batches


def _build_in_worker(index, epoch):
    return _worker_batches.build(index, epoch)


# How often a worker process checks that its parent is still alive, in seconds.
_PARENT_CHECK_INTERVAL = 0.2


class _WorkerProcesses:
    """Forked worker processes (a `ProcessPoolExecutor`) that do not outlive their owner.

    - A watchdog thread in each worker exits it as soon as its parent process is gone (killed
      by SIGKILL or the out-of-memory killer: nothing else would end the worker, which waits
      for work on a pipe whose writing end it holds too). It polls `os.getppid()` rather than
      using Linux's `prctl(PR_SET_PDEATHSIG)`, which fires when the *thread* that forked the
      worker ends: pools fork from whichever thread submits first (for SeededBatches, a Keras
      or `tf.data` thread), and such a thread may end while the process goes on.
    - SIGINT ends a worker at once and quietly (the system's default action, not Python's
      KeyboardInterrupt), so Ctrl-C in a terminal, which reaches the whole process group,
      stops the running items too: TensorFlow, blocked in `fit` on a batch being built, acts
      on the parent's own SIGINT only once that batch is done. A SIGINT to the parent alone
      interrupts it, and its pools are closed (below).
    - `close()` cancels the queued items and kills the workers, running items included, where
      `ProcessPoolExecutor.shutdown` would wait for every running and already queued item.
      Pools still open when the interpreter exits (after an uncaught KeyboardInterrupt, say)
      are closed before `concurrent.futures` would wait for them.
    """

    def __init__(self, workers, initializer, initargs=()):
        self._executor = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("fork"),
            initializer=_start_worker_process, initargs=(os.getpid(), initializer, initargs))
        _open_pools.add(self)

    def submit(self, function, *args):
        if self._executor is None:
            raise RuntimeError("The worker processes were closed (the interpreter may be "
                               "exiting), so they take no more work.")
        return self._executor.submit(function, *args)

    def close(self):
        executor, self._executor = self._executor, None
        if executor is None:
            return
        _open_pools.discard(self)
        # Only Python 3.14 has a public way (`kill_workers`) to reach the processes.
        for process in list(executor._processes.values()):
            process.kill()
        # The executor sees its workers gone, fails what was pending and stops its thread.
        executor.shutdown(wait=True, cancel_futures=True)


_open_pools = weakref.WeakSet()


def _close_open_pools():
    for pool in list(_open_pools):
        pool.close()


# threading runs these exit callbacks last registered first, so this one runs before the one
# that `concurrent.futures.process` registered on import, which waits for pending items.
threading._register_atexit(_close_open_pools)
# A forked child (a worker above all) has copies of its parent's pools, not the pools.
os.register_at_fork(after_in_child=_open_pools.clear)


def _start_worker_process(parent, initializer, initargs):
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    threading.Thread(target=_exit_without_parent, args=(parent,), daemon=True,
                     name="exit-without-parent").start()
    initializer(*initargs)


def _exit_without_parent(parent):
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_INTERVAL)
    os._exit(1)


# parallel_apply: the function reaches forked workers through this global, so closures work.
_worker_function = None


def _start_worker(function, seeds):
    global _worker_function
    _worker_function = function
    seed = seeds.get() if seeds is not None else None
    if seed is not None:
        np.random.seed(seed)


def _run_in_worker(item):
    return _worker_function(item)


def parallel_apply_generator(func, iterable, workers, max_queue_size, dummy=False,
                             random_seeds=True, ordered=False):
    """Yields `(index, func(item))` for every item of `iterable`, computed by `workers`
    processes (threads if `dummy`), as bert4keras's.

    Results come as they are done, so not necessarily in input order; `ordered=True` yields
    them in input order. At most `max_queue_size` items are in flight, and items are read from
    `iterable` only as results are taken, so it may be endless. `random_seeds`: True gives each
    process worker its own NumPy seed from fresh entropy, a list gives explicit seeds, False
    leaves them alone. An exception in `func` (or a crashed worker) is raised here, never a
    hang. Processes are forked, so `func` may be a closure; items and results must be
    picklable.

    Worker processes end with their parent, also when it is killed (SIGKILL, out of memory).
    When the generator stops early (closed, Ctrl-C, an error) the queued items are cancelled
    and the worker processes killed, running items included; threads (`dummy=True`) cannot be
    stopped, so their running items finish first.

    Example:
    ```python
    for index, tokens in parallel_apply_generator(tokenizer.encode, texts, 4, 100):
        ...
    ```
    """
    workers = arguments.integer(workers, "workers", minimum=1)
    max_queue_size = arguments.integer(max_queue_size, "max_queue_size", minimum=1)
    if dummy:
        executor = concurrent.futures.ThreadPoolExecutor(workers)
        submit, close = executor.submit, functools.partial(executor.shutdown,
                                                            cancel_futures=True)
        call = func
    else:
        seeds = _worker_seeds(random_seeds, workers)
        pool = _WorkerProcesses(workers, _start_worker, (func, seeds))
        submit, close, call = pool.submit, pool.close, _run_in_worker

    pending = collections.deque()  # (index, future), in input order
    try:
        for index, item in enumerate(iterable):
            pending.append((index, submit(call, item)))
            while len(pending) >= max_queue_size:
                yield from _take_done(pending, ordered)
        while pending:
            yield from _take_done(pending, ordered)
    finally:
        for _, future in pending:
            future.cancel()
        close()


def _worker_seeds(random_seeds, workers):
    """A queue of one NumPy seed per worker process (None: leave their seeds alone)."""
    if random_seeds is False:
        return None
    values = (list(random_seeds) if random_seeds is not True
              else list(np.random.SeedSequence().generate_state(workers)))
    if len(values) < workers:
        raise ValueError(f"`random_seeds` needs {workers} seeds; received {len(values)}.")
    seeds = multiprocessing.get_context("fork").Queue()
    for value in values[:workers]:
        seeds.put(arguments.integer(value, "random_seeds", minimum=0))
    return seeds


def parallel_apply(func, iterable, workers, max_queue_size, callback=None, dummy=False,
                   random_seeds=True, ordered=True, unordered=None):
    """Applies `func` to every item with `workers` processes (threads if `dummy`).

    `parallel_apply_generator` underneath, whose arguments it shares (and whose handling of
    Ctrl-C, errors and a killed parent). Returns the list of results (in input order unless
    `ordered=False`), or passes each result to `callback` and returns None. `unordered` is
    bert4keras's name for `not ordered` and wins when given.
    """
    if unordered is not None:
        ordered = not unordered
    results = [] if callback is None else None
    emit = results.append if callback is None else callback
    with contextlib.closing(parallel_apply_generator(func, iterable, workers, max_queue_size,
                                                     dummy, random_seeds, ordered)) as outputs:
        for _, result in outputs:
            emit(result)
    return results


def _take_done(pending, ordered):
    """Yields `(index, result)` for the first pending item (`ordered`) or for every one done,
    waiting for at least one."""
    if ordered:
        index, future = pending.popleft()
        yield index, future.result()
        return
    concurrent.futures.wait([future for _, future in pending],
                            return_when=concurrent.futures.FIRST_COMPLETED)
    for entry in [entry for entry in pending if entry[1].done()]:
        pending.remove(entry)
        yield entry[0], entry[1].result()
