"""bert4keras's tokenizer options: `SpTokenizer`, `token_start` / `token_end`, `pre_tokenize`,
`token_translate`, `save_vocab`; exact against bert4keras 0.11.5's outputs (fixtures made by
tests/fixtures/make_tokenizer_bert4keras_reference.py) and on a SentencePiece model trained
here."""
import functools
import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece

from bert4keras_ext.tokenizers import SpTokenizer, Tokenizer, load_vocab, save_vocab

pytestmark = pytest.mark.backend_neutral


FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "tokenizer_bert4keras_reference.json")
                       .read_text(encoding="utf-8"))
CORPUS = ["the cat sat on the mat", "a dog and a cat", "hello world", "北京 大学 的 学生",
          "we like the world of words", "tokenizers split words into pieces"] * 4
TEXTS = ["the cat sat on the mat", "hello world of words", "北京 大学", "a dog"]


def reference_options(options):
    """The fixture's options as keyword arguments (`pre_tokenize` stored as a flag)."""
    options = dict(options)
    if options.pop("pre_tokenize_findall", False):
        options["pre_tokenize"] = functools.partial(re.findall,
                                                    REFERENCE["pre_tokenize_findall"])
    return options


def assert_matches_reference(tokenizer, reference):
    for name, value in reference["special_ids"].items():
        assert getattr(tokenizer, name) == value, name
    assert tokenizer.vocab_size == reference["vocab_size"]
    for token, index in reference["token_to_id"].items():
        assert tokenizer.token_to_id(token) == index, token
    for index, token in reference["id_to_token"].items():
        assert tokenizer.id_to_token(int(index)) == token, index
    for call in reference["calls"]:
        result = getattr(tokenizer, call["method"])(*call["args"], **call["kwargs"])
        if isinstance(result, tuple):
            result = list(result)
        assert result == call["result"], call


@pytest.mark.parametrize("name", sorted(REFERENCE["wordpiece"]))
def test_tokenizer_options_match_bert4keras(name):
    reference = REFERENCE["wordpiece"][name]
    vocab = {token: index for index, token in enumerate(REFERENCE["wordpiece_vocab"])}
    tokenizer = Tokenizer(vocab, **reference_options(reference["options"]))
    assert_matches_reference(tokenizer, reference)


@pytest.mark.parametrize("name", sorted(REFERENCE["sentencepiece"]))
def test_sp_tokenizer_matches_bert4keras(name):
    reference = REFERENCE["sentencepiece"][name]
    tokenizer = SpTokenizer(FIXTURES / REFERENCE["sp_model"],
                            **reference_options(reference["options"]))
    assert_matches_reference(tokenizer, reference)


def train(path, **options):
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_prefix=str(path), model_type="unigram",
        vocab_size=60, hard_vocab_limit=False, normalization_rule_name="identity",
        character_coverage=1.0, num_threads=1, minloglevel=2, **options)
    return path.with_suffix(".model")


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    """pad, unk, <s>, </s> at ids 0-3, then [CLS], [SEP], [MASK] as user-defined pieces."""
    return train(tmp_path_factory.mktemp("sp") / "bert", pad_id=0, unk_id=1, bos_id=2,
                 eos_id=3, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"])


@pytest.fixture(scope="module")
def plain_sp_model(tmp_path_factory):
    """SentencePiece's defaults: no pad piece, no [CLS]/[SEP]."""
    return train(tmp_path_factory.mktemp("sp") / "plain")


def test_sp_tokenizer_pieces_ids_and_special_ids(sp_model):
    processor = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    tokenizer = SpTokenizer(sp_model)
    for text in TEXTS:
        tokens = tokenizer.tokenize(text)
        # SentencePiece's pieces spell the text, with '▁' for the spaces and a leading one.
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        assert "".join(tokens[1:-1]) == "▁" + text.replace(" ", "▁")
        assert tokenizer.encode(text)[0] == [4, *processor.encode(text), 5]
    assert (tokenizer._token_pad, tokenizer._token_unk) == ("<pad>", "<unk>")
    assert [tokenizer._token_pad_id, tokenizer._token_unk_id, tokenizer._token_start_id,
            tokenizer._token_end_id, tokenizer._token_mask_id] == [0, 1, 4, 5, 6]
    assert tokenizer.vocab_size == processor.get_piece_size()
    assert tokenizer.token_to_id("no-such-piece") == 1
    # Past the model's pieces (a checkpoint with more embedding rows): '' as bert4keras.
    assert tokenizer.ids_to_tokens(np.array([4, 3, tokenizer.vocab_size])) == [
        "[CLS]", "</s>", ""]


def test_t5_style_sp_tokenizer_decodes_its_own_text_back(sp_model):
    """Start None and end '</s>' (a control piece SentencePiece drops when decoding):
    `decode(encode(text))` is the text; translated pieces are mapped back."""
    plain = SpTokenizer(sp_model, token_start=None, token_end="</s>").tokenize("the mat")
    t5 = SpTokenizer(sp_model, token_start=None, token_end="</s>",
                     token_translate={plain[0]: "[MASK]"})
    assert t5.tokenize("the mat") == ["[MASK]", *plain[1:]]
    for text in TEXTS:
        token_ids, segment_ids = t5.encode(text)
        assert token_ids[-1] == 3 and segment_ids == [0] * len(token_ids)
        assert t5.decode(token_ids) == text
    assert t5._token_start_id is None and t5._token_end_id == 3


def test_sp_tokenizer_pre_tokenize_joins_the_words(sp_model):
    tokenizer = SpTokenizer(sp_model, pre_tokenize=lambda text: list(text.replace(" ", "")))
    plain = SpTokenizer(sp_model)
    assert tokenizer.tokenize("the cat") == plain.tokenize("t h e c a t")
    with pytest.raises(TypeError, match=r"`pre_tokenize` must return strings .* None"):
        SpTokenizer(sp_model, pre_tokenize=lambda text: [None]).tokenize("a")


def test_sp_tokenizer_without_pad_or_start_pieces(plain_sp_model):
    """bert4keras fails on a model without a pad piece and gives the unk id for a missing
    [CLS]; here the pad is None and a missing start/end token is refused by name."""
    tokenizer = SpTokenizer(plain_sp_model)
    assert tokenizer._token_pad is None and tokenizer._token_pad_id is None
    assert tokenizer._token_start_id is None and tokenizer._token_mask_id is None
    with pytest.raises(ValueError, match=r"lacks \['\[CLS\]', '\[SEP\]'\].*None for none"):
        tokenizer.encode("the cat")
    processor = sentencepiece.SentencePieceProcessor(model_file=str(plain_sp_model))
    first, second = processor.encode("a cat"), processor.encode("the mat")
    bare = SpTokenizer(plain_sp_model, token_start=None, token_end=None)
    assert bare.encode("a cat", "the mat") == (first + second,
                                               [0] * len(first) + [1] * len(second))


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece"])
def test_maxlen_is_kept_for_every_start_end_pattern_and_side(kind, sp_model):
    """`encode` gives min(maxlen, full length) ids for every combination, also without a
    start token (bert4keras gives one id too many there with 'S*E*E'); the ids are those of
    the untruncated encoding with some text tokens removed: never a start or end token, also
    with an index `truncate_from` that points at one or past the text (reliability probe 2,
    T07)."""
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *"abcdefghij"])}
    for start, end in itertools.product(["[CLS]", None], ["[SEP]", None]):
        if kind == "wordpiece":
            tokenizer = Tokenizer(vocab, token_start=start, token_end=end)
            first, second = "a b c d e f g", "h i j"
        else:
            tokenizer = SpTokenizer(sp_model, token_start=start, token_end=end)
            first, second = "the cat sat on the mat", "a dog"
        edges = {tokenizer._token_start_id, tokenizer._token_end_id} - {None}
        for pattern, side in itertools.product(["S*E*E", "S*ES*E"],
                                               ["left", "right", 0, 2, -1, -3, 9, -9]):
            full, full_segments = tokenizer.encode(first, second, pattern=pattern)
            for maxlen in range(len(edges) * 2 + 1, len(full) + 2):
                ids, segments = tokenizer.encode(first, second, maxlen, pattern, side)
                assert len(ids) == len(segments) == min(maxlen, len(full))
                assert [i for i in ids if i in edges] == [i for i in full if i in edges]
                kept = iter(zip(full, full_segments))
                assert all(pair in kept for pair in zip(ids, segments))


def test_custom_start_end_tokens_and_translation_in_tokenizer():
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>",
                                         "</s>", "hello", "world", "北", "京"])}
    tokenizer = Tokenizer(vocab, token_start="<s>", token_end="</s>",
                          token_translate={"hello": "[MASK]", "京": "[unused1]"})
    tokens = tokenizer.tokenize("Hello <s>world</s> 北京")
    # The start and end tokens written in the text stay whole, as the reserved ones.
    assert tokens == ["<s>", "[MASK]", "<s>", "world", "</s>", "北", "[unused1]", "</s>"]
    # decode undoes the translation and drops the start and end tokens.
    assert tokenizer.decode(None, tokens) == "hello world北京"
    assert tokenizer.decode(tokenizer.encode("hello world")[0][:-1]) == "hello world"
    assert tokenizer._token_start_id == 5 and tokenizer._token_end_id == 6
    assert tokenizer.rematch("hello <s>", tokenizer.tokenize("hello <s>")) == [
        [], [0, 1, 2, 3, 4], [], []]


def test_tokenizer_without_start_end_or_reserved_tokens():
    tokenizer = Tokenizer({"ab": 0, "##c": 1, "d": 2}, token_start=None, token_end=None)
    assert tokenizer.tokenize("abc d", maxlen=2) == ["ab", "##c"]
    assert tokenizer.encode("abc", "d", maxlen=3, pattern="S*ES*E") == ([0, 1, 2], [0, 0, 1])
    assert tokenizer.id_to_token(1) == "##c" and tokenizer.vocab_size == 3


@pytest.mark.parametrize("fast", [False] + ([True] if importlib.util.find_spec("tokenizers")
                                            else []))
def test_pre_tokenize_keeps_vocabulary_words_whole(fast):
    """Words of the vocabulary stay one token (basic splitting would cut 'e-mail' and
    '北京'), others go through basic splitting and WordPiece; lower-casing comes first, so
    'E-mail' matches 'e-mail'."""
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "北京", "北", "京",
                                         "e-mail", "e", "-", "mail", "bei", "##jing", "##s",
                                         "!"])}
    words = Tokenizer(vocab, fast=fast, pre_tokenize=lambda text: text.split("|"))
    assert words.tokenize("E-mail|北京|beijings!") == [
        "[CLS]", "e-mail", "北京", "bei", "##jing", "##s", "!", "[SEP]"]
    assert Tokenizer(vocab, fast=fast).tokenize("E-mail 北京") == [
        "[CLS]", "e", "-", "mail", "北", "京", "[SEP]"]


def test_save_vocab_round_trips_through_load_vocab(tmp_path):
    token_dict = {"[PAD]": 0, "[UNK]": 1, "北京": 3, "##ing": 2, "hello": 4}
    path = tmp_path / "vocab.txt"
    save_vocab(str(path), token_dict)
    assert path.read_text(encoding="utf-8") == "[PAD]\n[UNK]\n##ing\n北京\nhello\n"
    assert load_vocab(str(path)) == token_dict
    simple, _ = load_vocab(str(path), simplified=True, startswith=["[PAD]", "[UNK]"])
    save_vocab(str(path), simple)
    assert load_vocab(dict_path=str(path)) == simple == {"[PAD]": 0, "[UNK]": 1, "##ing": 2,
                                                         "hello": 3}
    # Ids with gaps stay (blank lines), so the ids keep matching the embedding rows.
    save_vocab(str(path), {"a": 5, "b": 2})
    assert path.read_text(encoding="utf-8") == "\n\nb\n\n\na\n"
    assert load_vocab(str(path)) == {"a": 5, "b": 2}


@pytest.mark.parametrize("call, error, message", [
    (lambda model: SpTokenizer(model, token_start=3), TypeError,
     "`token_start` must be a token .* or None; received int"),
    (lambda model: SpTokenizer(model, token_end=""), ValueError,
     "`token_end` must be a non-empty token or None"),
    (lambda model: SpTokenizer(model, pre_tokenize="jieba"), TypeError,
     "`pre_tokenize` must be a function text -> words or None; received str"),
    (lambda model: Tokenizer({"a": 0}, token_translate=[("a", "b")]), TypeError,
     "`token_translate` must be a {token: token} dict or None; received list"),
    (lambda model: SpTokenizer(model).encode("a", "b", maxlen=2), ValueError,
     r"`maxlen` must be an integer >= 3"),
    (lambda model: SpTokenizer(model, token_start=None).tokenize("a", maxlen=0), ValueError,
     r"`maxlen` must be an integer >= 1 \(the start and end tokens \['\[SEP\]'\]\)"),
    (lambda model: SpTokenizer(model).decode([-1]), ValueError, "Token id -1 is negative"),
    (lambda model: SpTokenizer(model.parent / "missing.model"), FileNotFoundError,
     "SentencePiece model file not found: .*missing.model"),
    (lambda model: SpTokenizer(model.with_suffix(".vocab")), ValueError,
     r"bert.vocab is not a SentencePiece model file"),
    (lambda model: save_vocab(model.parent / "v.txt", {"a b": 0}), ValueError,
     "`token_dict` has the token 'a b', which one line of a vocab.txt cannot hold"),
    (lambda model: save_vocab(model.parent / "v.txt", ["a"]), TypeError,
     r"`token_dict` must be a \{token: id\} dict; received list"),
    (lambda model: save_vocab(model.parent / "v.txt", {"a": 1, "b": 1}), ValueError,
     "`token_dict` gives 'a' and 'b' the same id 1; one line of a vocab.txt holds one token"),
    (lambda model: save_vocab(model.parent / "v.txt", {"a": -1}), ValueError,
     r"`token_dict\['a'\]` must be an integer >= 0; received -1"),
])
def test_bad_arguments_are_refused_naming_them(call, error, message, sp_model):
    with pytest.raises(error, match=message):
        call(sp_model)


def test_sp_tokenizer_names_the_missing_package(monkeypatch, sp_model):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(ImportError, match="needs the `sentencepiece` package"):
        SpTokenizer(sp_model)
