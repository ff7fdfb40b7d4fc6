"""BERT's tokenizer (basic splitting + WordPiece) with bert4keras's API.

Source: "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
(https://arxiv.org/abs/1810.04805) and its released tokenizer, with bert4keras's `Tokenizer`
interface (https://github.com/bojone/bert4keras).

`Tokenizer.tokenize` gives exactly the tokens of Hugging Face's `BertTokenizer` for the same
vocabulary (checked on a varied corpus in the tests): text cleaning (control characters
dropped, whitespace unified), one token per CJK character, lower-casing with accent
stripping, punctuation split off, then greedy longest-match WordPiece with '##' continuations
and `[UNK]` for words over 100 characters. Special tokens of the vocabulary written in the
text (`[CLS]`, `[SEP]`, `[MASK]`, `[PAD]`, `[UNK]`) stay whole, as `BertTokenizer` keeps them.

With `fast=True` the same normalization runs in the `tokenizers` package (Rust), if installed.
"""
import collections
import os
import re
import unicodedata

from bert4keras_ext.backend import one_of

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_WORD_CHARS = 100


def load_vocab(path=None, encoding="utf-8", simplified=False, startswith=None, dict_path=None):
    """Reads a `vocab.txt` (one token per line) into `{token: id}`.

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
        with open(path, encoding=encoding) as file:
            lines = file.read().splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"Vocabulary file {path} is not {encoding} text: {error}") from error
    token_dict = {}
    for line in lines:
        parts = line.split()
        token = parts[0] if parts else line.strip()
        if token and token not in token_dict:
            token_dict[token] = len(token_dict)
    if not token_dict:
        raise ValueError(f"Vocabulary file {path} has no tokens.")
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


def is_cjk(char):
    """CJK Unified Ideographs (BERT's ranges): each becomes a token of its own."""
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F
            or 0x2B820 <= code <= 0x2CEAF or 0xF900 <= code <= 0xFAFF
            or 0x2F800 <= code <= 0x2FA1F)


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


def is_whitespace(char):
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char):
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


class Tokenizer:
    """BERT tokenizer from a `{token: id}` dict or a `vocab.txt` path.

    Example:
    ```python
    tokenizer = Tokenizer("vocab.txt", do_lower_case=True)
    token_ids, segment_ids = tokenizer.encode("question", "passage", maxlen=128)
    tokenizer.decode(token_ids)
    ```
    """

    def __init__(self, token_dict, do_lower_case=True, fast=False):
        if isinstance(token_dict, (str, os.PathLike)):
            token_dict = load_vocab(token_dict)
        if not isinstance(token_dict, dict):
            raise TypeError(f"`token_dict` must be a {{token: id}} dict or a vocab.txt path; "
                            f"received {type(token_dict).__name__}.")
        if not token_dict:
            raise ValueError("`token_dict` is empty.")
        self.token_dict = dict(token_dict)
        self.id_to_token = {index: token for token, index in self.token_dict.items()}
        if len(self.id_to_token) != len(self.token_dict):
            shared = collections.Counter(self.token_dict.values())
            example = next(index for index, count in shared.items() if count > 1)
            raise ValueError(f"`token_dict` maps several tokens to one id, e.g. "
                             f"{[t for t, i in self.token_dict.items() if i == example]} -> "
                             f"{example}; ids must be unique.")
        self.do_lower_case = do_lower_case
        for token in RESERVED_TOKENS:
            setattr(self, f"_token_{token[1:-1].lower()}_id", self.token_dict.get(token))
        # bert4keras's names: the start and end of every encoded text.
        self._token_start, self._token_end = "[CLS]", "[SEP]"
        self._token_start_id, self._token_end_id = self._token_cls_id, self._token_sep_id
        specials = [token for token in RESERVED_TOKENS if token in self.token_dict]
        self._special_pattern = re.compile(
            "(" + "|".join(re.escape(token) for token in specials) + ")")
        self._fast = self._fast_backend() if fast else None

    @property
    def vocab_size(self):
        return len(self.token_dict)

    # Text -> tokens.
    def tokenize(self, text, maxlen=None):
        """`[CLS] tokens [SEP]`, truncated (before the final [SEP]) to at most `maxlen`."""
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a string; received {type(text).__name__}.")
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen < 2):
            raise ValueError(f"`maxlen` must be an integer >= 2 ([CLS] and [SEP]); received "
                             f"{maxlen!r}.")
        missing = [t for t in ("[CLS]", "[SEP]") if t not in self.token_dict]
        if missing:
            raise ValueError(f"The vocabulary lacks {missing}, which every encoded text "
                             f"starts or ends with.")
        tokens = ["[CLS]", *self._tokenize(text), "[SEP]"]
        if maxlen is not None:
            truncate(tokens, maxlen)
        return tokens

    def _tokenize(self, text):
        tokens = []
        # Odd parts are special tokens written in the text.
        for index, part in enumerate(self._special_pattern.split(text)):
            if index % 2:
                tokens.append(part)
            elif self._fast is not None:
                tokens += self._fast.encode(part, add_special_tokens=False).tokens
            else:
                for word in self._basic_words(part):
                    tokens.extend(self._word_pieces(word))
        return tokens

    def _basic_words(self, text):
        spaced = []
        for char in text:
            if char in ("\x00", "\ufffd") or is_control(char):
                continue
            if is_whitespace(char):
                spaced.append(" ")
            elif is_cjk(char):
                spaced.append(f" {char} ")
            else:
                spaced.append(char)
        words = []
        for word in "".join(spaced).split():
            if self.do_lower_case:
                word = lower_case(word)
            piece = ""
            for char in word:
                if is_punctuation(char):
                    words += [piece, char] if piece else [char]
                    piece = ""
                else:
                    piece += char
            if piece:
                words.append(piece)
        return [word for part in words for word in part.split()]

    def _word_pieces(self, word):
        if len(word) > MAX_WORD_CHARS:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.token_dict:
                    break
            else:
                return ["[UNK]"]
            pieces.append(piece)
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

    def tokens_to_ids(self, tokens):
        return [self.token_to_id(token) for token in tokens]

    def ids_to_tokens(self, ids):
        try:
            return [self.id_to_token[int(index)] for index in ids]
        except KeyError as error:
            raise ValueError(f"Token id {error.args[0]} is not in the vocabulary (ids "
                             f"{min(self.id_to_token)} to {max(self.id_to_token)}).") from None

    def encode(self, first_text, second_text=None, maxlen=None, pattern="S*E*E",
               truncate_from="right"):
        """(token_ids, segment_ids) of `[CLS] first [SEP] second [SEP]` (`pattern='S*E*E'`)
        or `[CLS] first [SEP] [CLS] second [SEP]` (`'S*ES*E'`), as bert4keras.

        Texts may also be given as token lists (with their `[CLS]` and `[SEP]`). With `maxlen`,
        one token at a time is removed from the longer text (the second counted with its
        `[CLS]`, as bert4keras does), at its end before `[SEP]` (`truncate_from='right'`),
        after `[CLS]` (`'left'`), or at the index `truncate_from`.
        """
        if pattern not in ("S*E*E", "S*ES*E"):
            raise ValueError(f"`pattern` must be 'S*E*E' or 'S*ES*E'; received {pattern!r}.")
        index = {"right": -2, "left": 1}.get(truncate_from, truncate_from)
        if not isinstance(index, int):
            raise ValueError("`truncate_from` must be 'right', 'left' or an index; received "
                             f"{truncate_from!r}.")
        first = self._tokens_of(first_text, "first_text")
        second = [] if second_text is None else self._tokens_of(second_text, "second_text")
        # [CLS] [SEP], then the second text's [SEP] (and [CLS] with 'S*ES*E').
        shortest = 2 + (bool(second) and (1 if pattern == "S*E*E" else 2))
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen < shortest):
            raise ValueError(f"`maxlen` must be an integer >= {shortest} (the special tokens "
                             f"of pattern {pattern!r}); received {maxlen!r}.")
        if maxlen is not None:
            # Both texts keep their [CLS] while truncating; 'S*E*E' drops the second's after.
            truncate_sequences(maxlen + (pattern == "S*E*E" and bool(second)), index, first,
                               second)
        if pattern == "S*E*E":
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

    def decode(self, ids, tokens=None):
        """Readable text, as bert4keras writes it: special tokens dropped, '##' pieces
        joined, CJK characters without spaces, a space after punctuation except CJK
        punctuation and opening brackets/operators, English contractions and decimals
        rejoined. `tokens` may be given instead of `ids`."""
        text = ""
        for token in tokens if tokens is not None else self.ids_to_tokens(ids):
            if token in RESERVED_TOKENS or not token:
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
        """For each token, the indices of the characters of `text` it came from ([] for special
        tokens and [UNK])."""
        normalized, origin = "", []
        for index, char in enumerate(text):
            if self.do_lower_case:
                char = lower_case(char)
            char = "".join(c for c in char if c not in ("\x00", "\ufffd") and not is_control(c))
            normalized += char
            origin.extend([index] * len(char))
        mapping, offset = [], 0
        for token in tokens:
            if token in RESERVED_TOKENS:
                mapping.append([])
                continue
            piece = token[2:] if token.startswith("##") else token
            start = normalized.find(piece, offset)
            if start < 0:
                raise ValueError(f"Token {token!r} is not found in `text` after character "
                                 f"{offset}; `tokens` must come from this text.")
            end = start + len(piece)
            mapping.append(origin[start:end])
            offset = end
        return mapping


def lower_case(text):
    """Accents stripped (NFD, marks dropped), then each character lower-cased on its own, as
    the reference does (so a word-final Greek sigma stays 'σ')."""
    stripped = "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")
    return "".join(c.lower() for c in stripped)


def truncate(tokens, maxlen):
    """Removes tokens before the final one ([SEP]) until at most `maxlen` remain."""
    while len(tokens) > maxlen:
        tokens.pop(-2)


def truncate_sequences(maxlen, indices, *sequences):
    """Removes one item at a time from the longest sequence (the first of equals), at its
    index in `indices` (one int for all), until the total length is at most `maxlen`;
    returns the non-empty sequences, shortened in place (bert4keras's `truncate_sequences`)."""
    sequences = [sequence for sequence in sequences if sequence]
    if isinstance(indices, int):
        indices = [indices] * len(sequences)
    while sum(map(len, sequences)) > maxlen:
        longest = max(range(len(sequences)), key=lambda i: (len(sequences[i]), -i))
        sequences[longest].pop(indices[longest])
    return sequences
