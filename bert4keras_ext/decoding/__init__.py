"""Autoregressive decoding.

- `search`: bert4keras's `AutoRegressiveDecoder` (beam search and sampling on the host around a
  user-written `predict`) and its NumPy helpers.
- `cached_model`: `CachedModel`, a decoder model's prefill and one-token step against key/value
  caches, as pure tensor functions.
- `cached`: `CachedGenerator`, the search API on a `CachedModel` (one compiled step per token).
- `compiled`: `CompiledGenerator`, beam search and sampling on a `CachedModel` as one compiled
  program per call (prefill, steps, beam bookkeeping and stopping in one loop).
"""
from bert4keras_ext.decoding.cached import CachedGenerator
from bert4keras_ext.decoding.cached_model import CachedModel
from bert4keras_ext.decoding.compiled import CompiledGenerator
from bert4keras_ext.decoding.search import (
    AutoRegressiveDecoder,
    check_temperature,
    distribution,
    filter_probas,
    sample_tokens,
    softmax,
    top_indices,
)

__all__ = ["AutoRegressiveDecoder", "CachedGenerator", "CachedModel", "CompiledGenerator",
           "check_temperature",
           "distribution", "filter_probas", "sample_tokens", "softmax", "top_indices"]
