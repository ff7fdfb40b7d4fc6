"""BERT-whitening (SPEC S5 (e)): zero mean and identity covariance, streaming = batch
statistics, truncation keeps the top-variance axes."""
import numpy as np
import pytest

from bert4keras_ext.whitening import (
    StreamingWhitening,
    compute_kernel_bias,
    transform_and_normalize,
)

pytestmark = pytest.mark.backend_neutral


def anisotropic(count=2000, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) * np.linspace(3.0, 0.1, dim)
    return rng.normal(size=(count, dim)) @ mixing.T + 5.0


def test_whitened_vectors_have_zero_mean_and_identity_covariance():
    x = anisotropic()
    kernel, bias = compute_kernel_bias(x)
    y = (x + bias) @ kernel
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(16), atol=1e-8)
    unit = transform_and_normalize(x, kernel, bias)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0)
    np.testing.assert_allclose(unit, y / np.linalg.norm(y, axis=1, keepdims=True))


def test_truncation_keeps_the_top_variance_axes():
    x = anisotropic()
    kernel, _ = compute_kernel_bias(x, n_components=4)
    assert kernel.shape == (16, 4)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x.T, bias=True))
    top = eigenvectors[:, np.argsort(eigenvalues)[::-1][:4]]
    # Each kept column is a top eigenvector scaled by 1/sqrt(eigenvalue).
    directions = kernel / np.linalg.norm(kernel, axis=0)
    np.testing.assert_allclose(np.abs(np.sum(directions * top, axis=0)), 1.0, atol=1e-8)
    with pytest.raises(ValueError, match=r"`n_components` must be in \[1, 16\]; received 17"):
        compute_kernel_bias(x, n_components=17)


def test_streaming_statistics_equal_batch_statistics():
    x = anisotropic(count=1003)
    stream = StreamingWhitening()
    for start in range(0, len(x), 97):
        stream.update(x[start:start + 97])
    stream.update(x[:0])
    assert stream.count == len(x)
    np.testing.assert_allclose(stream.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stream.covariance, np.cov(x.T, bias=True), rtol=1e-9, atol=1e-12)
    streamed, batch = stream.kernel_bias(8), compute_kernel_bias(x, 8)
    np.testing.assert_allclose(np.abs(streamed[0]), np.abs(batch[0]), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match=r"shape \[n, 16\]; received \(2, 3\)"):
        stream.update(np.zeros((2, 3)))


def test_non_finite_vectors_are_named():
    """Reliability probe X05: numpy's `SVD did not converge` did not say why."""
    vectors = np.random.default_rng(0).normal(size=(8, 4))
    vectors[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"rows \[3\] hold NaN or infinite values"):
        compute_kernel_bias(vectors)
