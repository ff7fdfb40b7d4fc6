"""What the JAX pretraining route's test modules share: toy ArrayRecord shards written without
TensorFlow, and the runs of jax_route_runs.py in fresh processes (the device count is fixed
when JAX starts). Two modules, so that the test workers can share the work."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BACKEND

ROOT = Path(__file__).parents[2]
RUNS = Path(__file__).parent / "jax_route_runs.py"
sys.path.insert(0, str(ROOT / "pretraining"))
sys.path.insert(0, str(Path(__file__).parent))

import toy_corpus  # noqa: E402
from data_utils import InstanceBuilder, build_records  # noqa: E402

from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402

# The modules run once, in the JAX pass of the suite (with `backend_neutral`, which that pass
# looks for in each module's text): the runs start their own JAX processes.
JAX_PASS_ONLY = pytest.mark.skipif(BACKEND != "jax", reason="runs in the JAX pass")
SEQ_LEN = 32
ENVIRONMENT = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2",
                   KERAS_BACKEND="jax",
                   # The runs compile the same programs again and again: compile each once.
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def write_corpus(tmp_path_factory):
    """Toy ArrayRecord shards (roberta, unilm, gpt), written here without TensorFlow (the JAX
    pass blocks it), and a fresh compilation cache for the runs; returns their folder."""
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
