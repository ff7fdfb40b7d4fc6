"""`TransformerConfig`: a model config with typed, checked entries, read from one of three
formats.

Formats (`FORMATS`), told apart by `detect_format` or named by `load_config(format=...)`:
- 'bert': BERT-style keys (`bert_config.json`; Hugging Face's config.json of BERT, ALBERT,
  ELECTRA, RoFormer), read as they are, except bert4keras's own `dropout_rate` and
  `attention_dropout_rate`, which are renamed;
- 'gpt2': Hugging Face GPT-2's config.json (`n_embd`, `n_layer`, ...), renamed;
- 't5': Hugging Face T5's config.json (`d_model`, `d_kv`, `feed_forward_proj`, ...), renamed.
  It also records that checkpoint's conventions: no position bias in cross-attention
  (`cross_position_bias`) and whether the decoder output is scaled by `d_model ** -0.5`
  (`scale_decoder_outputs`, or `tie_word_embeddings` in configs older than transformers 5:
  false for T5.1.1).

Every key that changes what a family computes is a typed field: besides the sizes, NEZHA's
`max_relative_position`, RoFormer's `rotary_value` (Hugging Face's), T5's
`relative_attention_num_buckets`, `relative_attention_max_distance` and `num_decoder_layers`.
Keys of known formats whose value asks for something no family here computes
(`UNSUPPORTED_VALUES`, e.g. `position_embedding_type: relative_key`, and Hugging Face
RoBERTa's `model_type`) are refused by name, as is a value of the wrong type or range. Other
keys (`architectures`, `use_cache`, ...) are kept as they are in `extra`. Token id 0 is the
padding of every family, as in bert4keras.

A `TransformerConfig` is also a read-only mapping of all its entries (`config["hidden_size"]`,
`config.get(...)`, `dict(config)`), so builders read it as bert4keras read its dict.
"""
import dataclasses
import json
import os
import types
from collections.abc import Mapping

from bert4keras_ext import arguments

# Integer config keys and their smallest valid value (None allowed where the default is None).
SIZE_KEYS = {"vocab_size": 1, "hidden_size": 1, "num_hidden_layers": 1,
             "num_attention_heads": 1, "intermediate_size": 1, "max_position_embeddings": 1,
             "type_vocab_size": 0, "embedding_size": 1, "attention_head_size": 1,
             "max_relative_position": 1, "relative_attention_num_buckets": 1,
             "relative_attention_max_distance": 1, "num_decoder_layers": 1}
# Real config keys and their bounds (a dropout rate may also be None: no dropout).
REAL_KEYS = {"hidden_dropout_prob": dict(minimum=0.0, maximum=1.0),
             "attention_probs_dropout_prob": dict(minimum=0.0, maximum=1.0),
             "layer_norm_eps": dict(above=0.0), "initializer_range": dict(minimum=0.0)}
# Flags (T5's two conventions are set by `read_t5` for Hugging Face files).
FLAG_KEYS = ("rotary_value", "cross_position_bias", "scale_decoder_outputs")
# Keys of known config formats whose other values would change what the model computes in a
# way no family here offers: {key: (the value our models compute, what another value means)}.
UNSUPPORTED_VALUES = {
    "position_embedding_type": ("absolute", "Hugging Face's relative position embeddings "
                                            "('relative_key', 'relative_key_query')"),
    "num_hidden_groups": (1, "ALBERT with several groups of shared layers"),
    "inner_group_num": (1, "ALBERT with several layers per group"),
    "ln_type": ("postln", "albert_zh's pre-LayerNorm blocks"),
    "add_cross_attention": (False, "cross-attention inside the blocks"),
    "scale_attn_weights": (True, "GPT-2 without the 1/sqrt(head size) attention scale"),
    "scale_attn_by_inverse_layer_idx": (False, "GPT-2 attention scaled by 1/(layer + 1)"),
    "tie_word_embeddings": (True, "an output head of its own (the MLM / LM head here is the "
                                  "token embedding)"),
}
# Hugging Face model types whose inputs mean something else than in every family here.
UNSUPPORTED_MODEL_TYPES = {
    model_type: "Hugging Face RoBERTa pads with id 1 and numbers positions from 2; "
                "model='roberta' is RoBERTa in BERT's format (bert4keras's), whose padding id "
                "is 0 and whose positions start at 0"
    for model_type in ("roberta", "xlm-roberta", "camembert")
}


@dataclasses.dataclass(frozen=True, eq=False)
class TransformerConfig(Mapping):
    """A checked model config: the keys every family reads as typed fields, other keys in
    `extra`. Made by `load_config` (from a dict or a JSON file of any format) or
    `TransformerConfig.from_entries` (from our key names); `with_values` gives a changed copy
    and `to_dict` the JSON-ready dict. Equal to any mapping with the same entries."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str | list = "gelu"  # a list is a gated unit: [activation, gate's activation]
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_prob: float | None = 0.1
    attention_probs_dropout_prob: float | None = 0.1
    embedding_size: int | None = None  # None: hidden_size
    attention_head_size: int | None = None  # None: hidden_size // num_attention_heads
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    # NEZHA: relative distances are clipped to +-max_relative_position (its models: 64).
    max_relative_position: int = 64
    # RoFormer (Hugging Face's key): values are rotated by their positions too.
    rotary_value: bool = False
    # T5: the relative bias's buckets and the distance where the last one starts, and the
    # decoder's number of blocks (None: `num_hidden_layers`, as the encoder).
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    num_decoder_layers: int | None = None
    # T5's decoder conventions; bert4keras's are the defaults, Hugging Face T5.1.1 sets both
    # false (`read_t5`). T5 builders' arguments `cross_position_bias`, `scale_logits` win.
    cross_position_bias: bool = True
    scale_decoder_outputs: bool = True
    extra: Mapping = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        typed = sorted(set(self.extra) & set(KEYS))
        if typed:
            raise ValueError(f"`extra` must hold only keys without a field; received {typed}.")
        # A read-only view, so the config stays as checked.
        self._set("extra", types.MappingProxyType(dict(self.extra)))
        self._refuse_unsupported()
        # The checks return plain Python values (a NumPy integer becomes an `int`).
        for key, smallest in SIZE_KEYS.items():
            if getattr(self, key) is None and key in DEFAULTS and DEFAULTS[key] is None:
                continue
            self._set(key, arguments.integer(getattr(self, key), key, minimum=smallest))
        for key, bounds in REAL_KEYS.items():
            if getattr(self, key) is not None:
                self._set(key, arguments.real(getattr(self, key), key, **bounds))
        for key in FLAG_KEYS:
            self._set(key, arguments.boolean(getattr(self, key), key))
        if not self.attention_head_size and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by "
                f"`num_attention_heads` ({self.num_attention_heads}), or "
                "`attention_head_size` must be given."
            )

    def _set(self, key, value):
        object.__setattr__(self, key, value)

    def _refuse_unsupported(self):
        """Errors for keys of known formats set to values that no family here computes."""
        model_type = self.extra.get("model_type")
        if model_type in UNSUPPORTED_MODEL_TYPES:
            raise ValueError(f"Config key `model_type` is {model_type!r}, which is not "
                             f"supported: {UNSUPPORTED_MODEL_TYPES[model_type]}.")
        for key, (computed, meaning) in UNSUPPORTED_VALUES.items():
            if key in self.extra and self.extra[key] != computed:
                raise ValueError(f"Config key `{key}` must be {computed!r} (another value means "
                                 f"{meaning}, which is not supported); received "
                                 f"{self.extra[key]!r}.")

    @classmethod
    def from_entries(cls, entries):
        """The config of `entries` in our key names: typed keys to fields, others to `extra`."""
        missing = [key for key in REQUIRED_KEYS if key not in entries]
        if missing:
            raise ValueError(f"The model config lacks required keys {missing}.")
        typed = {key: value for key, value in entries.items() if key in KEYS}
        extra = {key: value for key, value in entries.items() if key not in KEYS}
        return cls(**typed, extra=extra)

    def with_values(self, **changes):
        """A copy with `changes` (our key names), checked as a new config is."""
        return self.from_entries({**self, **changes})

    def to_dict(self):
        """Every entry as a plain dict, ready for `json.dump` (a 'bert'-format config)."""
        return dict(self)

    # The mapping: typed fields first, then `extra`.
    def __getitem__(self, key):
        return getattr(self, key) if key in KEYS else self.extra[key]

    def __iter__(self):
        yield from KEYS
        yield from self.extra

    def __len__(self):
        return len(KEYS) + len(self.extra)

    def __reduce__(self):
        # For pickle and `copy.deepcopy`, which cannot copy the mapping proxy of `extra`.
        return type(self).from_entries, (self.to_dict(),)


# The typed keys, the required ones, and the defaults of the others.
_FIELDS = [field for field in dataclasses.fields(TransformerConfig) if field.name != "extra"]
KEYS = tuple(field.name for field in _FIELDS)
REQUIRED_KEYS = tuple(field.name for field in _FIELDS if field.default is dataclasses.MISSING)
DEFAULTS = {field.name: field.default for field in _FIELDS
            if field.default is not dataclasses.MISSING}


# Hugging Face GPT-2 config.json keys -> ours.
GPT2_KEYS = {"n_embd": "hidden_size", "n_layer": "num_hidden_layers",
             "n_head": "num_attention_heads", "n_positions": "max_position_embeddings",
             "n_inner": "intermediate_size", "activation_function": "hidden_act",
             "layer_norm_epsilon": "layer_norm_eps", "resid_pdrop": "hidden_dropout_prob",
             "attn_pdrop": "attention_probs_dropout_prob"}
# Hugging Face T5 config.json keys -> ours.
T5_KEYS = {"d_model": "hidden_size", "d_kv": "attention_head_size", "d_ff": "intermediate_size",
           "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
           "dropout_rate": "hidden_dropout_prob", "layer_norm_epsilon": "layer_norm_eps"}
# Hugging Face's `feed_forward_proj` -> our `hidden_act` (a list is a gated unit).
T5_FEED_FORWARDS = {"relu": "relu", "gelu": "gelu", "gated-gelu": ["gelu_new", "linear"],
                    "gated-silu": ["silu", "linear"], "gated-relu": ["relu", "linear"]}
# bert4keras's own names for the dropout rates.
BERT4KERAS_KEYS = {"dropout_rate": "hidden_dropout_prob",
                   "attention_dropout_rate": "attention_probs_dropout_prob"}


def read_bert(entries):
    """A 'bert'-format config's entries in our names (bert4keras's dropout names renamed)."""
    return _rename(entries, BERT4KERAS_KEYS)


def read_gpt2(entries):
    """A Hugging Face GPT-2 config's entries in our names; `n_inner` null means
    4 * `n_embd`, and GPT-2 has no segment embeddings."""
    entries = _rename(entries, GPT2_KEYS)
    if entries.get("intermediate_size") is None:
        entries["intermediate_size"] = 4 * entries["hidden_size"]
    entries.setdefault("type_vocab_size", 0)
    return read_bert(entries)


def read_t5(entries):
    """A Hugging Face T5 config's entries in our names, with its decoder conventions."""
    entries = _rename(entries, T5_KEYS)
    projection = entries.pop("feed_forward_proj", "relu")
    if projection not in T5_FEED_FORWARDS:
        raise ValueError(f"`feed_forward_proj` must be one of {sorted(T5_FEED_FORWARDS)}; "
                         f"received {projection!r}.")
    entries["hidden_act"] = T5_FEED_FORWARDS[projection]
    entries.setdefault("attention_probs_dropout_prob", entries.get("hidden_dropout_prob"))
    entries.setdefault("cross_position_bias", False)
    # Older configs say it as `tie_word_embeddings` (false for T5.1.1).
    tied = entries.pop("tie_word_embeddings", True)
    entries.setdefault("scale_decoder_outputs", tied)
    return read_bert(entries)


READERS = {"bert": read_bert, "gpt2": read_gpt2, "t5": read_t5}
FORMATS = tuple(READERS)


def detect_format(entries):
    """The format of a config's keys: 'gpt2' with GPT-2's `n_embd`, 't5' with T5's `d_model`,
    else 'bert'."""
    if "n_embd" in entries:
        return "gpt2"
    if "d_model" in entries:
        return "t5"
    return "bert"


def load_config(config, format=None, formats=FORMATS):
    """A `TransformerConfig` from a dict or a JSON file path (a `TransformerConfig` is returned
    as it is), with defaults filled in and checked; see the module docstring.

    Args:
        config: dict, JSON path or `TransformerConfig`.
        format: one of `FORMATS`, or None to tell it from the keys (`detect_format`).
        formats: the formats accepted (a family's `config_formats`).
    """
    if isinstance(config, TransformerConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        if not os.path.exists(config):
            raise FileNotFoundError(f"`config` file not found: {config}")
        with open(config, encoding="utf-8") as file:
            try:
                config = json.load(file)
            except json.JSONDecodeError as error:
                raise ValueError(f"`config` file {config} is not valid JSON: {error}.") from None
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a dict or a JSON path; received {type(config)}.")
    format = detect_format(config) if format is None else format
    if format not in READERS:
        raise ValueError(f"`format` must be one of {FORMATS}; received {format!r}.")
    if format not in formats:
        raise ValueError(f"`config` must be in one of the formats {formats} here; received a "
                         f"{format!r} config.")
    return TransformerConfig.from_entries(READERS[format](dict(config)))


def _rename(entries, names):
    return {names.get(key, key): value for key, value in entries.items()}
