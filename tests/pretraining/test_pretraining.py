"""The pretraining script: replicas equal one device, loss falls, kill-and-resume, export,
two real worker processes, and flag errors before training."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import mirrored_strategy

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "pretraining"))
sys.path.insert(0, str(Path(__file__).parent))

import toy_corpus  # noqa: E402
from data_utils import InstanceBuilder, build_records  # noqa: E402
from options import argument_parser  # noqa: E402
from tf_route import prepare, release  # noqa: E402

from bert4keras_ext.models import build_transformer_model  # noqa: E402
from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402
from pretraining import main, train  # noqa: E402

SEQ_LEN = 32


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Toy files and roberta / unilm records, shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("corpus")
    paths = toy_corpus.write_files(folder)
    tokenizer = Tokenizer(paths["vocab.txt"])
    for mode in ("roberta", "unilm"):
        build_records(toy_corpus.documents(300), InstanceBuilder(tokenizer, mode, SEQ_LEN),
                      str(folder / mode), repeats=2, shards=2, progress=False)
    with_dropout = folder / "config_dropout.json"
    config = json.loads(Path(paths["config.json"]).read_text())
    with_dropout.write_text(json.dumps(dict(config, hidden_dropout_prob=0.1,
                                            attention_probs_dropout_prob=0.1)))
    return {"folder": folder, "config": paths["config.json"], "dropout_config": str(with_dropout)}


def command_line(corpus, model_dir, *extra, mode="roberta", config=None):
    return ["--mode", mode, "--config", config or corpus["config"],
            "--data", str(corpus["folder"] / f"{mode}-*"), "--seq-len", str(SEQ_LEN),
            "--model-dir", str(model_dir), "--log-every", "1", *extra]


def flags(corpus, model_dir, *extra, mode="roberta", config=None):
    return argument_parser().parse_args(command_line(corpus, model_dir, *extra, mode=mode,
                                                     config=config))


def state(trainer):
    return [np.array(v) for v in trainer.model.weights + trainer.optimizer.variables]


@pytest.mark.slow
def test_two_replicas_equal_one_device_and_loss_falls(corpus, tmp_path):
    common = ["--global-batch-size", "16", "--grad-accum-steps", "2", "--optimizer", "adam",
              "--lr", "3e-3", "--warmup-steps", "2", "--total-steps", "30",
              "--checkpoint-every", "100"]
    one = prepare(flags(corpus, tmp_path / "one", *common), tf.distribute.get_strategy())
    one_records = train(one)
    two = prepare(flags(corpus, tmp_path / "two", *common), mirrored_strategy())
    two_records = train(two)
    for a, b in zip(one.model.weights, two.model.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=2e-5, err_msg=a.path)
    losses = [record["loss"] for record in two_records]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3
    np.testing.assert_allclose(losses, [r["loss"] for r in one_records], rtol=1e-4)


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(corpus, tmp_path):
    """Also with the newest checkpoints damaged (PT15: a truncated data file; PT16: a deleted
    index): the run resumes from the newest readable one and keeps it."""
    common = ["--global-batch-size", "8", "--grad-accum-steps", "2", "--optimizer", "lamb",
              "--lr", "1e-3", "--warmup-steps", "2", "--total-steps", "6", "--ema", "0.9"]
    config = corpus["dropout_config"]  # dropout on: the seeds must resume too
    # Calls of 3 micro-steps (crossing update boundaries; logs every 3 updates) give the
    # same run as the resumed one's single update per call.
    whole = prepare(flags(corpus, tmp_path / "whole", *common, "--steps-per-call", "3",
                          "--log-every", "3", config=config))
    train(whole)
    cut = tmp_path / "cut"
    first = prepare(flags(corpus, cut, *common, "--stop-after", "3", "--checkpoint-every", "1",
                          config=config))
    train(first)
    assert first.update == 3 and not (cut / "export").exists()
    data = next(cut.glob("ckpt-3.data-*"))
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    (cut / "ckpt-2.index").unlink()
    resumed = prepare(flags(corpus, cut, *common, config=config))
    assert resumed.update == 1
    assert (cut / "ckpt-1.index").exists() and (cut / "damaged-ckpt-3.index").exists()
    assert tf.train.latest_checkpoint(str(cut)) == str(cut / "ckpt-1")
    train(resumed)
    for a, b in zip(state(whole), state(resumed)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_exported_checkpoint_gives_the_trained_models_outputs(corpus, tmp_path):
    trainer = prepare(flags(corpus, tmp_path, "--mode", "unilm", "--global-batch-size", "8",
                            "--grad-accum-steps", "1", "--optimizer", "adafactor", "--lr", "1e-2",
                            "--warmup-steps", "0", "--total-steps", "3", "--ema", "0.5",
                            mode="unilm"))
    train(trainer)
    exported = tmp_path / "export"
    loaded = build_transformer_model(str(exported / "bert_config.json"),
                                     str(exported / "bert_model.ckpt"), application="unilm",
                                     with_mlm="linear")
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, 20, size=(2, SEQ_LEN))
    segment_ids = np.repeat([[0] * 20 + [1] * 12], 2, axis=0)
    with trainer.optimizer.ema_weights(trainer.model):
        expected = trainer.model.predict_on_batch([token_ids, segment_ids])
    np.testing.assert_allclose(loaded.predict_on_batch([token_ids, segment_ids]), expected,
                               atol=1e-5)


def test_bad_flags_fail_before_training(corpus, tmp_path, capsys):
    base = ["--config", corpus["config"], "--model-dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit):
        main([*base, "--data", str(tmp_path / "nothing-*")])
    assert "No files match `--data`" in capsys.readouterr().err
    data = ["--data", str(corpus["folder"] / "roberta-*")]
    with pytest.raises(SystemExit):
        main([*base, *data, "--strategy", "gpus"])
    assert "invalid choice: 'gpus'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"divisible by replicas x accumulation steps \(2 x 4\)"):
        prepare(flags(corpus, tmp_path / "run", "--global-batch-size", "12",
                      "--grad-accum-steps", "4"), mirrored_strategy())
    with pytest.raises(ValueError, match="`--warmup-steps` must be in"):
        prepare(flags(corpus, tmp_path / "run", "--warmup-steps", "10", "--total-steps", "5"))
    for flag, value, message in [("--lr", "nan", "`--lr` must be a positive finite number"),
                                 ("--lr", "-0.01", "`--lr` must be a positive finite number"),
                                 ("--stop-after", "0", "`--stop-after` must be a positive"),
                                 ("--weight-decay", "inf", "`--weight-decay` must be a finite"),
                                 ("--nonfinite-patience", "0", "`--nonfinite-patience` must")]:
        with pytest.raises(ValueError, match=message):  # PT09, PT10, PT11
            prepare(flags(corpus, tmp_path / "run", flag, value))
    assert not (tmp_path / "run").exists()


def test_resume_refuses_flags_that_change_what_the_checkpoints_mean(corpus, tmp_path):
    """PT17 (another --grad-accum-steps would double the update count) and PT19 (another
    optimizer would read LAMB's slots): refused, naming both values."""
    common = ["--global-batch-size", "8", "--total-steps", "4", "--warmup-steps", "1"]
    prepare(flags(corpus, tmp_path, *common, "--grad-accum-steps", "2", "--optimizer", "lamb"))
    for changed, message in [(["--grad-accum-steps", "1", "--optimizer", "lamb"],
                              r"--grad-accum-steps 1 \(the run used 2\)"),
                             (["--grad-accum-steps", "2", "--optimizer", "adafactor"],
                              r"--optimizer 'adafactor' \(the run used 'lamb'\)")]:
        with pytest.raises(ValueError, match=message):
            prepare(flags(corpus, tmp_path, *common, *changed))
    resumable = prepare(flags(corpus, tmp_path, *common, "--grad-accum-steps", "2",
                              "--optimizer", "lamb", "--checkpoint-every", "7"))
    assert resumable.update == 0


SHORT_RUN = ["--global-batch-size", "8", "--grad-accum-steps", "1", "--total-steps", "4",
             "--warmup-steps", "1"]


def test_a_model_dir_in_use_or_not_writable_is_refused_before_training(corpus, tmp_path,
                                                                       capsys):
    """Reliability probe 2, PT06: two runs wrote one --model-dir (the second failed reading
    checkpoints the first had rotated away). The first start claims the directory with a lock
    naming its pid and host; a second run is refused by name while that process lives, and a
    lock whose process died is taken over with a message. PT04: a directory that cannot be
    written ended in a raw TensorFlow traceback; now the CLI's one-line error names it."""
    run, host = tmp_path / "run", socket.gethostname()
    run.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / "run.lock").write_text(json.dumps({"pid": owner.pid, "host": host}))
        with pytest.raises(SystemExit) as exit_info:
            main(command_line(corpus, run, *SHORT_RUN))
        assert exit_info.value.code == 2
        assert (f"`--model-dir` '{run}' is in use by process {owner.pid} on {host} (its lock "
                f"file {run / 'run.lock'})") in capsys.readouterr().err
    finally:
        owner.kill()
        owner.wait()
    trainer = prepare(flags(corpus, run, *SHORT_RUN))  # the owner is dead now
    assert (f"taking over {run / 'run.lock'}: its owner (process {owner.pid} on {host}) is no "
            "longer running") in capsys.readouterr().err
    assert json.loads((run / "run.lock").read_text()) == {"pid": os.getpid(), "host": host}
    release(trainer)
    assert not (run / "run.lock").exists()
    (run / "run.lock").write_text(json.dumps({"pid": 1, "host": "another-host"}))
    with pytest.raises(ValueError, match=r"in use by process 1 on another-host .* if that run "
                                         r"has ended \(its pid now another program's\), "
                                         r"delete .*run.lock"):
        prepare(flags(corpus, run, *SHORT_RUN))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        main(command_line(corpus, blocker / "run", *SHORT_RUN))
    assert f"`--model-dir` '{blocker / 'run'}' cannot be written: " in capsys.readouterr().err


def test_a_checkpoint_that_cannot_be_written_ends_the_run_naming_the_model_dir(
        corpus, tmp_path, monkeypatch):
    """Reliability probe 2, PT05: a full disk at a checkpoint ended in a raw traceback. Now
    the CLI's one-line error names --model-dir and the newest intact checkpoint, removes the
    partial one and the lock, and a rerun resumes from it."""
    save = tf.train.CheckpointManager.save

    def fill_the_disk_at_update_2(manager, checkpoint_number=None, **options):
        if checkpoint_number == 2:
            tf.io.gfile.makedirs(os.path.join(manager.directory, "ckpt-2_temp"))
            raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
        return save(manager, checkpoint_number=checkpoint_number, **options)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", fill_the_disk_at_update_2)
    with pytest.raises(SystemExit) as exit_info:
        main(command_line(corpus, tmp_path, *SHORT_RUN, "--checkpoint-every", "1"))
    assert exit_info.value.code == (
        f"error: Writing the checkpoint of update 2 in `--model-dir` {tmp_path} failed "
        f"(ResourceExhaustedError: No space left on device); the earlier checkpoints are intact "
        f"(newest: {tmp_path / 'ckpt-1'}). Free space, then rerun the same command to resume.")
    assert not (tmp_path / "ckpt-2_temp").exists() and not (tmp_path / "run.lock").exists()
    monkeypatch.undo()
    assert prepare(flags(corpus, tmp_path, *SHORT_RUN, "--checkpoint-every", "1")).update == 1


def test_non_finite_loss_or_weights_stop_the_run_before_saving(corpus, tmp_path):
    """PT09/PT19: the loop counts non-finite losses on the device and checks them at each log,
    and checks the weights before each checkpoint and export."""
    trainer = prepare(flags(corpus, tmp_path, "--global-batch-size", "8", "--grad-accum-steps",
                            "1", "--total-steps", "8", "--warmup-steps", "1",
                            "--nonfinite-patience", "3"))
    weight = trainer.model.weights[0]
    weight.assign(np.full(weight.shape, np.nan, "float32"))  # every loss is NaN from here
    with pytest.raises(FloatingPointError, match="non-finite for 3 micro-steps in a row"):
        trainer.run()
    assert trainer.update == 3 and not list(tmp_path.glob("ckpt-*"))
    with pytest.raises(FloatingPointError, match="Non-finite weights at update 3"):
        trainer.save()
    with pytest.raises(FloatingPointError, match="Non-finite weights"):
        trainer.export()
    assert not list(tmp_path.glob("ckpt-*")) and not (tmp_path / "export" / "checkpoint").exists()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_worker_processes_equal_one_device(corpus, tmp_path):
    """Two worker processes (MultiWorkerMirroredStrategy) export the weights one device
    reaches with the same flags: the workers stayed in sync and split each batch."""
    common = ["--mode", "roberta", "--config", corpus["config"],
              "--data", str(corpus["folder"] / "roberta-*"), "--seq-len", str(SEQ_LEN),
              "--global-batch-size", "16", "--grad-accum-steps", "2", "--optimizer", "adam",
              "--lr", "3e-3", "--warmup-steps", "2", "--total-steps", "12", "--log-every", "4"]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    command = [sys.executable, str(ROOT / "pretraining" / "pretraining.py"), "--strategy",
               "multiworker", *common, "--model-dir", str(tmp_path / "run")]
    environment = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    workers = []
    try:
        for index in range(2):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            workers.append(subprocess.Popen(
                command, env=dict(environment, TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    one = prepare(argument_parser().parse_args([*common, "--model-dir", str(tmp_path / "one")]),
                  tf.distribute.get_strategy())
    train(one)
    exported, expected = (tf.train.load_checkpoint(str(tmp_path / run / "export" /
                                                       "bert_model.ckpt"))
                          for run in ("run", "one"))
    names = list(expected.get_variable_to_shape_map())
    assert len(names) > 10
    for name in names:
        np.testing.assert_allclose(exported.get_tensor(name), expected.get_tensor(name),
                                   atol=2e-5, err_msg=name)
    assert not (tmp_path / "run" / ".worker-1-tmp").exists()


def test_masked_lm_scores_only_masked_positions_through_the_head(corpus, tmp_path):
    def trainer(max_predictions):
        return prepare(flags(corpus, tmp_path / str(max_predictions), "--global-batch-size", "8",
                             "--grad-accum-steps", "1", "--max-predictions",
                             str(max_predictions)))

    full, capped = trainer(SEQ_LEN), trainer(3)
    capped.model.set_weights(full.model.get_weights())
    inputs, labels, weights = next(iter(full.dataset()))
    logits = np.asarray(full.model(list(inputs)), "float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_losses = -np.take_along_axis(log_probs, np.asarray(labels)[..., None], -1)[..., 0]
    weights = np.asarray(weights)
    for trainer_, cap in ((full, SEQ_LEN), (capped, 3)):
        scored, scored_labels, scored_weights = trainer_.scored_logits(inputs, labels, weights,
                                                                        training=False)
        assert scored.shape == (8, cap, full.model.output.shape[-1])
        kept = weights * (np.cumsum(weights, axis=1) <= cap)  # first `cap` masked per row
        expected = (token_losses * kept).sum() / kept.sum()
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
            scored_labels, tf.cast(scored, tf.float32)).numpy()
        got = (losses * scored_weights.numpy()).sum() / scored_weights.numpy().sum()
        assert got == pytest.approx(expected, rel=1e-5)
    assert (weights.sum(1) > 3).any()  # the cap of 3 really dropped some masked tokens


def test_shards_that_cannot_give_training_data_are_named(corpus, tmp_path):
    """Reliability probe PT04 (a truncated shard was read to the cut silently), PT06 (no
    records), PT08 (another sequence length) and PT03 (a corrupted record names its shard)."""
    data = tmp_path / "data"
    data.mkdir()
    for path in corpus["folder"].glob("roberta*"):
        (data / path.name).write_bytes(path.read_bytes())
    shard = sorted(data.glob("roberta-*.tfrecord"))[0]

    def prepared(*extra):
        return prepare(argument_parser().parse_args([
            "--config", corpus["config"], "--data", str(data / "roberta-*.tfrecord"),
            "--model-dir", str(tmp_path / "run"), "--global-batch-size", "8",
            "--grad-accum-steps", "1", "--total-steps", "4", "--warmup-steps", "1", *extra]))

    with pytest.raises(ValueError, match=r"was written with seq_len=32; training asks for 64"):
        prepared("--seq-len", "64")
    trainer = prepared("--seq-len", str(SEQ_LEN))
    content = bytearray(shard.read_bytes())
    content[len(content) // 2: len(content) // 2 + 16] = b"\xff" * 16
    shard.write_bytes(bytes(content))

    # The first shuffle block spans the toy epoch: the first call reads the damaged record.
    with pytest.raises(ValueError, match=rf"Damaged `--data` shards: .*{shard.name} \("):
        trainer.run()
    shard.write_bytes(bytes(content[:len(content) // 2]))
    with pytest.raises(ValueError, match=rf"{shard.name} has \d+ bytes; its manifest says"):
        prepared("--seq-len", str(SEQ_LEN))
    empty_prefix = tmp_path / "empty" / "gpt"
    empty_prefix.parent.mkdir()
    build_records([], InstanceBuilder(Tokenizer(str(corpus["folder"] / "vocab.txt")), "gpt",
                                      SEQ_LEN), str(empty_prefix), progress=False)
    with pytest.raises(ValueError, match=r"The 1 shard\(s\) hold no records"):
        prepare(argument_parser().parse_args([
            "--mode", "gpt", "--config", corpus["config"], "--seq-len", str(SEQ_LEN),
            "--data", str(empty_prefix) + "-*.tfrecord", "--model-dir", str(tmp_path / "g")]))
