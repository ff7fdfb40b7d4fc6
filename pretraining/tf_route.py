"""The TensorFlow route of `pretraining.py`: TFRecord shards (data_utils.py) read with tf.data,
one custom `tf.distribute` training loop for one device, several GPUs, several machines and TPU.

Source: bert4keras's pretraining scripts (https://github.com/bojone/bert4keras, `pretraining/`)
and the post https://kexue.fm/archives/7055 on pretraining BERT with tf.keras on TPU.

A custom `strategy.run` training loop (Keras 3.15's multi-worker `fit` is broken), the
optimizer built inside the strategy scope, fixed shapes, and gradient accumulation, weight
decay, LAMB and EMA all inside the optimizer's `update_step` (where they hold under
tf.distribute). Each compiled call runs `--steps-per-call` micro-steps and the loss and
accuracy are summed on the devices until the next log.

Preemption-safe: every `--checkpoint-every` updates it saves model, optimizer (accumulators and
EMA included), dropout seeds and the data position, and a rerun with the same `--model-dir` and
flags resumes from the newest readable checkpoint (`restore_newest_good`). A `--model-dir`
that another live run holds, or that cannot be written, is refused before training; a
checkpoint that cannot be written (a full disk) ends the run with an error naming
`--model-dir`, the earlier checkpoints intact. The data order is a function of the seed, so
resuming finds its place from the shards' record counts instead of reading past what was
trained on. A non-finite loss for `--nonfinite-patience` micro-steps in a row, or
non-finite weights at a checkpoint, stops the run with an error before anything non-finite is
saved. At the end it exports the weights (the EMA ones with `--ema`) as an original-format BERT
checkpoint.
"""
import contextlib
import os
import re
import shutil
import sys
import time

import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data_utils import check_shards, find_damaged_shards, load_dataset  # noqa: E402
from objective import APPLICATIONS, scored_logits, token_losses  # noqa: E402
from options import (  # noqa: E402
    STRATEGIES,
    build_optimizer,
    check_flags,
    micro_batch_size,
    next_multiple,
)

from bert4keras_ext.models import build_transformer_model  # noqa: E402
from bert4keras_ext.models.checkpoints import save_as_bert_checkpoint  # noqa: E402
from resume import build_with_lock, check_run_flags, unlock_model_dir  # noqa: E402


def check_args(args):
    """`options.check_flags`, then the shards `--data` names."""
    check_flags(args)
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
        return scored_logits(self.model, inputs, labels, weights, self.max_predictions,
                             training)

    def _replica_step(self, inputs, labels, weights):
        with tf.GradientTape() as tape:
            logits, labels, weights = self.scored_logits(inputs, labels, weights)
            # Divide by the count over all replicas: summing the replicas' gradients then
            # gives the gradient of the mean over the whole micro-batch, as on one device.
            context = tf.distribute.get_replica_context()
            count = tf.maximum(context.all_reduce("sum", tf.reduce_sum(weights)), 1.0)
            loss, correct = token_losses(logits, labels, weights)
            loss = loss / count
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return loss, correct / count

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


def checkpoint_prefixes(model_dir):
    """`ckpt-N` prefixes with any file in `model_dir`, newest first (the state file may be
    missing or name a checkpoint whose files are gone)."""
    numbers = set()
    for path in tf.io.gfile.glob(os.path.join(model_dir, "ckpt-*")):
        match = re.fullmatch(r"ckpt-(\d+)\..+", os.path.basename(path))
        if match:
            numbers.add(int(match.group(1)))
    return [os.path.join(model_dir, f"ckpt-{n}") for n in sorted(numbers, reverse=True)]


def restore_newest_good(checkpoint, prefixes, chief):
    """Restores the newest readable checkpoint of `prefixes` and returns its prefix; the
    newer, damaged ones are moved aside (by the chief) and named on stderr. Raises if none
    restores, with each checkpoint's error."""
    errors = []
    for prefix in prefixes:
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
        except (tf.errors.OpError, IndexError, ValueError, AssertionError) as error:
            errors.append((prefix, f"{type(error).__name__}: {str(error).splitlines()[0]}"))
            continue
        if errors:
            print(f"resuming from {prefix}: newer checkpoints could not be read and were moved "
                  f"aside as damaged-*: " + "; ".join(f"{p} ({e})" for p, e in errors),
                  file=sys.stderr)
            if chief:
                _set_aside([p for p, _ in errors], prefix, prefixes)
        return prefix
    raise ValueError("No checkpoint in `--model-dir` could be restored: " +
                     "; ".join(f"{p}: {e}" for p, e in errors))


def _set_aside(damaged, restored, prefixes):
    for prefix in damaged:
        folder, name = os.path.split(prefix)
        for path in tf.io.gfile.glob(prefix + ".*"):
            suffix = os.path.basename(path)[len(name):]
            tf.io.gfile.rename(path, os.path.join(folder, f"damaged-{name}{suffix}"),
                               overwrite=True)
    # The state file lists only readable checkpoints, oldest first, so rotation counts them.
    kept = [p for p in reversed(prefixes) if p not in damaged]
    tf.compat.v1.train.update_checkpoint_state(os.path.dirname(restored), restored,
                                               all_model_checkpoint_paths=kept)


def prepare(args, strategy=None):
    """Checks the flags, claims `--model-dir` (the chief) and builds (or resumes) the run;
    errors come before any training. `release(trainer)` gives the directory back."""
    check_args(args)
    strategy = strategy or make_strategy(args.strategy, args.tpu, args.cpu_replicas)
    micro_batch_size(args, strategy.num_replicas_in_sync)  # its error comes before the lock
    return build_with_lock(args.model_dir, is_chief(strategy),
                           lambda: Pretrainer(args, strategy))


def release(trainer):
    """Removes the run's claim on `--model-dir`."""
    if trainer.lock:
        unlock_model_dir(trainer.lock)
