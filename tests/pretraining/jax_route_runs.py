"""Runs of the JAX pretraining route in a fresh process (the device count is fixed when JAX
starts), with TensorFlow made unimportable, for test_jax_route.py:

    python jax_route_runs.py CHECK FOLDER   # CHECK: meshes or resume; FOLDER: the toy corpus
    python jax_route_runs.py train ARGS...   # pretraining.py's command line

Each check prints one JSON line of its measurements."""
import json
import os
import shutil
import sys
from pathlib import Path

# As if TensorFlow were not installed: `import tensorflow` fails and `find_spec` finds nothing.
sys.modules["tensorflow"] = None
os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, str(Path(__file__).parents[2] / "pretraining"))

import jax  # noqa: E402

if sys.argv[1] != "train":
    jax.config.update("jax_num_cpu_devices", 8)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from jax_route import prepare, release  # noqa: E402
from options import argument_parser  # noqa: E402

from pretraining import main, train  # noqa: E402

SEQ_LEN = 32


def flags(folder, model_dir, *extra):
    return argument_parser().parse_args([
        "--mode", "roberta", "--config", str(folder / "config.json"), "--seq-len", str(SEQ_LEN),
        "--data", str(folder / "roberta-*.arrayrecord"), "--model-dir", str(model_dir),
        "--log-every", "1", *extra])


def data_parallel(count):
    mesh = keras.distribution.DeviceMesh((count,), ("batch",), jax.devices()[:count])
    return keras.distribution.DataParallel(device_mesh=mesh)


def model_parallel(batch, model):
    devices = jax.devices()[:batch * model]
    mesh = keras.distribution.DeviceMesh((batch, model), ("batch", "model"), devices)
    layout = keras.distribution.LayoutMap(mesh)
    import jax_route

    for pattern, axes in jax_route.MODEL_PARALLEL_LAYOUT:
        layout[pattern] = axes
    return keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")


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
    print(json.dumps({
        "eight": largest_difference(one, runs["eight"][0]),
        "mesh": largest_difference(one, runs["mesh"][0]),
        "losses": losses, "mesh_losses": runs["mesh"][1], "sharded": sharded}))


def check_resume(folder):
    """Uninterrupted vs stopped after update 3 and rerun (2 devices), with the newest
    checkpoint damaged; and the stopped run resumed on 4 devices."""
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
    run("cut", 2, "--stop-after", "3")
    shutil.copytree(folder / "cut", folder / "moved")
    checkpoints = folder / "cut" / "checkpoints"
    for path in (checkpoints / "3").rglob("*"):  # damage the newest checkpoint's data
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"\0" * 16)
    resumed = run("cut", 2)
    moved = run("moved", 4)
    print(json.dumps({
        "starts": starts, "bit_identical": all(
            np.array_equal(a, b) for a, b in zip(weights(whole), weights(resumed))),
        "checkpoints": sorted(p.name for p in checkpoints.iterdir()),
        "other_device_count": largest_difference(weights(whole), weights(moved))}))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        main(sys.argv[2:])
    else:
        {"meshes": check_meshes, "resume": check_resume}[sys.argv[1]](Path(sys.argv[2]))
