"""Runs of the JAX pretraining route in a fresh process (the device count is fixed when JAX
starts), with TensorFlow made unimportable, for test_jax_route.py:

    python jax_route_runs.py CHECKS FOLDER   # CHECKS: a comma-separated list of CHECKS' keys
    python jax_route_runs.py train ARGS...    # pretraining.py's command line
    python jax_route_runs.py killed N ARGS... # the same, killed (SIGKILL) once update N is saved

FOLDER holds the toy corpus. The last line printed is a JSON object {check: measurements}."""
import json
import os
import shutil
import sys
from pathlib import Path

# As if TensorFlow were not installed: `import tensorflow` fails and `find_spec` finds nothing.
sys.modules["tensorflow"] = None
os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, str(Path(__file__).parents[2] / "pretraining"))
sys.path.insert(0, str(Path(__file__).parent))

import jax  # noqa: E402

if sys.argv[1] not in ("train", "killed"):
    jax.config.update("jax_num_cpu_devices", 8)

import numpy as np  # noqa: E402
import toy_corpus  # noqa: E402
from jax_route import make_distribution, prepare, release  # noqa: E402
from options import argument_parser  # noqa: E402

from pretraining import main, train  # noqa: E402

SEQ_LEN = 32


def flags(folder, model_dir, *extra, mode="roberta"):
    return argument_parser().parse_args([
        "--mode", mode, "--config", str(folder / "config.json"), "--seq-len", str(SEQ_LEN),
        "--data", str(folder / f"{mode}-*.arrayrecord"), "--model-dir", str(model_dir),
        "--log-every", "1", *extra])


VOCAB_SIZE = len(toy_corpus.vocabulary())


def data_parallel(count):
    return make_distribution(1, VOCAB_SIZE, jax.devices()[:count])


def model_parallel(batch, model):
    return make_distribution(model, VOCAB_SIZE, jax.devices()[:batch * model])


def weights(trainer):
    return [np.asarray(v) for v in trainer.state["trainable"] + trainer.state["optimizer"]]


def largest_difference(a, b):
    return max(float(np.max(np.abs(x.astype("float64") - y))) for x, y in zip(a, b))


def check_meshes(folder):
    """One device, 8 data-parallel devices and a 2 x 4 data x model mesh: 4 updates of LAMB
    with accumulation over 2 micro-steps; the kernels of the 2 x 4 run are sharded."""
    common = ["--global-batch-size", "16", "--grad-accum-steps", "2", "--optimizer", "lamb",
              "--lr", "3e-3", "--warmup-steps", "2", "--total-steps", "4",
              "--checkpoint-every", "100"]
    runs, sharded = {}, None
    for name, distribution in (("one", data_parallel(1)), ("eight", data_parallel(8)),
                               ("mesh", model_parallel(2, 4))):
        trainer = prepare(flags(folder, folder / f"meshes-{name}", *common), distribution)
        records = train(trainer)
        runs[name] = (weights(trainer), [r["loss"] for r in records])
        if name == "mesh":
            kernel = trainer.model.trainable_variables[
                [v.path for v in trainer.model.trainable_variables].index(
                    "Transformer-0-MultiHeadSelfAttention/q_dense/kernel")]
            sharded = str(kernel.value.sharding.spec)
        release(trainer)
    one, losses = runs["one"]
    return {"eight": largest_difference(one, runs["eight"][0]),
            "mesh": largest_difference(one, runs["mesh"][0]),
            "losses": losses, "mesh_losses": runs["mesh"][1], "sharded": sharded}


def check_modes(folder):
    """unilm with AdaFactor on one device and on 8, gpt with Adam on 8 (EMA on), 3 updates."""
    results = {}
    for mode, optimizer, device_counts in (("unilm", "adafactor", (1, 8)),
                                           ("gpt", "adam", (8,))):
        runs = []
        for devices in device_counts:
            trainer = prepare(flags(folder, folder / f"{mode}-{devices}", "--global-batch-size",
                                    "16", "--grad-accum-steps", "1", "--optimizer", optimizer,
                                    "--lr", "1e-2", "--warmup-steps", "0", "--total-steps", "3",
                                    "--ema", "0.5", "--checkpoint-every", "100", mode=mode),
                              data_parallel(devices))
            records = train(trainer)
            release(trainer)
            runs.append((weights(trainer), [r["loss"] for r in records]))
        results[mode] = {"losses": runs[0][1], "losses_eight": runs[-1][1],
                         "difference": largest_difference(runs[0][0], runs[-1][0])}
    return results


def check_nonfinite(folder):
    """Weights made NaN: the run stops after --nonfinite-patience non-finite micro-steps, and
    neither a checkpoint nor an export is written."""
    trainer = prepare(flags(folder, folder / "nonfinite", "--global-batch-size", "8",
                            "--grad-accum-steps", "1", "--total-steps", "8", "--warmup-steps",
                            "1", "--nonfinite-patience", "3"), data_parallel(2))
    trainer.state["trainable"][0] = trainer.state["trainable"][0] * np.nan
    errors = []
    for action in (trainer.run, trainer.save, trainer.export):
        try:
            action()
            errors.append(None)
        except FloatingPointError as error:
            errors.append(str(error))
    release(trainer)
    written = [p.name for p in (folder / "nonfinite").rglob("*")
               if p.parent.name in ("checkpoints", "export")]
    return {"update": trainer.update, "errors": errors, "written": written}


def check_resume(folder):
    """Uninterrupted vs stopped after update 3 (checkpoints written in the background) and
    rerun (2 devices), with the newest checkpoint damaged (a rerun with another optimizer
    refused first); and the stopped run resumed on 4 devices."""
    common = ["--global-batch-size", "8", "--grad-accum-steps", "2", "--optimizer", "lamb",
              "--lr", "1e-3", "--warmup-steps", "1", "--total-steps", "4", "--ema", "0.9",
              "--checkpoint-every", "1", "--steps-per-call", "1"]

    config = json.loads((folder / "config.json").read_text())
    dropout = folder / "config_dropout.json"  # dropout on: the seeds must resume too
    dropout.write_text(json.dumps(dict(config, hidden_dropout_prob=0.1,
                                       attention_probs_dropout_prob=0.1)))
    common += ["--config", str(dropout)]

    starts = {}

    def run(name, devices, *extra):
        trainer = prepare(flags(folder, folder / name, *common, *extra), data_parallel(devices))
        starts.setdefault(name, []).append(trainer.update)
        train(trainer)
        release(trainer)
        return trainer

    # Calls of 3 micro-steps, across update boundaries.
    whole = run("whole", 2, "--steps-per-call", "3", "--log-every", "3",
                "--checkpoint-every", "100")
    run("cut", 2, "--stop-after", "3", "--async-checkpoints")  # written in the background
    shutil.copytree(folder / "cut", folder / "moved")
    try:  # another optimizer would read LAMB's slots
        prepare(flags(folder, folder / "cut", *common, "--optimizer", "adam"), data_parallel(2))
        refused = None
    except ValueError as error:
        refused = str(error)
    checkpoints = folder / "cut" / "checkpoints"
    for path in (checkpoints / "3").rglob("*"):  # damage the newest checkpoint's data
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"\0" * 16)
    resumed = run("cut", 2)
    moved = run("moved", 4)
    return {"starts": starts, "bit_identical": all(
                np.array_equal(a, b) for a, b in zip(weights(whole), weights(resumed))),
            "checkpoints": sorted(p.name for p in checkpoints.iterdir()), "refused": refused,
            "other_device_count": largest_difference(weights(whole), weights(moved))}


CHECKS = {"meshes": check_meshes, "modes": check_modes, "nonfinite": check_nonfinite,
          "resume": check_resume}


def killed_after(update, argv):
    """pretraining.py's `argv`, ended by SIGKILL (no cleanup: the lock stays) right after the
    checkpoint of `update` is written."""
    import signal

    import jax_route

    save = jax_route.Pretrainer.save

    def save_then_die(trainer):
        save(trainer)
        if trainer.update == update:
            trainer.manager.wait_until_finished()
            os.kill(os.getpid(), signal.SIGKILL)

    jax_route.Pretrainer.save = save_then_die
    main(argv)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        main(sys.argv[2:])
    elif sys.argv[1] == "killed":
        killed_after(int(sys.argv[2]), sys.argv[3:])
    else:
        results = {name: CHECKS[name](Path(sys.argv[2])) for name in sys.argv[1].split(",")}
        print("\n" + json.dumps(results))  # after the progress bar's unended line
