"""A toy Chinese corpus, its character vocabulary and a tiny BERT config for pretraining tests."""
import json
import random

SUBJECTS = ["小明", "小红", "老师", "学生", "妈妈"]
VERBS = ["喜欢", "看", "买", "写", "读"]
OBJECTS = ["书", "苹果", "电影", "故事", "信"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def documents(count, seed=0):
    rng = random.Random(seed)
    return ["".join(f"{rng.choice(SUBJECTS)}{rng.choice(VERBS)}{rng.choice(OBJECTS)}。"
                    for _ in range(rng.randint(2, 8))) for _ in range(count)]


def vocabulary():
    characters = sorted(set("".join(SUBJECTS + VERBS + OBJECTS) + "。"))
    return {token: index for index, token in enumerate(SPECIAL + characters)}


def write_files(folder):
    """Writes corpus.txt, vocab.txt and config.json into `folder`; returns their paths."""
    vocab = vocabulary()
    paths = {name: str(folder / name) for name in ("corpus.txt", "vocab.txt", "config.json")}
    (folder / "corpus.txt").write_text("\n".join(documents(300)) + "\n", encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
              "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    (folder / "config.json").write_text(json.dumps(config))
    return paths
