"""Domain-gap measures against hand-computed values, identities and shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from sim2real.experiments.gap_measures import (
    domain_classifier_error,
    frechet_distance,
    linear_cka,
    median_bandwidth,
    mmd2_unbiased,
    proxy_a_distance,
)


def cka_by_gram(x: np.ndarray, y: np.ndarray) -> float:
    """Independent formula: HSIC on Gram matrices with the centring matrix H."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    hsic = np.trace(k @ h @ l_ @ h)
    return hsic / math.sqrt(np.trace(k @ h @ k @ h) * np.trace(l_ @ h @ l_ @ h))


def test_cka_of_one_feature_is_squared_correlation():
    x = np.array([[1.0], [2.0], [3.0], [5.0]])
    y = np.array([[2.0], [1.0], [4.0], [4.0]])
    # by hand: xc = [-1.75, -0.75, 0.25, 2.25], yc = [-0.75, -1.75, 1.25, 1.25]
    # sum xc*yc = 1.3125 + 1.3125 + 0.3125 + 2.8125 = 5.75; sum xc^2 = 8.75; sum yc^2 = 6.75
    assert linear_cka(x, y) == pytest.approx(5.75**2 / (8.75 * 6.75), rel=1e-12)


def test_cka_matches_gram_formula_and_invariances():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    y = x @ rng.normal(size=(5, 3)) + 0.5 * rng.normal(size=(30, 3))
    assert linear_cka(x, y) == pytest.approx(cka_by_gram(x, y), rel=1e-10)
    assert 0.0 < linear_cka(x, y) < 1.0
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert linear_cka(x, 3.0 * x @ q + 7.0) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    independent = rng.normal(size=(30, 5))
    assert linear_cka(x, independent) < linear_cka(x, y)


def test_cka_refuses_unpaired_sets():
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(np.ones((4, 2)), np.ones((5, 2)))


def test_mmd_hand_computed_with_fixed_bandwidth():
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [2.0]])
    e = math.exp
    # sigma = 1: k(a, b) = exp(-(a - b)^2 / 2)
    expected = e(-0.5) + e(-2.0) - 2.0 * (1.0 + e(-2.0) + e(-0.5) + e(-0.5)) / 4.0
    assert mmd2_unbiased(x, y, bandwidth=1.0) == pytest.approx(expected, rel=1e-12)


def test_median_bandwidth_by_hand():
    # pooled rows 0, 1, 3: distances 1, 3, 2 -> median 2
    assert median_bandwidth(np.array([[0.0], [1.0]]), np.array([[3.0]])) == 2.0


def test_mmd_near_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8))
    same = rng.normal(size=(300, 8))
    assert mmd2_unbiased(x, x) == pytest.approx(0.0, abs=0.01)
    assert abs(mmd2_unbiased(x, same)) < 0.01
    shifts = [mmd2_unbiased(x, same + s) for s in (0.25, 0.5, 1.0)]
    assert shifts[0] < shifts[1] < shifts[2]
    assert shifts[0] > 0.01


def test_frechet_hand_computed_diagonal_gaussians():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
    y = np.array([[1.0, 1.0], [2.0, 1.0], [1.0, 2.0], [2.0, 2.0]])
    # x: mean (1, 2), var (4/3, 16/3), no covariance; y: mean (1.5, 1.5), var (1/3, 1/3)
    # commuting diagonal covariances: d^2 = |dmu|^2 + sum (sqrt(vx) - sqrt(vy))^2
    expected = 0.5**2 + 0.5**2 + (math.sqrt(4 / 3) - math.sqrt(1 / 3)) ** 2
    expected += (math.sqrt(16 / 3) - math.sqrt(1 / 3)) ** 2
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_frechet_zero_for_identical_and_grows_with_shift():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    d = [frechet_distance(x, x + s) for s in (0.5, 1.0, 2.0)]
    # a pure mean shift s in 6 dims: 6 s^2 exactly
    assert d == pytest.approx([6 * 0.25, 6 * 1.0, 6 * 4.0], rel=1e-6)
    assert frechet_distance(x, 2.0 * x) > 1.0


def test_frechet_matches_sqrtm_formula():
    """Independent formula, as FID code writes it, on well-conditioned full covariances."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 4)) @ rng.normal(size=(4, 4))
    y = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 4)) + 0.7
    s_x, s_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = np.real(scipy.linalg.sqrtm(s_x @ s_y))
    diff = x.mean(0) - y.mean(0)
    expected = diff @ diff + np.trace(s_x + s_y - 2 * covmean)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-8)


def test_frechet_survives_rank_deficient_covariances():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(50, 2))
    x = np.concatenate([base, base[:, :1]], axis=1)  # third feature copies the first
    value = frechet_distance(x, x + 1.0)
    assert value == pytest.approx(3.0, rel=1e-3)


def test_domain_classifier_hand_computed_error():
    # first halves (train) are symmetric about 0, so the boundary is at 0; in the test
    # halves one of three x points lies on y's side: balanced error = (1/3 + 0) / 2
    x = np.array([[-3.0], [-2.0], [-1.0], [-2.5], [-1.5], [0.5]])
    y = np.array([[1.0], [2.0], [3.0], [1.5], [2.5], [3.5]])
    assert domain_classifier_error(x, y) == pytest.approx(1 / 6)
    assert proxy_a_distance(x, y) == pytest.approx(2 * (1 - 2 / 6))


def test_proxy_a_distance_separable_same_and_shifted():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 5))
    same = rng.normal(size=(400, 5))
    assert proxy_a_distance(x, x + 10.0) == pytest.approx(2.0)
    assert abs(proxy_a_distance(x, same)) < 0.3
    small, large = proxy_a_distance(x, same + 0.3), proxy_a_distance(x, same + 1.0)
    assert small < large


@pytest.mark.parametrize(
    "fn", [mmd2_unbiased, frechet_distance, proxy_a_distance], ids=lambda f: f.__name__
)
def test_unpaired_measures_reject_bad_input(fn):
    with pytest.raises(ValueError, match="feature dimension"):
        fn(np.ones((8, 2)), np.ones((8, 3)))
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((8, 2), np.nan), np.ones((8, 2)))
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones(8), np.ones((8, 2)))
