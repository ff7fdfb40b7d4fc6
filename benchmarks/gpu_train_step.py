"""A BERT-base UNILM training step on an accelerator: bert4keras_ext against keras-hub, same run.

Model: 12 layers, hidden 768, 12 heads, intermediate 3072, vocab 21128; batch 32 x length 512
(384 source + 128 target), dropout 0.1, Adam, `fit` on fixed batches with the same
`steps_per_execution` for every model. Candidates:
- keras-hub `BertBackbone` with a Dense(vocab) output over the whole sequence (the baseline);
- bert4keras_ext UNILM with the MLM head, attention dropout 0.1 (attention probabilities are
  materialized, so it runs the explicit attention path);
- the same with attention dropout 0, which runs `keras.ops.dot_product_attention` (cuDNN's
  fused attention on JAX GPUs) with the UNILM mask;
- both again with the MLM head applied only to the 128 scored (target) positions
  (`model.lm_head`), which skips the vocabulary projection and its softmax on the source.
`--threefry-partitionable false` sets JAX's `jax_threefry_partitionable` for the whole run:
the partitionable generator (JAX's default) runs one threefry block per random element, the
other one per two, and the dropout masks' random bits are a large part of the step.
Each figure is the median over rounds of `fit` wall time / steps, after a warm-up round that
compiles. MFU counts the step's matmul FLOPs (3x forward, attention included) against a chain
of bf16 matmuls of the step's own shapes timed in the same run.

    KERAS_BACKEND=jax python benchmarks/gpu_train_step.py            # on a GPU
    KERAS_BACKEND=jax python benchmarks/gpu_train_step.py --small    # a CPU check of the script

It needs keras-hub for the baseline (`pip install -e '.[bench]'`) and no TensorFlow on JAX.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from bert4keras_ext.losses import Seq2SeqCrossEntropy, seq2seq_targets  # noqa: E402
from bert4keras_ext.models import build_transformer_model  # noqa: E402

SIZES = {
    "base": dict(layers=12, hidden=768, heads=12, intermediate=3072, vocab=21128, batch=32,
                 length=512, target=128),
    "small": dict(layers=2, hidden=128, heads=2, intermediate=512, vocab=2000, batch=4,
                  length=64, target=16),
}


def forward_flops(size, mlm_transform, head_positions=None):
    """Matmul FLOPs of one batch's forward pass (attention scores and weighted sums included),
    the output head on `head_positions` positions per row (default: all)."""
    h, length = size["hidden"], size["length"]
    per_token = size["layers"] * (2 * 4 * h * h + 2 * 2 * length * h
                                  + 2 * 2 * h * size["intermediate"])
    head = 2 * h * size["vocab"] + (2 * h * h if mlm_transform else 0)
    return (per_token * length + head * (head_positions or length)) * size["batch"]


def make_batches(size, steps):
    rng = np.random.default_rng(0)
    batch, length, source = size["batch"], size["length"], size["length"] - size["target"]
    tokens = rng.integers(5, size["vocab"], size=(batch, length)).astype("int32")
    tokens[:, 0], tokens[:, source - 1], tokens[:, -1] = 2, 3, 3
    segments = np.zeros_like(tokens)
    segments[:, source:] = 1
    return np.tile(tokens, (steps, 1)), np.tile(segments, (steps, 1))


def ours(size, steps, attention_dropout, steps_per_execution):
    tokens, segments = make_batches(size, steps)
    config = dict(vocab_size=size["vocab"], hidden_size=size["hidden"],
                  num_hidden_layers=size["layers"], num_attention_heads=size["heads"],
                  intermediate_size=size["intermediate"], max_position_embeddings=size["length"],
                  hidden_act="gelu_tanh", attention_probs_dropout_prob=attention_dropout)
    model = build_transformer_model(config, application="unilm", with_mlm="linear")
    model.compile(optimizer=keras.optimizers.Adam(1e-4), steps_per_execution=steps_per_execution,
                  loss=Seq2SeqCrossEntropy(from_logits=True))
    return model, [tokens, segments], np.asarray(seq2seq_targets(tokens, segments)), None


def ours_scored_head(size, steps, attention_dropout, steps_per_execution):
    """Ours with the MLM head only on the positions the loss scores (the fixed target here)."""
    full, x, _, _ = ours(size, steps, attention_dropout, steps_per_execution)
    source = size["length"] - size["target"]
    hidden = full.backbone.outputs[0]
    model = keras.Model(full.inputs, full.lm_head.logits(hidden[:, source - 1:-1]))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), steps_per_execution=steps_per_execution,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, x, x[0][:, source:], None


def keras_hub_baseline(size, steps, steps_per_execution):
    import keras_hub

    tokens, segments = make_batches(size, steps)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=size["vocab"], num_layers=size["layers"], num_heads=size["heads"],
        hidden_dim=size["hidden"], intermediate_dim=size["intermediate"],
        max_sequence_length=size["length"], dropout=0.1,
    )
    logits = keras.layers.Dense(size["vocab"])(backbone.output["sequence_output"])
    model = keras.Model(backbone.input, logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), steps_per_execution=steps_per_execution,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = {"token_ids": tokens, "segment_ids": segments, "padding_mask": tokens > 0}
    labels = np.roll(tokens, -1, axis=1)
    weights = np.roll(segments, -1, axis=1).astype("float32")
    return model, inputs, labels, weights


def seconds_per_step(setup, size, steps):
    model, x, y, weights = setup
    start = time.perf_counter()
    model.fit(x, y, sample_weight=weights, batch_size=size["batch"], epochs=1, verbose=0,
              shuffle=False)  # returns after the epoch's logs are fetched: the device is done
    return (time.perf_counter() - start) / steps


def compiled(function):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(function)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    return function


def matmul_flops_per_second(size, dtype, repeats=5, chain=10):
    """FLOP/s of `chain` pairs of matmuls [tokens, hidden] x [hidden, intermediate] x
    [intermediate, hidden] in one compiled call: the practical peak for the step's shapes."""
    tokens = size["batch"] * size["length"]
    h, inner = size["hidden"], size["intermediate"]
    x = ops.cast(keras.random.normal((tokens, h), seed=1), dtype)
    up = ops.cast(keras.random.normal((h, inner), seed=2) * 0.02, dtype)
    down = ops.cast(keras.random.normal((inner, h), seed=3) * 0.02, dtype)

    def matmuls(x, up, down):
        for _ in range(chain):
            x = ops.matmul(ops.matmul(x, up), down)
        return ops.sum(ops.cast(x, "float32"))

    function = compiled(matmuls)
    ops.convert_to_numpy(function(x, up, down))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ops.convert_to_numpy(function(x, up, down))
        times.append(time.perf_counter() - start)
    return chain * 2 * 2 * tokens * h * inner / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="a tiny model, for CPUs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--steps-per-execution", type=int, default=10)
    parser.add_argument("--dtype-policy", default=None,
                        help="default: mixed_bfloat16 on an accelerator, float32 on a CPU")
    parser.add_argument("--threefry-partitionable", choices=["true", "false"], default=None,
                        help="set jax_threefry_partitionable for the run (JAX; default: JAX's)")
    args = parser.parse_args()
    if args.threefry_partitionable is not None:
        import jax

        jax.config.update("jax_threefry_partitionable", args.threefry_partitionable == "true")
    size = SIZES["small" if args.small else "base"]
    on_cpu = all(d.startswith("cpu") for d in keras.distribution.list_devices())
    policy = args.dtype_policy or ("float32" if on_cpu else "mixed_bfloat16")
    keras.config.set_dtype_policy(policy)
    if args.steps % args.steps_per_execution:
        parser.error("--steps must be a multiple of --steps-per-execution")
    spe = args.steps_per_execution

    candidates = {
        "keras-hub BertBackbone + Dense": (keras_hub_baseline(size, args.steps, spe),
                                           forward_flops(size, False)),
        "bert4keras_ext, attention dropout 0.1": (ours(size, args.steps, 0.1, spe),
                                                  forward_flops(size, True)),
        "bert4keras_ext, attention dropout 0": (ours(size, args.steps, 0.0, spe),
                                                forward_flops(size, True)),
        "same, dropout 0.1, head on targets": (ours_scored_head(size, args.steps, 0.1, spe),
                                               forward_flops(size, True, size["target"])),
        "same, dropout 0, head on targets": (ours_scored_head(size, args.steps, 0.0, spe),
                                             forward_flops(size, True, size["target"])),
    }
    times = {name: [] for name in candidates}
    for round_index in range(args.rounds + 1):  # round 0 compiles
        for name, (setup, _) in candidates.items():
            seconds = seconds_per_step(setup, size, args.steps)
            if round_index:
                times[name].append(seconds)
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    peak = matmul_flops_per_second(size, compute_dtype)

    tokens = size["batch"] * size["length"]
    print(f"backend {keras.backend.backend()}, devices {keras.distribution.list_devices()}, "
          f"policy {policy}, threefry_partitionable {args.threefry_partitionable or 'default'}")
    print(f"UNILM step: {size['layers']} layers, hidden {size['hidden']}, vocab {size['vocab']}, "
          f"batch {size['batch']} x {size['length']}; steps_per_execution {spe}; median of "
          f"{args.rounds} rounds x {args.steps} steps")
    print(f"{compute_dtype} matmul chain of the step's shapes: {peak / 1e12:.1f} TFLOP/s")
    print(f"{'model':<40}{'ms/step':>9}{'tokens/s':>11}{'MFU':>8}")
    speed = {}
    for name, (_, flops) in candidates.items():
        seconds = statistics.median(times[name])
        speed[name] = tokens / seconds
        print(f"{name:<40}{seconds * 1e3:>9.1f}{speed[name]:>11.0f}"
              f"{3 * flops / seconds / peak:>8.1%}")
    baseline = speed["keras-hub BertBackbone + Dense"]
    for name in list(candidates)[1:]:
        print(f"speed ratio {name} / keras-hub: {speed[name] / baseline:.2f}")


if __name__ == "__main__":
    main()
