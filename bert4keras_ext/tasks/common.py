"""What the example task scripts share: command-line flags, the distribution strategy, the
tokenizer (a pretrained vocabulary or one built from the data) and the model configuration.

Each script gives two sets of defaults: one for a small model trained from scratch on the
generated data, and the source posts' settings for a pretrained BERT on the real dataset,
used as soon as `--config` is given.
"""
import argparse

from bert4keras_ext.tokenizers import Tokenizer

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def character_vocabulary(texts):
    """Specials, every character, and '##' forms of the non-CJK ones (digits inside numbers)."""
    characters = sorted({c for text in texts for c in text if not c.isspace()})
    tokens = RESERVED_TOKENS + characters + ["##" + c for c in characters if c.isascii()]
    return {token: index for index, token in enumerate(tokens)}


def output_text(tokenizer, output_ids):
    """Generated ids (ending with [SEP]) as text, '##' pieces joined, no spaces."""
    return "".join(tokenizer.ids_to_tokens(output_ids[:-1])).replace("##", "")


def make_tokenizer(vocab, texts):
    """The pretrained vocabulary's tokenizer, or a character vocabulary over `texts`."""
    return Tokenizer(vocab) if vocab else Tokenizer(character_vocabulary(texts))


def model_config(config, small, tokenizer, maxlen):
    """The pretrained config file when given, else the small config sized to the data."""
    if config:
        return config
    return dict(small, vocab_size=tokenizer.vocab_size, max_position_embeddings=maxlen)


def positive_int(text):
    """argparse type: an integer >= 1 (argparse names the flag in its error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; received {text}")
    return value


def positive_float(text):
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number; received {text}")
    return value


def argument_parser(description, train_help):
    """The flags every task takes; `parse_args` fills those left unset."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--train", help=f"{train_help} (default: generated)")
    parser.add_argument("--valid", help="validation data in the same format")
    parser.add_argument("--config", help="pretrained BERT config.json (bert_config.json)")
    parser.add_argument("--checkpoint", help="original TF checkpoint prefix or .safetensors")
    parser.add_argument("--vocab", help="the pretrained model's vocab.txt")
    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--lr", type=positive_float)
    parser.add_argument("--strategy", choices=["default", "mirrored"], default="default",
                        help="'mirrored': data-parallel over all local GPUs")
    return parser


def parse_args(parser, scratch, pretrained, argv=None):
    """Parsed flags; unset ones come from `pretrained` (the source posts' settings for a
    pretrained BERT on the real data) when --config is given, else from `scratch` (the small
    model on generated data)."""
    args = parser.parse_args(argv)
    if bool(args.config) != bool(args.vocab):
        parser.error("--config and --vocab go together (a pretrained model and its vocabulary)")
    for name, value in (pretrained if args.config else scratch).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def make_strategy(name):
    """`tf.distribute` strategy by flag value; imported here so the scripts stay Keras-only."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
