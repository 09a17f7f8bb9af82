"""Statistics for comparing objectives over seeds, as small pure functions over arrays.

Shapes follow rliable's convention: `scores: (num_runs,)` is one number per seed (run), and a
leading batch shape `(..., num_runs)` is allowed where a docstring says so, to compute many groups
in one vectorised call. "Better" always means "higher": callers negate lower-is-better metrics
before calling the comparison functions (see `oriented`). A run that diverged, failed or failed to
train scores `WORST` (-inf once oriented): it loses to every run that finished and ties with the
others that did not, in every rank-based statistic here (tests, probability of improvement,
median, IQM).

Intervals are the ones whose coverage holds with a handful of seeds (measured by simulation in
tests/test_verdicts_intervals.py): Student's t interval of the mean, and the distribution-free
order-statistic interval of the median where one exists. A 95% percentile bootstrap of the mean
covers the true mean about 50%, 74%, 84% and 89% of the time with 2, 3, 5 and 10 normal runs, so
none is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.stats

WORST = -math.inf
"""The oriented score of a run that did not survive (diverged, failed, or failed to train)."""
POWER = 0.8
"""The power at which `paired_seeds_needed` and `unpaired_seeds_needed` size a comparison."""
PERMUTATIONS = 9999
"""scipy's default permutation count: up to this many splits of the runs are enumerated exactly."""


def iqm(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of runs (rliable's IQM; Agarwal et al. 2021,
    "Deep RL at the edge of the statistical precipice").

    `scores: (..., num_runs)`; returns shape `(...)`. Trims `floor(0.25 * num_runs)` runs from each
    end (scipy.stats.trim_mean with proportiontocut=0.25), so with 4 runs it is the mean of the
    middle two and with fewer than 4 runs it is the plain mean. Infinite scores (runs counted as the
    worst outcome) are ordered like any other: trimmed when they fall in the outer quarters, and
    making the IQM infinite when they do not.
    """
    scores = np.asarray(scores, dtype=float)
    with np.errstate(invalid="ignore"):
        return scipy.stats.trim_mean(scores, proportiontocut=0.25, axis=axis)


def mean_ci(scores: np.ndarray, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Student's t interval of the mean: `mean -+ t_{(1+confidence)/2, n-1} * s / sqrt(n)` (s: the
    sample standard deviation, ddof=1; scipy.stats.t for the quantile).

    `scores: (..., num_runs)`; NaN entries are not runs (each group uses its own finite count n).
    Returns `(low, high)` of shape `(...)`, NaN where n < 2. Exact for normal scores at any n;
    with skewed scores it covers somewhat less than `confidence` (see the module doc).
    """
    scores = np.asarray(scores, dtype=float)
    present = ~np.isnan(scores)
    count = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, scores, 0.0).sum(axis=-1) / count
        squares = np.where(present, (scores - np.expand_dims(mean, -1)) ** 2, 0.0).sum(axis=-1)
        std = np.sqrt(squares / (count - 1))
        half = scipy.stats.t.ppf((1 + confidence) / 2, np.maximum(count - 1, 1)) * std / np.sqrt(count)
    half = np.where(count >= 2, half, np.nan)
    return mean - half, mean + half


def median_ci_ranks(num_runs: int, *, confidence: float = 0.95) -> tuple[int, float]:
    """The order-statistic interval of the median for `num_runs` runs: `(k, coverage)` such that
    `[x_(k), x_(n+1-k)]` (1-based order statistics) covers the median of any continuous
    distribution with probability `coverage = 1 - 2 * P(Binomial(n, 1/2) <= k - 1)`, the largest k
    with coverage >= `confidence` (distribution-free; Conover, Practical Nonparametric Statistics,
    3rd ed., section 3.2; scipy.stats.binom). `(0, nan)` where no interval reaches `confidence`
    (n <= 5 at 95%).
    """
    if num_runs < 1:
        return 0, math.nan
    k = np.arange(1, num_runs // 2 + 2)
    coverage = 1 - 2 * scipy.stats.binom.cdf(k - 1, num_runs, 0.5)
    good = np.flatnonzero((coverage >= confidence) & (k <= num_runs + 1 - k))
    if good.size == 0:
        return 0, math.nan
    best = good[-1]
    return int(k[best]), float(coverage[best])


def median_ci(scores: np.ndarray, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Distribution-free interval of the median (see `median_ci_ranks`) for runs `(..., num_runs)`.

    Returns `(low, high)` of shape `(...)`, NaN where num_runs is too small for `confidence`.
    Infinite scores (the worst outcome) may be endpoints: the interval is over ranks, so a run that
    did not survive counts as the worst without any value being made up for it.
    """
    scores = np.asarray(scores, dtype=float)
    k, _ = median_ci_ranks(scores.shape[-1], confidence=confidence)
    batch_shape = scores.shape[:-1]
    if k == 0:
        return np.full(batch_shape, np.nan), np.full(batch_shape, np.nan)
    ordered = np.sort(scores, axis=-1)
    return ordered[..., k - 1], ordered[..., scores.shape[-1] - k]


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
    of X divided by `num_runs_x * num_runs_y`. Two runs that both scored `WORST` tie.
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


def paired_differences(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """`x - y` per pair, (num_pairs,), with the worst outcome handled by rank: two `WORST` scores
    differ by 0, and a difference involving one `WORST` is +-inf. The signed-rank statistics below
    use only the signs and the ranks of |x - y|, so infinite differences rank above every finite
    one and tie among themselves."""
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(x == y, 0.0, x - y)


def _ranked_magnitudes(differences: np.ndarray) -> np.ndarray:
    """Finite differences with the same signs and the same ranks of |d|: +-inf becomes +-(max finite
    |d| + 1), which every code path of scipy.stats.wilcoxon handles."""
    d = np.asarray(differences, dtype=float)
    infinite = np.isinf(d)
    if not infinite.any():
        return d
    finite = np.abs(d[~infinite])
    top = (finite.max() if finite.size else 0.0) + 1.0
    return np.where(infinite, np.sign(d) * top, d)


def _ranked_values(scores: np.ndarray) -> np.ndarray:
    """Finite scores in the same order: -inf becomes (min finite - 1), +inf (max finite + 1)."""
    s = np.asarray(scores, dtype=float)
    finite = s[np.isfinite(s)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    return np.where(np.isneginf(s), low - 1.0, np.where(np.isposinf(s), high + 1.0, s))


def matched_pairs_rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences `x - y`, shape (num_pairs,)
    (Kerby 2014, "The simple difference formula").

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


def min_pvalue_paired(num_pairs: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test can reach with `num_pairs`
    pairs: every difference of one sign, `2 / 2^n` (capped at 1). 0.5 with 2 pairs, 0.25 with 3."""
    return min(1.0, 2.0 / 2.0 ** num_pairs) if num_pairs > 0 else 1.0


def min_pvalue_unpaired(num_runs_x: int, num_runs_y: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can reach with these run counts:
    complete separation, `2 / C(n_x + n_y, n_x)` (capped at 1). 0.1 with 3 against 3."""
    if num_runs_x == 0 or num_runs_y == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(num_runs_x + num_runs_y, num_runs_x))


@dataclass(frozen=True)
class TestResult:
    """A two-sided test of X against Y. `effect` is the effect size named by `effect_name`;
    `min_pvalue` is the smallest p-value the test could give with these run counts."""

    test: Literal["wilcoxon", "mann-whitney"]
    statistic: float
    pvalue: float
    effect: float
    effect_name: Literal["matched-pairs rank-biserial", "Cliff's delta"]
    num_runs_x: int
    num_runs_y: int
    min_pvalue: float


def paired_test(scores_x: np.ndarray, scores_y: np.ndarray) -> TestResult:
    """Wilcoxon signed-rank test of paired runs (run i of X and of Y share a seed).

    `scores_x, scores_y: (num_pairs,)`, higher is better, `WORST` allowed (see
    `paired_differences`). scipy.stats.wilcoxon with its defaults (zero differences dropped; exact
    distribution for small samples). When every difference is zero there is no evidence of a
    difference: p = 1.
    """
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores need equal 1-D shapes, got {x.shape} and {y.shape}")
    differences = paired_differences(x, y)
    if not np.any(differences != 0):
        statistic, pvalue = 0.0, 1.0
    else:
        result = scipy.stats.wilcoxon(_ranked_magnitudes(differences))
        statistic, pvalue = float(result.statistic), float(result.pvalue)
    return TestResult("wilcoxon", statistic, pvalue, matched_pairs_rank_biserial(differences),
                      "matched-pairs rank-biserial", x.size, y.size, min_pvalue_paired(x.size))


def unpaired_test(scores_x: np.ndarray, scores_y: np.ndarray) -> TestResult:
    """Two-sided Mann-Whitney U test of independent runs (scipy.stats.mannwhitneyu);
    `(num_runs_x,)`, `(num_runs_y,)`, `WORST` allowed (it only enters through ranks). With ties and
    at most `PERMUTATIONS` ways to split the runs, the p-value is the exact permutation one.

    The effect size is Cliff's delta (= the rank-biserial correlation 2U/(n_x n_y) - 1).
    """
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    pooled = _ranked_values(np.concatenate([x, y]))
    method: str | scipy.stats.PermutationMethod = "auto"
    if np.unique(pooled).size < pooled.size and math.comb(pooled.size, x.size) <= PERMUTATIONS:
        # scipy's "auto" takes the normal approximation once there are ties (runs that all scored
        # WORST tie), which undershoots the exact p-value with a few seeds; enumerating every split
        # is exact, as scipy.stats.wilcoxon does for up to 13 pairs with ties
        method = scipy.stats.PermutationMethod(n_resamples=PERMUTATIONS)
    result = scipy.stats.mannwhitneyu(pooled[: x.size], pooled[x.size:], alternative="two-sided", method=method)
    return TestResult("mann-whitney", float(result.statistic), float(result.pvalue), cliffs_delta(x, y),
                      "Cliff's delta", x.size, y.size, min_pvalue_unpaired(x.size, y.size))


def walsh_positive_fraction(differences: np.ndarray) -> float:
    """Share of the Walsh averages `(d_i + d_j) / 2`, i <= j, that are positive, ties counting one
    half; `differences: (num_pairs,)` as `paired_differences` gives them (a sum of +inf and -inf is
    a tie). It estimates Noether's p' = P(D + D' > 0) for two independent pairs' differences; 1/2
    means no effect. NaN without pairs."""
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        return math.nan
    upper = np.triu_indices(d.size)
    with np.errstate(invalid="ignore"):
        sums = d[upper[0]] + d[upper[1]]
    return float(np.mean((sums > 0) + 0.5 * ~((sums > 0) | (sums < 0))))


def _seeds_needed(effect: float, *, denominator: float, min_pvalue, alpha: float, comparisons: int,
                  power: float) -> float:
    if not np.isfinite(effect) or effect == 0.5:
        return math.inf
    z = scipy.stats.norm.ppf(1 - alpha / (2 * comparisons)) + scipy.stats.norm.ppf(power)
    needed = math.ceil(z**2 / (denominator * (effect - 0.5) ** 2))
    attainable = next(n for n in range(1, 10_000) if min_pvalue(n) * comparisons < alpha)
    return float(max(needed, attainable))


def paired_seeds_needed(p_plus: float, *, alpha: float = 0.05, comparisons: int = 1,
                        power: float = POWER) -> float:
    """Seeds (pairs) a two-sided Wilcoxon signed-rank test needs to find an effect of size `p_plus`
    (Noether's p' = P(D + D' > 0), see `walsh_positive_fraction`) with probability `power`, at level
    `alpha / comparisons` (Bonferroni: the strictest step of Holm's procedure over that many tests).

    Noether (1987), "Sample size determination for some common nonparametric tests", JASA 82:645:
    `n = (z_{1 - alpha/(2m)} + z_power)^2 / (3 (p' - 1/2)^2)`, a normal approximation that errs
    on the side of more seeds for large effects; never fewer than the smallest n whose
    `min_pvalue_paired(n) * comparisons < alpha`. inf when p' = 1/2 (no effect observed).
    """
    return _seeds_needed(p_plus, denominator=3.0, min_pvalue=min_pvalue_paired, alpha=alpha,
                         comparisons=comparisons, power=power)


def unpaired_seeds_needed(p_improvement: float, *, alpha: float = 0.05, comparisons: int = 1,
                          power: float = POWER) -> float:
    """Seeds per objective (two equal groups) a two-sided Mann-Whitney U test needs to find an
    effect of size `p_improvement` = P(X > Y) with probability `power` at level `alpha / comparisons`.

    Noether (1987): `N = (z_{1 - alpha/(2m)} + z_power)^2 / (12 c (1 - c) (p - 1/2)^2)` runs in all,
    with c = 1/2 the share of one group, so `N / 2` per objective; never fewer than the smallest n
    whose `min_pvalue_unpaired(n, n) * comparisons < alpha`. inf when p = 1/2.
    """
    return _seeds_needed(p_improvement, denominator=6.0, min_pvalue=lambda n: min_pvalue_unpaired(n, n),
                         alpha=alpha, comparisons=comparisons, power=power)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of one family of tests; `pvalues: (num_tests,)` -> same shape
    (Holm 1979, "A simple sequentially rejective multiple test procedure").

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
