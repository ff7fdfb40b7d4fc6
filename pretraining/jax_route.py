"""The JAX route of `pretraining.py` (`KERAS_BACKEND=jax`): the same flags, modes, loss,
optimizers and guarantees as the TensorFlow route, on the way Keras 3 trains on TPU pods and
GPU clusters, without TensorFlow.

- Devices: `keras.distribution` over every device of every process. `DataParallel` by default;
  `--model-parallel M` makes a (devices / M, M) mesh of axes ("batch", "model") and a
  `LayoutMap` that shards the token embeddings, the attention projections and the feed-forward
  kernels over "model" (Megatron-style: the input projections by output column, the output
  projections by input row), the batch over "batch". XLA (GSPMD) inserts the collectives, so
  the arithmetic is that of one device. Several processes (hosts) join through
  `jax.distributed.initialize` (`--coordinator-address`, `--num-processes`, `--process-id`;
  on TPU pods and SLURM JAX finds them alone).
- Step: one `jax.jit` call runs `--steps-per-call` micro-steps (`lax.scan`): forward and
  gradient through `keras.StatelessScope`, `optimizer.stateless_apply` (accumulation, decay,
  LAMB and EMA live in the optimizer, as on the TF route), the loss and accuracy summed on the
  devices and non-finite losses counted there until the next log. The state buffers are
  donated.
- Data: ArrayRecord shards (data_utils.py `--format arrayrecord`) read with grain: the records
  in one order drawn from the seed per epoch (`MapDataset.shuffle(seed).repeat()`), global
  micro-batch `m` = stream positions `[m * B, (m + 1) * B)`. Each process reads only the rows
  its devices hold and hands them to `jax.make_array_from_process_local_data`; resuming is
  arithmetic on the micro-step count.
- Checkpoints: Orbax (`ocp.CheckpointManager`, the newest 3 kept): written to a temporary
  folder and renamed when whole, optionally in the background (`--async-checkpoints`), each
  array restored onto the shardings of the run that reads it, so a run resumes on another
  device count. A newest checkpoint that cannot be restored is renamed `damaged-N` and the run
  goes on from the one before; changed flags and a `--model-dir` in use are refused
  (resume.py), as is a non-finite loss for `--nonfinite-patience` micro-steps or non-finite
  weights at a checkpoint.
- Export at the end: the weights (EMA ones with `--ema`) under Google's original BERT names,
  as a TF checkpoint where TensorFlow is installed and as `bert_model.safetensors` otherwise,
  with `bert_config.json`; `build_transformer_model` reads either.
TensorBoard logs go to `--model-dir/logs` (the `tensorboard` package, no TensorFlow).
"""
import contextlib
import os
import sys
import time

import jax
import keras
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import array_records  # noqa: E402
import files  # noqa: E402
from manifest import check_shards  # noqa: E402
from objective import (  # noqa: E402
    APPLICATIONS,
    FEATURES,
    scored_logits,
    token_losses,
    training_example,
)
from options import (  # noqa: E402
    build_optimizer,
    check_flags,
    learning_rate_schedule,
    micro_batch_size,
    next_multiple,
)

from bert4keras_ext.models import build_transformer_model  # noqa: E402
from bert4keras_ext.models.checkpoints import save_as_bert_checkpoint  # noqa: E402
from bert4keras_ext.models.config import load_config  # noqa: E402
from resume import build_with_lock, check_run_flags, unlock_model_dir  # noqa: E402

# Kernels sharded over the "model" axis: (variable path pattern, axes).
MODEL_PARALLEL_LAYOUT = (
    (r".*(q_dense|k_dense|v_dense|intermediate_dense)/kernel", (None, "model")),
    (r".*(q_dense|k_dense|v_dense|intermediate_dense)/bias", ("model",)),
    (r".*(o_dense|output_dense)/kernel", ("model", None)),
)


def start_processes(args):
    """Joins the other processes of a multi-host run, and splits the CPU into
    `--cpu-replicas` devices; call before JAX uses any device."""
    if args.cpu_replicas > 1:
        jax.config.update("jax_num_cpu_devices", args.cpu_replicas)
    if args.coordinator_address or (args.num_processes or 1) > 1:
        if args.process_id is not None and not 0 <= args.process_id < (args.num_processes or 1):
            raise ValueError(f"`--process-id` must be in [0, --num-processes "
                             f"{args.num_processes}); received {args.process_id}.")
        jax.distributed.initialize(coordinator_address=args.coordinator_address,
                                   num_processes=args.num_processes,
                                   process_id=args.process_id)


def make_distribution(model_parallel, vocab_size, devices=None):
    """`DataParallel` over `devices` (default: all of every process), or with `model_parallel`
    M > 1 a `ModelParallel` over a (devices / M, M) ("batch", "model") mesh sharding the kernels
    of MODEL_PARALLEL_LAYOUT (and the token embeddings by vocabulary row where M divides the
    vocabulary)."""
    devices = jax.devices() if devices is None else devices
    if len(devices) % model_parallel:
        raise ValueError(f"`--model-parallel` ({model_parallel}) must divide the number of "
                         f"devices ({len(devices)}).")
    if model_parallel == 1:
        mesh = keras.distribution.DeviceMesh((len(devices),), ("batch",), devices)
        return keras.distribution.DataParallel(device_mesh=mesh)
    mesh = keras.distribution.DeviceMesh((len(devices) // model_parallel, model_parallel),
                                         ("batch", "model"), devices)
    layout = keras.distribution.LayoutMap(mesh)
    for pattern, axes in MODEL_PARALLEL_LAYOUT:
        layout[pattern] = axes
    if vocab_size % model_parallel == 0:
        layout["Embedding-Token/embeddings"] = ("model", None)
    return keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")


def jax_mesh(distribution):
    """The `jax.sharding.Mesh` of a Keras distribution's device mesh (same devices, order and
    axis names)."""
    mesh = distribution.device_mesh
    return jax.sharding.Mesh(np.asarray(mesh.devices).reshape(mesh.shape), mesh.axis_names)


class Pretrainer:
    """Model, optimizer, data and checkpoints of one run of the JAX route."""

    def __init__(self, args, distribution):
        import orbax.checkpoint as ocp

        self.args, self.distribution = args, distribution
        self.mesh = jax_mesh(distribution)
        replicas = self.mesh.shape["batch"]
        self.micro_batch = micro_batch_size(args, replicas)
        self.chief = jax.process_index() == 0
        keras.utils.set_random_seed(args.seed)
        check_run_flags(args, write=self.chief)
        model_dir = args.model_dir if "://" in args.model_dir else os.path.abspath(
            args.model_dir)  # Orbax wants absolute paths; gs:// ones it reads itself
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")
        self.manager = ocp.CheckpointManager(self.checkpoint_dir, options=(
            ocp.CheckpointManagerOptions(max_to_keep=3, create=True,
                                         enable_async_checkpointing=args.async_checkpoints)))
        resuming = bool(self.manager.all_steps())
        with distribution.scope():
            self.model = build_transformer_model(
                args.config, None if resuming else args.init_checkpoint,
                application=APPLICATIONS[args.mode], with_mlm="linear",
                sequence_length=args.seq_len)
            self.optimizer = build_optimizer(args)
            self.schedule = learning_rate_schedule(args)
            self.optimizer.build(self.model.trainable_variables)
        self.max_predictions = None
        if args.mode == "roberta":
            self.max_predictions = args.max_predictions or -(-args.seq_len // 4)
        self.micro_step = 0
        self.state = self._initial_state()
        if resuming:
            step = self._restore_newest_good()
            print(f"resumed from {os.path.join(self.checkpoint_dir, str(step))} at update "
                  f"{self.update}")
        self._train_steps = jax.jit(self._steps, donate_argnums=0,
                                    out_shardings=self._shardings(self.state))
        self.stream = self._stream(array_records.read_source(sorted(files.glob(args.data))))

    @property
    def update(self):
        return self.micro_step // self.args.grad_accum_steps

    # State: every array the step reads and writes, as one pytree.
    def _initial_state(self):
        replicated = NamedSharding(self.mesh, PartitionSpec())
        return {
            "trainable": [v.value for v in self.model.trainable_variables],
            "non_trainable": [v.value for v in self.model.non_trainable_variables],
            "optimizer": [v.value for v in self.optimizer.variables],
            # Sums of the loss and accuracy since the last log; the current and longest runs
            # of non-finite losses.
            "metric_sums": jax.device_put(np.zeros(2, "float32"), replicated),
            "nonfinite": jax.device_put(np.zeros(2, "int32"), replicated),
        }

    @staticmethod
    def _shardings(state):
        return jax.tree.map(lambda array: array.sharding, state)

    def write_back(self, to_host=False):
        """Copies of the state's arrays into the Keras variables (the step donates the state's
        buffers); `to_host`: gathered from every process first (all processes call it)."""
        for key, variables in (("trainable", self.model.trainable_variables),
                               ("non_trainable", self.model.non_trainable_variables),
                               ("optimizer", self.optimizer.variables)):
            values = self.state[key]
            if to_host:
                values = multihost_utils.process_allgather(values, tiled=True)
            for variable, value in zip(variables, values):
                variable.assign(value if to_host else jax.numpy.copy(value))

    # The compiled step.
    def _loss(self, trainable, non_trainable, features):
        model = self.model
        mapping = [*zip(model.trainable_variables, trainable),
                   *zip(model.non_trainable_variables, non_trainable)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            inputs, labels, weights = training_example(features, self.args.mode)
            logits, labels, weights = scored_logits(model, inputs, labels, weights,
                                                    self.max_predictions)
            loss_sum, correct = token_losses(logits, labels, weights)
        # The dropout seeds moved on inside the scope.
        non_trainable = [scope.get_current_value(v) if scope.get_current_value(v) is not None
                         else value for v, value in zip(model.non_trainable_variables,
                                                        non_trainable)]
        count = jax.numpy.maximum(jax.numpy.sum(weights), 1.0)
        return loss_sum / count, (correct / count, non_trainable)

    def _micro_step(self, state, batch):
        features = {name: batch[:, index] for index, name in enumerate(FEATURES[self.args.mode])}
        gradient = jax.value_and_grad(self._loss, has_aux=True)
        (loss, (accuracy, non_trainable)), grads = gradient(state["trainable"],
                                                            state["non_trainable"], features)
        trainable, optimizer = self.optimizer.stateless_apply(state["optimizer"], grads,
                                                              state["trainable"])
        run = jax.numpy.where(jax.numpy.isfinite(loss), 0, state["nonfinite"][0] + 1)
        return {"trainable": trainable, "non_trainable": non_trainable, "optimizer": optimizer,
                "metric_sums": state["metric_sums"] + jax.numpy.stack([loss, accuracy]),
                "nonfinite": jax.numpy.stack([run, jax.numpy.maximum(run, state["nonfinite"][1])
                                              ])}, None

    def _steps(self, state, batches):
        """`batches` [count, micro batch, features, seq_len]: `count` micro-steps."""
        return jax.lax.scan(self._micro_step, state, batches)[0]

    # Data.
    def _stream(self, records):
        """Every record of every epoch, each epoch in its own order drawn from the seed, as
        [features, seq_len] arrays."""
        import grain

        mode, seq_len = self.args.mode, self.args.seq_len
        return (grain.MapDataset.source(records).shuffle(seed=self.args.seed).repeat()
                .map(lambda record: np.stack(list(array_records.decode(record, mode,
                                                                       seq_len).values()))))

    def batches(self, first, count):
        """Micro-batches `first .. first + count - 1` as one global array [count, micro batch,
        features, seq_len], sharded over "batch"; this process reads only its rows."""
        stream = self.stream
        shape = (count, self.micro_batch, len(FEATURES[self.args.mode]), self.args.seq_len)
        sharding = NamedSharding(self.mesh, PartitionSpec(None, "batch"))
        rows = sorted({index[1].indices(self.micro_batch)[:2]
                       for index in sharding.addressable_devices_indices_map(shape).values()})
        local = np.stack([
            np.stack([stream[(first + step) * self.micro_batch + row]
                      for start, stop in rows for row in range(start, stop)])
            for step in range(count)])
        return jax.make_array_from_process_local_data(sharding, local, shape)

    # Checks, checkpoints and export.
    def check_loss_finite(self):
        longest = int(self.state["nonfinite"][1])
        if longest >= self.args.nonfinite_patience:
            raise FloatingPointError(
                f"The loss was non-finite for {longest} micro-steps in a row (by update "
                f"{self.update}); stopping without saving. Lower --lr, or raise "
                f"--nonfinite-patience if the data has rare bad batches.")

    def check_weights_finite(self):
        arrays = self.state["trainable"] + self.state["non_trainable"]
        if not all(bool(jax.numpy.isfinite(a).all()) for a in arrays
                   if jax.numpy.issubdtype(a.dtype, jax.numpy.floating)):
            raise FloatingPointError(
                f"Non-finite weights at update {self.update}; nothing was saved or exported "
                f"(the last checkpoint in {self.args.model_dir} is untouched).")

    def _saved_state(self):
        return {"trainable": self.state["trainable"],
                "non_trainable": self.state["non_trainable"],
                "optimizer": self.state["optimizer"],
                "micro_step": np.asarray(self.micro_step, "int64")}

    def save(self):
        import orbax.checkpoint as ocp

        self.check_weights_finite()
        try:
            self.manager.save(self.update, args=ocp.args.StandardSave(self._saved_state()))
            if not self.args.async_checkpoints:
                self.manager.wait_until_finished()
        except OSError as error:
            raise OSError(
                f"Writing the checkpoint of update {self.update} in `--model-dir` "
                f"{self.args.model_dir} failed ({type(error).__name__}: "
                f"{str(error).splitlines()[0]}); the earlier checkpoints are intact. Free "
                "space, then rerun the same command to resume.") from None

    def _restore_newest_good(self):
        """Restores the newest checkpoint that reads whole onto this run's shardings and
        returns its step; newer ones that do not are renamed damaged-N (by process 0)."""
        import orbax.checkpoint as ocp

        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
            if isinstance(a, jax.Array) else a, self._saved_state())
        errors = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.manager.restore(step, args=ocp.args.StandardRestore(target))
            except Exception as error:  # orbax and tensorstore raise their own types
                errors.append((step, f"{type(error).__name__}: {str(error).splitlines()[0]}"))
                continue
            self.micro_step = int(restored.pop("micro_step"))
            self.state.update(restored)
            if errors:
                print(f"resuming from checkpoint {step}: newer ones could not be read and were "
                      "moved aside as damaged-*: " + "; ".join(f"{s} ({e})" for s, e in errors),
                      file=sys.stderr)
                if self.chief:
                    for damaged, _ in errors:
                        folder = os.path.join(self.checkpoint_dir, str(damaged))
                        files.rename(folder, os.path.join(self.checkpoint_dir,
                                                          f"damaged-{damaged}"), overwrite=False)
                self.manager.reload()
            return step
        raise ValueError("No checkpoint in `--model-dir` could be restored: " +
                         "; ".join(f"{s}: {e}" for s, e in errors))

    def export(self):
        """Final weights (EMA ones with --ema) under the original BERT names; process 0 writes."""
        self.write_back(to_host=True)
        if not self.chief:
            return None
        folder = os.path.join(self.args.model_dir, "export")
        os.makedirs(folder, exist_ok=True)
        final = (self.optimizer.ema_weights(self.model) if self.args.ema
                 else contextlib.nullcontext())
        try:
            import tensorflow  # noqa: F401  (only to know whether a TF checkpoint can be made)
            path = os.path.join(folder, "bert_model.ckpt")
        except ImportError:
            path = os.path.join(folder, "bert_model.safetensors")
        with final:
            if not all(bool(np.isfinite(keras.ops.convert_to_numpy(v)).all())
                       for v in self.model.trainable_variables):
                raise FloatingPointError("Non-finite weights; nothing was exported.")
            save_as_bert_checkpoint(self.model, path)
        return path

    # The loop.
    def run(self):
        """Trains to `--total-steps` (or `--stop-after`); returns the logged records."""
        args, k = self.args, self.args.grad_accum_steps
        end = min(args.total_steps, args.stop_after or args.total_steps)
        if self.update >= end:
            return []
        writer = _tensorboard_writer(os.path.join(args.model_dir, "logs"), self.chief)
        names = ("loss", "accuracy", "lr", "tokens/s")
        progress = keras.utils.Progbar(args.total_steps, verbose=1 if self.chief else 0,
                                       stateful_metrics=names)
        progress.update(self.update)
        records, logged = [], self.micro_step
        started = time.perf_counter()
        while self.micro_step < end * k:
            update = self.micro_step // k
            stop = min(next_multiple(update, args.log_every),
                       next_multiple(update, args.checkpoint_every), end) * k
            count = min(args.steps_per_call or k, stop - self.micro_step)
            self.state = self._train_steps(self.state, self.batches(self.micro_step, count))
            self.micro_step += count
            if self.micro_step != stop:
                continue
            update = self.micro_step // k
            self.check_loss_finite()
            if update % args.log_every == 0 or update == end:
                loss, accuracy = np.asarray(self.state["metric_sums"]) / (self.micro_step - logged)
                record = {"update": update, "loss": float(loss), "accuracy": float(accuracy),
                          "lr": float(self.schedule(update)),
                          "tokens/s": (self.micro_step - logged) * self.micro_batch
                          * args.seq_len / (time.perf_counter() - started)}
                records.append(record)
                if writer:
                    for name in names:
                        writer.add_scalar(name.replace("/", "_per_"), record[name], update)
                progress.update(update, [(name, record[name]) for name in names])
                self.state["metric_sums"] = jax.numpy.zeros_like(self.state["metric_sums"])
                logged, started = self.micro_step, time.perf_counter()
            if update % args.checkpoint_every == 0 or update == end:
                self.save()
        self.manager.wait_until_finished()
        self.write_back()
        if writer:
            writer.close()
        return records


def _tensorboard_writer(folder, enabled):
    if not enabled:
        return None
    from tensorboard.summary import DirectoryOutput, Writer

    return Writer(DirectoryOutput(folder))


def check_args(args):
    """`options.check_flags`, then the ArrayRecord shards `--data` names."""
    check_flags(args)
    if args.process_id is not None and args.process_id < 0:
        raise ValueError(f"`--process-id` must be an integer >= 0; received {args.process_id}.")
    shards = sorted(files.glob(args.data))
    if not shards:
        raise FileNotFoundError(f"No files match `--data` {args.data!r}.")
    wrong = [path for path in shards if not path.endswith(array_records.SUFFIX)]
    if wrong:
        raise ValueError(f"The JAX route reads ArrayRecord shards ({array_records.SUFFIX}, "
                         f"data_utils.py --format arrayrecord or --convert); `--data` matches "
                         f"{wrong[:3]}.")
    check_shards(shards, args.mode, args.seq_len)  # a shard without a manifest is refused


def prepare(args, distribution=None):
    """Checks the flags, claims `--model-dir` (process 0) and builds (or resumes) the run;
    errors come before any training. `release(trainer)` gives the directory back."""
    check_args(args)
    if distribution is None:
        start_processes(args)
        distribution = make_distribution(args.model_parallel,
                                         load_config(args.config)["vocab_size"])
    micro_batch_size(args, distribution.device_mesh.shape[0])  # its error before the lock
    return build_with_lock(args.model_dir, jax.process_index() == 0,
                           lambda: Pretrainer(args, distribution))


def release(trainer):
    """Removes the run's claim on `--model-dir`."""
    trainer.manager.close()
    if trainer.lock:
        unlock_model_dir(trainer.lock)
