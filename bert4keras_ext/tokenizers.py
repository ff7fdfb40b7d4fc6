"""BERT's tokenizer (basic splitting + WordPiece) with bert4keras's API.

`Tokenizer.tokenize` gives exactly the tokens of Hugging Face's `BertTokenizer` for the same
vocabulary (checked on a varied corpus in the tests): text cleaning (control characters
dropped, whitespace unified), one token per CJK character, lower-casing with accent
stripping, punctuation split off, then greedy longest-match WordPiece with '##' continuations
and `[UNK]` for words over 100 characters. Special tokens written inside the text (e.g.
'[MASK]') are split like any text; add their ids yourself.

With `fast=True` the same normalization runs in the `tokenizers` package (Rust), if installed.
"""
import os
import unicodedata

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_WORD_CHARS = 100


def load_vocab(path, encoding="utf-8", simplified=False, startswith=None):
    """Reads a `vocab.txt` (one token per line) into `{token: id}`.

    With `simplified=True` returns `(token_dict, keep_tokens)`: the tokens in `startswith`
    first, then every token except those of several characters that contain a CJK character or
    punctuation (bert4keras's reduction, which drops '[unused*]' and CJK words), renumbered;
    `keep_tokens` lists their original ids for `build_transformer_model(keep_tokens=...)`.
    """
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
        if not token_dict:
            raise ValueError("`token_dict` is empty.")
        self.token_dict = dict(token_dict)
        self.id_to_token = {index: token for token, index in self.token_dict.items()}
        self.do_lower_case = do_lower_case
        for token in SPECIAL:
            setattr(self, f"_token_{token[1:-1].lower()}_id", self.token_dict.get(token))
        self._fast = self._fast_backend() if fast else None

    @property
    def vocab_size(self):
        return len(self.token_dict)

    # Text -> tokens.
    def tokenize(self, text, maxlen=None):
        """`[CLS] tokens [SEP]`, truncated (before the final [SEP]) to at most `maxlen`."""
        tokens = ["[CLS]", *self._tokenize(text), "[SEP]"]
        if maxlen is not None:
            truncate(tokens, maxlen)
        return tokens

    def _tokenize(self, text):
        if self._fast is not None:
            return self._fast.encode(text, add_special_tokens=False).tokens
        tokens = []
        for word in self._basic_words(text):
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
        return self.token_dict.get(token, self._token_unk_id)

    def tokens_to_ids(self, tokens):
        return [self.token_to_id(token) for token in tokens]

    def ids_to_tokens(self, ids):
        return [self.id_to_token[int(index)] for index in ids]

    def encode(self, first_text, second_text=None, maxlen=None):
        """(token_ids, segment_ids) of `[CLS] first [SEP] (second [SEP])`.

        With `maxlen`, tokens are removed from the end of the longer text until the pair fits.
        """
        first = self.tokenize(first_text)
        second = self.tokenize(second_text)[1:] if second_text is not None else []
        if maxlen is not None:
            truncate_pair(first, second, maxlen)
        return (self.tokens_to_ids(first + second),
                [0] * len(first) + [1] * len(second))

    def decode(self, ids):
        """Readable text: special tokens dropped, '##' pieces joined, CJK characters written
        without spaces, punctuation attached to what precedes it."""
        text = ""
        for token in self.ids_to_tokens(ids):
            if token in SPECIAL:
                continue
            if token.startswith("##"):
                text += token[2:]
            elif len(token) == 1 and is_punctuation(token):
                text += token + " "
            elif is_cjk(token[0]) or (text and is_cjk(text[-1])):
                text += token
            else:
                text += " " + token
        return " ".join(text.split())

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
            if token in SPECIAL:
                mapping.append([])
                continue
            piece = token[2:] if token.startswith("##") else token
            start = normalized.index(piece, offset)
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


def truncate_pair(first, second, maxlen):
    while len(first) + len(second) > maxlen:
        longer = first if len(first) >= len(second) else second
        longer.pop(-2)
