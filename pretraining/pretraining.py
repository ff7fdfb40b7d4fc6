"""Pretrains a BERT (masked LM), GPT (causal LM) or UNILM model on TFRecord shards.

Source: bert4keras's pretraining scripts (https://github.com/bojone/bert4keras, `pretraining/`)
and the post https://kexue.fm/archives/7055 on pretraining BERT with tf.keras on TPU.

One script for one device, several GPUs, several machines and TPU: a custom `strategy.run`
training loop (Keras 3.15's multi-worker `fit` is broken), the optimizer built inside the
strategy scope, fixed shapes, and gradient accumulation, weight decay, LAMB and EMA all inside
the optimizer's `update_step` (where they hold under tf.distribute). Each compiled call runs
`--steps-per-call` micro-steps and the loss and accuracy are summed on the devices until the
next log.

Preemption-safe: every `--checkpoint-every` updates it saves model, optimizer (accumulators and
EMA included), dropout seeds and the data position, and a rerun with the same `--model-dir` and
flags resumes from the newest readable checkpoint (resume.py). A `--model-dir` that another
live run holds, or that cannot be written, is refused before training; a checkpoint that cannot
be written (a full disk) ends the run with an error naming `--model-dir`, the earlier
checkpoints intact. The data order is a function of
the seed, so resuming finds its place from the shards' record counts instead of reading past
what was trained on. A non-finite loss for `--nonfinite-patience` micro-steps in a row, or
non-finite weights at a checkpoint, stops the run with an error before anything non-finite is
saved. At the end it exports the weights (the EMA ones with `--ema`) as an original-format BERT
checkpoint.

    python pretraining/pretraining.py --mode roberta --config bert_config.json \
        --data 'corpus/train-*.tfrecord' --seq-len 512 --global-batch-size 4096 \
        --grad-accum-steps 16 --optimizer lamb --lr 0.00176 --warmup-steps 3125 \
        --total-steps 125000 --weight-decay 0.01 --strategy mirrored --model-dir runs/roberta

See pretraining/README.md for several machines and TPUs.
"""
import argparse
import contextlib
import os
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data_utils import (  # noqa: E402
    MODES,
    check_shards,
    find_damaged_shards,
    load_dataset,
)

from bert4keras_ext.models import build_transformer_model, mlm_head_logits, names  # noqa: E402
from bert4keras_ext.models.checkpoints import save_as_bert_checkpoint  # noqa: E402
from bert4keras_ext.optimizers import (  # noqa: E402
    AdaFactor,
    Adam,
    PiecewiseLinearSchedule,
    extend_with_exponential_moving_average,
    extend_with_gradient_accumulation,
    extend_with_layer_adaptation,
    extend_with_weight_decay,
)
from resume import (  # noqa: E402
    check_run_flags,
    checkpoint_prefixes,
    lock_model_dir,
    restore_newest_good,
    unlock_model_dir,
)

STRATEGIES = ("auto", "cpu", "mirrored", "multiworker", "tpu")
OPTIMIZERS = ("adafactor", "adam", "lamb")
APPLICATIONS = {"roberta": "encoder", "gpt": "lm", "unilm": "unilm"}
# bert4keras's pretraining excludes LayerNorm and bias weights from decay and adaptation.
NO_DECAY = ["Norm", "bias"]


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="roberta")
    parser.add_argument("--config", required=True, help="bert_config.json of the model")
    parser.add_argument("--init-checkpoint", help="start from these weights (TF or safetensors)")
    parser.add_argument("--data", required=True, help="glob of TFRecord files (data_utils.py)")
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
                        help="auto: all local GPUs if several, else one device; "
                             "multiworker reads TF_CONFIG")
    parser.add_argument("--tpu", default="", help="TPU name or address for --strategy tpu")
    parser.add_argument("--cpu-replicas", type=int, default=1,
                        help="split the CPU into this many devices (multi-device runs on a CPU)")
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


def check_args(args):
    """Errors in the flags that do not depend on the devices, before anything is built
    (argparse checks the choices)."""
    for name in ("seq_len", "global_batch_size", "grad_accum_steps", "total_steps",
                 "checkpoint_every", "log_every", "cpu_replicas"):
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
    for name in ("stop_after", "steps_per_call"):
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
    shards = sorted(tf.io.gfile.glob(args.data))
    if not shards:
        raise FileNotFoundError(f"No files match `--data` {args.data!r}.")
    check_shards(shards, args.mode, args.seq_len)


def make_strategy(name, tpu="", cpu_replicas=1):
    """The tf.distribute strategy for `--strategy`; call before TensorFlow uses any device."""
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}; received {name!r}.")
    if cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("`--strategy multiworker` needs the TF_CONFIG environment variable "
                             "(see pretraining/README.md); it is not set.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def micro_batch_size(args, replicas):
    """Sequences per micro-step over all replicas; the global batch must split evenly."""
    if args.global_batch_size % (replicas * args.grad_accum_steps):
        raise ValueError(
            f"`--global-batch-size` ({args.global_batch_size}) must be divisible by replicas x "
            f"accumulation steps ({replicas} x {args.grad_accum_steps})."
        )
    return args.global_batch_size // args.grad_accum_steps


def build_optimizer(args):
    """Adam (bias correction off, as bert4keras), LAMB or AdaFactor with the extensions asked
    for; the learning rate warms up linearly and decays linearly to 0, counting real updates."""
    schedule = PiecewiseLinearSchedule(
        {args.warmup_steps: 1.0, args.total_steps: 0.0} if args.warmup_steps
        else {0: 1.0, args.total_steps: 0.0},
        learning_rate=args.lr,
    )
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
    return base(learning_rate=schedule, **options)


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    jobs = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in jobs


def seed_states(model):
    """Dropout seed-generator states: without them a resumed run draws other dropout masks.
    Keras keeps them outside `model.weights`, in each layer's `_seed_generators`."""
    return [generator.state for layer in model._flatten_layers()
            for generator in getattr(layer, "_seed_generators", [])]


class Pretrainer:
    """Model, optimizer, data and checkpoints of one run, built inside `strategy.scope()`."""

    def __init__(self, args, strategy):
        self.args, self.strategy = args, strategy
        self.micro_batch = micro_batch_size(args, strategy.num_replicas_in_sync)
        self.chief = is_chief(strategy)
        keras.utils.set_random_seed(args.seed)
        check_run_flags(args, write=self.chief)
        prefixes = checkpoint_prefixes(args.model_dir)
        with strategy.scope():
            self.model = build_transformer_model(
                args.config, None if prefixes else args.init_checkpoint,
                application=APPLICATIONS[args.mode], with_mlm="linear",
                sequence_length=args.seq_len,
            )
            self.optimizer = build_optimizer(args)
            self.optimizer.build(self.model.trainable_variables)
            self.micro_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="micro_step")
            # Sums of the loss and accuracy since the last log, and the current and longest
            # runs of non-finite losses: kept on the devices, read at logs and checkpoints.
            self.metric_sums = tf.Variable(tf.zeros([2]), trainable=False, name="metric_sums")
            self.nonfinite = tf.Variable(tf.zeros([2], tf.int64), trainable=False,
                                         name="nonfinite_runs")
        # Masked LM scores about 15% of the positions: run the encoder alone and the MLM head
        # (the vocabulary projection, a third of the FLOPs of BERT-base) only on those.
        self.max_predictions = None
        if args.mode == "roberta":
            self.max_predictions = args.max_predictions or -(-args.seq_len // 4)
            self.encoder = keras.Model(self.model.inputs,
                                       self.model.get_layer(names.MLM_DENSE).input)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                              micro_step=self.micro_step,
                                              seeds=seed_states(self.model))
        if prefixes:
            restored = restore_newest_good(self.checkpoint, prefixes, self.chief)
            print(f"resumed from {restored} at update {self.update}")
        self.manager = tf.train.CheckpointManager(self.checkpoint, self._checkpoint_dir(),
                                                  max_to_keep=3)
        self.train_steps = tf.function(self._distributed_steps)

    @property
    def update(self):
        return int(self.micro_step.numpy()) // self.args.grad_accum_steps

    def _checkpoint_dir(self):
        # Every worker must save under MultiWorkerMirroredStrategy; only the chief's copy stays.
        if self.chief:
            return self.args.model_dir
        task = self.strategy.cluster_resolver.task_id
        return os.path.join(self.args.model_dir, f".worker-{task}-tmp")

    def dataset(self):
        """Distributed batches from the first micro-batch not trained on yet (the data
        position is the micro-step count: the order is a function of the seed)."""
        dataset = load_dataset(self.args.data, self.args.mode, self.args.seq_len,
                               self.micro_batch, seed=self.args.seed,
                               skip=int(self.micro_step.numpy()) * self.micro_batch)
        options = tf.data.Options()
        # Every worker reads all files and keeps its share of each batch: correct for any
        # number of files (FILE sharding would need at least one file per worker).
        policy = tf.data.experimental.AutoShardPolicy.DATA
        options.experimental_distribute.auto_shard_policy = policy
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def scored_logits(self, inputs, labels, weights, training=True):
        """(logits, labels, weights) of the positions the loss scores. roberta: the first
        `max_predictions` masked positions of each row (top_k keeps index order among equal
        weights); other modes: all positions, weighted."""
        if not self.max_predictions:
            return self.model(list(inputs), training=training), labels, weights
        positions = tf.math.top_k(weights, self.max_predictions).indices
        hidden = tf.gather(self.encoder(list(inputs), training=training), positions,
                           batch_dims=1)
        labels, weights = (tf.gather(t, positions, batch_dims=1) for t in (labels, weights))
        return mlm_head_logits(self.model, hidden), labels, weights

    def _replica_step(self, inputs, labels, weights):
        with tf.GradientTape() as tape:
            logits, labels, weights = self.scored_logits(inputs, labels, weights)
            # Divide by the count over all replicas: summing the replicas' gradients then
            # gives the gradient of the mean over the whole micro-batch, as on one device.
            context = tf.distribute.get_replica_context()
            count = tf.maximum(context.all_reduce("sum", tf.reduce_sum(weights)), 1.0)
            logits = tf.cast(logits, tf.float32)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_sum(losses * weights) / count
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels),
                          tf.float32)
        return loss, tf.reduce_sum(correct * weights) / count

    def _distributed_steps(self, iterator, count):
        """`count` micro-steps in one compiled call, the metrics summed on the devices."""
        for _ in tf.range(count):
            inputs, labels, weights = next(iterator)
            loss, accuracy = self.strategy.run(self._replica_step,
                                               args=(inputs, labels, weights))
            loss = self.strategy.reduce("sum", loss, axis=None)
            accuracy = self.strategy.reduce("sum", accuracy, axis=None)
            self.metric_sums.assign_add(tf.stack([loss, accuracy]))
            run = tf.where(tf.math.is_finite(loss), tf.constant(0, tf.int64),
                           self.nonfinite[0] + 1)
            self.nonfinite.assign(tf.stack([run, tf.maximum(run, self.nonfinite[1])]))
            self.micro_step.assign_add(1)

    def check_loss_finite(self):
        longest = int(self.nonfinite[1].numpy())
        if longest >= self.args.nonfinite_patience:
            raise FloatingPointError(
                f"The loss was non-finite for {longest} micro-steps in a row (by update "
                f"{self.update}); stopping without saving. Lower --lr, or raise "
                f"--nonfinite-patience if the data has rare bad batches.")

    def check_weights_finite(self):
        finite = [tf.reduce_all(tf.math.is_finite(v)) for v in self.model.weights
                  if "float" in v.dtype]
        if not bool(tf.reduce_all(finite)):
            raise FloatingPointError(
                f"Non-finite weights at update {self.update}; nothing was saved or exported "
                f"(the last checkpoint in {self.args.model_dir} is untouched).")

    def save(self):
        self.check_weights_finite()
        try:
            self.manager.save(checkpoint_number=self.update)
        except (tf.errors.OpError, OSError) as error:
            # The manager writes into a temporary folder and keeps the older checkpoints
            # until the new one is whole.
            partial = os.path.join(self._checkpoint_dir(), f"ckpt-{self.update}_temp")
            if tf.io.gfile.exists(partial):
                tf.io.gfile.rmtree(partial)
            raise OSError(
                f"Writing the checkpoint of update {self.update} in `--model-dir` "
                f"{self.args.model_dir} failed ({type(error).__name__}: "
                f"{str(error).splitlines()[0]}); the earlier checkpoints are intact (newest: "
                f"{self.manager.latest_checkpoint}). Free space, then rerun the same command "
                "to resume.") from None
        if not self.chief:
            shutil.rmtree(self._checkpoint_dir(), ignore_errors=True)

    def run(self):
        """Trains to `--total-steps` (or `--stop-after`); returns the logged records."""
        args, k = self.args, self.args.grad_accum_steps
        end = min(args.total_steps, args.stop_after or args.total_steps)
        if self.update >= end:
            return []
        writer = (tf.summary.create_file_writer(os.path.join(args.model_dir, "logs"))
                  if self.chief else tf.summary.create_noop_writer())
        names = ("loss", "accuracy", "lr", "tokens/s")
        progress = keras.utils.Progbar(args.total_steps, verbose=1 if self.chief else 0,
                                       stateful_metrics=names)
        progress.update(self.update)
        iterator, records = iter(self.dataset()), []
        micro = logged = int(self.micro_step.numpy())
        self.metric_sums.assign(tf.zeros([2]))
        started = time.perf_counter()
        while micro < end * k:
            update = micro // k
            stop = min(next_multiple(update, args.log_every),
                       next_multiple(update, args.checkpoint_every), end) * k
            count = min(args.steps_per_call or k, stop - micro)
            try:
                self.train_steps(iterator, tf.constant(count, tf.int64))
            except tf.errors.DataLossError:
                damaged = find_damaged_shards(sorted(tf.io.gfile.glob(args.data)))
                raise ValueError(f"Damaged `--data` shards: {'; '.join(damaged)}.") from None
            micro += count
            if micro != stop:
                continue
            update = micro // k
            self.check_loss_finite()
            if update % args.log_every == 0 or update == end:
                loss, accuracy = self.metric_sums.numpy() / (micro - logged)
                record = {"update": update, "loss": float(loss), "accuracy": float(accuracy),
                          "lr": float(self.optimizer.learning_rate),
                          "tokens/s": (micro - logged) * self.micro_batch * args.seq_len
                          / (time.perf_counter() - started)}
                print_record = [(name, record[name]) for name in names]
                records.append(record)
                with writer.as_default(step=update):
                    for name, value in print_record:
                        tf.summary.scalar(name.replace("/", "_per_"), value)
                progress.update(update, print_record)
                self.metric_sums.assign(tf.zeros([2]))
                logged, started = micro, time.perf_counter()
            if update % args.checkpoint_every == 0 or update == end:
                self.save()
        writer.flush()
        return records

    def export(self):
        """Final weights (EMA ones with --ema) as an original BERT checkpoint; chief only."""
        path = os.path.join(self.args.model_dir, "export", "bert_model.ckpt")
        if not self.chief:
            return None
        os.makedirs(os.path.dirname(path), exist_ok=True)
        final = (self.optimizer.ema_weights(self.model) if self.args.ema
                 else contextlib.nullcontext())
        with final:
            self.check_weights_finite()
            try:
                save_as_bert_checkpoint(self.model, path)
            except (tf.errors.OpError, OSError) as error:
                raise OSError(f"Exporting the final weights to {path} (in `--model-dir`) "
                              f"failed ({type(error).__name__}: {str(error).splitlines()[0]}); "
                              "the checkpoints are intact: rerun the same command to export."
                              ) from None
        return path


def next_multiple(value, every):
    """The smallest multiple of `every` above `value`."""
    return (value // every + 1) * every


def prepare(args, strategy=None):
    """Checks the flags, claims `--model-dir` (the chief) and builds (or resumes) the run;
    errors come before any training. `release(trainer)` gives the directory back."""
    check_args(args)
    strategy = strategy or make_strategy(args.strategy, args.tpu, args.cpu_replicas)
    micro_batch_size(args, strategy.num_replicas_in_sync)  # its error comes before the lock
    lock = lock_model_dir(args.model_dir) if is_chief(strategy) else None
    try:
        trainer = Pretrainer(args, strategy)
    except BaseException:
        if lock:
            unlock_model_dir(lock)
        raise
    trainer.lock = lock
    return trainer


def release(trainer):
    """Removes the run's claim on `--model-dir`."""
    if trainer.lock:
        unlock_model_dir(trainer.lock)


def train(trainer):
    """Trains, and exports once `--total-steps` is reached; returns the logged records."""
    records = trainer.run()
    if trainer.update >= trainer.args.total_steps:
        path = trainer.export()
        if path:
            print(f"exported the final weights to {path}")
    return records


def main(argv=None):
    parser = argument_parser()
    args = parser.parse_args(argv)
    try:
        trainer = prepare(args)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    try:
        train(trainer)
    except (FloatingPointError, ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    finally:
        release(trainer)


if __name__ == "__main__":
    main()
