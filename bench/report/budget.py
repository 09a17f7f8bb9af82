"""Equal-budget comparison: each objective's expected best score after n random-search trials.

Lucic et al. 2018 ("Are GANs Created Equal?") found that most losses reach similar scores with
enough tuning, so objectives are compared at an equal number of hyperparameter trials drawn from
one space (a suite's `search` block, bench.suite.SearchConfig). The curve is Dodge et al. 2019's
("Show Your Work", EMNLP 2019) expected maximum of n i.i.d. draws from the empirical distribution
of the N observed trial scores, as the authors' code computes it (dodgejesse/show_your_work
`expected_max_performance.py`, allenai/allentune `commands/plot.py`): sort v_(1) <= ... <= v_(N),
p_i = (i/N)^n - ((i-1)/N)^n, E_n = sum_i v_(i) p_i; for a lower-is-better metric the expected
minimum (the same formula on -v). It is defined for n <= N only, and assumes random search.

A trial that diverged, failed or failed to train scores the worst value: bench.report.aggregate
gives such runs -inf / +inf, which would make every E_n infinite (p_1 > 0 for every n), so here it
is replaced by the worst finite value the suite logged for that metric (`floor`); it then ties
with the suite's worst evaluation and sits at the bottom of every order statistic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.aggregate import Direction
from bench.report.analysis import Analysis

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


def order_weights(trials: int) -> np.ndarray:
    """p_i(n) for the sorted scores: shape (N, N), column n-1 holds (i/N)^n - ((i-1)/N)^n, i = 1..N.

    Each column sums to 1: the probability that the best of n draws with replacement from N
    sorted values is the i-th smallest (ties are handled by summing, as the authors' code does).
    """
    ranks = np.arange(1, trials + 1, dtype=float)[:, None] / trials
    budgets = np.arange(1, trials + 1, dtype=float)[None, :]
    return ranks**budgets - (ranks - 1.0 / trials) ** budgets


def _oriented(scores: np.ndarray, direction: Direction) -> np.ndarray:
    return scores if direction == "higher" else -scores


def expected_best(scores: np.ndarray, direction: Direction) -> np.ndarray:
    """E_n, n = 1..N: the expected best of n trials (Dodge et al. 2019), shape (N,).

    `scores`: (N,) one finite score per trial, in the metric's units. `direction`: "higher" gives
    the expected maximum, "lower" the expected minimum. E_1 is the mean; E_N tends to the best.
    """
    values = np.sort(_oriented(np.asarray(scores, dtype=float), direction))
    return _oriented(values @ order_weights(values.size), direction)


def expected_best_sd(scores: np.ndarray, direction: Direction) -> np.ndarray:
    """Dodge et al.'s shading, shape (N,): the standard deviation of the best of n draws,
    sqrt(sum_i p_i (v_(i) - E_n)^2), as their code draws it (E_n +- sd, clipped by the caller to
    the observed range). It is the spread of the best run at budget n, not the uncertainty of E_n."""
    values = np.sort(_oriented(np.asarray(scores, dtype=float), direction))
    weights = order_weights(values.size)
    means = values @ weights
    return np.sqrt(np.clip(((values[:, None] - means[None, :]) ** 2 * weights).sum(axis=0), 0.0, None))


def bootstrap_expected_best(scores: np.ndarray, direction: Direction, *, resamples: int = BOOTSTRAP_RESAMPLES,
                            confidence: float = CONFIDENCE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of E_n over trials: (low (N,), high (N,)).

    The N trial scores are resampled with replacement `resamples` times (numpy PCG64, `seed`) and
    E_n recomputed on each. Caveat: Tang et al. 2020 ("Showing Your Work Doesn't Always Work",
    arXiv 2004.13705) argue that this estimator is biased ("favors negative errors") and that its
    bootstrap confidence intervals are poor (they propose an unbiased alternative, castorini/meanmax),
    so the interval is a rough guide; `decided_best` only calls a difference where they do not overlap.
    """
    values = _oriented(np.asarray(scores, dtype=float), direction)
    rng = np.random.default_rng(seed)
    draws = np.sort(values[rng.integers(values.size, size=(resamples, values.size))], axis=1)
    curves = draws @ order_weights(values.size)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(curves, [tail, 1.0 - tail], axis=0)
    if direction == "lower":
        return -high, -low
    return low, high


@dataclass(frozen=True)
class BudgetVerdict:
    """Which objective has the best expected score at `budget` trials on `metric`, in `cell`, and
    whether the intervals decide it (`decided`: its bootstrap interval overlaps no other's);
    `overlapping` names the objectives whose intervals overlap its own, `clear` those whose do not."""

    metric: str
    cell: str
    budget: int
    best: str
    expected: float
    decided: bool
    overlapping: tuple[str, ...]
    clear: tuple[str, ...] = ()


def budget_curves(trial_scores: pd.DataFrame, directions: Mapping[str, Direction]) -> pd.DataFrame:
    """Per metric, cell and objective, the curve at n = 1..N from one finite score per trial.

    `trial_scores`: columns `metric`, `cell`, `objective`, `trial`, `score` (already floored, see
    `trial_score_table`). Returns one row per n: `metric`, `cell`, `objective`, `n`, `trials` (N),
    `expected` (E_n), `sd_low`, `sd_high` (E_n -+ sd, clipped to the observed range), `low`,
    `high` (bootstrap interval).
    """
    rows = []
    for (metric, cell, objective), group in trial_scores.groupby(["metric", "cell", "objective"], sort=True):
        direction = directions[str(metric)]
        scores = group.sort_values("trial")["score"].to_numpy(dtype=float)
        expected = expected_best(scores, direction)
        spread = expected_best_sd(scores, direction)
        low, high = bootstrap_expected_best(scores, direction)
        lowest, highest = float(scores.min()), float(scores.max())
        for n in range(1, scores.size + 1):
            rows.append({"metric": metric, "cell": cell, "objective": objective, "n": n, "trials": scores.size,
                         "expected": expected[n - 1],
                         "sd_low": max(expected[n - 1] - spread[n - 1], lowest),
                         "sd_high": min(expected[n - 1] + spread[n - 1], highest),
                         "low": low[n - 1], "high": high[n - 1]})
    columns = ["metric", "cell", "objective", "n", "trials", "expected", "sd_low", "sd_high", "low", "high"]
    return pd.DataFrame(rows, columns=columns)


def decided_best(curves: pd.DataFrame, directions: Mapping[str, Direction], budget: int) -> list[BudgetVerdict]:
    """For each metric and cell, the objective with the best E_n at n = `budget` (each objective's
    own N where it has fewer trials), and whether that is decided: its bootstrap interval overlaps
    no other objective's. Overlapping intervals do not show a difference at this budget."""
    verdicts = []
    for (metric, cell), group in curves.groupby(["metric", "cell"], sort=True):
        at = group.loc[group["n"] == np.minimum(budget, group["trials"])]
        if at.empty:
            continue
        higher = directions[str(metric)] == "higher"
        expected = at["expected"].to_numpy(dtype=float)
        best = at.iloc[int(np.argmax(expected) if higher else np.argmin(expected))]
        others = at.loc[at["objective"] != best["objective"]]
        overlaps = (others["low"] <= best["high"]) & (others["high"] >= best["low"])
        overlapping = others.loc[overlaps, "objective"]
        verdicts.append(BudgetVerdict(str(metric), str(cell), budget, str(best["objective"]), float(best["expected"]),
                                      overlapping.empty and not others.empty, tuple(sorted(overlapping)),
                                      tuple(sorted(others.loc[~overlaps, "objective"]))))
    return verdicts


def trial_score_table(scores: pd.DataFrame, floors: Mapping[str, float]) -> pd.DataFrame:
    """One score per objective, cell, metric and trial, from `run_scores` rows with a `trial` column.

    A run that did not survive scores the metric's `floors` value (the worst finite value the suite
    logged) in place of -inf / +inf. With several seeds a trial scores the median over its seeds.
    Columns: `metric`, `cell`, `objective`, `trial`, `score`, `survived` (runs of the trial that survived),
    `runs`.
    """
    floored = scores.assign(score=np.where(np.isfinite(scores["score"]), scores["score"],
                                           scores["metric"].map(floors).astype(float)))
    table = floored.groupby(["metric", "cell", "objective", "trial"], sort=True).agg(
        score=("score", "median"), survived=("survived", "sum"), runs=("survived", "size")).reset_index()
    return table


def metric_floors(metrics: pd.DataFrame, directions: Mapping[str, Direction]) -> dict[str, float]:
    """Per ranked metric, the worst finite value any evaluation of the suite logged (the lowest
    where higher is better, the highest where lower is): the score of a trial that did not survive."""
    finite = metrics.loc[np.isfinite(metrics["value"]) & metrics["metric"].isin(list(directions))]
    lowest, highest = finite.groupby("metric")["value"].min(), finite.groupby("metric")["value"].max()
    return {metric: float(lowest[metric] if directions[metric] == "higher" else highest[metric])
            for metric in lowest.index}


@dataclass(frozen=True)
class EqualBudget:
    """A search suite's equal-budget tables: `trial_scores` (trial_score_table), `curves`
    (budget_curves), `floors` (metric -> the value a lost trial scores), `verdicts` at n = 1 and
    n = N (decided_best), `trials` (N, the most any objective has) and `space` (the suite's
    search block as written: trials, seed, space)."""

    trial_scores: pd.DataFrame
    curves: pd.DataFrame
    floors: dict[str, float]
    verdicts: tuple[BudgetVerdict, ...]
    trials: int
    space: Mapping[str, object]


def equal_budget(analysis: Analysis, metrics: pd.DataFrame, search: Mapping[str, object]) -> EqualBudget | None:
    """The equal-budget tables of a suite with a `search` block (None without one, or before any
    trial has ended). `analysis.scores` must carry `trial` (it does for a search suite's jobs);
    `metrics` is the suite's long metric rows, from which the floors are taken."""
    scores = analysis.scores
    if not search or "trial" not in scores.columns or scores.empty:
        return None
    directions = {metric: analysis.directions[metric] for metric in analysis.ranked}
    floors = metric_floors(metrics, directions)
    table = trial_score_table(scores.loc[scores["metric"].isin(list(floors))], floors)
    if table.empty:
        return None
    curves = budget_curves(table, directions)
    trials = int(curves["trials"].max())
    verdicts = tuple(decided_best(curves, directions, 1) + decided_best(curves, directions, trials))
    return EqualBudget(table, curves, floors, verdicts, trials, search)
