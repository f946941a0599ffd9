"""Distances and similarities between two sets of activations, in float64 numpy.

Four measures, each with what it needs of its inputs:

- `linear_cka(x, y)`: linear Centered Kernel Alignment (Kornblith et al., ICML 2019) between
  two representations of the SAME examples: row i of `x` and row i of `y` describe example i
  (e.g. one set of real images seen by a sim-pretrained and by a fine-tuned encoder). It is
  undefined for unpaired sets such as sim frames vs real frames, so it is never used as a
  sim-vs-real measure here.
- `mmd2_unbiased(x, y)`: squared Maximum Mean Discrepancy with an RBF kernel (Gretton et al.,
  JMLR 2012), unbiased estimator, median-heuristic bandwidth. Unpaired sets.
- `frechet_distance(x, y)`: squared Frechet (2-Wasserstein) distance between Gaussians fitted
  to the two sets, as in FID (Heusel et al., 2017). Unpaired sets; same feature dimension.
- `proxy_a_distance(x, y)`: proxy A-distance (Ben-David et al., 2007/2010) from a linear
  domain classifier (scikit-learn logistic regression) tested on held-out halves.

Arrays are (N, D) and (M, D) (CKA: (N, D1) and (N, D2)); every function validates its inputs
and raises ValueError naming the problem.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from scipy.spatial.distance import cdist, pdist


def _as_matrix(name: str, a: np.ndarray, min_rows: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D), got shape {a.shape}")
    if a.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {a.shape[0]}")
    if a.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _same_dim(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same feature dimension, got {x.shape[1]} and {y.shape[1]}"
        )


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of paired representations x (N, D1) and y (N, D2): a value in [0, 1].

    CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc (the
    feature-space form of HSIC with linear kernels). 1 means the representations are equal up
    to an orthogonal transform and isotropic scaling; with one feature each it is the squared
    Pearson correlation. Row i of both arrays must describe the same example.
    """
    x = _as_matrix("x", x, 2)
    y = _as_matrix("y", y, 2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"linear CKA compares two representations of the same examples: x has {x.shape[0]} "
            f"rows, y has {y.shape[0]}"
        )
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    cross = np.linalg.norm(yc.T @ xc) ** 2
    norm_x = np.linalg.norm(xc.T @ xc)
    norm_y = np.linalg.norm(yc.T @ yc)
    if norm_x == 0 or norm_y == 0:
        raise ValueError("linear CKA is undefined for a constant representation")
    return float(cross / (norm_x * norm_y))


def median_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """Median heuristic: the median Euclidean distance between distinct rows of x and y pooled.

    Falls back to 1.0 when that median is 0 (more than half the pooled rows coincide).
    """
    pooled = np.concatenate([_as_matrix("x", x, 1), _as_matrix("y", y, 1)])
    if pooled.shape[0] < 2:
        raise ValueError("the median heuristic needs at least two rows in total")
    median = float(np.median(pdist(pooled)))
    return median if median > 0 else 1.0


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD between samples x (N, D) and y (M, D) with an RBF kernel.

    k(a, b) = exp(-||a - b||^2 / (2 sigma^2)), sigma = `bandwidth` or the median heuristic
    (`median_bandwidth`). MMD^2_u = mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j)
    - 2 mean_{i,j} k(x_i, y_j) (Gretton et al. 2012, eq. 3). Kernel values lie in [0, 1], so
    the result is at most 2; it is about 0 when both samples come from one distribution and
    can then be slightly negative (the estimator is unbiased, not non-negative).
    Memory: (N + M)^2 float64.
    """
    x = _as_matrix("x", x, 2)
    y = _as_matrix("y", y, 2)
    _same_dim(x, y)
    sigma = median_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"bandwidth must be a positive number, got {bandwidth}")
    gamma = 1.0 / (2.0 * sigma**2)
    n, m = x.shape[0], y.shape[0]
    k_xx = np.exp(-gamma * cdist(x, x, "sqeuclidean"))
    k_yy = np.exp(-gamma * cdist(y, y, "sqeuclidean"))
    k_xy = np.exp(-gamma * cdist(x, y, "sqeuclidean"))
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    w, v = scipy.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to x (N, D) and y (M, D), in squared units.

    d^2 = ||mu_x - mu_y||^2 + Tr(S_x) + Tr(S_y) - 2 Tr((S_x S_y)^(1/2)) with sample
    covariances (ddof=1), as in FID. Numerical care: FID code takes scipy.linalg.sqrtm of the
    non-symmetric S_x S_y, which warns and can return complex values when a covariance is
    singular (dead ReLU channels, fewer frames than channels). Here the same trace is taken
    from the similar symmetric matrix S_x^(1/2) S_y S_x^(1/2) (same eigenvalues, all >= 0):
    Tr((S_x S_y)^(1/2)) = sum sqrt(eigvalsh(S_x^(1/2) S_y S_x^(1/2))), with eigenvalues below
    0 from round-off clipped to 0. The result is clipped at 0 for the same reason.
    """
    x = _as_matrix("x", x, 2)
    y = _as_matrix("y", y, 2)
    _same_dim(x, y)
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    s_x = np.atleast_2d(np.cov(x, rowvar=False))
    s_y = np.atleast_2d(np.cov(y, rowvar=False))
    root_x = _psd_sqrt(s_x)
    middle = root_x @ s_y @ root_x
    middle = 0.5 * (middle + middle.T)
    trace_covmean = float(np.sqrt(np.clip(scipy.linalg.eigvalsh(middle), 0.0, None)).sum())
    diff = mu_x - mu_y
    value = diff @ diff + np.trace(s_x) + np.trace(s_y) - 2.0 * trace_covmean
    return float(max(value, 0.0))


def domain_classifier_error(x: np.ndarray, y: np.ndarray, *, c: float = 1.0) -> float:
    """Held-out balanced error of a linear classifier telling x (N, D) from y (M, D).

    Each set is taken in its given order (time order for recordings) and cut in halves: the
    first halves train a standardised L2 logistic regression (scikit-learn, lbfgs,
    class_weight="balanced", inverse regularisation `c`), the second halves test it. Splitting
    by halves rather than at random keeps near-duplicate neighbouring frames of a 20 Hz
    recording out of the test half. Balanced error = mean of the two per-domain error rates,
    so 0.5 is chance whatever N and M are.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = _as_matrix("x", x, 4)
    y = _as_matrix("y", y, 4)
    _same_dim(x, y)
    hx, hy = x.shape[0] // 2, y.shape[0] // 2
    train = np.concatenate([x[:hx], y[:hy]])
    labels = np.concatenate([np.zeros(hx, dtype=int), np.ones(hy, dtype=int)])
    classifier = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, class_weight="balanced", max_iter=2000),
    )
    classifier.fit(train, labels)
    err_x = float(np.mean(classifier.predict(x[hx:]) != 0))
    err_y = float(np.mean(classifier.predict(y[hy:]) != 1))
    return 0.5 * (err_x + err_y)


def pad_from_error(error: float) -> float:
    """Proxy A-distance 2 (1 - 2 `error`) of a domain classifier's balanced `error`."""
    return 2.0 * (1.0 - 2.0 * error)


def proxy_a_distance(x: np.ndarray, y: np.ndarray, *, c: float = 1.0) -> float:
    """Proxy A-distance 2 (1 - 2 err) from `domain_classifier_error` (held-out halves).

    2: a linear classifier separates the domains perfectly; about 0: it does no better than
    chance (the value is not clipped, so sampling noise can make it slightly negative).
    """
    return pad_from_error(domain_classifier_error(x, y, c=c))
