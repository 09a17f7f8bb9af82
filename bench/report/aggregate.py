"""Aggregation of long metric rows over seeds: pandas in, pandas out, no loops over rows.

Vocabulary: a *run* is one finished job (status `done` or `diverged`; a diverged run enters with
its last finite evaluation); a *group* is one value of the grid axes (objective x architecture x any
other axis that varies in the suite), whose runs differ only by seed; a *cell* is a group without
its objective, the unit within which objectives are compared. Every per-run number taken from a
curve (final, best, AUC, spread, time to a threshold, divergence step) comes from
bench.metrics.convergence; this module only groups runs and describes them over seeds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from bench.metrics.convergence import divergence_steps, summarise_curves
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
LAST_K = 3
"""Evaluations whose spread (sample std) measures how steady a run ended: the last 3, or all of them if fewer."""


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


def _padded_curves(rows: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Long rows of one kind of curve, sorted by (job_id, step) (each job's rows contiguous), as
    padded matrices.

    Returns `(job_ids, matrices, lengths)`: `job_ids` (N,) in order of first appearance, one (N, T)
    float matrix per column (NaN beyond a curve's end), `lengths` (N,) evaluations per curve.
    """
    codes, job_ids = pd.factorize(rows["job_id"], sort=False)
    lengths = np.bincount(codes, minlength=len(job_ids))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    position = np.arange(len(codes)) - starts[codes]
    width = int(lengths.max()) if len(lengths) else 0
    matrices = {}
    for column in columns:
        matrix = np.full((len(job_ids), width), np.nan)
        matrix[codes, position] = rows[column].to_numpy(dtype=float)
        matrices[column] = matrix
    return np.asarray(job_ids, dtype=object), matrices, lengths


SUMMARY_COLUMNS = ("final", "best", "best_step", "auc", "last_k", "last_k_std", "threshold", "reached",
                   "steps_to_threshold", "wall_s_to_threshold")


def run_summaries(metrics: pd.DataFrame, jobs: pd.DataFrame, axes: Sequence[str],
                  directions: Mapping[str, Direction], thresholds: Mapping[str, float] | None = None,
                  *, last_k: int = LAST_K) -> pd.DataFrame:
    """One row per finished run and metric with a direction: its curve summarised by
    bench.metrics.convergence (`summarise_curves`, the batched `summarise_curve`).

    A run's curve of a metric is its finite evaluations in step order (a diverged run's curve
    stops at its last finite evaluation). Columns: the axes, `seed`, `status`, `job_id`, `metric`,
    then `final`, `best`, `best_step` (generator steps), `auc` (normalised AUC, the metric's units;
    NaN with one evaluation), `last_k` and `last_k_std` (sample std of the last min(last_k, T)
    evaluations; NaN with one), and for metrics in `thresholds`: `threshold`, `reached`,
    `steps_to_threshold`, `wall_s_to_threshold` (NaN and reached=False when censored; `threshold`
    NaN for metrics without one).
    """
    finished = jobs.loc[jobs["status"].isin(FINISHED), ["job_id", "seed", "status", *axes]]
    thresholds = thresholds or {}
    rows = metrics.loc[metrics["job_id"].isin(finished["job_id"]) & metrics["metric"].isin(list(directions))
                       & np.isfinite(metrics["value"])]
    rows = rows.sort_values(["metric", "job_id", "step"], kind="stable")
    repeated = rows.loc[rows.duplicated(["metric", "job_id", "step"]), ["job_id", "metric", "step"]]
    if len(repeated):
        where = ", ".join(f"job {j} {m} at step {s}" for j, m, s in repeated.head(5).itertuples(index=False))
        raise ValueError(f"metrics.csv holds one evaluation twice ({len(repeated)} repeated rows: {where}); "
                         "a curve needs strictly increasing steps")
    frames = []
    for metric, curves in rows.groupby("metric", sort=True):
        job_ids, matrices, lengths = _padded_curves(curves, ("step", "wall_s", "value"))
        summaries = summarise_curves(matrices["step"], matrices["wall_s"], matrices["value"], lengths,
                                     direction=directions[metric], threshold=thresholds.get(metric),
                                     last_k=last_k)
        columns = summaries.columns()
        frames.append(pd.DataFrame({"job_id": job_ids, "metric": metric,
                                    **{name: columns[name] for name in SUMMARY_COLUMNS}}))
    if not frames:
        scores = pd.DataFrame({name: pd.Series(dtype=float) for name in ("job_id", "metric", *SUMMARY_COLUMNS)})
        scores = scores.astype({"job_id": object, "metric": object, "reached": bool, "last_k": int})
    else:
        scores = pd.concat(frames, ignore_index=True)
    return finished.merge(scores, on="job_id", how="inner")


def run_divergence(metrics: pd.DataFrame, jobs: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """One row per finished run: the axes, `seed`, `status`, `job_id`, `divergence_step`.

    `divergence_step` (generator steps; NaN unless the run diverged) is bench.metrics.convergence's
    `divergence_step` of the run's record: every step at which it logged any row, non-finite where
    any value logged there is (the training loop logs a `diverged` row at the first non-finite loss).
    A finished run without any row has no record and a NaN step.
    """
    finished = jobs.loc[jobs["status"].isin(FINISHED), ["job_id", "seed", "status", *axes]]
    rows = metrics.loc[metrics["job_id"].isin(finished["job_id"]), ["job_id", "step", "value"]]
    finite = rows.assign(finite=np.isfinite(rows["value"])).groupby(["job_id", "step"], sort=True)["finite"].all()
    record = finite.reset_index().assign(value=lambda frame: np.where(frame["finite"], 0.0, np.nan))
    job_ids, matrices, lengths = _padded_curves(record, ("step", "value"))
    status = finished.set_index("job_id")["status"].reindex(job_ids).to_numpy()
    steps = divergence_steps(matrices["step"], matrices["value"], lengths, statuses=status)
    found = pd.DataFrame({"job_id": job_ids, "divergence_step": steps})
    return finished.merge(found, on="job_id", how="left")


def summarise(runs: pd.DataFrame, axes: Sequence[str], *, n_resamples: int = 1000) -> pd.DataFrame:
    """Per group and metric, over seeds, from `run_summaries` rows: statistics of the final value,
    the best value, the normalised AUC and the last-k spread.

    Columns: the axes, `metric`, `n`, then `final_*` and `best_*` for mean, mean_lo, mean_hi,
    median, iqm, iqm_lo, iqm_hi (see `describe_over_seeds`); `best_step_median` (generator steps);
    `curve_n`, the runs with at least two evaluations (those with an AUC and a spread), and over
    them `auc_*` and `spread_*` for mean, mean_lo, mean_hi, median (NaN where `curve_n` is 0).
    """
    keys = ["metric", *axes]
    final = describe_over_seeds(runs, keys, "final", n_resamples=n_resamples)
    best = describe_over_seeds(runs, keys, "best", n_resamples=n_resamples)
    stats = [c for c in final.columns if c not in (*keys, "n")]
    final = final.rename(columns={c: f"final_{c}" for c in stats})
    best = best.drop(columns="n").rename(columns={c: f"best_{c}" for c in stats})
    table = final.merge(best, on=keys, how="left")
    best_step = runs.groupby(keys, sort=True, dropna=False)["best_step"].median().rename("best_step_median")
    table = table.merge(best_step.reset_index(), on=keys, how="left")

    curves = runs.loc[np.isfinite(runs["auc"].to_numpy(dtype=float))
                      & np.isfinite(runs["last_k_std"].to_numpy(dtype=float))]
    shown = ["mean", "mean_lo", "mean_hi", "median"]
    for value, prefix in (("auc", "auc"), ("last_k_std", "spread")):
        described = describe_over_seeds(curves, keys, value, n_resamples=n_resamples, with_iqm_ci=False)
        described = described[[*keys, "n", *shown]].rename(columns={"n": f"{prefix}_n", **{
            c: f"{prefix}_{c}" for c in shown}})
        table = table.merge(described, on=keys, how="left")
    table = table.rename(columns={"auc_n": "curve_n"}).drop(columns="spread_n")  # the same runs: one n
    table["curve_n"] = table["curve_n"].fillna(0).astype(int)
    return table


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


def threshold_table(runs: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Per group and thresholded metric, from `run_summaries` rows: how many runs reached the
    threshold and when.

    Censored runs (never reached it) count in `runs`, not in `reached`, and are left out of the
    medians, which are over the runs that reached it (NaN if none did). Columns: the axes, `metric`,
    `threshold`, `runs`, `reached`, `median_step` (generator steps), `median_wall_s` (seconds).
    """
    columns = [*axes, "metric", "threshold", "runs", "reached", "median_step", "median_wall_s"]
    rows = runs.loc[np.isfinite(runs["threshold"].to_numpy(dtype=float))] if len(runs) else runs
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby(["metric", "threshold", *axes], sort=True, dropna=False)
    table = pd.DataFrame({
        "runs": grouped.size(),
        "reached": grouped["reached"].sum().astype(int),
        "median_step": grouped["steps_to_threshold"].median(),  # NaN (censored) skipped
        "median_wall_s": grouped["wall_s_to_threshold"].median(),
    }).reset_index()
    return table[columns]


def divergence_table(divergence: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Per group, from `run_divergence` rows: `runs` (finished), `diverged` and
    `median_divergence_step` (generator steps, over the diverged runs; NaN if none diverged). The
    divergence rate is `status_table`'s."""
    grouped = divergence.assign(diverged=divergence["status"] == "diverged").groupby(list(axes), sort=True)
    table = pd.DataFrame({
        "runs": grouped.size(),
        "diverged": grouped["diverged"].sum().astype(int),
        "median_divergence_step": grouped["divergence_step"].median(),
    }).reset_index()
    return table


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


