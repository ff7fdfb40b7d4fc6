"""BERT-whitening: make sentence vectors isotropic before cosine similarity.

Source: "Whitening Sentence Representations for Better Semantics and Faster Retrieval" (Su et
al., 2021, https://arxiv.org/abs/2103.15316) and the post "你可能不需要BERT-flow：一个线性变换媲美
BERT-flow" (https://kexue.fm/archives/8069).

`x -> (x - mu) W` with `Sigma = U Lambda U^T` the covariance of the vectors and
`W = U Lambda^(-1/2)`, optionally keeping the first `n_components` columns (PCA whitening).
Covariances use the population convention (divide by N), the same as `StreamingWhitening`,
which accumulates the statistics batch by batch for corpora that do not fit in memory.

Example:
```python
kernel, bias = compute_kernel_bias(vectors, n_components=256)
whitened = transform_and_normalize(vectors, kernel, bias)  # unit rows; dot = cosine
```
"""
import numpy as np


def kernel_bias_from_moments(mean, covariance, n_components=None):
    """(kernel, bias) from a mean vector and covariance matrix."""
    dim = covariance.shape[0]
    if n_components is not None and not 1 <= n_components <= dim:
        raise ValueError(f"`n_components` must be in [1, {dim}]; received {n_components!r}.")
    u, s, _ = np.linalg.svd(covariance)
    kernel = u / np.sqrt(np.maximum(s, 1e-12))
    return kernel[:, :n_components], -mean


def compute_kernel_bias(vectors, n_components=None):
    """(kernel [dim, k], bias [dim]) whitening `vectors` [N, dim]; apply as (x + bias) @ kernel."""
    vectors = np.asarray(vectors, "float64")
    if vectors.ndim != 2 or len(vectors) < 2:
        raise ValueError(f"`vectors` must have shape [N >= 2, dim]; received {vectors.shape}.")
    bad_rows = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad_rows):
        raise ValueError(f"`vectors` rows {bad_rows[:10].tolist()} hold NaN or infinite values.")
    mean = vectors.mean(axis=0)
    centered = vectors - mean
    return kernel_bias_from_moments(mean, centered.T @ centered / len(vectors), n_components)


def transform_and_normalize(vectors, kernel=None, bias=None):
    """Whitened (when kernel and bias are given) and L2-normalized rows."""
    vectors = np.asarray(vectors, "float64")
    if kernel is not None:
        vectors = (vectors + bias) @ kernel
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class StreamingWhitening:
    """Mean and covariance accumulated over batches; equal to the statistics of all rows.

    Merges each batch's mean and scatter matrix into the running ones (the pairwise update of
    Chan et al.), which avoids the cancellation of the raw `E[xx^T] - mu mu^T` form.
    """

    def __init__(self):
        self.count, self.mean, self.scatter = 0, None, None

    def update(self, batch):
        batch = np.asarray(batch, "float64")
        if batch.ndim != 2 or (self.mean is not None and batch.shape[1] != len(self.mean)):
            expected = "[n, dim]" if self.mean is None else f"[n, {len(self.mean)}]"
            raise ValueError(f"`batch` must have shape {expected}; received {batch.shape}.")
        n = len(batch)
        if n == 0:
            return self
        batch_mean = batch.mean(axis=0)
        centered = batch - batch_mean
        batch_scatter = centered.T @ centered
        if self.count == 0:
            self.count, self.mean, self.scatter = n, batch_mean, batch_scatter
            return self
        total = self.count + n
        delta = batch_mean - self.mean
        between = np.outer(delta, delta) * (self.count * n / total)
        self.scatter = self.scatter + batch_scatter + between
        self.mean = self.mean + delta * n / total
        self.count = total
        return self

    @property
    def covariance(self):
        if self.count < 2:
            raise ValueError(f"Covariance needs at least 2 vectors; {self.count} seen.")
        return self.scatter / self.count

    def kernel_bias(self, n_components=None):
        return kernel_bias_from_moments(self.mean, self.covariance, n_components)
