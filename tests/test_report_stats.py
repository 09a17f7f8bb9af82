"""The report's statistics against hand-computed values and against scipy called directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from torch.testing import assert_close

from bench.report.stats import (
    bootstrap_ci,
    cliffs_delta,
    holm,
    iqm,
    matched_pairs_rank_biserial,
    oriented,
    paired_test,
    probability_of_improvement,
    unpaired_test,
)


def test_iqm_is_the_mean_of_the_middle_half():
    assert_close(float(iqm(np.array([4.0, 1.0, 3.0, 2.0]))), 2.5)  # middle two of 1..4
    # 8 runs: drop 2 from each end of 1..7,100 -> mean(3, 4, 5, 6)
    assert_close(float(iqm(np.array([1.0, 2.0, 3.0, 4.0, 100.0, 5.0, 6.0, 7.0]))), 4.5)
    assert_close(float(iqm(np.array([3.0, 1.0, 2.0]))), 2.0)  # fewer than 4 runs: nothing trimmed
    assert_close(iqm(np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])), np.array([2.5, 25.0]))


def test_bootstrap_interval_of_two_points_spans_them():
    # resampled means of (0, 1) are 0, 0.5, 1 with probability 1/4, 1/2, 1/4: the 2.5% and 97.5%
    # percentiles are 0 and 1
    low, high = bootstrap_ci(np.array([0.0, 1.0]), np.mean, n_resamples=2000)
    assert_close(float(low), 0.0)
    assert_close(float(high), 1.0)


def test_bootstrap_matches_scipy_and_batches_independently():
    scores = np.array([[0.3, 0.9, 0.4, 0.8, 0.1], [5.0, 7.0, 6.0, 9.0, 8.0]])
    low, high = bootstrap_ci(scores, iqm, n_resamples=500, seed=3)
    for row in range(2):
        reference = scipy.stats.bootstrap((scores[row],), iqm, n_resamples=500, vectorized=True, axis=-1,
                                          method="percentile", rng=np.random.default_rng(3))
        assert_close(float(low[row]), float(reference.confidence_interval.low))
        assert_close(float(high[row]), float(reference.confidence_interval.high))
        alone_low, alone_high = bootstrap_ci(scores[row], iqm, n_resamples=500, seed=3)
        assert_close(float(alone_low), float(low[row]))
        assert_close(float(alone_high), float(high[row]))


def test_bootstrap_is_undefined_for_one_run_and_degenerate_for_equal_runs():
    low, high = bootstrap_ci(np.array([[2.0], [3.0]]))
    assert low.shape == (2,) and np.isnan(low).all() and np.isnan(high).all()
    low, high = bootstrap_ci(np.array([4.0, 4.0, 4.0]))
    assert_close((float(low), float(high)), (4.0, 4.0))


def test_probability_of_improvement_counts_ties_as_half():
    # x=(1,2,3) vs y=(2,2): wins 0+0, 0.5+0.5, 1+1 -> 3 of 6 pairs
    assert_close(probability_of_improvement(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0])), 0.5)
    # x=(3,4) vs y=(1,2,3): 1+1+0.5 + 1+1+1 = 5.5 of 6
    assert_close(probability_of_improvement(np.array([3.0, 4.0]), np.array([1.0, 2.0, 3.0])), 5.5 / 6)


def test_probability_of_improvement_is_mann_whitney_u_over_pairs():
    x, y = np.array([0.2, 0.5, 0.5, 0.9]), np.array([0.1, 0.5, 0.7])
    u = scipy.stats.mannwhitneyu(x, y).statistic
    assert_close(probability_of_improvement(x, y), float(u) / (x.size * y.size))


def test_cliffs_delta_and_rank_biserial():
    assert_close(cliffs_delta(np.array([3.0, 4.0]), np.array([1.0, 2.0, 3.0])), 5 / 6)  # 5/6 - 0/6
    # |d| = 1, 2, 3, 4 ranked 1..4: R+ = 1 + 3 + 4 = 8, R- = 2 -> (8 - 2) / 10
    assert_close(matched_pairs_rank_biserial(np.array([1.0, -2.0, 3.0, 4.0])), 0.6)
    assert_close(matched_pairs_rank_biserial(np.array([0.0, 1.0, -2.0, 3.0, 4.0])), 0.6)  # zeros dropped
    assert math.isnan(matched_pairs_rank_biserial(np.zeros(3)))


def test_paired_test_is_wilcoxon_signed_rank():
    # six positive, distinct differences: exact two-sided p = 2 / 2^6
    result = paired_test(np.array([2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), np.ones(6))
    assert (result.test, result.effect_name) == ("wilcoxon", "matched-pairs rank-biserial")
    assert_close((result.pvalue, result.statistic, result.effect), (2 / 64, 0.0, 1.0))
    x, y = np.array([0.3, 0.8, 0.5, 0.9, 0.2, 0.65]), np.array([0.4, 0.6, 0.1, 0.7, 0.25, 0.5])
    assert_close(paired_test(x, y).pvalue, float(scipy.stats.wilcoxon(x - y).pvalue))


def test_paired_test_without_differences_finds_none():
    result = paired_test(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    assert_close(result.pvalue, 1.0)


def test_paired_test_refuses_unpaired_shapes():
    with pytest.raises(ValueError, match=r"paired scores need equal 1-D shapes, got \(3,\) and \(2,\)"):
        paired_test(np.ones(3), np.ones(2))


def test_unpaired_test_is_mann_whitney():
    # complete separation of 3 vs 3: exact two-sided p = 2 / C(6, 3)
    result = unpaired_test(np.array([4.0, 5.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert (result.test, result.effect_name) == ("mann-whitney", "Cliff's delta")
    assert_close((result.pvalue, result.statistic, result.effect), (0.1, 9.0, 1.0))


def test_holm_adjusts_step_down_and_keeps_order():
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1 = 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.5
    assert_close(holm(np.array([0.01, 0.04, 0.03, 0.5])), np.array([0.04, 0.09, 0.09, 0.5]), rtol=0, atol=1e-12)
    assert_close(holm(np.array([0.6, 0.7])), np.array([1.0, 1.0]))
    adjusted = holm(np.array([0.02, np.nan, 0.04]))  # NaN is not part of the family: m = 2
    assert_close(adjusted[[0, 2]], np.array([0.04, 0.04]))
    assert np.isnan(adjusted[1])


def test_oriented_turns_lower_is_better_around():
    assert_close(oriented(np.array([1.0, -2.0]), "lower"), np.array([-1.0, 2.0]))
    assert_close(oriented(np.array([1.0, -2.0]), "higher"), np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="direction 'up' is not one of: higher, lower"):
        oriented(np.array([1.0]), "up")  # type: ignore[arg-type]
