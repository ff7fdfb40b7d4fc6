"""Pretraining data: packing, whole-word masking statistics, TFRecord round trips, determinism."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parents[2] / "pretraining"))
sys.path.insert(0, str(Path(__file__).parent))

import data_utils  # noqa: E402
import toy_corpus  # noqa: E402
from data_utils import (  # noqa: E402
    InstanceBuilder,
    Masking,
    build_records,
    load_dataset,
    pack_words,
    parse_records,
    read_documents,
    sentence_words,
    shard_record_counts,
    split_sentences,
    training_example,
    training_order,
)

from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402

TOKENIZER = Tokenizer(toy_corpus.vocabulary())
SEP, CLS, MASK = (TOKENIZER.token_to_id(t) for t in ("[SEP]", "[CLS]", "[MASK]"))


def test_sentences_words_and_greedy_packing():
    assert split_sentences("小明看书。小红读信！好") == ["小明看书。", "小红读信！", "好"]
    english = Tokenizer({t: i for i, t in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##believ", "##able", "story"])})
    assert sentence_words("unbelievable story", english) == [[5, 6, 7], [8]]
    # A segmenter groups characters into words that are masked together.
    pairs = sentence_words("小明看书", TOKENIZER, segmenter=lambda s: [s[:2], s[2:]])
    assert [len(word) for word in pairs] == [2, 2]
    assert split_sentences("It costs 3.14 dollars. Really? Yes") == [
        "It costs 3.14 dollars.", "Really?", "Yes"]
    sentences = [[[1], [2]], [[3], [4], [5]], [[6]], [[7]] * 9, [[8] * 7]]
    # Long sentences continue in the next sequence; a word longer than the capacity is split.
    assert pack_words(sentences, capacity=5) == [[[1], [2], [3], [4], [5]], [[6]], [[7]] * 5,
                                                 [[7]] * 4, [[8] * 5], [[8] * 2]]


def test_english_documents_keep_every_token():
    """PD09: '.'-punctuated documents longer than a sequence lose no text."""
    sentence = "The committee approved the new budget after a long debate. "
    documents = [sentence * 40, "Short one. Another short one.", sentence * 10]
    builder = InstanceBuilder(TOKENIZER, "gpt", 128)
    instances = builder(documents, np.random.default_rng(0))
    written = sum(int((i["token_ids"] != 0).sum()) - 2 for i in instances)
    expected = sum(len(TOKENIZER.tokenize(d)) - 2 for d in documents)
    assert written == expected == 557  # the probe kept 243 of these 557


@pytest.mark.parametrize("mode, missing", [("roberta", "[MASK]"), ("gpt", "[CLS]"),
                                           ("unilm", "[SEP]")])
def test_builder_refuses_a_vocabulary_without_the_modes_special_tokens(mode, missing):
    """PD03, PD04: no shards whose mask token or sequence ends are [UNK]."""
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
             if t != missing}
    with pytest.raises(ValueError, match=re.escape(f"lacks ['{missing}']")):
        InstanceBuilder(Tokenizer({t: i for i, t in enumerate(vocab)}), mode, 16)


def test_non_utf8_text_is_named(tmp_path):
    """PD02."""
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt is not UTF-8 text"):
        read_documents([str(path)])


def test_instances_of_each_mode_have_the_documented_layout():
    rng = np.random.default_rng(0)
    docs = toy_corpus.documents(5)
    for instance in InstanceBuilder(TOKENIZER, "gpt", 24)(docs, rng):
        ids = list(instance["token_ids"])
        assert ids[0] == CLS and ids.count(SEP) == 1 and len(ids) == 24
    for instance in InstanceBuilder(TOKENIZER, "unilm", 24)(docs, rng):
        ids, segments = list(instance["token_ids"]), list(instance["segment_ids"])
        first_sep = ids.index(SEP)
        assert ids[0] == CLS and ids.count(SEP) == 2
        assert set(segments[:first_sep + 1]) == {0} and segments[first_sep + 1] == 1
        last = len(ids) - 1 - ids[::-1].index(SEP)
        assert set(segments[first_sep + 1:last + 1]) == {1} and set(segments[last + 1:]) <= {0}
    for instance in InstanceBuilder(TOKENIZER, "roberta", 24)(docs, rng):
        ids, masks = instance["token_ids"], instance["mask_ids"]
        assert masks[0] == 0 and masks[ids == SEP].sum() == 0 and masks[ids == 0].sum() == 0


def test_whole_word_masking_statistics():
    masking = Masking(mask_id=4, vocab_size=1000, first_random_id=5, rate=0.15)
    rng = np.random.default_rng(1)
    words = [[int(t) for t in rng.integers(100, 1000, size=rng.integers(1, 4))]
             for _ in range(40000)]
    token_ids, mask_ids = (np.array(x) for x in masking(words, rng))
    # Whole words: every token of a word shares the word's decision.
    chosen, start = [], 0
    for word in words:
        decisions = mask_ids[start:start + len(word)] > 0
        assert decisions.all() or not decisions.any()
        chosen.append(decisions[0])
        start += len(word)
    assert abs(np.mean(chosen) - 0.15) < 0.01
    replaced = mask_ids[mask_ids > 0] - 1
    original = token_ids[mask_ids > 0]
    as_mask = np.mean(replaced == 4)
    kept = np.mean(replaced == original)
    assert abs(as_mask - 0.8) < 0.015 and abs(kept - 0.1) < 0.015
    assert abs(1 - as_mask - kept - 0.1) < 0.015
    assert replaced.min() >= 4 and replaced.max() < 1000


@pytest.mark.parametrize("mode", ["roberta", "gpt", "unilm"])
def test_tfrecord_round_trip(tmp_path, mode):
    docs = toy_corpus.documents(30)
    builder = InstanceBuilder(TOKENIZER, mode, 32)
    paths, count = build_records(docs, builder, str(tmp_path / mode), seed=3, progress=False)
    # Group k of repeat r draws from rng (seed, r, k): rebuild the instances directly.
    expected = [instance for index in range(3) for instance in
                builder(docs[10 * index:10 * index + 10], np.random.default_rng([3, 0, index]))]
    read = list(parse_records(paths, mode, 32).as_numpy_iterator())
    assert count == len(expected) == len(read)
    for want, got in zip(expected, read):
        assert set(want) == set(got)
        for name in want:
            np.testing.assert_array_equal(want[name], got[name])


def test_same_seed_same_shards_whatever_the_worker_count(tmp_path):
    docs = toy_corpus.documents(60)
    builder = InstanceBuilder(TOKENIZER, "roberta", 32)

    def shards(name, seed, workers):
        paths, _ = build_records(docs, builder, str(tmp_path / name), repeats=2, seed=seed,
                                 shards=2, workers=workers, progress=False)
        return [Path(p).read_bytes() for p in paths]

    one = shards("a", 7, 1)
    assert shards("b", 7, 2) == one
    assert shards("c", 8, 1) != one


def test_training_examples_and_loading(tmp_path):
    features = {"token_ids": np.array([2, 10, 11, 12, 3, 0], "int32"),
                "mask_ids": np.array([0, 5, 0, 13, 0, 0], "int32"),
                "segment_ids": np.array([0, 0, 0, 1, 1, 0], "int32")}
    (inputs, _), labels, weights = training_example(features, "roberta")
    np.testing.assert_array_equal(inputs, [2, 4, 11, 12, 3, 0])
    np.testing.assert_array_equal(labels, features["token_ids"])
    np.testing.assert_array_equal(weights, [0, 1, 0, 1, 0, 0])
    (_, segments), labels, weights = training_example(features, "unilm")
    np.testing.assert_array_equal(labels, [10, 11, 12, 3, 0, 0])
    np.testing.assert_array_equal(weights, [0, 0, 1, 1, 0, 0])
    (_, _), labels, weights = training_example(features, "gpt")
    np.testing.assert_array_equal(weights, [1, 1, 1, 1, 0, 0])

    build_records(toy_corpus.documents(30), InstanceBuilder(TOKENIZER, "gpt", 32),
                  str(tmp_path / "gpt"), progress=False)
    batch = next(iter(load_dataset(str(tmp_path / "gpt-*"), "gpt", 32, batch_size=4)))
    assert batch[0][0].shape == (4, 32) and batch[1].shape == (4, 32)
    with pytest.raises(FileNotFoundError, match="No TFRecord files match"):
        load_dataset(str(tmp_path / "missing-*"), "gpt", 32, 4)
    with pytest.raises(ValueError, match="`mode` must be one of"):
        InstanceBuilder(TOKENIZER, "bert", 32)


def test_command_line_builds_shards(tmp_path, capsys):
    paths = toy_corpus.write_files(tmp_path)
    data_utils.main([paths["corpus.txt"], "--mode", "unilm", "--vocab", paths["vocab.txt"],
                     "--seq-len", "32", "--repeats", "1", "--shards", "3",
                     "--output", str(tmp_path / "out")])
    files = sorted(tmp_path.glob("out-*-of-00003.tfrecord"))
    assert len(files) == 3
    count = sum(1 for _ in parse_records([str(f) for f in files], "unilm", 32))
    assert f"wrote {count} sequences to 3 file(s)" in capsys.readouterr().out


def test_training_order_is_found_from_record_counts_at_any_position(tmp_path):
    """Each epoch is a permutation of all records, epochs differ, and starting at position p
    (across blocks, shards and epochs) gives the whole order advanced by p."""
    build_records(toy_corpus.documents(60), InstanceBuilder(TOKENIZER, "gpt", 32),
                  str(tmp_path / "gpt"), repeats=1, shards=3, progress=False)
    files = sorted(str(path) for path in tmp_path.glob("gpt-*.tfrecord"))
    counts = shard_record_counts(files)
    total = sum(counts)
    assert counts == [sum(1 for _ in tf.data.TFRecordDataset(f)) for f in files] and total > 12
    order = list(training_order(files, counts, 7, 5).take(3 * total).as_numpy_iterator())
    everything = sorted(r.numpy() for f in files for r in tf.data.TFRecordDataset(f))
    epochs = [order[e * total:(e + 1) * total] for e in range(3)]
    assert all(sorted(epoch) == everything for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    for start in (1, 5, 7, counts[0], total - 1, total + 6):
        resumed = training_order(files, counts, 7, 5, start).take(total)
        assert list(resumed.as_numpy_iterator()) == order[start:start + total], start
    first = next(iter(load_dataset(str(tmp_path / "gpt-*"), "gpt", 32, 4, shuffle_block=5,
                                   seed=7, skip=8)))
    third = list(load_dataset(str(tmp_path / "gpt-*"), "gpt", 32, 4, shuffle_block=5,
                              seed=7).take(3))[2]
    np.testing.assert_array_equal(first[0][0], third[0][0])
    with pytest.raises(ValueError, match="`shuffle_block` must be a positive integer; received 0"):
        load_dataset(str(tmp_path / "gpt-*"), "gpt", 32, 4, shuffle_block=0)
    with pytest.raises(ValueError, match="`skip` must be an integer >= 0; received -4"):
        load_dataset(str(tmp_path / "gpt-*"), "gpt", 32, 4, skip=-4)
