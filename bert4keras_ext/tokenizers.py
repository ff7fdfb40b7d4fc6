"""Tokenizers with bert4keras's API: BERT's WordPiece `Tokenizer` and the SentencePiece
`SpTokenizer`.

Sources: "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
(https://arxiv.org/abs/1810.04805) and its released tokenizer; "SentencePiece: A simple and
language independent subword tokenizer and detokenizer for Neural Text Processing"
(https://arxiv.org/abs/1808.06226); bert4keras's `Tokenizer`, `SpTokenizer` and their common
base (https://github.com/bojone/bert4keras).

Both share bert4keras's encoding: `token_start` and `token_end` around every text (None for
none), `pre_tokenize` (a function text -> words, tokenized one by one), `token_translate` (a
{token: token} map applied after tokenizing and inverted by `decode`), and `encode(first,
second, maxlen, pattern, truncate_from)` with bert4keras's pair truncation.

`Tokenizer.tokenize` gives exactly the tokens of Hugging Face's `BertTokenizer` for the same
vocabulary (checked on a varied corpus in the tests): text cleaning (control characters
dropped, whitespace unified), one token per CJK character, lower-casing with accent
stripping, punctuation split off, then greedy longest-match WordPiece with '##' continuations
and `[UNK]` for words over 100 characters. Special tokens of the vocabulary written in the
text (`[CLS]`, `[SEP]`, `[MASK]`, `[PAD]`, `[UNK]`, the start and end tokens) stay whole, as
`BertTokenizer` keeps them.

With `fast=True` the same normalization runs in the `tokenizers` package (Rust), if installed.
`SpTokenizer` needs the `sentencepiece` package, imported when one is made.
"""
import collections
import os
import re
import unicodedata
import warnings

from bert4keras_ext import arguments
from bert4keras_ext.backend import one_of

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_WORD_CHARS = 100
_SURROGATES = re.compile("[\ud800-\udfff]")
_CJK_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))
_CJK = re.compile(f"[{_CJK_CLASS}]")
# BERT's first split: each CJK character, and each run of characters that are neither CJK nor
# whitespace (\s is str.isspace: BERT's whitespace " \t\n\r" and Zs, and the line and
# paragraph separators at which its str.split also cuts).
_CHUNK = re.compile(f"[{_CJK_CLASS}]|[^\\s{_CJK_CLASS}]+")


def load_vocab(path=None, encoding="utf-8", simplified=False, startswith=None, dict_path=None):
    """Reads a `vocab.txt` into `{token: id}`: the id of a token is its line number (from 0),
    the checkpoint's embedding row, as BERT, transformers and the `tokenizers` package read it.

    A line's token is its first whitespace-separated field. Lines end at '\\n' only (a
    trailing '\\r' is whitespace), so a token holding another line separator cannot shift
    later ids. A blank or whitespace-only line keeps its id without a token (the
    `Tokenizer` decodes that id as ''). A token on several lines gets the id of its last line,
    as BERT's, transformers' and the `tokenizers` package's readers give it, with a warning
    naming the lines; the earlier lines keep their ids without a token.

    With `simplified=True` returns `(token_dict, keep_tokens)`: the tokens in `startswith`
    first, then every token except those of several characters that contain a CJK character or
    punctuation (bert4keras's reduction, which drops '[unused*]' and CJK words), renumbered;
    `keep_tokens` lists their original ids for `build_transformer_model(keep_tokens=...)`.
    `dict_path` is bert4keras's name for `path`.
    """
    path = one_of(path, dict_path, "path", "dict_path")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Vocabulary file not found: {path}")
    try:
        # newline="": no translation of '\\r' or other separators into line ends.
        with open(path, encoding=encoding, newline="") as file:
            lines = file.read().split("\n")
    except UnicodeDecodeError as error:
        raise ValueError(f"Vocabulary file {path} is not {encoding} text: {error}") from error
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not a line of its own
    token_dict, repeated = {}, {}
    for index, line in enumerate(lines):
        fields = line.split()
        if not fields:
            continue
        if fields[0] in token_dict:
            repeated.setdefault(fields[0], [token_dict[fields[0]]]).append(index)
        token_dict[fields[0]] = index
    if not token_dict:
        raise ValueError(f"Vocabulary file {path} has no tokens.")
    if repeated:
        token, indices = next(iter(repeated.items()))
        warnings.warn(f"Vocabulary file {path} repeats {len(repeated)} token(s), e.g. "
                      f"{token!r} on lines {[index + 1 for index in indices]} (counted from "
                      f"1); each gets the id of its last line ({token!r}: {indices[-1]}).",
                      stacklevel=2)
    if not simplified:
        return token_dict

    kept, keep_tokens = {}, []
    for token in startswith or []:
        if token in token_dict and token not in kept:
            kept[token] = len(kept)
            keep_tokens.append(token_dict[token])
    for token in sorted(token_dict, key=token_dict.get):
        stem = token[2:] if token.startswith("##") else token
        if token in kept or (
            len(token) > 1 and any(is_cjk(c) or is_punctuation(c) for c in stem)
        ):
            continue
        kept[token] = len(kept)
        keep_tokens.append(token_dict[token])
    return kept, keep_tokens


def save_vocab(dict_path, token_dict, encoding="utf-8"):
    """Writes `{token: id}` (a `load_vocab(..., simplified=True)` result, say) as a `vocab.txt`
    that `load_vocab` reads back as the same dict: the token of id i on line i, and a blank
    line for an id without a token (bert4keras closes such gaps, renumbering later tokens)."""
    if not isinstance(token_dict, dict):
        raise TypeError(f"`token_dict` must be a {{token: id}} dict; received "
                        f"{type(token_dict).__name__}.")
    lines = {}
    for token, index in token_dict.items():
        # load_vocab reads the first whitespace-separated field of each line (line breaks
        # are whitespace too).
        if not isinstance(token, str) or token.split() != [token]:
            raise ValueError(f"`token_dict` has the token {token!r}, which one line of a "
                             f"vocab.txt cannot hold (it must be a non-empty string without "
                             f"whitespace or line breaks).")
        index = arguments.integer(index, f"token_dict[{token!r}]", minimum=0)
        if index in lines:
            raise ValueError(f"`token_dict` gives {lines[index]!r} and {token!r} the same id "
                             f"{index}; one line of a vocab.txt holds one token.")
        lines[index] = token
    with open(dict_path, "w", encoding=encoding) as file:
        file.writelines(lines.get(index, "") + "\n" for index in range(max(lines, default=-1) + 1))


def is_cjk(char):
    """CJK Unified Ideographs (BERT's ranges): each becomes a token of its own."""
    return _CJK.match(char) is not None


def is_punctuation(char):
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_wide_punctuation(char):
    """Punctuation written without a following space in CJK text: the CJK symbols block,
    full-width forms, the dashes, quotes and ellipsis of general punctuation, middle dot."""
    code = ord(char)
    return is_punctuation(char) and (
        0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFF65 or 0x2013 <= code <= 0x2027
        or 0xFE4F <= code <= 0xFE54 or code == 0xB7)


def is_control(char):
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


class TokenizerBase:
    """What `Tokenizer` and `SpTokenizer` share, as bert4keras's `TokenizerBase`.

    Arguments:
        token_start: the token put before every text; None for none.
        token_end: the token put after every text; None for none.
        pre_tokenize: None, or a function text -> words (jieba's `lcut`, say); each word is
            then tokenized on its own.
        token_translate: None, or a {token: token} map applied to a text's tokens (before the
            start and end tokens are added); `decode` maps them back.

    A subclass sets `_vocab_size` and defines `_tokenize` (text -> tokens), `_piece_id` (a
    token's id, None when the vocabulary lacks it), `token_to_id`, `id_to_token` and `decode`.
    """

    def __init__(self, token_start="[CLS]", token_end="[SEP]", pre_tokenize=None,
                 token_translate=None):
        for name, token in (("token_start", token_start), ("token_end", token_end)):
            if token is not None and not isinstance(token, str):
                raise TypeError(f"`{name}` must be a token (a string) or None; received "
                                f"{type(token).__name__}.")
            if token == "":
                raise ValueError(f"`{name}` must be a non-empty token or None; received ''.")
        if pre_tokenize is not None and not callable(pre_tokenize):
            raise TypeError(f"`pre_tokenize` must be a function text -> words or None; "
                            f"received {type(pre_tokenize).__name__}.")
        if token_translate is not None and not isinstance(token_translate, dict):
            raise TypeError(f"`token_translate` must be a {{token: token}} dict or None; "
                            f"received {type(token_translate).__name__}.")
        self._token_pad, self._token_unk, self._token_mask = "[PAD]", "[UNK]", "[MASK]"
        self._token_start, self._token_end = token_start, token_end
        self._pre_tokenize = pre_tokenize
        self._token_translate = dict(token_translate or {})
        self._token_translate_inv = {
            target: token for token, target in self._token_translate.items()}

    def _set_special_ids(self):
        """`_token_pad_id`, `_token_unk_id`, `_token_mask_id`, `_token_start_id` and
        `_token_end_id`: the ids of those tokens, None where a token is None or not in the
        vocabulary."""
        for name in ("pad", "unk", "mask", "start", "end"):
            token = getattr(self, f"_token_{name}")
            setattr(self, f"_token_{name}_id", None if token is None else self._piece_id(token))

    @property
    def vocab_size(self):
        return self._vocab_size

    def tokenize(self, text, maxlen=None):
        """`token_start`, the tokens of `text` (translated by `token_translate`), `token_end`;
        with `maxlen`, the last tokens before `token_end` are dropped until at most `maxlen`
        remain."""
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a string; received {type(text).__name__}.")
        head = [] if self._token_start is None else [self._token_start]
        tail = [] if self._token_end is None else [self._token_end]
        if maxlen is not None and arguments.integer(maxlen, "maxlen") < len(head + tail):
            raise ValueError(f"`maxlen` must be an integer >= {len(head + tail)} (the start and "
                             f"end tokens {head + tail}); received {maxlen!r}.")
        missing = [token for token in head + tail if self._piece_id(token) is None]
        if missing:
            raise ValueError(f"The vocabulary lacks {missing}, which every encoded text starts "
                             f"or ends with; pass `token_start` / `token_end` (None for none).")
        tokens = head + [self._token_translate.get(token) or token
                         for token in self._tokenize(text)] + tail
        if maxlen is not None:
            truncate_sequences(maxlen, -1 - len(tail), tokens)
        return tokens

    def _pre_tokenized(self, text):
        words = list(self._pre_tokenize(text))
        wrong = [word for word in words if not isinstance(word, str)]
        if wrong:
            raise TypeError(f"`pre_tokenize` must return strings (words); it returned "
                            f"{wrong[0]!r} for {text!r}.")
        return words

    def tokens_to_ids(self, tokens):
        return [self.token_to_id(token) for token in tokens]

    def ids_to_tokens(self, ids):
        return [self.id_to_token(index) for index in ids]

    def _untranslated(self, tokens):
        """`token_translate` undone, for decoding."""
        return [self._token_translate_inv.get(token) or token for token in tokens]

    def encode(self, first_text, second_text=None, maxlen=None, pattern="S*E*E",
               truncate_from="right"):
        """(token_ids, segment_ids) of `start first end second end` (`pattern='S*E*E'`) or
        `start first end start second end` (`'S*ES*E'`), as bert4keras.

        Texts may also be given as token lists (with their start and end tokens). With
        `maxlen`, one token at a time is removed from the longer text (the second counted with
        its start token, as bert4keras does): the last before the end token
        (`truncate_from='right'`), the first after the start token (`'left'`), or the one at
        the index `truncate_from` of that text's tokens (start and end tokens included,
        negative from the end). The start and end tokens always stay: an index that points
        at one of them, or past the text's own tokens, is taken as the nearest text token,
        so 0 acts as 'left' and -1 as 'right' (bert4keras removes them, or fails with an
        IndexError once the text is shorter than the index).
        """
        if pattern not in ("S*E*E", "S*ES*E"):
            raise ValueError(f"`pattern` must be 'S*E*E' or 'S*ES*E'; received {pattern!r}.")
        has_start, has_end = self._token_start is not None, self._token_end is not None
        if isinstance(truncate_from, str) and truncate_from in ("right", "left"):
            index = -1 if truncate_from == "right" else 0
        elif isinstance(truncate_from, str):
            raise ValueError("`truncate_from` must be 'right', 'left' or an index; received "
                             f"{truncate_from!r}.")
        else:
            index = arguments.integer(truncate_from, "truncate_from")
        first = self._tokens_of(first_text, "first_text")
        second = [] if second_text is None else self._tokens_of(second_text, "second_text")
        # Both texts keep their start token while truncating; 'S*E*E' drops the second's after.
        drop_second_start = bool(second) and has_start and pattern == "S*E*E"
        shortest = (has_start + has_end) * (1 + bool(second)) - drop_second_start
        if maxlen is not None and arguments.integer(maxlen, "maxlen") < shortest:
            raise ValueError(f"`maxlen` must be an integer >= {shortest} (the start and end "
                             f"tokens of pattern {pattern!r}); received {maxlen!r}.")
        while maxlen is not None and len(first) + len(second) > maxlen + drop_second_start:
            # One token at a time, each text's index kept between its start and end tokens.
            texts = [text for text in (first, second) if text]
            truncate_sequences(len(first) + len(second) - 1, [
                min(max(index if index >= 0 else len(text) + index, int(has_start)),
                    len(text) - 1 - has_end) for text in texts], *texts)
        if drop_second_start:
            second = second[1:]
        return (self.tokens_to_ids(first + second),
                [0] * len(first) + [1] * len(second))

    def _tokens_of(self, text, name):
        if isinstance(text, str):
            return self.tokenize(text)
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            return list(text)
        raise TypeError(f"`{name}` must be a string or a list of tokens; received "
                        f"{type(text).__name__}.")


class Tokenizer(TokenizerBase):
    """BERT tokenizer from a `{token: id}` dict or a `vocab.txt` path.

    `token_start`, `token_end` (default `[CLS]`, `[SEP]`), `pre_tokenize` and `token_translate`
    as in `TokenizerBase`. With `pre_tokenize`, the (lower-cased) text is split into words
    first; a word of the vocabulary stays one token, any other is tokenized as usual.

    Example:
    ```python
    tokenizer = Tokenizer("vocab.txt", do_lower_case=True)
    token_ids, segment_ids = tokenizer.encode("question", "passage", maxlen=128)
    tokenizer.decode(token_ids)
    ```
    """

    def __init__(self, token_dict, do_lower_case=True, fast=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(token_dict, (str, os.PathLike)):
            token_dict = load_vocab(token_dict)
        if not isinstance(token_dict, dict):
            raise TypeError(f"`token_dict` must be a {{token: id}} dict or a vocab.txt path; "
                            f"received {type(token_dict).__name__}.")
        if not token_dict:
            raise ValueError("`token_dict` is empty.")
        self.token_dict = dict(token_dict)
        self._token_dict_inv = {index: token for token, index in self.token_dict.items()}
        if len(self._token_dict_inv) != len(self.token_dict):
            shared = collections.Counter(self.token_dict.values())
            example = next(index for index, count in shared.items() if count > 1)
            raise ValueError(f"`token_dict` maps several tokens to one id, e.g. "
                             f"{[t for t, i in self.token_dict.items() if i == example]} -> "
                             f"{example}; ids must be unique.")
        for token, index in self.token_dict.items():
            arguments.integer(index, f"token_dict[{token!r}]", minimum=0)
        # Ids may skip some rows (blank lines of a vocab.txt): the vocabulary has as many
        # rows as its highest id needs.
        self._vocab_size = max(self._token_dict_inv) + 1
        self.do_lower_case = do_lower_case
        self._token_cls_id = self.token_dict.get("[CLS]")
        self._token_sep_id = self.token_dict.get("[SEP]")
        self._set_special_ids()
        # Written in a text these stay whole; decode and rematch skip them.
        self._special_tokens = set(RESERVED_TOKENS) | {
            token for token in (self._token_start, self._token_end) if token is not None}
        # Longest first, so that no special token is cut at another that begins it.
        whole = sorted((t for t in self._special_tokens if t in self.token_dict),
                       key=lambda token: (-len(token), token))
        self._special_pattern = re.compile(
            "(" + "|".join(re.escape(token) for token in whole) + ")") if whole else None
        self._fast = self._fast_backend() if fast else None

    def _piece_id(self, token):
        return self.token_dict.get(token)

    # Text -> tokens.
    def _tokenize(self, text):
        return [token for token, _ in self._located_tokens(text, self._fast)]

    def _located_tokens(self, text, fast=None):
        """The tokens of `text`, each with the indices of the characters of `text` it came
        from (None where that is unknown: the tokens of the Rust backend `fast`, which
        `rematch` therefore does not use, or of a word `pre_tokenize` changed). Special tokens
        written in the text stay whole."""
        located, position = [], 0
        written = self._special_pattern.finditer(text) if self._special_pattern else ()
        for special in [*written, None]:
            end = len(text) if special is None else special.start()
            located += self._part_tokens(text[position:end], range(position, end), fast)
            if special is not None:
                located.append((special.group(), range(special.start(), special.end())))
                position = special.end()
        return located

    def _part_tokens(self, text, origins, fast):
        """Located tokens of a text without special tokens; with `pre_tokenize`, a word of the
        vocabulary stays one token."""
        if self._pre_tokenize is None:
            return self._word_tokens(text, origins, fast)
        if self.do_lower_case:
            # bert4keras lower-cases before splitting, so the words match the vocabulary.
            text, origins = lower_case_located(text, origins)
        located, position = [], 0
        for word in self._pre_tokenized(text):
            start = text.find(word, position)
            if start < 0:  # not a piece of the text: its tokens have no characters there
                located += [(token, None) for token, _ in
                            self._word_tokens(word, range(len(word)), fast)]
                continue
            position = start + len(word)
            if word in self.token_dict:
                located.append((word, origins[start:position]))
            else:
                located += self._word_tokens(word, origins[start:position], fast)
        return located

    def _word_tokens(self, text, origins, fast):
        """Basic splitting, then WordPiece (both in Rust with `fast`)."""
        if fast is not None:
            # Lone surrogates cannot pass into Rust; the Python path drops them (category
            # Cs, a control character) before anything else, so dropping them here first
            # gives the same tokens.
            text = _SURROGATES.sub("", text)
            return [(token, None) for token in fast.encode(text, add_special_tokens=False).tokens]
        return [(piece, word_origins[start:end])
                for word, word_origins in self._basic_words(text, origins)
                for piece, start, end in self._word_pieces(word)]

    def _basic_words(self, text, origins):
        """BERT's basic splitting: control characters dropped; words split at whitespace,
        around each CJK character and at punctuation (kept as a word of its own); lower-cased
        with accents stripped if `do_lower_case`. Each word comes with the `origins` of its
        characters."""
        # Printable text has no control characters (the check is quick; most text passes).
        if not text.isprintable() or "\ufffd" in text:
            kept = [index for index, char in enumerate(text)
                    if char not in ("\x00", "\ufffd") and not is_control(char)]
            text, origins = "".join(text[index] for index in kept), [origins[i] for i in kept]
        words = []
        for chunk in _CHUNK.finditer(text):
            word, word_origins = chunk.group(), origins[chunk.start():chunk.end()]
            if self.do_lower_case:
                word, word_origins = lower_case_located(word, word_origins)
            start = 0
            for index, char in enumerate(word):
                if is_punctuation(char) or char.isspace():
                    if start < index:
                        words.append((word[start:index], word_origins[start:index]))
                    if not char.isspace():
                        words.append((char, word_origins[index:index + 1]))
                    start = index + 1
            if start < len(word):
                words.append((word[start:], word_origins[start:]))
        return words

    def _word_pieces(self, word):
        """Greedy longest-match WordPiece: (piece, start, end) with the characters of `word`
        each piece covers; one [UNK] for the whole word if some part matches no piece or the
        word is longer than MAX_WORD_CHARS."""
        unknown = [("[UNK]", 0, len(word))]
        if len(word) > MAX_WORD_CHARS:
            return unknown
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.token_dict:
                    break
            else:
                return unknown
            pieces.append((piece, start, end))
            start = end
        return pieces

    def _fast_backend(self):
        try:
            from tokenizers import Tokenizer as RustTokenizer
            from tokenizers import models, normalizers, pre_tokenizers
        except ImportError as error:
            raise ImportError("`fast=True` needs the `tokenizers` package.") from error
        backend = RustTokenizer(models.WordPiece(
            self.token_dict, unk_token="[UNK]", max_input_chars_per_word=MAX_WORD_CHARS
        ))
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, lowercase=self.do_lower_case
        )
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        return backend

    # Tokens <-> ids.
    def token_to_id(self, token):
        index = self.token_dict.get(token, self._token_unk_id)
        if index is None:
            raise ValueError(f"Token {token!r} is not in the vocabulary, which has no [UNK].")
        return index

    def id_to_token(self, i):
        """The token of id `i`; '' for an id without a token (a blank line of a vocab.txt)."""
        index = int(i)
        if not 0 <= index < self._vocab_size:
            raise ValueError(f"Token id {index} is not in the vocabulary (ids 0 to "
                             f"{self._vocab_size - 1}).")
        return self._token_dict_inv.get(index, "")

    def decode(self, ids, tokens=None):
        """Readable text, as bert4keras writes it: `token_translate` undone, special tokens
        (the reserved ones, the start and end tokens) dropped, '##' pieces
        joined, CJK characters without spaces, a space after punctuation except CJK
        punctuation and opening brackets/operators, English contractions and decimals
        rejoined. `tokens` may be given instead of `ids`."""
        text = ""
        if tokens is None:
            tokens = self.ids_to_tokens(ids)
        for token in self._untranslated(tokens):
            if token in self._special_tokens or not token:
                continue
            if token.startswith("##"):
                text += token[2:]
            elif len(token) == 1 and is_cjk(token):
                text += token
            elif len(token) == 1 and is_punctuation(token):
                text += token + " "
            elif text and is_cjk(text[-1]):
                text += token
            else:
                text += " " + token
        text = re.sub(" +", " ", text)
        text = re.sub(r"' (re|m|s|t|ve|d|ll) ", r"'\1 ", text)
        text = re.sub(r"(\S) ", lambda found: found.group(1) if (
            is_wide_punctuation(found.group(1)) or found.group(1) in "+-/={(<[")
            else found.group(0), text)
        text = re.sub(r"(\d\.) (\d)", r"\1\2", text)
        return text.strip()

    def rematch(self, text, tokens):
        """For each token of `tokens`, the indices of the characters of `text` it came from:
        [] for special tokens (the start and end tokens, those written in the text) and for
        [UNK].

        `tokens` are those of `tokenize(text)` (translated or not), possibly with some removed
        (`maxlen`); each is matched, in order, to the next token of the same text the
        tokenizer reads there, so a token never lands inside the characters of an [UNK] word
        or of a special token written in the text (bert4keras searches the text for each
        token's letters after the previous match, and may). A token the text does not give
        raises a ValueError.
        """
        located = [(token, origins) for token, origins in self._located_tokens(text)
                   if token not in self._special_tokens]
        mapping, position, after = [], 0, 0
        for token in self._untranslated(tokens):
            if token in self._special_tokens:
                mapping.append([])
                continue
            found = next((index for index in range(position, len(located))
                          if located[index][0] == token), None)
            if found is None:
                raise ValueError(f"Token {token!r} is not found in `text` after character "
                                 f"{after}; `tokens` must come from this text.")
            origins = list(located[found][1] or [])
            mapping.append(origins)
            position, after = found + 1, origins[-1] + 1 if origins else after
        return mapping


class SpTokenizer(TokenizerBase):
    """A SentencePiece model (a `.model` file) with bert4keras's tokenizer API.

    `token_start`, `token_end` (default `[CLS]`, `[SEP]`: ALBERT's pieces; T5 models take
    `token_start=None, token_end='</s>'`), `pre_tokenize` (its words are joined by spaces
    before SentencePiece runs) and `token_translate` as in `TokenizerBase`. Unknown pieces get
    the model's unk id; `_token_pad` / `_token_unk` are the model's pad and unk pieces (the pad
    is None in a model trained without one). `id_to_token` gives '' past the model's pieces
    (some checkpoints have more embedding rows), as bert4keras.

    Example:
    ```python
    tokenizer = SpTokenizer("spiece.model", token_start=None, token_end="</s>")
    token_ids, _ = tokenizer.encode("translate English to German: hello", maxlen=64)
    tokenizer.decode(token_ids)
    ```
    """

    def __init__(self, sp_model_path, **kwargs):
        super().__init__(**kwargs)
        try:
            import sentencepiece
        except ImportError as error:
            raise ImportError("`SpTokenizer` needs the `sentencepiece` package: "
                              "pip install sentencepiece") from error
        if not os.path.isfile(sp_model_path):
            raise FileNotFoundError(f"SentencePiece model file not found: {sp_model_path}")
        self.sp_model = sentencepiece.SentencePieceProcessor()
        try:
            self.sp_model.Load(os.fspath(sp_model_path))
        except (OSError, RuntimeError) as error:
            raise ValueError(f"{sp_model_path} is not a SentencePiece model file: "
                             f"{error}") from error
        self._vocab_size = self.sp_model.get_piece_size()
        pad_id = self.sp_model.pad_id()
        # -1 when the model was trained without a pad piece.
        self._token_pad = self.sp_model.id_to_piece(pad_id) if pad_id >= 0 else None
        self._token_unk = self.sp_model.id_to_piece(self.sp_model.unk_id())
        self._set_special_ids()

    def _piece_id(self, token):
        index = self.sp_model.piece_to_id(token)
        # SentencePiece answers an unknown piece with the unk id.
        return index if self.sp_model.id_to_piece(index) == token else None

    def _tokenize(self, text):
        if self._pre_tokenize is not None:
            text = " ".join(self._pre_tokenized(text))
        return self.sp_model.encode_as_pieces(text)

    def token_to_id(self, token):
        return self.sp_model.piece_to_id(token)

    def id_to_token(self, i):
        index = int(i)
        if index < 0:
            raise ValueError(f"Token id {index} is negative; ids are 0 to "
                             f"{self._vocab_size - 1}.")
        return self.sp_model.id_to_piece(index) if index < self._vocab_size else ""

    def decode(self, ids):
        """Text of the ids, with `token_translate` undone, written back by SentencePiece
        (control pieces such as `</s>` dropped, unknown ones as ' ⁇ ')."""
        return self.sp_model.decode_pieces(self._untranslated(self.ids_to_tokens(ids)))


def lower_case_located(text, origins):
    """`lower_case(text)` and the origin of each of its characters, given those of `text`."""
    if text.isascii():
        return text.lower(), origins
    lowered = lower_case(text)
    if len(text) == 1:
        return lowered, [origins[0]] * len(lowered)
    # Each character's own result has the same characters as its part of the whole text's
    # (NFD only reorders combining marks, never adds or drops one), so the lengths agree.
    located = [origin for char, origin in zip(text, origins) for _ in lower_case(char)]
    return lowered, located


def lower_case(text):
    """Accents stripped (NFD, marks dropped), then each character lower-cased on its own, as
    the reference does (so a word-final Greek sigma stays 'σ')."""
    stripped = "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")
    return "".join(c.lower() for c in stripped)


def truncate_sequences(maxlen, indices, *sequences):
    """Removes one item at a time from the longest sequence (the first of equals), at its
    index in `indices` (one int for all, or one per sequence), until the total length is at
    most `maxlen`; returns the non-empty sequences, shortened in place (bert4keras's
    `truncate_sequences`). Each index stays with its own sequence; bert4keras dropped the
    empty sequences first and paired the indices with those left, so an empty first
    sequence handed its index to the second. The sequences must be lists."""
    maxlen = arguments.integer(maxlen, "maxlen", minimum=0)
    if isinstance(indices, (list, tuple)):
        if len(indices) != len(sequences):
            raise ValueError(f"`indices` must be one int or one per sequence ({len(sequences)});"
                             f" received {indices!r}.")
        indices = [arguments.integer(index, "indices") for index in indices]
    else:
        indices = [arguments.integer(indices, "indices")] * len(sequences)
    for number, sequence in enumerate(sequences):
        if not isinstance(sequence, list):
            raise TypeError(f"The sequences must be lists (they are shortened in place); "
                            f"sequence {number} is a {type(sequence).__name__}: {sequence!r}.")
    kept = [number for number, sequence in enumerate(sequences) if sequence]
    total = sum(len(sequences[number]) for number in kept)
    while total > maxlen:
        longest = max(kept, key=lambda number: (len(sequences[number]), -number))
        try:
            sequences[longest].pop(indices[longest])
        except IndexError:
            raise IndexError(f"`indices` {indices[longest]} is out of range for sequence "
                             f"{longest}, of length {len(sequences[longest])}, while truncating "
                             f"to `maxlen`={maxlen}.") from None
        total -= 1
    return [sequences[number] for number in kept]
