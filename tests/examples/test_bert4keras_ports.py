"""bert4keras example scripts ported by their imports alone (examples/bert4keras_ports) run
end to end on the bundled real reviews and learn: the training loss falls by a stated factor.
Sizes are the scripts' own flags, small enough for CI."""
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bert4keras_ext.tasks.common import character_vocabulary
from bert4keras_ext.tasks.synthetic import ner_sentences
from bert4keras_ext.tasks.synthetic.math_word_problems import generate, write_jsonl

PORTS = Path(__file__).parents[2] / "examples" / "bert4keras_ports"


def run(script, tmp_path, *flags):
    result = subprocess.run(
        [sys.executable, str(PORTS / script), "--output", str(tmp_path / "best.weights.h5"),
         "--seed", "0", *flags], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = re.search(r"loss by epoch: (.*)", result.stdout).group(1).split()
    return [float(loss) for loss in losses], result.stdout


@pytest.mark.parametrize("script,flags,factor", [
    # ALBERT from random weights on 256 reviews: the classifier leaves chance level
    # (0.710 -> 0.687 with seed 0).
    ("task_sentiment_albert.py", ["--limit", "256", "--epochs", "3", "--maxlen", "32",
                                  "--hidden", "128", "--lr", "2e-3", "--warmup", "10"], 0.97),
    # The Loss layer averages over real tokens (mask[1]): from about ln(vocab) down
    # (8.83 -> 6.01 with seed 0).
    ("task_language_model.py", ["--limit", "192", "--epochs", "2", "--maxlen", "24",
                                "--hidden", "64", "--lr", "2e-3"], 0.75),
    # Conditional LayerNorm from a label embedding, sampled with topp=5 (9.26 -> 6.85).
    ("task_conditional_language_model.py", ["--limit", "256", "--epochs", "2", "--maxlen",
                                            "24", "--hidden", "64", "--lr", "2e-3"], 0.8),
])
def test_port_runs_and_learns(script, flags, factor, tmp_path):
    losses, stdout = run(script, tmp_path, *flags)
    assert losses[-1] < factor * losses[0], losses
    assert (tmp_path / "best.weights.h5").exists()
    if script != "task_sentiment_albert.py":
        samples = re.findall(r"result: (.*)", stdout)
        assert samples and all(len(sample) > len("手机外观") for sample in samples)


def test_ape210k_port_learns_and_writes_equations(tmp_path):
    """UNILM seq2seq with a Loss layer weighting by (integer) segment ids, EMA weights and
    beam search on ape210k-format problems (6.51 -> 3.15 with seed 0)."""
    data = tmp_path / "problems.json"
    write_jsonl(generate(200), data)
    losses, stdout = run("task_seq2seq_ape210k_math_word_problem.py", tmp_path, "--train",
                         str(data), "--valid-size", "4", "--limit", "192", "--epochs", "2",
                         "--batch-size", "8", "--hidden", "64", "--maxlen", "48",
                         "--lr", "5e-3")
    assert losses[-1] < 0.6 * losses[0], losses
    assert re.findall(r"valid_data: \{'acc': [0-9.]+, 'best_acc'", stdout)
    equations = re.findall(r"e\.g\. .* -> (.*)", stdout)
    assert len(equations) == 2 and equations[-1].strip()
    assert (tmp_path / "best.weights.h5").exists()


def test_autotitle_port_learns_and_writes_titles(tmp_path):
    """UNILM title generation over THUCNews-style files (title on the first line), here the
    bundled reviews titled by their label; from random weights the loss falls
    (8.27 -> 3.96 with seed 0) and titles are decoded."""
    lines = zipfile.ZipFile(PORTS.parent / "datasets" / "bert4keras_sentiment" / "sentiment.zip"
                            ).read("sentiment/sentiment.train.data").decode("utf-8").splitlines()
    (tmp_path / "news").mkdir()
    for index, line in enumerate(lines[:192]):
        review, label = line.rsplit("\t", 1)
        title = "positive" if label == "1" else "negative"
        (tmp_path / "news" / f"{index:04d}.txt").write_text(f"{title}\n{review}", encoding="utf-8")
    losses, stdout = run("task_seq2seq_autotitle.py", tmp_path, "--data",
                         str(tmp_path / "news" / "*.txt"), "--epochs", "2", "--steps-per-epoch",
                         "12", "--hidden", "64", "--maxlen", "48", "--lr", "3e-3")
    assert losses[-1] < 0.6 * losses[0], losses
    titles = re.findall(r"generated title: (.*)", stdout)
    assert len(titles) == 4 and titles[-1].strip() in ("positive", "negative")


def test_masked_language_model_port_fills_the_masks(tmp_path):
    """The checkpoint has no MLM head (the loader says so); the two masked tokens are filled
    (a piece may join its neighbour)."""
    result = subprocess.run([sys.executable, str(PORTS / "basic_masked_language_model.py")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MLM-Dense/kernel" in result.stderr  # the warning about the absent head
    words = result.stdout.strip().splitlines()[-1].split()
    assert 1 <= len(words) <= 2 and all(word.isprintable() for word in words)


PEOPLE_DAILY = Path(__file__).parents[3] / "shared" / "data" / "people_daily_ner" / "example.test"


def people_daily_format_files(folder):
    """train / valid / test files in the People's Daily format: slices of the real corpus
    when it is here (../shared/data), else generated sentences in its format."""
    if PEOPLE_DAILY.exists():
        blocks = PEOPLE_DAILY.read_text(encoding="utf-8").strip().split("\n\n")
    else:
        blocks = ["\n".join(f"{c} {tag}" for c, tag in sentence)
                  for sentence in ner_sentences.generate(500)]
    splits = {"train": blocks[:300], "valid": blocks[-60:-30], "test": blocks[-30:]}
    for name, chosen in splits.items():
        (folder / f"{name}.txt").write_text("\n\n".join(chosen) + "\n", encoding="utf-8")
    characters = (line.split(" ")[0] for block in blocks for line in block.split("\n"))
    vocab = character_vocabulary(characters)
    (folder / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n",
                                      encoding="utf-8")


def test_ner_crf_port_learns_and_finds_entities(tmp_path):
    """CRF over a 2-layer BERT from random weights, on 300 sentences of People's Daily: the
    loss falls (14.2 -> 1.0 in 3 epochs with seed 0 on the real slice) and Viterbi decoding
    finds entities of the held-out sentences (valid F1 0.24)."""
    people_daily_format_files(tmp_path)
    losses, stdout = run("task_sequence_labeling_ner_crf.py", tmp_path, "--train", "train.txt",
                         "--valid", "valid.txt", "--test", "test.txt", "--dict-path",
                         "vocab.txt", "--epochs", "3", "--bert-layers", "2", "--hidden", "64",
                         "--maxlen", "64", "--lr", "3e-3", "--crf-lr-multiplier", "100",
                         "--batch-size", "16")
    assert losses[-1] < 0.3 * losses[0], losses
    f1 = [float(value) for value in re.findall(r"valid:  f1: ([0-9.]+)", stdout)]
    assert len(f1) == 3 and f1[-1] > 0, f1
