"""ConditionalRandomField and MaximumEntropyMarkovModel: the CRF loss against brute-force
enumeration of label paths (value and gradient), padding, accuracy, bert4keras 0.11.5's
outputs (tests/fixtures/make_sequence_labeling_reference.py) and training through `compile`
with XLA; both backends."""
import itertools
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from bert4keras_ext.layers import ConditionalRandomField, MaximumEntropyMarkovModel
from bert4keras_ext.layers.crf import crf_log_partition
from bert4keras_ext.viterbi import ViterbiDecoder

pytestmark = pytest.mark.backend_neutral

REFERENCE = np.load(Path(__file__).parents[1] / "fixtures" / "sequence_labeling_reference.npz")
NUM_LABELS = 4
# Rows of the fixture's shape [3, 6]: right padding, left padding, padding in the middle.
VALID = np.array([[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 1, 0]], bool)


def reference_weights(name):
    return [REFERENCE[f"{name}/weight_{i}"] for i in range(len(REFERENCE.files))
            if f"{name}/weight_{i}" in REFERENCE.files]


def numpy(x):
    return ops.convert_to_numpy(x)


def brute_force(nodes, trans):
    """Every label path of `nodes` [length, labels] and its score, float64."""
    length, labels = nodes.shape
    paths = np.array(list(itertools.product(range(labels), repeat=length)))
    scores = nodes[np.arange(length), paths].sum(1) + trans[paths[:, :-1], paths[:, 1:]].sum(1)
    return paths, scores


def log_sum_exp(x):
    return x.max() + np.log(np.exp(x - x.max()).sum())


def gradients(function, *arguments):
    """Gradients of `sum(function(*arguments))` with respect to every argument."""
    if keras.backend.backend() == "jax":
        import jax

        total = lambda *a: jax.numpy.sum(function(*a))  # noqa: E731
        return [np.asarray(g) for g in
                jax.grad(total, argnums=tuple(range(len(arguments))))(*arguments)]
    import tensorflow as tf

    arguments = [tf.constant(a) for a in arguments]
    with tf.GradientTape() as tape:
        tape.watch(arguments)
        total = tf.reduce_sum(function(*arguments))
    return [g.numpy() for g in tape.gradient(total, arguments)]


@pytest.fixture(scope="module")
def problem():
    """Scores, labels (random on padding too) and a CRF whose transitions are known."""
    rng = np.random.default_rng(0)
    scores = rng.normal(0.0, 1.5, (*VALID.shape, NUM_LABELS)).astype("float32")
    labels = rng.integers(0, NUM_LABELS, VALID.shape).astype("int32")
    crf = ConditionalRandomField(lr_multiplier=3)
    crf.build(scores.shape)
    stored = rng.normal(0.0, 0.5, (NUM_LABELS, NUM_LABELS)).astype("float32")
    crf.set_weights([stored])
    return scores, labels, crf, 3.0 * stored.astype("float64")


def test_each_padded_row_scores_minus_log_p_of_its_valid_positions(problem):
    """The loss of each row of a padded batch is `-log p(y | x)` of the row without its
    padding, by enumerating all label paths."""
    scores, labels, crf, trans = problem
    masked = crf(scores, mask=VALID)
    one_hot = np.eye(NUM_LABELS, dtype="float32")[labels]
    sparse, dense = numpy(crf.sparse_loss(labels, masked)), numpy(crf.dense_loss(one_hot, masked))
    for row, valid in enumerate(VALID):
        nodes, path = scores[row][valid].astype("float64"), labels[row][valid]
        paths, path_scores = brute_force(nodes, trans)
        target = path_scores[(paths == path).all(1)][0]
        expected = log_sum_exp(path_scores) - target
        np.testing.assert_allclose(sparse[row], expected, rtol=1e-5)
        np.testing.assert_allclose(dense[row], expected, rtol=1e-5)


def test_a_row_without_valid_positions_has_zero_loss(problem):
    scores, labels, crf, _ = problem
    valid = VALID.copy()
    valid[1] = False
    loss = numpy(crf.sparse_loss(labels, crf(scores, mask=valid)))
    assert loss[1] == 0 and np.all(loss[[0, 2]] > 0)


def test_viterbi_on_the_crf_transitions_finds_its_most_likely_paths(problem):
    """Viterbi's path is the brute-force argmax, and the CRF's loss there is the lowest
    (`log Z` minus the best path score)."""
    scores, _, crf, trans = problem
    decoder = ViterbiDecoder(numpy(crf.trans))
    decoded = np.zeros(VALID.shape, "int32")
    lowest = []
    for row, valid in enumerate(VALID):
        paths, path_scores = brute_force(scores[row][valid].astype("float64"), trans)
        decoded[row][valid] = decoder.decode(scores[row][valid])
        np.testing.assert_array_equal(decoded[row][valid], paths[path_scores.argmax()])
        lowest.append(log_sum_exp(path_scores) - path_scores.max())
    np.testing.assert_allclose(numpy(crf.sparse_loss(decoded, crf(scores, mask=VALID))), lowest,
                               rtol=1e-5)


def test_log_partition_gradient_is_the_marginals(problem):
    """d log Z / d scores[t, j] = p(y_t = j) and d log Z / d trans[i, j] = the expected number
    of i -> j transitions (the closed-form gradient of the scan)."""
    scores, _, _, trans = problem
    # crf_log_partition takes padding after the valid positions.
    valid = np.arange(6) < np.array([[6], [4], [1]])
    d_scores, d_trans = gradients(lambda s, t: crf_log_partition(s, valid, t), scores,
                                  trans.astype("float32"))
    expected_trans = np.zeros_like(trans)
    for row, length in enumerate(valid.sum(1)):
        paths, path_scores = brute_force(scores[row, :length].astype("float64"), trans)
        probabilities = np.exp(path_scores - log_sum_exp(path_scores))
        marginals = np.stack([np.bincount(paths[:, t], probabilities, NUM_LABELS)
                              for t in range(length)])
        np.testing.assert_allclose(d_scores[row, :length], marginals, atol=1e-5)
        np.testing.assert_array_equal(d_scores[row, length:], 0)
        for t in range(length - 1):
            np.add.at(expected_trans, (paths[:, t], paths[:, t + 1]), probabilities)
    np.testing.assert_allclose(d_trans, expected_trans, atol=1e-5)


def test_accuracy_counts_valid_positions_only(problem):
    scores, labels, crf, _ = problem
    masked = numpy(crf(scores, mask=VALID))
    correct = scores.argmax(-1) == labels
    expected = correct[VALID].mean()
    assert 0 < expected < 1 and expected != correct.mean()
    one_hot = np.eye(NUM_LABELS, dtype="float32")[labels]
    np.testing.assert_allclose(numpy(crf.sparse_accuracy(labels, masked)), expected, rtol=1e-6)
    np.testing.assert_allclose(numpy(crf.dense_accuracy(one_hot, masked)), expected, rtol=1e-6)


def test_lr_multiplier_divides_the_stored_draw():
    crf = ConditionalRandomField(lr_multiplier=10)
    crf.build((None, None, 6))
    stored = crf.get_weights()[0]
    limit = np.sqrt(6.0 / (6 + 6))  # glorot_uniform's bound for a 6 x 6 matrix
    assert 0.5 * limit / 10 < np.abs(stored).max() <= limit / 10
    np.testing.assert_allclose(numpy(crf.trans), 10 * stored, rtol=1e-6)


def test_memm_loss_is_the_mean_token_cross_entropy_of_both_directions(problem):
    scores, labels, _, trans = problem
    memm = MaximumEntropyMarkovModel()
    memm.build(scores.shape)
    memm.set_weights([trans.astype("float32")])
    masked = memm(scores, mask=VALID)

    def direction(nodes, path, transitions):
        previous = np.concatenate([nodes[:1], transitions[path[:-1]]])
        logits = (nodes + previous) / 2
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return -log_p[np.arange(len(path)), path], logits.argmax(-1) == path

    losses, hits = [], []
    for row, valid in enumerate(VALID):
        nodes, path = scores[row][valid].astype("float64"), labels[row][valid]
        forward = direction(nodes, path, trans)
        backward = direction(nodes[::-1], path[::-1], trans.T)
        losses.append((forward[0], backward[0]))
        hits.append((forward[1], backward[1]))
    expected_loss = np.mean([np.concatenate([f for f, _ in losses]).mean(),
                             np.concatenate([b for _, b in losses]).mean()])
    expected_accuracy = np.mean([np.concatenate([f for f, _ in hits]).mean(),
                                 np.concatenate([b for _, b in hits]).mean()])
    np.testing.assert_allclose(numpy(memm.sparse_loss(labels, masked)), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(numpy(memm.sparse_accuracy(labels, masked)), expected_accuracy,
                               rtol=1e-6)


@pytest.fixture(scope="module")
def bert4keras_model():
    """bert4keras's fixture model, ours: Embedding(mask_zero=True) -> Dense -> CRF, MEMMs."""
    ids = keras.Input((None,), dtype="int32")
    embedding = keras.layers.Embedding(10, 8, mask_zero=True)
    dense = keras.layers.Dense(4)
    heads = {"crf": ConditionalRandomField(lr_multiplier=2),
             "memm": MaximumEntropyMarkovModel(),
             "memm_low_rank": MaximumEntropyMarkovModel(lr_multiplier=2, hidden_dim=3)}
    hidden = dense(embedding(ids))
    outputs = {name: head(hidden) for name, head in heads.items()}
    for layer, name in [(embedding, "embedding"), (dense, "dense"), *[
            (head, name) for name, head in heads.items()]]:
        layer.set_weights(reference_weights(name))
    return ids, outputs, heads


def test_losses_and_accuracies_equal_bert4keras(bert4keras_model):
    ids, outputs, heads = bert4keras_model
    predictions = keras.Model(ids, outputs)(REFERENCE["token_ids"])
    labels = REFERENCE["labels"]
    targets = {"sparse": labels, "dense": np.eye(4, dtype="float32")[labels]}
    for name, head in heads.items():
        output = numpy(predictions[name])
        np.testing.assert_allclose(output, REFERENCE[f"{name}/output"], rtol=1e-5, err_msg=name)
        for kind, target in targets.items():
            for metric in ("loss", "accuracy"):
                value = getattr(head, f"{kind}_{metric}")(target, output)
                np.testing.assert_allclose(numpy(value), REFERENCE[f"{name}/{kind}_{metric}"],
                                           rtol=1e-5, err_msg=f"{name} {kind}_{metric}")


def test_trained_with_xla_as_compiled_losses_and_metrics(bert4keras_model):
    """`compile(loss=layer.sparse_loss, metrics=[layer.sparse_accuracy], jit_compile=True)`
    of the CRF and the MEMM, in one model so that XLA compiles once: the first step reports
    bert4keras's loss and accuracy (they are computed before the update), later steps learn."""
    ids, outputs, heads = bert4keras_model
    names = ["crf", "memm"]
    model = keras.Model(ids, {name: outputs[name] for name in names})
    # The MEMM's accuracy reads its transitions, which Keras's JAX trainer does not give to
    # metrics (next test).
    measured = names if keras.backend.backend() == "tensorflow" else ["crf"]
    model.compile(keras.optimizers.Adam(0.05),
                  loss={name: heads[name].sparse_loss for name in names},
                  metrics={name: [heads[name].sparse_accuracy] for name in measured},
                  jit_compile=True)
    token_ids, labels = REFERENCE["token_ids"], REFERENCE["labels"]
    targets = {name: labels for name in names}
    weights = model.get_weights()
    try:
        steps = [model.train_on_batch(token_ids, targets, return_dict=True) for _ in range(31)]
    finally:
        model.set_weights(weights)
    first, last = steps[0], steps[-1]
    for name in names:
        np.testing.assert_allclose(first[f"{name}_loss"],
                                   REFERENCE[f"{name}/sparse_loss"].mean(), rtol=1e-5)
        assert last[f"{name}_loss"] < 0.3 * first[f"{name}_loss"], name
    for name in measured:
        np.testing.assert_allclose(first[f"{name}_sparse_accuracy"],
                                   REFERENCE[f"{name}/sparse_accuracy"], rtol=1e-5)
        # Token accuracy is the argmax of the scores alone, so it need not reach 1.
        assert last[f"{name}_sparse_accuracy"] > first[f"{name}_sparse_accuracy"], name


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="a limit of Keras's JAX trainer")
def test_memm_accuracy_as_a_compiled_metric_on_jax_names_the_limit():
    scores = keras.Input((None, 4))
    memm = MaximumEntropyMarkovModel()
    model = keras.Model(scores, memm(scores))
    model.compile(loss=memm.sparse_loss, metrics=[memm.sparse_accuracy])
    with pytest.raises(RuntimeError, match="JAX trainer gives compiled metrics no model weights"):
        model.evaluate(REFERENCE["memm/output"], REFERENCE["labels"], verbose=0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="lr_multiplier"):
        ConditionalRandomField(lr_multiplier=0)
    with pytest.raises(ValueError, match="hidden_dim"):
        MaximumEntropyMarkovModel(hidden_dim=0)
    with pytest.raises(ValueError, match="num_labels"):
        ConditionalRandomField()(np.zeros((2, 5), "float32"))
