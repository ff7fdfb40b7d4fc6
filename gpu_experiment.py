"""One-off: where attention dropout's cost goes and what the scored-position head saves."""
import collections, statistics, sys, time
sys.path.insert(0, "benchmarks")
import keras
import numpy as np
import gpu_train_step as g
from bert4keras_ext.losses import Seq2SeqCrossEntropy
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.models.bert import mlm_head_logits

T0 = time.time()
small = "--small" in sys.argv
size = g.SIZES["small" if small else "base"]
policy = "float32" if small else "mixed_bfloat16"
keras.config.set_dtype_policy(policy)
steps, spe, rounds = (10, 5, 2) if small else (20, 10, 3)


def scored_head(dropout):
    tokens, segments = g.make_batches(size, steps)
    config = dict(vocab_size=size["vocab"], hidden_size=size["hidden"],
                  num_hidden_layers=size["layers"], num_attention_heads=size["heads"],
                  intermediate_size=size["intermediate"], max_position_embeddings=size["length"],
                  hidden_act="gelu_tanh", attention_probs_dropout_prob=dropout)
    full = build_transformer_model(config, application="unilm", with_mlm="linear")
    hidden = full.get_layer("MLM-Dense").input
    source = size["length"] - size["target"]
    logits = mlm_head_logits(full, hidden[:, source - 1:-1])
    model = keras.Model(full.inputs, logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), steps_per_execution=spe,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, [tokens, segments], tokens[:, source:], None


class Flag:
    def __init__(self, value): self.value = value
    def __enter__(self):
        import jax
        self.old = jax.config.jax_threefry_partitionable
        jax.config.update("jax_threefry_partitionable", self.value)
    def __exit__(self, *a):
        import jax
        jax.config.update("jax_threefry_partitionable", self.old)


P, NP = Flag(True), Flag(False)
flops_full, flops_hub = g.forward_flops(size, True), g.forward_flops(size, False)
head_part = (2 * size["hidden"] * size["vocab"] + 2 * size["hidden"] ** 2) * size["batch"] * (size["length"] - size["target"])
cands = {
    "keras-hub": (g.keras_hub_baseline(size, steps, spe), flops_hub, P),
    "keras-hub, threefry non-partitionable": (g.keras_hub_baseline(size, steps, spe), flops_hub, NP),
    "ours 0.1": (g.ours(size, steps, 0.1, spe), flops_full, P),
    "ours 0.1, non-partitionable": (g.ours(size, steps, 0.1, spe), flops_full, NP),
    "ours 0.1, scored head": (scored_head(0.1), flops_full - head_part, P),
    "ours 0.1, scored head, non-partitionable": (scored_head(0.1), flops_full - head_part, NP),
    "ours 0": (g.ours(size, steps, 0.0, spe), flops_full, P),
    "ours 0, scored head": (scored_head(0.0), flops_full - head_part, P),
}
times = collections.defaultdict(list)
for r in range(rounds + 1):
    for name, (setup, _, ctx) in cands.items():
        with ctx:
            s = g.seconds_per_step(setup, size, steps)
        if r:
            times[name].append(s)
        print(f"[{time.time() - T0:6.1f}s] round {r} {name}: {s * 1e3:.1f} ms/step", flush=True)
peak = g.matmul_flops_per_second(size, keras.DTypePolicy(policy).compute_dtype)
tokens = size["batch"] * size["length"]
print(f"devices {keras.distribution.list_devices()}; policy {policy}; matmul chain {peak / 1e12:.1f} TFLOP/s")
base = statistics.median(times["keras-hub"])
for name, (_, flops, _) in cands.items():
    s = statistics.median(times[name])
    print(f"{name:<42}{s * 1e3:8.1f} ms{tokens / s:10.0f} tok/s  MFU {3 * flops / s / peak:6.1%}  "
          f"vs keras-hub {base / s:.2f}x  rounds {[round(t * 1e3, 1) for t in times[name]]}", flush=True)
print(f"total {time.time() - T0:.0f}s")
