import numpy as np
import pytest
from scipy import stats

from sim2real.transfer.metrics import (
    AffineCalibration,
    driving_metrics,
    mae,
    moving_block_indices,
    pearson_r,
    r2,
    rmse,
    sign_agreement,
)

PRED = np.array([0.0, 0.5, -0.5, 1.0])
TRUTH = np.array([0.0, 1.0, -1.0, 0.5])


def test_point_metrics_match_hand_computed_values():
    # errors: 0, -0.5, 0.5, 0.5
    assert mae(PRED, TRUTH)[0] == pytest.approx(1.5 / 4)
    assert rmse(PRED, TRUTH)[0] == pytest.approx(np.sqrt(0.75 / 4))
    # truth mean 0.125; SS_tot = 0.015625 + 0.765625 + 1.265625 + 0.140625 = 2.1875
    assert r2(PRED, TRUTH)[0] == pytest.approx(1 - 0.75 / 2.1875)
    assert pearson_r(PRED, TRUTH)[0] == pytest.approx(stats.pearsonr(PRED, TRUTH).statistic)
    # turns (|truth| > 0.1): frames 1, 2, 3, all with the right sign
    assert sign_agreement(PRED, TRUTH)[0] == 1.0
    assert sign_agreement(np.array([0.0, -0.2, -0.5, 0.0]), TRUTH)[0] == pytest.approx(1 / 3)


def test_degenerate_inputs_give_nan_not_garbage():
    flat = np.zeros(4)
    assert np.isnan(pearson_r(flat, TRUTH)[0])
    assert np.isnan(r2(PRED, flat)[0])
    assert np.isnan(sign_agreement(PRED, np.full(4, 0.05))[0])


def test_moving_blocks_are_contiguous_and_reproducible():
    idx = moving_block_indices(95, 20, 50, np.random.default_rng(3))
    assert idx.shape == (50, 95)
    assert idx.min() >= 0 and idx.max() < 95
    blocks = idx[:, :80].reshape(50, 4, 20)
    assert np.all(np.diff(blocks, axis=-1) == 1)
    again = moving_block_indices(95, 20, 50, np.random.default_rng(3))
    np.testing.assert_array_equal(idx, again)
    # a series shorter than one block is the whole series
    short = moving_block_indices(5, 20, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(short, np.tile(np.arange(5), (3, 1)))


def _correlated_series(n, rng):
    truth = np.convolve(rng.normal(size=n + 40), np.ones(40) / 8, mode="valid")[:n]
    pred = truth + np.convolve(rng.normal(size=n + 40), np.ones(40) / 20, mode="valid")[:n]
    return pred, truth


def test_intervals_contain_the_estimate_and_blocks_widen_them():
    pred, truth = _correlated_series(2000, np.random.default_rng(0))
    p = {"user/angle": pred, "user/throttle": pred * 0 + 0.3}
    t = {"user/angle": truth, "user/throttle": np.full(2000, 0.4)}
    iid = driving_metrics(p, t, n_boot=400, block_length=1, generator=np.random.default_rng(1))
    blk = driving_metrics(p, t, n_boot=400, block_length=40, generator=np.random.default_rng(1))
    for key, interval in blk.items():
        assert interval.low <= interval.value <= interval.high, key
    assert blk["throttle_mae"].value == pytest.approx(0.1)
    width = {k: v.high - v.low for k, v in blk.items()}
    iid_width = {k: v.high - v.low for k, v in iid.items()}
    # with correlated errors the i.i.d. bootstrap is over-confident
    assert width["steering_mae"] > 1.5 * iid_width["steering_mae"]


def test_nan_truth_is_ignored_and_missing_label_is_an_error():
    t = {"user/angle": np.array([0.0, 1.0, np.nan, -1.0])}
    p = {"user/angle": np.array([0.0, 1.0, 5.0, -1.0])}
    out = driving_metrics(p, t, n_boot=0)
    assert out["steering_mae"].value == 0.0
    assert "throttle_mae" not in out
    with pytest.raises(ValueError, match="steering label"):
        driving_metrics({"x": np.zeros(3)}, {"user/angle": np.zeros(3)})
    with pytest.raises(ValueError, match="no frames"):
        driving_metrics({"user/angle": np.zeros(2)}, {"user/angle": np.full(2, np.nan)})


def test_affine_calibration_recovers_scale_and_offset():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=200)
    cal = AffineCalibration.fit(pred, 2.5 * pred - 0.1)
    assert cal.slope == pytest.approx(2.5)
    assert cal.intercept == pytest.approx(-0.1)
    np.testing.assert_allclose(cal.apply(pred), 2.5 * pred - 0.1)
    flat = AffineCalibration.fit(np.zeros(3), np.array([1.0, 2.0, 3.0]))
    assert (flat.slope, flat.intercept) == (0.0, 2.0)
