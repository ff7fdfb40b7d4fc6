"""The pretraining flags and what both routes build from them the same way: the checks that
do not depend on the devices, the micro-batch size and the optimizer. No TensorFlow or JAX here:
`tf_route.py` and `jax_route.py` import it."""
import argparse

import numpy as np
from objective import MODES

from bert4keras_ext.optimizers import (
    AdaFactor,
    Adam,
    PiecewiseLinearSchedule,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_layer_adaptation,
    extend_with_weight_decay,
)

STRATEGIES = ("auto", "cpu", "mirrored", "multiworker", "tpu")
OPTIMIZERS = ("adafactor", "adam", "lamb")
# bert4keras's pretraining excludes LayerNorm and bias weights from decay and adaptation.
NO_DECAY = ["Norm", "bias"]


def argument_parser():
    parser = argparse.ArgumentParser(
        description="Pretrains a BERT (masked LM), GPT (causal LM) or UNILM model; the route "
                    "follows KERAS_BACKEND (tensorflow: tf.distribute on TFRecord shards; jax: "
                    "keras.distribution on ArrayRecord shards).")
    parser.add_argument("--mode", choices=MODES, default="roberta")
    parser.add_argument("--config", required=True, help="bert_config.json of the model")
    parser.add_argument("--init-checkpoint", help="start from these weights (TF or safetensors)")
    parser.add_argument("--data", required=True,
                        help="glob of the shards data_utils.py wrote: TFRecord (TensorFlow) or "
                             "ArrayRecord (JAX)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--global-batch-size", type=int, default=4096,
                        help="sequences per real update, over all replicas and micro-steps")
    parser.add_argument("--grad-accum-steps", type=int, default=16)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="lamb")
    parser.add_argument("--lr", type=float, default=0.00176)
    parser.add_argument("--warmup-steps", type=int, default=3125, help="real updates")
    parser.add_argument("--total-steps", type=int, default=125000, help="real updates")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--ema", type=float, default=0.0,
                        help="EMA momentum of the weights (0: no EMA), e.g. 0.999")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="TensorFlow: auto: all local GPUs if several, else one device; "
                             "multiworker reads TF_CONFIG")
    parser.add_argument("--tpu", default="", help="TensorFlow: TPU name or address for "
                                                  "--strategy tpu")
    parser.add_argument("--cpu-replicas", type=int, default=1,
                        help="split the CPU into this many devices (multi-device runs on a CPU)")
    parser.add_argument("--model-parallel", type=int, default=1,
                        help="JAX: devices along the mesh's model axis; above 1 the embeddings, "
                             "attention and feed-forward kernels are sharded over it "
                             "(keras.distribution.ModelParallel), the batch over the rest")
    parser.add_argument("--coordinator-address", help="JAX, several processes: host:port of "
                        "process 0 (jax.distributed.initialize; on TPU pods and SLURM JAX "
                        "finds it alone)")
    parser.add_argument("--num-processes", type=int, help="JAX: processes in the run")
    parser.add_argument("--process-id", type=int, help="JAX: this process's index")
    parser.add_argument("--async-checkpoints", action="store_true",
                        help="JAX: write checkpoints in the background while training goes on")
    parser.add_argument("--model-dir", required=True,
                        help="checkpoints, TensorBoard logs and the export (shared by workers)")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="real updates")
    parser.add_argument("--log-every", type=int, default=100,
                        help="real updates; the loss and accuracy sums stay on the devices "
                             "in between")
    parser.add_argument("--steps-per-call", type=int,
                        help="micro-steps per compiled call (default: --grad-accum-steps); "
                             "calls also end at logs and checkpoints")
    parser.add_argument("--stop-after", type=int,
                        help="end this run (with a checkpoint) at this update; rerun to resume")
    parser.add_argument("--max-predictions", type=int,
                        help="roberta: masked positions scored per sequence (default: a quarter "
                             "of --seq-len); masked tokens beyond it are not scored")
    parser.add_argument("--nonfinite-patience", type=int, default=5,
                        help="micro-steps in a row with a non-finite loss before the run stops "
                             "(the optimizer skips their updates); checked at every log and "
                             "checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def check_flags(args):
    """Errors in the flags that do not depend on the devices, before anything is built
    (argparse checks the choices)."""
    for name in ("seq_len", "global_batch_size", "grad_accum_steps", "total_steps",
                 "checkpoint_every", "log_every", "cpu_replicas", "model_parallel"):
        value = getattr(args, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`--{name.replace('_', '-')}` must be a positive integer; "
                             f"received {value!r}.")
    if not 0 <= args.warmup_steps < args.total_steps:
        raise ValueError(f"`--warmup-steps` must be in [0, total steps {args.total_steps}); "
                         f"received {args.warmup_steps}.")
    if args.max_predictions is not None and not 1 <= args.max_predictions <= args.seq_len:
        raise ValueError(f"`--max-predictions` must be in [1, seq len {args.seq_len}]; "
                         f"received {args.max_predictions}.")
    for name in ("stop_after", "steps_per_call", "num_processes"):
        value = getattr(args, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"`--{name.replace('_', '-')}` must be a positive integer; "
                             f"received {value!r}.")
    if not isinstance(args.nonfinite_patience, int) or args.nonfinite_patience < 1:
        raise ValueError(f"`--nonfinite-patience` must be a positive integer; received "
                         f"{args.nonfinite_patience!r}.")
    if not (np.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"`--lr` must be a positive finite number; received {args.lr}.")
    if not (np.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise ValueError(f"`--weight-decay` must be a finite number >= 0; received "
                         f"{args.weight_decay}.")
    if not 0.0 <= args.ema < 1.0:
        raise ValueError(f"`--ema` must be in [0, 1); received {args.ema}.")


def micro_batch_size(args, replicas):
    """Sequences per micro-step over all replicas; the global batch must split evenly."""
    if args.global_batch_size % (replicas * args.grad_accum_steps):
        raise ValueError(
            f"`--global-batch-size` ({args.global_batch_size}) must be divisible by replicas x "
            f"accumulation steps ({replicas} x {args.grad_accum_steps})."
        )
    return args.global_batch_size // args.grad_accum_steps


def learning_rate_schedule(args):
    """The learning rate warms up linearly and decays linearly to 0, counting real updates."""
    return PiecewiseLinearSchedule(
        {args.warmup_steps: 1.0, args.total_steps: 0.0} if args.warmup_steps
        else {0: 1.0, args.total_steps: 0.0},
        learning_rate=args.lr,
    )


def build_optimizer(args):
    """Adam (bias correction off, as bert4keras), LAMB or AdaFactor with the extensions asked
    for, on `learning_rate_schedule`."""
    options = {}
    if args.optimizer == "adafactor":
        base = AdaFactor
        if args.grad_accum_steps > 1:
            base = extend_with_gradient_accumulation(base)
            options["grad_accum_steps"] = args.grad_accum_steps
    else:
        # Our Adam accumulates inside its moments: no extra buffer per parameter.
        base = Adam
        options.update(bias_correction=False, grad_accum_steps=args.grad_accum_steps)
    if args.weight_decay:
        base = extend_with_weight_decay(base)
        options.update(weight_decay_rate=args.weight_decay, exclude_from_weight_decay=NO_DECAY)
    if args.optimizer == "lamb":
        base = extend_with_layer_adaptation(base)
        options["exclude_from_layer_adaptation"] = NO_DECAY
    if args.ema:
        base = extend_with_exponential_moving_average(base)
        options["ema_momentum"] = args.ema
    return base(learning_rate=learning_rate_schedule(args), **options)


def next_multiple(value, every):
    """The smallest multiple of `every` above `value`."""
    return (value // every + 1) * every
