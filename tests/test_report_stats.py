"""The report's statistics against hand-computed values and against scipy called directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from torch.testing import assert_close

from bench.report.stats import (
    WORST,
    cliffs_delta,
    holm,
    iqm,
    matched_pairs_rank_biserial,
    mean_ci,
    median_ci,
    median_ci_ranks,
    min_pvalue_paired,
    min_pvalue_unpaired,
    oriented,
    paired_differences,
    paired_seeds_needed,
    paired_test,
    probability_of_improvement,
    unpaired_seeds_needed,
    unpaired_test,
    walsh_positive_fraction,
)


def test_iqm_is_the_mean_of_the_middle_half():
    assert_close(float(iqm(np.array([4.0, 1.0, 3.0, 2.0]))), 2.5)  # middle two of 1..4
    # 8 runs: drop 2 from each end of 1..7,100 -> mean(3, 4, 5, 6)
    assert_close(float(iqm(np.array([1.0, 2.0, 3.0, 4.0, 100.0, 5.0, 6.0, 7.0]))), 4.5)
    assert_close(float(iqm(np.array([3.0, 1.0, 2.0]))), 2.0)  # fewer than 4 runs: nothing trimmed
    assert_close(iqm(np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])), np.array([2.5, 25.0]))


def test_t_interval_of_the_mean_by_hand():
    # 3 runs (1, 2, 3): mean 2, s = 1; with 2 degrees of freedom t_p = (2p - 1) / sqrt(2 p (1 - p)) in
    # closed form, at p = 0.975: 0.95 / sqrt(0.04875); half width t * 1 / sqrt(3)
    t = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    low, high = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert_close((float(low), float(high)), (2 - t / math.sqrt(3), 2 + t / math.sqrt(3)))
    # 2 runs (0, 1): 1 degree of freedom, t = tan(pi (0.975 - 1/2)); s = sqrt(1/2), half = t * s / sqrt(2) = t / 2
    t = math.tan(math.pi * 0.475)
    low, high = mean_ci(np.array([0.0, 1.0]))
    assert_close((float(low), float(high)), (0.5 - t / 2, 0.5 + t / 2))


def test_t_interval_batches_and_skips_missing_runs():
    scores = np.array([[1.0, 2.0, 3.0], [1.0, np.nan, 3.0], [5.0, np.nan, np.nan]])
    low, high = mean_ci(scores)
    t2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    t1 = math.tan(math.pi * 0.475)
    # row 1 is the 2 runs (1, 3): s = sqrt(2), half = t1 * sqrt(2) / sqrt(2)
    assert_close(low[:2], np.array([2 - t2 / math.sqrt(3), 2 - t1]))
    assert_close(high[:2], np.array([2 + t2 / math.sqrt(3), 2 + t1]))
    assert np.isnan(low[2]) and np.isnan(high[2])  # one run: no interval
    low, high = mean_ci(np.array([4.0, 4.0, 4.0]))
    assert_close((float(low), float(high)), (4.0, 4.0))


def test_median_interval_is_the_order_statistic_interval():
    # n = 6: [x_(1), x_(6)] covers with 1 - 2 (1/2)^6; n = 10: P(Bin(10, 1/2) <= 1) = 11/1024, so
    # [x_(2), x_(9)] covers with 1 - 22/1024, and [x_(3), x_(8)] only with 1 - 2 * 56/1024 < 95%
    assert median_ci_ranks(6) == (1, 1 - 2 / 64)
    assert median_ci_ranks(10) == (2, 1 - 22 / 1024)
    assert median_ci_ranks(5) == (0, pytest.approx(math.nan, nan_ok=True))  # 1 - 2/32 < 95%: no interval
    scores = np.array([[7.0, 1.0, 9.0, 3.0, 5.0, 2.0, 8.0, 4.0, 6.0, 0.0]])
    low, high = median_ci(scores)
    assert_close((float(low[0]), float(high[0])), (1.0, 8.0))
    low, high = median_ci(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert np.isnan(low) and np.isnan(high)
    # the worst outcome is an order statistic like any other
    low, high = median_ci(np.array([WORST, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert (float(low), float(high)) == (WORST, 6.0)


def test_iqm_counts_the_worst_outcome_by_rank():
    # 4 runs, one at the worst outcome: it is trimmed, IQM = mean of the middle two of (-inf, 1, 2, 3)
    assert_close(float(iqm(np.array([WORST, 3.0, 1.0, 2.0]))), 1.5)
    # 3 runs: nothing is trimmed, the worst outcome is the IQM
    assert float(iqm(np.array([WORST, 1.0, 2.0]))) == WORST


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


def test_diverged_runs_lose_the_paired_test():
    # six seeds that scored perfectly at step 10 and then diverged are the worst outcome against six seeds
    # that finished: every difference negative, exact two-sided p = 2 / 2^6, in the baseline's favour
    result = paired_test(np.full(6, WORST), np.array([0.3, 0.5, 0.4, 0.6, 0.2, 0.45]))
    assert_close((result.pvalue, result.effect, result.min_pvalue), (2 / 64, -1.0, 2 / 64))
    assert probability_of_improvement(np.full(6, WORST), np.array([0.3, 0.5, 0.4, 0.6, 0.2, 0.45])) == 0.0


def test_two_worst_outcomes_tie_and_one_outranks_every_finite_difference():
    x, y = np.array([WORST, WORST, 1.0, 2.0, 3.0]), np.array([WORST, 0.0, 0.0, 0.0, 0.0])
    assert_close(paired_differences(x, y), np.array([0.0, -np.inf, 1.0, 2.0, 3.0]))
    # zero dropped; |d| ranks 1, 2, 3 for 1, 2, 3 and 4 for -inf: W+ = 6, W- = 4 of 10. Of the 16 sign
    # assignments every one with |W+ - 5| >= 1 is as extreme: all but the 2 subsets of ranks summing to
    # 5 ({1, 4}, {2, 3}), so p = 14/16
    result = paired_test(x, y)
    assert_close(result.pvalue, 14 / 16)
    assert_close(result.effect, (6 - 4) / 10)


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


def test_unpaired_test_with_tied_worst_outcomes_is_exact():
    # 3 runs at the worst outcome against 3 that finished: of the C(6, 3) = 20 equally likely splits of
    # the pooled runs, only the observed one and its mirror are as extreme, p = 2/20; scipy's default
    # normal approximation would say 0.064, below what 3 against 3 can ever give
    result = unpaired_test(np.full(3, WORST), np.array([1.0, 2.0, 3.0]))
    assert_close((result.pvalue, result.statistic, result.effect, result.min_pvalue), (0.1, 0.0, -1.0, 0.1))


def test_minimum_attainable_p_values():
    # every sign alike: the exact signed-rank p is 2/2^n; scipy agrees for 2, 3 and 6 pairs
    for pairs in (2, 3, 6):
        assert_close(min_pvalue_paired(pairs), 2 / 2**pairs)
        assert_close(min_pvalue_paired(pairs), float(scipy.stats.wilcoxon(np.arange(1.0, pairs + 1)).pvalue))
    assert (min_pvalue_paired(1), min_pvalue_paired(0)) == (1.0, 1.0)
    # complete separation: 2 / C(n_x + n_y, n_x)
    assert_close(min_pvalue_unpaired(3, 3), 0.1)
    assert_close(min_pvalue_unpaired(2, 5), 2 / 21)
    assert_close(min_pvalue_unpaired(3, 4),
                 float(scipy.stats.mannwhitneyu([5.0, 6.0, 7.0], [1.0, 2.0, 3.0, 4.0]).pvalue))
    assert min_pvalue_unpaired(1, 1) == 1.0


def test_walsh_positive_fraction_by_hand():
    # d = (1, -2, 3): Walsh sums 1, -2, 3, -1, 4, 1 (i <= j): 4 positive of 6
    assert_close(walsh_positive_fraction(np.array([1.0, -2.0, 3.0])), 4 / 6)
    # +inf and -inf sum to a tie: (1), (-inf), (inf), (-inf), (inf), (tie) -> (1 + 2 + 0.5) / 6
    assert_close(walsh_positive_fraction(np.array([1.0, -np.inf, np.inf])), 3.5 / 6)


def test_seeds_needed_by_noether_formula():
    z_975, z_8, z_99375 = 1.959964, 0.841621, 2.497705  # normal quantiles 0.975, 0.8, 1 - 0.05/8
    # every Walsh average positive (p' = 1): (z_975 + z_8)^2 / (3 * 0.25) = 10.47 -> 11 pairs
    assert paired_seeds_needed(1.0) == math.ceil((z_975 + z_8) ** 2 / 0.75) == 11
    # p' = 0.75: / (3 * 0.0625) = 41.9 -> 42
    assert paired_seeds_needed(0.75) == math.ceil((z_975 + z_8) ** 2 / 0.1875) == 42
    # four comparisons under Holm: alpha / 4, two-sided: (z_99375 + z_8)^2 / 0.75 = 14.9 -> 15
    assert paired_seeds_needed(1.0, comparisons=4) == math.ceil((z_99375 + z_8) ** 2 / 0.75) == 15
    # Mann-Whitney with two equal groups: N = (z + z)^2 / (3 (p - 1/2)^2) runs, half per objective: 5.2 -> 6
    assert unpaired_seeds_needed(1.0) == math.ceil((z_975 + z_8) ** 2 / 1.5) == 6
    assert paired_seeds_needed(0.5) == math.inf and paired_seeds_needed(0.25) == 42  # effects either way


def test_seeds_needed_give_about_the_power_they_promise():
    # normal paired differences with mean 0.5: p' = P(D + D' > 0) = Phi(0.5 * sqrt(2)); simulate the
    # exact signed-rank test at the seeds the formula asks for and at half of them
    rng = np.random.default_rng(3)
    needed = int(paired_seeds_needed(float(scipy.stats.norm.cdf(0.5 * math.sqrt(2)))))
    assert needed == 39
    power = [np.mean(scipy.stats.wilcoxon(rng.normal(0.5, 1.0, (1000, n)), axis=-1).pvalue < 0.05)
             for n in (needed, needed // 2)]
    assert 0.78 <= power[0] <= 0.92, power  # Noether errs towards more seeds: 0.85 here
    assert power[1] < 0.7, power


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
