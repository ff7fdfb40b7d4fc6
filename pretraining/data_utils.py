"""Raw text -> TFRecord shards (the TensorFlow route) or ArrayRecord shards (the JAX route) for
pretraining, and the tf.data pipeline that reads TFRecords back.

Three modes (as bert4keras's `pretraining/data_utils.py`):
- `roberta`: masked LM with whole-word masking. 15% of the words are chosen; each token of a
  chosen word becomes [MASK] (80%), stays (10%) or becomes a random token (10%). Stored as
  `token_ids` (the original tokens) and `mask_ids` (replacement id + 1; 0 = not masked).
- `gpt`: causal LM; `token_ids` only.
- `unilm`: each packed sequence is split between two words at a random point:
  `[CLS] a [SEP] b [SEP]`, with `segment_ids` 0 for `[CLS] a [SEP]` and 1 for `b [SEP]`.

Input files hold one document per line; documents are split into sentences at 。！？!?；; and
sentences are packed greedily into sequences of at most `seq_len` tokens, all padded to
`seq_len` (fixed-length features: static shapes for XLA and TPU). Words come from an optional
segmenter (e.g. `jieba.lcut` for Chinese); without one, a word is a token with its `##`
continuations, so each Chinese character is its own word. Dynamic masking writes the corpus
`repeats` times with different masks. Every group of documents draws its randomness from
(seed, repeat, group), so the shards are the same for a given seed whatever the worker count.

    python pretraining/data_utils.py --mode roberta --vocab vocab.txt --seq-len 512 \
        --repeats 10 --workers 8 --output corpus/train corpus/*.txt [--format arrayrecord]
    python pretraining/data_utils.py --mode roberta --seq-len 512 \
        --convert 'corpus/train-*.tfrecord' --output corpus/train   # TFRecord -> ArrayRecord
"""
import argparse
import re

import array_records
import numpy as np
from manifest import check_shards as check_manifests
from manifest import manifest_entries, write_manifest
from objective import FEATURES, MODES, check_mode, training_example

try:
    import tensorflow as tf
except ImportError:  # ArrayRecord shards (the JAX route's) are written without TensorFlow
    tf = None

from bert4keras_ext.backend import check_positive_int
from bert4keras_ext.data import parallel_apply
from bert4keras_ext.tokenizers import Tokenizer

# End marks split anywhere; `.` only before whitespace (English sentences), so that 3.14 and
# URLs stay whole.
SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=\.)\s+")


def split_sentences(document):
    return [s.strip() for s in SENTENCE_END.split(document) if s.strip()]


def sentence_words(sentence, tokenizer, segmenter=None):
    """The sentence's words, each a list of token ids (the tokens masked together)."""
    if segmenter is not None:
        words = [tokenizer.tokenize(word)[1:-1] for word in segmenter(sentence)]
        return [tokenizer.tokens_to_ids(tokens) for tokens in words if tokens]
    words = []
    for token in tokenizer.tokenize(sentence)[1:-1]:
        if token.startswith("##") and words:
            words[-1].append(token)
        else:
            words.append([token])
    return [tokenizer.tokens_to_ids(tokens) for tokens in words]


def pack_words(sentences, capacity):
    """Greedily packs sentences (lists of words) into sequences of at most `capacity` tokens.

    A sentence that does not fit in the current sequence starts the next one; a sentence
    longer than `capacity` continues over several at word boundaries (a word longer than
    `capacity` is split). No token is dropped."""
    sequences, current, size = [], [], 0
    for sentence in sentences:
        if current and size + sum(len(word) for word in sentence) > capacity:
            sequences.append(current)
            current, size = [], 0
        for word in sentence:
            for start in range(0, len(word), capacity):
                piece = word[start:start + capacity]
                if size + len(piece) > capacity:
                    sequences.append(current)
                    current, size = [], 0
                current.append(piece)
                size += len(piece)
    if current:
        sequences.append(current)
    return sequences


class Masking:
    """Whole-word masking: `rate` of the words, each token 80% [MASK] / 10% kept / 10% random."""

    def __init__(self, mask_id, vocab_size, first_random_id=0, rate=0.15):
        self.mask_id, self.vocab_size = mask_id, vocab_size
        self.first_random_id, self.rate = first_random_id, rate

    def __call__(self, words, rng):
        """(token ids, mask ids) of the concatenated words; mask id = replacement id + 1."""
        token_ids, mask_ids = [], []
        for word in words:
            chosen = rng.random() < self.rate
            for token in word:
                token_ids.append(token)
                mask_ids.append(self._replacement(token, rng) + 1 if chosen else 0)
        return token_ids, mask_ids

    def _replacement(self, token, rng):
        draw = rng.random()
        if draw < 0.8:
            return self.mask_id
        if draw < 0.9:
            return token
        return int(rng.integers(self.first_random_id, self.vocab_size))


class InstanceBuilder:
    """Turns a group of documents into fixed-length feature dicts for one mode."""

    def __init__(self, tokenizer, mode, seq_len, segmenter=None, mask_rate=0.15):
        check_mode(mode)
        if seq_len < 8:
            raise ValueError(f"`seq_len` must be at least 8; received {seq_len}.")
        needed = ["[CLS]", "[SEP]"] + (["[MASK]"] if mode == "roberta" else [])
        missing = [token for token in needed if token not in tokenizer.token_dict]
        if missing:
            raise ValueError(f"The vocabulary lacks {missing}, which `mode` {mode!r} needs "
                             f"(they would be written as [UNK]).")
        self.tokenizer, self.mode, self.seq_len = tokenizer, mode, seq_len
        self.segmenter = segmenter
        self.cls, self.sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        # Random replacements avoid [PAD], [UNK], [CLS], [SEP], [MASK] (the first ids of BERT
        # vocabularies after [PAD] and the [unusedN] tokens are rarely real words either).
        specials = [tokenizer.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                      "[MASK]")]
        self.masking = Masking(tokenizer.token_to_id("[MASK]"), tokenizer.vocab_size,
                               first_random_id=max(specials) + 1, rate=mask_rate)

    def __call__(self, documents, rng):
        sentences = [sentence_words(s, self.tokenizer, self.segmenter)
                     for document in documents for s in split_sentences(document)]
        # [CLS] ... [SEP], plus the middle [SEP] of unilm.
        capacity = self.seq_len - (3 if self.mode == "unilm" else 2)
        sentences = [s for s in sentences if s]
        return [self._instance(words, rng) for words in pack_words(sentences, capacity)
                if self.mode != "unilm" or len(words) >= 2]

    def _instance(self, words, rng):
        pad = self.seq_len
        if self.mode == "roberta":
            token_ids, mask_ids = self.masking(words, rng)
            return {"token_ids": _padded([self.cls, *token_ids, self.sep], pad),
                    "mask_ids": _padded([0, *mask_ids, 0], pad)}
        if self.mode == "gpt":
            return {"token_ids": _padded([self.cls, *_flat(words), self.sep], pad)}
        split = int(rng.integers(1, len(words)))
        first = [self.cls, *_flat(words[:split]), self.sep]
        second = [*_flat(words[split:]), self.sep]
        return {"token_ids": _padded(first + second, pad),
                "segment_ids": _padded([0] * len(first) + [1] * len(second), pad)}


def _flat(words):
    return [token for word in words for token in word]


def _padded(ids, length):
    array = np.zeros(length, "int64")
    array[:len(ids)] = ids
    return array


def serialize(instance):
    feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=values))
               for name, values in instance.items()}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_documents(paths):
    """Non-empty lines of the text files, one document each."""
    documents = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as file:
                documents += [line.strip() for line in file if line.strip()]
        except UnicodeDecodeError as error:
            raise ValueError(f"{path} is not UTF-8 text ({error}); convert it first, e.g. "
                             f"`iconv -f latin1 -t utf-8`.") from None
    return documents


def build_records(documents, builder, output_prefix, repeats=1, seed=0, shards=1, workers=1,
                  group_size=10, progress=True, shard_format="tfrecord"):
    """Writes `shards` files `{output_prefix}-{i:05d}-of-{shards:05d}.tfrecord` (TFRecord, for
    the TensorFlow route) or `.arrayrecord` (`shard_format='arrayrecord'`, for the JAX route;
    no TensorFlow needed) and `{output_prefix}.manifest.json` (mode, sequence length, records
    and bytes per shard, which `check_shards` compares with the files before training).

    The corpus is written `repeats` times (a new mask each time), in groups of `group_size`
    documents, group k going to shard k % shards. Returns the paths and the instance count.
    """
    for name, value in (("repeats", repeats), ("shards", shards), ("workers", workers),
                        ("group_size", group_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
    groups = [documents[i:i + group_size] for i in range(0, len(documents), group_size)]
    tasks = [(repeat, index) for repeat in range(repeats) for index in range(len(groups))]

    def make(task):
        repeat, index = task
        rng = np.random.default_rng([seed, repeat, index])
        return [encode(instance) for instance in builder(groups[index], rng)]

    if shard_format == "tfrecord":
        encode, suffix, writer_class = serialize, ".tfrecord", tf.io.TFRecordWriter
    elif shard_format == "arrayrecord":
        suffix, writer_class = array_records.SUFFIX, array_records.ShardWriter

        def encode(instance):
            return array_records.encode(instance, builder.mode)
    else:
        raise ValueError(f"`shard_format` must be 'tfrecord' or 'arrayrecord'; received "
                         f"{shard_format!r}.")
    paths = [f"{output_prefix}-{i:05d}-of-{shards:05d}{suffix}" for i in range(shards)]
    writers = [writer_class(path) for path in paths]
    bar = _progress_bar(len(tasks), progress)
    counts = {"groups": 0, "sequences": 0}
    per_shard = [0] * shards

    def write(records):
        shard = counts["groups"] % shards
        for record in records:
            writers[shard].write(record)
        per_shard[shard] += len(records)
        counts["groups"] += 1
        counts["sequences"] += len(records)
        if bar is not None:
            bar.update(1)

    try:
        if workers == 1:
            for task in tasks:
                write(make(task))
        else:
            parallel_apply(make, tasks, workers, max_queue_size=4 * workers, callback=write,
                           random_seeds=False)
    finally:
        for writer in writers:
            writer.close()
        if bar is not None:
            bar.close()
    write_manifest(output_prefix, builder.mode, builder.seq_len, paths, per_shard)
    return paths, counts["sequences"]


def shard_record_counts(paths):
    """Records per shard: from the manifest, or counted by reading a shard that has none."""
    entries = manifest_entries(paths)
    return [entries[path]["records"] if path in entries
            else sum(1 for _ in tf.data.TFRecordDataset(path)) for path in paths]


def check_shards(paths, mode, seq_len):
    """`manifest.check_shards` for TFRecord shards; one without a manifest is checked by its
    first record."""
    check_manifests(paths, mode, seq_len, _first_record_entry)


def _first_record_entry(path):
    """What a shard's first record says: 1 record or 0, its mode and sequence length."""
    for record in tf.data.TFRecordDataset(path).take(1):
        features = tf.train.Example.FromString(record.numpy()).features.feature
        mode = next((m for m in MODES if set(FEATURES[m]) == set(features)), None)
        return {"records": 1, "mode": mode,
                "seq_len": len(features["token_ids"].int64_list.value)}
    return {"records": 0}


def find_damaged_shards(paths):
    """Shards whose records cannot be read to the end (a failed CRC check); reads them all."""
    damaged = []
    for path in paths:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.DataLossError as error:
            damaged.append(f"{path} ({error.message.splitlines()[0]})")
    return damaged


def _progress_bar(total, enabled):
    """A tqdm bar, or None when disabled or tqdm (optional) is missing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="group", desc="building records") if enabled else None


def parse_records(paths, mode, seq_len):
    """A dataset of feature dicts (int32, shape [seq_len]) from TFRecord files."""
    return _parsed(tf.data.TFRecordDataset(paths), mode, seq_len)


def _parsed(records, mode, seq_len):
    check_mode(mode)
    spec = {name: tf.io.FixedLenFeature([seq_len], tf.int64) for name in FEATURES[mode]}
    return records.map(
        lambda record: {k: tf.cast(v, tf.int32)
                        for k, v in tf.io.parse_single_example(record, spec).items()},
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def load_dataset(pattern, mode, seq_len, batch_size, seed=0, shuffle_block=10000, skip=0):
    """Repeated, shuffled batches of `training_example`s from the files matching `pattern`.

    Batches have a fixed size (the remainder is dropped) for static shapes. The order is a
    function of `seed` alone (`training_order`), so `skip` (sequences already trained on,
    when a run resumes) is reached by arithmetic on the shards' record counts: resuming reads
    at most one shard's records up to the position, however far the run had got. Raises if
    no file matches."""
    paths = sorted(tf.io.gfile.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"No TFRecord files match `data` pattern {pattern!r}.")
    records = training_order(paths, shard_record_counts(paths), seed, shuffle_block, skip)
    dataset = _parsed(records, mode, seq_len)
    dataset = dataset.map(lambda features: training_example(features, mode),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def training_order(paths, counts, seed, block, skip=0):
    """Raw records, endlessly, after the first `skip` sequences of this order: epoch `e` reads
    the shards in a permutation drawn from `(seed, e)` and shuffles each run of `block`
    consecutive records with a permutation drawn from `(seed, e, block index)`. A shuffle buffer would mix
    about as widely, but its state depends on everything read before; here every position is
    found from the record counts, without reading the records before it."""
    check_positive_int(block, "shuffle_block")
    if not isinstance(skip, int) or skip < 0:
        raise ValueError(f"`skip` must be an integer >= 0; received {skip!r}.")
    total = sum(counts)
    if not total:
        raise ValueError(f"The {len(paths)} shard(s) hold no records.")
    first_epoch, offset = divmod(skip, total)
    first_block, within = divmod(offset, block)
    paths, counts = tf.constant(paths), tf.constant(counts, tf.int64)

    def epoch_records(epoch, from_block):
        key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), epoch)
        order = tf.argsort(tf.random.stateless_uniform([len(counts)], key))
        ends = tf.cumsum(tf.gather(counts, order))
        skipped = tf.cast(from_block * block, tf.int64)
        # Whole shards before the first block are not opened; the rest of the way is read.
        first_shard = tf.searchsorted(ends, [skipped], side="right")[0]
        into_shard = skipped - tf.concat([[0], ends], axis=0)[first_shard]
        files = tf.gather(paths, order[first_shard:])
        blocks = tf.data.TFRecordDataset(files).skip(into_shard).batch(block)
        return blocks.enumerate(from_block).map(
            lambda index, records: tf.random.experimental.stateless_shuffle(
                records, tf.random.experimental.stateless_fold_in(key, index))).unbatch()

    first = epoch_records(tf.constant(first_epoch, tf.int64),
                          tf.constant(first_block, tf.int64)).skip(within)
    later = tf.data.Dataset.range(first_epoch + 1, 2**62).flat_map(
        lambda epoch: epoch_records(epoch, tf.constant(0, tf.int64)))
    return first.concatenate(later)


def convert_to_array_records(pattern, output_prefix, mode, seq_len):
    """Writes the records of the TFRecord shards matching `pattern` as ArrayRecord shards
    `{output_prefix}-{i:05d}-of-{n:05d}.arrayrecord` (one per TFRecord shard, records in the
    same order) with their manifest; returns the paths and the record count."""
    sources = sorted(tf.io.gfile.glob(pattern))
    if not sources:
        raise FileNotFoundError(f"No TFRecord files match {pattern!r}.")
    check_shards(sources, mode, seq_len)
    paths, counts = [], []
    for index, source in enumerate(sources):
        paths.append(f"{output_prefix}-{index:05d}-of-{len(sources):05d}{array_records.SUFFIX}")
        writer, count = array_records.ShardWriter(paths[-1]), 0
        try:
            for features in parse_records([source], mode, seq_len).as_numpy_iterator():
                writer.write(array_records.encode(features, mode))
                count += 1
        finally:
            writer.close()
        counts.append(count)
    write_manifest(output_prefix, mode, seq_len, paths, counts)
    return paths, sum(counts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="text files, one document per line")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--vocab", help="vocab.txt (needed to build from text)")
    parser.add_argument("--format", choices=("tfrecord", "arrayrecord"), default="tfrecord",
                        help="shards for the TensorFlow route (tfrecord) or the JAX route")
    parser.add_argument("--convert", metavar="GLOB",
                        help="instead of text: write these TFRecord shards as ArrayRecord")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10, help="copies with different masks")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--segmenter", choices=["none", "jieba"], default="none")
    parser.add_argument("--output", required=True, help="prefix of the shard files")
    args = parser.parse_args(argv)
    if args.convert:
        paths, count = convert_to_array_records(args.convert, args.output, args.mode,
                                                args.seq_len)
        print(f"wrote {count} sequences to {len(paths)} file(s): {paths[0]} ...")
        return
    if not args.inputs or not args.vocab:
        parser.error("building from text needs text files and --vocab")
    segmenter = None
    if args.segmenter == "jieba":
        try:
            import jieba
        except ImportError:
            parser.error("--segmenter jieba needs `pip install jieba`")
        segmenter = jieba.lcut
    builder = InstanceBuilder(Tokenizer(args.vocab), args.mode, args.seq_len, segmenter)
    paths, count = build_records(read_documents(args.inputs), builder, args.output,
                                 args.repeats, args.seed, args.shards, args.workers,
                                 shard_format=args.format)
    print(f"wrote {count} sequences to {len(paths)} file(s): {paths[0]} ...")


if __name__ == "__main__":
    main()
