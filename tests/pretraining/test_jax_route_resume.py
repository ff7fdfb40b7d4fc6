"""The JAX pretraining route, resuming: stop-and-resume and kill-and-resume are
bit-identical (a damaged newest checkpoint set aside, changed flags refused), a run resumes on
another device count, two processes through jax.distributed == one process, and the export
reads back. (Devices and modes: test_jax_route.py.)"""
import socket
import subprocess
import sys

import numpy as np
import pytest
from jax_route_fixtures import (
    ENVIRONMENT,
    JAX_PASS_ONLY,
    RUNS,
    SEQ_LEN,
    measured,
    write_corpus,
)

pytestmark = [pytest.mark.backend_neutral, JAX_PASS_ONLY]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory)


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


