"""Fréchet distance between Gaussians fitted to feature vectors.

Dimension letters: N examples, F feature dim.

`FD = |mu_a - mu_b|² + tr(S_a) + tr(S_b) - 2 tr((S_a^{1/2} S_b S_a^{1/2})^{1/2})`,
computed in float64 with symmetric eigendecompositions (no `scipy.linalg.sqrtm`):
the inner matrix is symmetric PSD, so its trace square root is the sum of
the square roots of its (clipped at 0) eigenvalues. Singular covariances
(dead ReLU features) need no epsilon.
"""

import numpy as np


def gaussian_statistics(features):
    """Mean and covariance (float64) of features `(N, F)`.

    Args:
        features: array-like `(N, F)`, N >= 2.

    Returns:
        `{"mu": (F,), "sigma": (F, F)}`, with the unbiased covariance.

    Example:

    ```python
    stats = gaussian_statistics(np.random.normal(size=(1000, 8)))
    stats["sigma"].shape  # (8, 8)
    ```
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"`features` must have shape (N, F) with N >= 2; received shape {features.shape}."
        )
    return {"mu": features.mean(axis=0), "sigma": np.cov(features, rowvar=False)}


def _psd_sqrt(matrix):
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def _check_stats(name, stats):
    if not hasattr(stats, "__getitem__"):
        raise TypeError(
            f"`{name}` must be a dict with 'mu' and 'sigma'; received {type(stats).__name__}."
        )
    try:
        mu = np.asarray(stats["mu"], np.float64)
        sigma = np.asarray(stats["sigma"], np.float64)
    except (KeyError, IndexError, TypeError) as e:
        raise TypeError(f"`{name}` must be a dict with 'mu' and 'sigma'; missing {e}.") from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"`{name}` must have mu (F,) and sigma (F, F); received mu {mu.shape}, sigma {sigma.shape}."
        )
    return mu, sigma


def frechet_distance(stats_a, stats_b):
    """Fréchet distance between two Gaussians `{"mu", "sigma"}`.

    Args:
        stats_a: dict with `"mu"` `(F,)` and `"sigma"` `(F, F)` (e.g. from
            `gaussian_statistics`, or an `np.load`ed stats file).
        stats_b: the same, with the same F.

    Returns:
        A python float >= 0 (tiny negative round-off is clipped to 0).

    Example:

    ```python
    a = {"mu": np.zeros(2), "sigma": np.eye(2)}
    b = {"mu": np.ones(2), "sigma": np.eye(2)}
    frechet_distance(a, b)  # 2.0
    ```
    """
    mu_a, sigma_a = _check_stats("stats_a", stats_a)
    mu_b, sigma_b = _check_stats("stats_b", stats_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(
            f"`stats_a` and `stats_b` must have the same feature dim; received {mu_a.shape[0]} "
            f"and {mu_b.shape[0]}."
        )
    sigma_a = (sigma_a + sigma_a.T) / 2.0
    sigma_b = (sigma_b + sigma_b.T) / 2.0
    sqrt_a = _psd_sqrt(sigma_a)
    inner = sqrt_a @ sigma_b @ sqrt_a
    inner = (inner + inner.T) / 2.0
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum()
    diff = mu_a - mu_b
    fd = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_sqrt
    return float(max(fd, 0.0))
