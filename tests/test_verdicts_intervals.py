"""The report's 95% intervals, measured: how often they cover the true mean or median by simulation.

Measured with the seeds below (4000 draws each; the standard error of a coverage near 95% is 0.0034):

| scores | n | percentile bootstrap of the mean | Student t of the mean |
| --- | --- | --- | --- |
| normal | 2, 3, 5, 10 | 0.500, 0.744, 0.839, 0.891 | 0.951, 0.950, 0.948, 0.947 |
| gamma(4), skewness 1 | 2, 3, 5, 10 | 0.496, 0.741, 0.821, 0.890 | 0.944, 0.942, 0.928, 0.939 |

The t interval undercovers on strongly skewed scores (exponential: 0.899, 0.885, 0.880, 0.895;
lognormal with sigma 1: 0.891, 0.832, 0.815, 0.846), still far closer to 95% than the bootstrap
there (0.461, 0.704, 0.785, 0.856 and 0.432, 0.635, 0.717, 0.807). The order-statistic interval of
the median is distribution-free: its coverage is a binomial sum whatever the scores.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from bench.report.stats import mean_ci, median_ci, median_ci_ranks

DRAWS = 4000
TOLERANCE = 0.03
SCORES = {
    # name: (draw (rng, shape) -> scores, true mean, seed)
    "normal": (lambda rng, shape: rng.normal(0.3, 1.0, shape), 0.3, 11),
    "gamma(4)": (lambda rng, shape: rng.gamma(4.0, 1.0, shape), 4.0, 12),
}
RUNS = (2, 3, 5, 10)


def _percentile_bootstrap_coverage(scores: np.ndarray, truth: float) -> float:
    """The interval the report used to print: scipy's 95% percentile bootstrap of the mean, 1000 resamples."""
    result = scipy.stats.bootstrap((scores,), np.mean, n_resamples=1000, vectorized=True, axis=-1,
                                   method="percentile", rng=np.random.default_rng(0))
    low, high = result.confidence_interval
    return float(np.mean((low <= truth) & (truth <= high)))


@pytest.mark.parametrize("name", list(SCORES))
def test_t_interval_covers_the_mean_at_small_n_and_the_bootstrap_does_not(name):
    draw, truth, seed = SCORES[name]
    rng = np.random.default_rng(seed)
    measured = {}
    for runs in RUNS:
        scores = draw(rng, (DRAWS, runs))
        low, high = mean_ci(scores)
        measured[runs] = (float(np.mean((low <= truth) & (truth <= high))),
                          _percentile_bootstrap_coverage(scores, truth))
    for runs, (t_coverage, bootstrap_coverage) in measured.items():
        assert abs(t_coverage - 0.95) <= TOLERANCE, (name, runs, measured)
        assert bootstrap_coverage < 0.95 - TOLERANCE, (name, runs, measured)


@pytest.mark.parametrize("runs", [6, 7, 10, 20])
def test_median_interval_covers_as_the_binomial_says_on_skewed_scores(runs):
    # the exponential's median is log 2; coverage 1 - 2 P(Bin(n, 1/2) <= k - 1) for [x_(k), x_(n+1-k)]
    k, coverage = median_ci_ranks(runs)
    expected = 1 - 2 * sum(scipy.stats.binom.pmf(j, runs, 0.5) for j in range(k))
    assert coverage == pytest.approx(expected) and coverage >= 0.95
    scores = np.random.default_rng(runs).exponential(1.0, (DRAWS, runs))
    low, high = median_ci(scores)
    measured = float(np.mean((low <= np.log(2)) & (np.log(2) <= high)))
    standard_error = np.sqrt(coverage * (1 - coverage) / DRAWS)
    assert abs(measured - coverage) <= 4 * standard_error, (runs, measured, coverage)
