"""Milliseconds per generated token: uncached, cached and compiled decoding, and keras-hub's
compiled GPT-2 samplers of the same size.

A model of 4 layers, hidden 256, 4 heads, vocab 8000: BERT as UNILM (default), NEZHA as UNILM
(relative positions), GPT-2 (causal LM; the source is its prompt) or T5.1.1 (4 encoder and 4
decoder layers; the source is the encoder's input); sources of 192 tokens, 64 new tokens
(`minlen = maxlen = 64`, so no early stop), for a batch of 1 and of 16 sources. Paths:

- uncached `AutoRegressiveDecoder` (batch 1 only): its `predict` re-runs the whole model on
  source + output each step (what bert4keras does; for T5, as bert4keras's T5 examples, the
  source is encoded once and the decoder re-runs on the output), beam 3;
- `CachedGenerator`, beam 3: one compiled step per token, the search on the host;
- `CompiledGenerator`, beam 3 and greedy: the whole search in one compiled program;
- keras-hub's `GPT2CausalLM.generate` with `GreedySampler` and `BeamSampler(num_beams=3)`,
  compiled by keras-hub, on a GPT-2 of the same size (whatever `--model`), its 192-token
  prompts padded to 256 with `stop_token_ids=None` (so also 64 new tokens).

ms/token = median seconds of a whole call (prefill included) / 64, the paths timed in turn
(`interleaved_medians`); uncached, cached and compiled beam search must return the same tokens,
as must cached and compiled greedy search.

    python benchmarks/decoding.py [--model bert|nezha|gpt2|t5] [--repeats 3] [--batch 1 16]
    KERAS_BACKEND=jax python benchmarks/decoding.py ...
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from bert4keras_ext.decoding import (  # noqa: E402
    AutoRegressiveDecoder,
    CachedGenerator,
    CompiledGenerator,
)
from bert4keras_ext.models import build_transformer_model  # noqa: E402
from common import interleaved_medians  # noqa: E402

SOURCE, NEW, BEAM, VOCAB = 192, 64, 3, 8000


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


def build(kind):
    config = dict(vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                  intermediate_size=1024, max_position_embeddings=SOURCE + NEW)
    if kind == "gpt2":
        return build_transformer_model(config, model="gpt2", final_activation="linear")
    if kind == "t5":
        # T5's default initialization gives near-uniform logits (top two within 2e-5 of each
        # other), where float32 rounding alone may change a pick; wider weights separate them.
        return build_transformer_model({**config, "hidden_act": ["gelu", "linear"],
                                        "initializer_range": 0.5},
                                       model="t5.1.1", with_lm="linear", return_keras_model=False)
    return build_transformer_model(config, model=kind, application="unilm", with_mlm="linear")


def keras_hub_generators():
    """keras-hub's greedy and beam-3 GPT-2 generation, one `GPT2CausalLM` per sampler (each
    keeps its own compiled function), on one backbone of this benchmark's size."""
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024,
        max_sequence_length=SOURCE + NEW)
    generators = {}
    for name, sampler in (("greedy", keras_hub.samplers.GreedySampler()),
                          ("beam", keras_hub.samplers.BeamSampler(num_beams=BEAM))):
        causal_lm = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
        causal_lm.compile(sampler=sampler)
        generators[name] = causal_lm
    return generators


def main():
    parser = argparse.ArgumentParser(description="uncached, cached and compiled decoding")
    parser.add_argument("--model", default="bert", choices=("bert", "nezha", "gpt2", "t5"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = build(args.model)
    hub = keras_hub_generators()
    settings = dict(end_id=3, maxlen=NEW, minlen=NEW)
    start = dict(start_id=0) if args.model == "t5" else {}
    cached = CachedGenerator(model, **settings, **start)
    compiled = CompiledGenerator(model, **settings, **start)
    layout = {"gpt2": "GPT-2 (causal LM)", "t5": "T5.1.1 (encoder-decoder)"}.get(
        args.model, f"{args.model} as UNILM")
    print(f"{layout}, 4 layers / hidden 256 / vocab {VOCAB}, source {SOURCE}, {NEW} new "
          f"tokens, backend {keras.backend.backend()}; median of {args.repeats} runs; "
          "ms/token = seconds per call / 64")
    rng = np.random.default_rng(0)
    for batch in args.batch:
        token_ids = rng.integers(5, VOCAB, size=(batch, SOURCE))
        token_ids[:, 0], token_ids[:, -1] = 2, 3
        seconds = measure(args, model, hub, cached, compiled, settings, token_ids)
        print(f"batch {batch}: identical outputs (uncached, cached and compiled)")
        for name, value in seconds.items():
            print(f"  {name:38s} {value / NEW * 1e3:8.2f} ms/token")


def measure(args, model, hub, cached, compiled, settings, token_ids):
    """Median seconds per call of each path on the sources `token_ids`, after checking that
    the paths agree."""
    batch = len(token_ids)
    inputs = [token_ids] if args.model in ("gpt2", "t5") else [
        token_ids, np.zeros_like(token_ids)]
    hub_inputs = {"token_ids": np.pad(token_ids, [(0, 0), (0, NEW)]).astype("int32"),
                  "padding_mask": np.arange(SOURCE + NEW)[None].repeat(batch, 0) < SOURCE}
    paths = {
        "cached CachedGenerator beam 3": lambda: cached.batch_beam_search(inputs, BEAM),
        "compiled CompiledGenerator beam 3": lambda: compiled.batch_beam_search(inputs, BEAM),
        "compiled CompiledGenerator greedy": lambda: compiled.batch_beam_search(inputs, 1),
        "keras-hub GPT-2 greedy": lambda: hub["greedy"].generate(hub_inputs,
                                                                 stop_token_ids=None),
        "keras-hub GPT-2 beam 3": lambda: hub["beam"].generate(hub_inputs, stop_token_ids=None),
    }
    # The first call of each compiles and gives the outputs to compare.
    outputs = {name: path() for name, path in paths.items()}
    beams = outputs["cached CachedGenerator beam 3"]
    assert all(len(a) == NEW and np.array_equal(a, b)
               for a, b in zip(beams, outputs["compiled CompiledGenerator beam 3"]))
    assert all(np.array_equal(a, b) for a, b in zip(cached.batch_beam_search(inputs, 1),
                                                    outputs["compiled CompiledGenerator greedy"]))
    assert all(np.asarray(outputs[name]["padding_mask"]).all() for name in paths
               if name.startswith("keras-hub"))  # no early stop: 64 new tokens
    if batch == 1:
        uncached = Uncached(model.decoder if args.model == "t5" else model,
                            start_id=0 if args.model == "t5" else None, **settings)
        uncached_inputs = ([model.encoder.predict_on_batch(token_ids)[0]]
                           if args.model == "t5" else [x[0] for x in inputs])
        assert np.array_equal(uncached.beam_search(uncached_inputs, BEAM), beams[0])
        paths = {"uncached AutoRegressiveDecoder beam 3":
                 lambda: uncached.beam_search(uncached_inputs, BEAM), **paths}
    return interleaved_medians(paths, args.repeats, warmup=0)

if __name__ == "__main__":
    main()
