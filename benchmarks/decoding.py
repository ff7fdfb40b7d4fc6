"""Milliseconds per generated token: cached beam search against the uncached decoder.

A model of 4 layers, hidden 256, 4 heads, vocab 8000: BERT as UNILM (default), NEZHA as UNILM
(relative positions), GPT-2 (causal LM; the source is its prompt) or T5.1.1 (4 encoder and 4
decoder layers; the source is the encoder's input); source of 192 tokens, beam 3, 64 new
tokens (`minlen = maxlen = 64`, so no early stop). The uncached path is an
`AutoRegressiveDecoder` whose `predict` re-runs the whole model on source + output each step
(what bert4keras does; for T5, as bert4keras's T5 examples, the source is encoded once and the
decoder re-runs on the output); the cached path is `CachedGenerator`. Same model, same run;
median of repetitions; both must return the same tokens.

    python benchmarks/decoding.py [--model bert|nezha|gpt2|t5] [--repeats 3]
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bert4keras_ext.decoding import AutoRegressiveDecoder, CachedGenerator  # noqa: E402
from bert4keras_ext.models import build_transformer_model  # noqa: E402
from common import median_seconds  # noqa: E402

SOURCE, NEW, BEAM = 192, 64, 3


class Uncached(AutoRegressiveDecoder):
    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    @AutoRegressiveDecoder.wraps(default_rtype="logits")
    def predict(self, inputs, output_ids, states):
        if inputs[0].ndim == 3:  # T5: the encoder's output, then the decoder on the output
            logits = np.array(self.model.predict_on_batch([inputs[0], output_ids])[:, -1],
                              dtype="float64")
            logits[:, 0] = -np.inf
            return logits
        ids = [np.concatenate([inputs[0], output_ids], axis=1)]
        if len(inputs) == 2:  # UNILM: the output is segment 1
            ids.append(np.concatenate([inputs[1], np.ones_like(output_ids)], axis=1))
        logits = np.array(self.model.predict_on_batch(ids)[:, -1], dtype="float64")
        logits[:, 0] = -np.inf  # as CachedGenerator: never the padding id
        return logits


def main():
    parser = argparse.ArgumentParser(description="cached vs uncached decoding")
    parser.add_argument("--model", default="bert", choices=("bert", "nezha", "gpt2", "t5"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    config = dict(vocab_size=8000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                  intermediate_size=1024, max_position_embeddings=SOURCE + NEW)
    if args.model == "gpt2":
        model = build_transformer_model(config, model="gpt2", final_activation="linear")
    elif args.model == "t5":
        model = build_transformer_model({**config, "hidden_act": ["gelu", "linear"]},
                                        model="t5.1.1", with_lm="linear",
                                        return_keras_model=False)
    else:
        model = build_transformer_model(config, model=args.model, application="unilm",
                                        with_mlm="linear")
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, 8000, size=SOURCE)
    token_ids[0], token_ids[-1] = 2, 3
    inputs = [token_ids] if args.model == "gpt2" else [token_ids, np.zeros(SOURCE, "int64")]
    settings = dict(end_id=3, maxlen=NEW, minlen=NEW)
    cached = CachedGenerator(model, **settings)
    uncached = Uncached(model, start_id=None, **settings)
    if args.model == "t5":
        inputs = [token_ids]
        cached = CachedGenerator(model, start_id=0, **settings)
        uncached = Uncached(model.decoder, start_id=0, **settings)
        encoded = model.encoder.predict_on_batch(token_ids[None])[0]
    uncached_inputs = [encoded] if args.model == "t5" else inputs
    # The first run of each compiles / warms up and gives the outputs to compare.
    cached_ids = cached.beam_search(inputs, BEAM)
    uncached_ids = uncached.beam_search(uncached_inputs, BEAM)
    cached_seconds = median_seconds(lambda: cached.beam_search(inputs, BEAM), args.repeats, 0)
    uncached_seconds = median_seconds(lambda: uncached.beam_search(uncached_inputs, BEAM),
                                      args.repeats, 0)
    assert len(cached_ids) == NEW and np.array_equal(cached_ids, uncached_ids)
    layout = {"gpt2": "GPT-2 (causal LM)", "t5": "T5.1.1 (encoder-decoder)"}.get(
        args.model, f"{args.model} as UNILM")
    print(f"{layout}, 4 layers / hidden 256 / vocab 8000, source {SOURCE}, beam {BEAM}, "
          f"{NEW} new tokens; median of {args.repeats} runs; identical outputs")
    print(f"uncached AutoRegressiveDecoder: {uncached_seconds / NEW * 1e3:8.1f} ms/token")
    print(f"cached CachedGenerator:         {cached_seconds / NEW * 1e3:8.1f} ms/token")
    print(f"speed-up: {uncached_seconds / cached_seconds:.1f}x")


if __name__ == "__main__":
    main()
