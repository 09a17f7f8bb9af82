"""Statistics for comparing objectives over seeds, as small pure functions over arrays.

Shapes follow rliable's convention: `scores: (num_runs,)` is one number per seed (run), and a
leading batch shape `(..., num_runs)` is allowed where a docstring says so, to compute many groups
in one vectorised call. "Better" always means "higher": callers negate lower-is-better metrics
before calling the comparison functions (see `oriented`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.stats

Statistic = Callable[..., np.ndarray]

BOOTSTRAP_SEED = 0
"""The fixed seed of every bootstrap in a report, so the same results give the same report."""


def iqm(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of runs (rliable's IQM).

    `scores: (..., num_runs)`; returns shape `(...)`. Trims `floor(0.25 * num_runs)` runs from each
    end (scipy.stats.trim_mean with proportiontocut=0.25), so with 4 runs it is the mean of the
    middle two and with fewer than 4 runs it is the plain mean.
    """
    return scipy.stats.trim_mean(np.asarray(scores, dtype=float), proportiontocut=0.25, axis=axis)


def bootstrap_ci(
    scores: np.ndarray,
    statistic: Statistic = np.mean,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of `statistic` over runs (scipy.stats.bootstrap).

    `scores: (..., num_runs)`; every leading index is an independent group with the same number of
    runs (groups are resampled with the same resample indices, so a group's interval depends only on
    its own scores, `n_resamples` and `seed`). `statistic(x, axis)` must reduce `axis`, as
    `np.mean` and `iqm` do. Returns `(low, high)`, each of shape `(...)`; NaN where num_runs < 2.
    """
    scores = np.asarray(scores, dtype=float)
    batch_shape = scores.shape[:-1]
    if scores.shape[-1] < 2 or scores.size == 0:
        nan = np.full(batch_shape, np.nan)
        return nan, nan.copy()
    with warnings.catch_warnings():
        # identical scores give a degenerate (zero-width) interval, which is the right answer here
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        result = scipy.stats.bootstrap(
            (scores,),
            statistic,
            n_resamples=n_resamples,
            vectorized=True,
            axis=-1,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def oriented(scores: np.ndarray, direction: Literal["lower", "higher"]) -> np.ndarray:
    """`scores` turned so that higher is better: negated when `direction` is "lower"."""
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction {direction!r} is not one of: higher, lower")
    scores = np.asarray(scores, dtype=float)
    return -scores if direction == "lower" else scores


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """P(X > Y): the chance that a run of X scores higher than a run of Y (rliable's definition).

    `scores_x: (num_runs_x,)`, `scores_y: (num_runs_y,)`, higher is better. Every pair counts, ties
    count one half: `mean_ij([x_i > y_j] + 0.5 [x_i == y_j])`, which is the Mann-Whitney U statistic
    of X divided by `num_runs_x * num_runs_y`.
    """
    x = np.asarray(scores_x, dtype=float)[:, None]
    y = np.asarray(scores_y, dtype=float)[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


def cliffs_delta(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """Cliff's delta `P(X > Y) - P(X < Y)` in [-1, 1] over all pairs; `(num_runs_x,)`, `(num_runs_y,)`.

    Equal to `2 * probability_of_improvement(x, y) - 1` and to the rank-biserial correlation of the
    Mann-Whitney U test. Positive: X tends to score higher.
    """
    x = np.asarray(scores_x, dtype=float)[:, None]
    y = np.asarray(scores_y, dtype=float)[None, :]
    return float(np.mean(x > y) - np.mean(x < y))


def matched_pairs_rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences `x - y`, shape (num_pairs,).

    `(R+ - R-) / (R+ + R-)` where R+ and R- are the sums of the ranks of |d| (average ranks for
    ties) over positive and negative differences; zero differences are dropped, as the Wilcoxon
    signed-rank test drops them. In [-1, 1]; positive: X tends to score higher. NaN if all are zero.
    """
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


@dataclass(frozen=True)
class TestResult:
    """A two-sided test of X against Y. `effect` is the effect size named by `effect_name`."""

    test: Literal["wilcoxon", "mann-whitney"]
    statistic: float
    pvalue: float
    effect: float
    effect_name: Literal["matched-pairs rank-biserial", "Cliff's delta"]
    num_runs_x: int
    num_runs_y: int


def paired_test(scores_x: np.ndarray, scores_y: np.ndarray) -> TestResult:
    """Wilcoxon signed-rank test of paired runs (run i of X and of Y share a seed).

    `scores_x, scores_y: (num_pairs,)`, higher is better. scipy.stats.wilcoxon with its defaults
    (zero differences dropped; exact distribution for small samples without ties). When every
    difference is zero there is no evidence of a difference: p = 1.
    """
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need equal 1-D shapes, got {x.shape} and {y.shape}")
    differences = x - y
    if not np.any(differences != 0):
        statistic, pvalue = 0.0, 1.0
    else:
        result = scipy.stats.wilcoxon(differences)
        statistic, pvalue = float(result.statistic), float(result.pvalue)
    return TestResult("wilcoxon", statistic, pvalue, matched_pairs_rank_biserial(differences),
                      "matched-pairs rank-biserial", x.size, y.size)


def unpaired_test(scores_x: np.ndarray, scores_y: np.ndarray) -> TestResult:
    """Two-sided Mann-Whitney U test of independent runs; `(num_runs_x,)`, `(num_runs_y,)`.

    The effect size is Cliff's delta (= the rank-biserial correlation 2U/(n_x n_y) - 1).
    """
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    result = scipy.stats.mannwhitneyu(x, y, alternative="two-sided")
    return TestResult("mann-whitney", float(result.statistic), float(result.pvalue), cliffs_delta(x, y),
                      "Cliff's delta", x.size, y.size)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of one family of tests; `pvalues: (num_tests,)` -> same shape.

    With p sorted ascending, `p_adj(i) = max_{j <= i} min(1, (m - j) * p(j))` (0-based j); reject
    where `p_adj < alpha`. NaN entries are left out of the family and stay NaN.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted
