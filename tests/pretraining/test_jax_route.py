"""The JAX pretraining route (pretraining.py with KERAS_BACKEND=jax), without TensorFlow: one
device == 8 data-parallel devices == a 2 x 4 data x model mesh (and 1 == 8 in unilm mode with
AdaFactor; gpt learns), non-finite runs stop unsaved, stop-and-resume and kill-and-resume are bit-identical (a
damaged newest checkpoint set aside), resuming on another device count, two processes through
jax.distributed == one process, and the export read back. Each run is a fresh process
(jax_route_runs.py): the device count is fixed when JAX starts."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKEND

ROOT = Path(__file__).parents[2]
RUNS = Path(__file__).parent / "jax_route_runs.py"
sys.path.insert(0, str(ROOT / "pretraining"))
sys.path.insert(0, str(Path(__file__).parent))

import toy_corpus  # noqa: E402
from data_utils import InstanceBuilder, build_records  # noqa: E402

from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402

# Once, in the JAX pass of the suite: the runs start their own JAX processes.
pytestmark = [pytest.mark.backend_neutral,
              pytest.mark.skipif(BACKEND != "jax", reason="runs in the JAX pass")]
SEQ_LEN = 32
ENVIRONMENT = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2",
                   KERAS_BACKEND="jax",
                   # The runs compile the same programs again and again: compile each once.
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Toy ArrayRecord shards, written here without TensorFlow (the JAX pass blocks it)."""
    folder = tmp_path_factory.mktemp("corpus")
    ENVIRONMENT["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
    paths = toy_corpus.write_files(folder)
    tokenizer = Tokenizer(paths["vocab.txt"])
    for mode in ("roberta", "unilm", "gpt"):
        build_records(toy_corpus.documents(300), InstanceBuilder(tokenizer, mode, SEQ_LEN),
                      str(folder / mode), repeats=2, shards=2, progress=False,
                      shard_format="arrayrecord")
    return folder


def measured(checks, folder):
    """{check: measurements} of jax_route_runs.py's `checks`, run in one process."""
    result = subprocess.run([sys.executable, str(RUNS), checks, str(folder)], env=ENVIRONMENT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def device_checks(corpus):
    return measured("meshes,modes,nonfinite", corpus)


def test_one_device_eight_devices_and_a_data_by_model_mesh_train_alike(device_checks):
    """4 LAMB updates of 2 accumulated micro-steps: the same weights and optimizer slots
    within float32 summation-order noise (measured: <= 2e-7)."""
    result = device_checks["meshes"]
    assert result["eight"] < 2e-6 and result["mesh"] < 2e-6, result
    np.testing.assert_allclose(result["mesh_losses"], result["losses"], rtol=1e-6)
    assert result["sharded"] == "P(None, 'model')"  # the attention kernels were split


def test_unilm_with_adafactor_trains_alike_on_1_and_8_devices_and_gpt_learns(device_checks):
    """3 updates at lr 1e-2 with EMA. unilm: largest difference measured 3.7e-5 (AdaFactor's
    RMS-normalized updates magnify float32 summation-order noise); gpt on 8 devices: the
    next-token loss falls (measured 3.35 -> 2.76)."""
    unilm, gpt = device_checks["modes"]["unilm"], device_checks["modes"]["gpt"]
    assert unilm["difference"] < 1e-4, unilm
    np.testing.assert_allclose(unilm["losses_eight"], unilm["losses"], rtol=1e-6)
    assert len(gpt["losses"]) == 3 and gpt["losses"][-1] < 0.9 * gpt["losses"][0], gpt


def test_a_non_finite_run_stops_before_anything_is_written(device_checks):
    result = device_checks["nonfinite"]
    assert result["update"] == 3, result
    loss_error, save_error, export_error = result["errors"]
    assert "non-finite for 3 micro-steps in a row" in loss_error
    assert save_error.startswith("Non-finite weights at update 3")
    assert export_error.startswith("Non-finite weights")
    assert result["written"] == [], result


def test_stop_and_resume_is_bit_identical_also_on_another_device_count(corpus):
    """Dropout on and EMA: stopped after update 3 (asynchronous checkpoints) with that
    checkpoint damaged, the rerun resumes from update 2 and ends with exactly the uninterrupted
    run's state (whose calls crossed update boundaries); the stopped run resumed on 4 devices
    within float noise (measured 1.5e-8)."""
    result = measured("resume", corpus)["resume"]
    assert result["starts"] == {"whole": [0], "cut": [0, 2], "moved": [3]}, result
    assert result["bit_identical"], result
    assert "damaged-3" in result["checkpoints"], result
    assert "--optimizer 'adam' (the run used 'lamb')" in result["refused"], result
    assert result["other_device_count"] < 1e-6, result


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_and_a_killed_and_rerun_process_equal_one_and_the_export_loads(
        corpus, tmp_path):
    from safetensors.numpy import load_file

    from bert4keras_ext.models import build_transformer_model

    common = ["--mode", "roberta", "--config", str(corpus / "config.json"),
              "--data", str(corpus / "roberta-*.arrayrecord"), "--seq-len", str(SEQ_LEN),
              "--global-batch-size", "16", "--grad-accum-steps", "2", "--optimizer", "adam",
              "--lr", "3e-3", "--warmup-steps", "2", "--total-steps", "4", "--log-every", "2"]
    address = f"127.0.0.1:{_free_port()}"
    processes = [subprocess.Popen(
        [sys.executable, str(RUNS), "train", *common, "--model-dir", str(tmp_path / "two"),
         "--coordinator-address", address, "--num-processes", "2", "--process-id", str(index)],
        env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for index in range(2)]
    try:
        outputs = [process.communicate(timeout=300)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert [process.returncode for process in processes] == [0, 0], outputs
    def run(*arguments):  # one process, 2 CPU devices
        result = subprocess.run([sys.executable, str(RUNS), *arguments, *common,
                                 "--cpu-replicas", "2"], env=ENVIRONMENT, capture_output=True,
                                text=True, timeout=300)
        return result.returncode, result.stdout + result.stderr

    code, output = run("train", "--model-dir", str(tmp_path / "one"))
    assert code == 0, output[-3000:]
    # Killed by SIGKILL once update 2 is saved (its lock left behind), then rerun.
    killed_run = ["--model-dir", str(tmp_path / "killed"), "--checkpoint-every", "1"]
    code, output = run("killed", "2", *killed_run)
    assert code == -9 and (tmp_path / "killed" / "run.lock").exists(), output[-3000:]
    code, output = run("train", *killed_run)
    assert code == 0 and "at update 2" in output and "taking over" in output, output[-3000:]
    two, killed, expected = (
        load_file(str(tmp_path / folder / "export" / "bert_model.safetensors"))
        for folder in ("two", "killed", "one"))
    assert sorted(two) == sorted(expected) == sorted(killed) and len(two) > 30
    for name in expected:
        np.testing.assert_array_equal(two[name], expected[name], err_msg=name)
        np.testing.assert_array_equal(killed[name], expected[name], err_msg=name)
    assert list((tmp_path / "two" / "logs").glob("events.out.tfevents.*"))
    # The original names in safetensors read back through the checkpoint loader.
    export = tmp_path / "one" / "export"
    model = build_transformer_model(str(export / "bert_config.json"),
                                    str(export / "bert_model.safetensors"), with_mlm="linear")
    table = model.token_embedding.embeddings
    np.testing.assert_array_equal(np.asarray(table),
                                  expected["bert/embeddings/word_embeddings"])


def test_the_jax_route_names_data_it_cannot_read(corpus, tmp_path):
    from jax_route import check_args
    from options import argument_parser

    (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
    args = argument_parser().parse_args([
        "--config", str(corpus / "config.json"), "--data", str(tmp_path / "train-*"),
        "--model-dir", str(tmp_path / "run")])
    with pytest.raises(ValueError, match=r"The JAX route reads ArrayRecord shards "
                                         r"\(\.arrayrecord, data_utils.py --format arrayrecord"):
        check_args(args)
    args.data = str(corpus / "roberta-*.arrayrecord")
    args.seq_len = 64
    with pytest.raises(ValueError, match="was written with seq_len=32; training asks for 64"):
        check_args(args)
