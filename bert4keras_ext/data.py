"""Batches for training: padding, bert4keras's DataGenerator, a process-safe PyDataset source
and `parallel_apply` / `parallel_apply_generator`.

Source: bert4keras's `snippets.DataGenerator`, `parallel_apply` and `parallel_apply_generator`
(https://github.com/bojone/bert4keras), and the post "让Keras更酷一些！"
(https://kexue.fm/archives/6575) on process-safe generators."""
import collections
import concurrent.futures
import itertools
import math
import multiprocessing

import keras
import numpy as np

from bert4keras_ext.backend import check_positive_int


def sequence_padding(inputs, length=None, value=0, seq_dims=1, mode="post"):
    """Pads (or truncates) ragged nested sequences into one NumPy array.

    `inputs` is a batch of sequences; the first `seq_dims` axes after the batch are padded to
    `length` (an int or one int per axis; default: the longest). `mode='post'` pads at the
    end, `'pre'` at the start; longer sequences keep their first `length` items in both modes,
    as in bert4keras. The array's dtype holds every element (ints and floats give floats,
    strings keep their longest length); elements must all have one shape.

    Example:
    ```python
    sequence_padding([[1, 2, 3], [4]])  # array([[1, 2, 3], [4, 0, 0]])
    ```
    """
    if mode not in ("post", "pre"):
        raise ValueError(f"`mode` must be 'post' or 'pre'; received {mode!r}.")
    if not len(inputs):
        raise ValueError("`inputs` is empty.")
    longest = _longest(inputs, seq_dims)
    lengths = [length] * seq_dims if isinstance(length, (int, np.integer)) else length
    if lengths is None:
        lengths = longest
    if (not isinstance(lengths, (list, tuple)) or len(lengths) != seq_dims or not all(
            isinstance(n, (int, np.integer)) and n >= 0 for n in lengths)):
        raise ValueError(f"`length` must be None, a non-negative int or {seq_dims} of them; "
                         f"received {length!r}.")
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


def _longest(sequences, depth):
    """The longest length at each of the `depth` nesting levels below the batch."""
    lengths = [max(len(x) for x in sequences)]
    if depth > 1:
        inner = [y for x in sequences for y in x]
        lengths += _longest(inner, depth - 1) if inner else [0] * (depth - 1)
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
    `tf.data.Dataset` for tf.distribute.

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
        check_positive_int(batch_size, "batch_size")
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

        Two Keras 3 traps are absorbed: lists in a batch become tuples (Keras reads a list as
        a tensor to stack; a `None` target is dropped), and on TensorFlow the result is a
        `tf.data.Dataset` whose spec leaves every axis open but those of size 1 in the first
        batch, such as a label axis (Keras would fix each axis that has the same size in its
        first two batches, so a later batch padded to another length would fail).
        """
        batches = self._batches_forever(random)
        if keras.backend.backend() != "tensorflow":
            return batches
        import tensorflow as tf

        first = next(batches)
        signature = keras.tree.map_structure(
            lambda x: tf.TensorSpec(_open_shape(np.shape(x)), np.asarray(x).dtype), first)
        return tf.data.Dataset.from_generator(lambda: itertools.chain([first], batches),
                                              output_signature=signature)

    def fortest(self, random=False):
        """The inputs of every batch (its first element), without end, as bert4keras's."""
        for batch in self._batches_forever(random):
            yield batch[0]

    def _batches_forever(self, random=True):
        while True:
            empty = True
            for batch in self.__iter__(random):
                empty = False
                batch = _lists_to_tuples(batch)
                if isinstance(batch, tuple) and len(batch) == 2 and batch[1] is None:
                    batch = batch[:1]  # `yield x, None` (a Loss layer model): inputs only
                yield batch
            if empty:  # cycling an empty pass would loop forever
                raise ValueError(f"{type(self).__name__} yielded no batch from its data "
                                 f"({_describe(self.data)}); there is nothing to train on.")

    def to_dataset(self, types, shapes, names=None, padded_batch=False):
        """A `tf.data.Dataset` of batches, as bert4keras's: `__iter__` yields single samples
        (described by `types` / `shapes`, nested like them), which the dataset groups into
        batches of `batch_size`, padded to the longest with `padded_batch=True`. With `names`,
        the structure is given names (`names=('x', 'y')` with `types=('int32', 'int32')`
        gives dicts).
        """
        import tensorflow as tf

        signature = _signature(types, shapes, names)
        if names is None:
            generator = self._batches_forever
        else:
            generator = lambda: (_named(names, item)  # noqa: E731
                                 for item in self._batches_forever())
        dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)
        if padded_batch:
            return dataset.padded_batch(self.batch_size)
        return dataset.batch(self.batch_size)


_NOTHING = object()


def _open_shape(shape):
    return tuple(1 if size == 1 and axis else None for axis, size in enumerate(shape))


def _describe(data):
    return f"{len(data)} items" if hasattr(data, "__len__") else type(data).__name__


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

    With `use_multiprocessing=True` the `workers` processes are this class's own (a
    `ProcessPoolExecutor` keeping up to `max_queue_size` batches in flight), not Keras's pool:
    Keras's waits forever for a batch whose worker died (killed, out of memory), while here
    `fit` fails at once with an error saying so.

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
        check_positive_int(workers, "workers")
        self.processes = workers if use_multiprocessing else 0
        super().__init__(workers=1 if self.processes else workers, use_multiprocessing=False,
                         max_queue_size=max_queue_size)
        check_positive_int(batch_size, "batch_size")
        if not len(data):
            raise ValueError("`data` is empty.")
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
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
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("fork"),
                initializer=_set_worker_batches, initargs=(self,))
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
    hang; closing the generator early stops the workers. Processes are forked, so `func` may
    be a closure; items and results must be picklable.

    Example:
    ```python
    for index, tokens in parallel_apply_generator(tokenizer.encode, texts, 4, 100):
        ...
    ```
    """
    if workers < 1 or max_queue_size < 1:
        raise ValueError(f"`workers` and `max_queue_size` must be >= 1; received {workers} "
                         f"and {max_queue_size}.")
    if dummy:
        executor = concurrent.futures.ThreadPoolExecutor(workers)
        call = func
    else:
        context = multiprocessing.get_context("fork")
        seeds = None
        if random_seeds is not False:
            seeds = context.Queue()
            values = (list(random_seeds) if random_seeds is not True
                      else list(np.random.SeedSequence().generate_state(workers)))
            if len(values) < workers:
                raise ValueError(f"`random_seeds` needs {workers} seeds; received {len(values)}.")
            for value in values[:workers]:
                seeds.put(int(value))
        executor = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(func, seeds)
        )
        call = _run_in_worker

    pending = collections.deque()  # (index, future), in input order
    try:
        for index, item in enumerate(iterable):
            pending.append((index, executor.submit(call, item)))
            while len(pending) >= max_queue_size:
                yield from _take_done(pending, ordered)
        while pending:
            yield from _take_done(pending, ordered)
    finally:
        for _, future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


def parallel_apply(func, iterable, workers, max_queue_size, callback=None, dummy=False,
                   random_seeds=True, ordered=True, unordered=None):
    """Applies `func` to every item with `workers` processes (threads if `dummy`).

    `parallel_apply_generator` underneath, whose arguments it shares. Returns the list of
    results (in input order unless `ordered=False`), or passes each result to `callback` and
    returns None. `unordered` is bert4keras's name for `not ordered` and wins when given.
    """
    if unordered is not None:
        ordered = not unordered
    results = [] if callback is None else None
    emit = results.append if callback is None else callback
    for _, result in parallel_apply_generator(func, iterable, workers, max_queue_size, dummy,
                                              random_seeds, ordered):
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
