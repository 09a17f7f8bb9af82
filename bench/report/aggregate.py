"""Aggregation of long metric rows over seeds: pandas in, pandas out, no loops over rows.

Vocabulary: a *run* is one finished job (status `done` or `diverged`; a diverged run enters with
its last evaluation); a *group* is one value of the grid axes (objective x architecture x any
other axis that varies in the suite), whose runs differ only by seed; a *cell* is a group without
its objective, the unit within which objectives are compared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from bench.report.load import NOT_AXES, STATUS_COLUMNS
from bench.report.stats import (
    bootstrap_ci,
    holm,
    iqm,
    oriented,
    paired_test,
    probability_of_improvement,
    unpaired_test,
)

Direction = Literal["lower", "higher"]
FINISHED = ("done", "diverged")
STATUSES = ("done", "diverged", "failed", "running", "pending")
_SIGN = {"lower": -1.0, "higher": 1.0}


def grid_axes(jobs: pd.DataFrame) -> list[str]:
    """The spec columns that define groups: `objective`, `arch`, then every other flat spec column
    that still varies inside some group of the axes chosen so far (fewest distinct values first).

    A column that varies only because another axis does (an objective's published learning rate, a
    dataset's options) adds no groups and is not an axis; `seed`, `job_id`, `suite`, `device` and the
    status columns never are.
    """
    axes = ["objective", "arch"]
    if jobs.empty:
        return axes
    skip = set(NOT_AXES) | set(STATUS_COLUMNS) | set(axes)
    candidates = [column for column in jobs.columns if column not in skip]
    distinct = jobs[candidates].nunique(dropna=False)
    for column in sorted(candidates, key=lambda c: (distinct[c], c)):
        if distinct[column] > 1 and (jobs.groupby(axes, dropna=False)[column].nunique(dropna=False) > 1).any():
            axes.append(column)
    return axes


def cell_labels(frame: pd.DataFrame, cell_axes: Sequence[str]) -> pd.Series:
    """One readable label per row for its cell: `mlp`, or `mlp, lr_g=0.0001` with more axes."""
    label = frame[cell_axes[0]].astype(str)
    for axis in cell_axes[1:]:
        label = label + f", {axis}=" + frame[axis].astype(str)
    return label


def _grouped_matrices(
    frame: pd.DataFrame, keys: Sequence[str], value: str
) -> tuple[pd.DataFrame, np.ndarray, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """Split `frame[value]` by `keys` into matrices of equal group size, for vectorised statistics.

    Returns `(groups, sizes, buckets)`: `groups` holds one row of keys per group (sorted), `sizes`
    its number of rows, and `buckets` yields `(group_positions, scores)` with `scores` of shape
    `(len(group_positions), num_runs)`, rows in seed order, one bucket per distinct size.
    """
    ordered = frame.sort_values([*keys, "seed"], kind="stable")
    group_id = ordered.groupby(list(keys), sort=False, dropna=False).ngroup().to_numpy()
    sizes = np.bincount(group_id) if group_id.size else np.zeros(0, dtype=int)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) if sizes.size else sizes
    groups = ordered[list(keys)].iloc[starts].reset_index(drop=True)
    values = ordered[value].to_numpy(dtype=float)

    def buckets() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for size in np.unique(sizes):
            positions = np.flatnonzero(sizes == size)
            yield positions, values[starts[positions, None] + np.arange(size)]

    return groups, sizes, buckets()


def describe_over_seeds(
    frame: pd.DataFrame,
    keys: Sequence[str],
    value: str,
    *,
    n_resamples: int = 1000,
    with_iqm_ci: bool = True,
) -> pd.DataFrame:
    """Mean, median, IQM and 95% percentile-bootstrap intervals of `frame[value]` per group of `keys`.

    `frame` has one row per run (a `seed` column orders them). Returns one row per group: the keys,
    `n`, `mean`, `mean_lo`, `mean_hi`, `median`, `iqm` and (with `with_iqm_ci`) `iqm_lo`, `iqm_hi`.
    Intervals are NaN for groups of fewer than 2 runs.
    """
    groups, sizes, buckets = _grouped_matrices(frame, keys, value)
    columns = ["mean", "mean_lo", "mean_hi", "median", "iqm"] + (["iqm_lo", "iqm_hi"] if with_iqm_ci else [])
    out = {name: np.full(len(groups), np.nan) for name in columns}
    for positions, scores in buckets:
        out["mean"][positions] = scores.mean(axis=-1)
        out["median"][positions] = np.median(scores, axis=-1)
        out["iqm"][positions] = iqm(scores)
        out["mean_lo"][positions], out["mean_hi"][positions] = bootstrap_ci(scores, np.mean, n_resamples=n_resamples)
        if with_iqm_ci:
            out["iqm_lo"][positions], out["iqm_hi"][positions] = bootstrap_ci(scores, iqm, n_resamples=n_resamples)
    groups["n"] = sizes
    for name in columns:
        groups[name] = out[name]
    return groups


def run_scores(metrics: pd.DataFrame, jobs: pd.DataFrame, axes: Sequence[str],
               directions: Mapping[str, Direction]) -> pd.DataFrame:
    """One row per finished run and metric: the axes, `seed`, `status`, `job_id`, `metric`,
    `final` (value at the last evaluation with a finite value), `final_step`, and `best` (best
    finite value over evaluations by the metric's direction; NaN for metrics without one)."""
    finished = jobs.loc[jobs["status"].isin(FINISHED), ["job_id", "seed", "status", *axes]]
    rows = metrics.loc[metrics["job_id"].isin(finished["job_id"]) & np.isfinite(metrics["value"])]
    rows = rows.sort_values(["job_id", "metric", "step"], kind="stable")
    last = rows.groupby(["job_id", "metric"], sort=False).tail(1)
    scores = last[["job_id", "metric", "value", "step"]].rename(columns={"value": "final", "step": "final_step"})
    sign = rows["metric"].map(lambda name: _SIGN.get(directions.get(name, ""), np.nan))
    signed = rows.assign(signed=rows["value"] * sign.to_numpy(dtype=float)).dropna(subset=["signed"])
    best = signed.groupby(["job_id", "metric"])["signed"].max().rename("best_signed").reset_index()
    scores = scores.merge(best, on=["job_id", "metric"], how="left")
    scores["best"] = scores["best_signed"] * scores["metric"].map(
        lambda name: _SIGN.get(directions.get(name, ""), np.nan)).to_numpy(dtype=float)
    scores = scores.drop(columns="best_signed")
    return finished.merge(scores, on="job_id", how="inner")


def summarise(runs: pd.DataFrame, axes: Sequence[str], *, n_resamples: int = 1000) -> pd.DataFrame:
    """Per group and metric, over seeds: statistics of the final and of the best value.

    Columns: the axes, `metric`, `n`, then `final_*` and `best_*` for mean, mean_lo, mean_hi,
    median, iqm, iqm_lo, iqm_hi (see `describe_over_seeds`).
    """
    keys = ["metric", *axes]
    final = describe_over_seeds(runs, keys, "final", n_resamples=n_resamples)
    best = describe_over_seeds(runs, keys, "best", n_resamples=n_resamples)
    stats = [c for c in final.columns if c not in (*keys, "n")]
    final = final.rename(columns={c: f"final_{c}" for c in stats})
    best = best.drop(columns="n").rename(columns={c: f"best_{c}" for c in stats})
    return final.merge(best, on=keys, how="left")


def status_table(jobs: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Per group: job counts by status, `divergence_rate` = diverged / (done + diverged), and
    `train_s` = mean training wall time (seconds) of finished runs."""
    counts = pd.crosstab([jobs[a] for a in axes], jobs["status"]).reindex(columns=list(STATUSES), fill_value=0)
    counts.columns.name = None
    counts["jobs"] = counts[list(STATUSES)].sum(axis=1)
    finished = counts["done"] + counts["diverged"]
    counts["divergence_rate"] = (counts["diverged"] / finished.where(finished > 0)).astype(float)
    train = jobs.loc[jobs["status"].isin(FINISHED)].groupby(list(axes))["train_s"].mean()
    counts["train_s"] = train.reindex(counts.index)
    return counts.reset_index()


def steps_to_threshold(metrics: pd.DataFrame, runs: pd.DataFrame, axes: Sequence[str],
                       thresholds: Mapping[str, float], directions: Mapping[str, Direction]) -> pd.DataFrame:
    """Per group and thresholded metric: how many runs reached the threshold and when.

    A run reaches `threshold` at the first evaluation step where its value is at least as good
    (>= for "higher", <= for "lower"). Columns: the axes, `metric`, `threshold`, `runs`, `reached`,
    `median_step` (median over the runs that reached it; NaN if none did), `median_wall_s`.
    """
    frames = []
    for metric, threshold in thresholds.items():
        if metric not in directions:
            continue
        direction = directions[metric]
        base = runs.loc[runs["metric"] == metric, ["job_id", *axes]]
        rows = metrics.loc[(metrics["metric"] == metric) & metrics["job_id"].isin(base["job_id"])
                           & np.isfinite(metrics["value"])]
        hit = rows.loc[oriented(rows["value"].to_numpy(), direction) >= oriented(threshold, direction)]
        first = hit.sort_values(["job_id", "step"]).groupby("job_id").head(1)[["job_id", "step", "wall_s"]]
        table = base.merge(first, on="job_id", how="left")
        grouped = table.groupby(list(axes), sort=True)
        frame = pd.DataFrame({
            "runs": grouped.size(),
            "reached": grouped["step"].count(),
            "median_step": grouped["step"].median(),
            "median_wall_s": grouped["wall_s"].median(),
        }).reset_index()
        frame.insert(len(axes), "metric", metric)
        frame.insert(len(axes) + 1, "threshold", float(threshold))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*axes, "metric", "threshold", "runs", "reached", "median_step", "median_wall_s"])
    return pd.concat(frames, ignore_index=True)


def compare_to_baseline(runs: pd.DataFrame, axes: Sequence[str], baseline: str,
                        directions: Mapping[str, Direction], *, alpha: float = 0.05) -> pd.DataFrame:
    """Every objective against `baseline` on the final value of each ranked metric, cell by cell.

    Runs pair when both objectives ran exactly the same seeds in the cell: then a Wilcoxon
    signed-rank test with the matched-pairs rank-biserial correlation as effect size; otherwise a
    Mann-Whitney U test with Cliff's delta. The family for Holm's correction is every comparison of
    one metric (all objectives, all cells). Scores are oriented so that positive effects and
    `probability_of_improvement` > 0.5 favour the objective over the baseline.

    Columns: `metric`, the cell axes, `objective`, `baseline`, `n_objective`, `n_baseline`, `test`,
    `statistic`, `p`, `p_holm`, `probability_of_improvement`, `effect`, `effect_name`,
    `median_objective`, `median_baseline`, `significant` (p_holm < alpha).
    """
    cell_axes = [a for a in axes if a != "objective"]
    ranked = runs.loc[runs["metric"].isin(list(directions))]
    records = []
    for (metric, *cell), group in ranked.groupby(["metric", *cell_axes], sort=True):
        scores = {name: frame.sort_values("seed") for name, frame in group.groupby("objective", sort=True)}
        if baseline not in scores:
            continue
        base = scores[baseline]
        y = oriented(base["final"].to_numpy(), directions[metric])
        for objective, frame in scores.items():
            if objective == baseline:
                continue
            x = oriented(frame["final"].to_numpy(), directions[metric])
            same_seeds = np.array_equal(frame["seed"].to_numpy(), base["seed"].to_numpy())
            result = paired_test(x, y) if same_seeds else unpaired_test(x, y)
            records.append({
                "metric": metric, **dict(zip(cell_axes, cell)), "objective": objective, "baseline": baseline,
                "n_objective": x.size, "n_baseline": y.size, "test": result.test, "statistic": result.statistic,
                "p": result.pvalue, "probability_of_improvement": probability_of_improvement(x, y),
                "effect": result.effect, "effect_name": result.effect_name,
                "median_objective": float(np.median(frame["final"])),
                "median_baseline": float(np.median(base["final"])),
            })
    columns = ["metric", *cell_axes, "objective", "baseline", "n_objective", "n_baseline", "test", "statistic", "p",
               "p_holm", "probability_of_improvement", "effect", "effect_name", "median_objective",
               "median_baseline", "significant"]
    table = pd.DataFrame.from_records(records, columns=[c for c in columns if c not in ("p_holm", "significant")])
    table["p_holm"] = np.nan
    for _, index in table.groupby("metric").groups.items():
        table.loc[index, "p_holm"] = holm(table.loc[index, "p"].to_numpy())
    table["significant"] = table["p_holm"] < alpha
    return table[columns]


def rank_objectives(summary: pd.DataFrame, axes: Sequence[str],
                    directions: Mapping[str, Direction]) -> pd.DataFrame:
    """Rank of each objective within each cell and ranked metric (1 = best; ties share the average
    rank), by the IQM of the final value over seeds. Columns: `metric`, the axes, `final_iqm`, `rank`."""
    cell_axes = [a for a in axes if a != "objective"]
    table = summary.loc[summary["metric"].isin(list(directions)), ["metric", *axes, "final_iqm"]].copy()
    sign = table["metric"].map(lambda name: _SIGN[directions[name]]).to_numpy(dtype=float)
    table["rank"] = (table["final_iqm"] * sign).groupby(
        [table[c] for c in ["metric", *cell_axes]]).rank(ascending=False, method="average")
    return table.reset_index(drop=True)


def curve_bands(metrics: pd.DataFrame, jobs: pd.DataFrame, axes: Sequence[str],
                *, n_resamples: int = 200) -> pd.DataFrame:
    """Convergence curves over finished runs: per metric, group and evaluation step, the mean value
    with its 95% bootstrap interval and the mean wall time (seconds) at that step.

    Columns: `metric`, the axes, `step`, `n`, `mean`, `mean_lo`, `mean_hi`, `wall_s`.
    """
    finished = jobs.loc[jobs["status"].isin(FINISHED), ["job_id", "seed", *axes]]
    rows = metrics.loc[np.isfinite(metrics["value"])].merge(finished, on="job_id", how="inner")
    keys = ["metric", *axes, "step"]
    bands = describe_over_seeds(rows, keys, "value", n_resamples=n_resamples, with_iqm_ci=False)
    wall = rows.groupby(keys, sort=True, dropna=False)["wall_s"].mean().rename("wall_s").reset_index()
    return bands.drop(columns=["median", "iqm"]).merge(wall, on=keys, how="left")


