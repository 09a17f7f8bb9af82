"""Aggregation of long metric rows over seeds: pandas in, pandas out, no loops over rows.

Vocabulary: a *run* is one job with an outcome (status `done`, `diverged` or `failed`); `running`
and `pending` jobs are unfinished and enter no statistic. A run's *outcome* is `survived` (done,
and trained), `failed to train` (done, but its final value of a metric with a `failed_at` rule is
no better than that), `diverged` or `failed`. A *group* is one value of the grid axes (objective x
architecture x any other axis that varies in the suite), whose runs differ only by seed; a *cell*
is a group without its objective, the unit within which objectives are compared.

Scores: a surviving run scores its final value; every other run scores the worst outcome (+inf
for a lower-is-better metric, -inf for a higher-is-better one), so that medians, IQMs, ranks,
probabilities of improvement and the tests count it as losing to every survivor, never as the
value it reached before it broke. Means, mean intervals and curve summaries are over survivors
only, and say so. The survivors-only view (`survivors_only=True` where offered) drops every other
run instead. Every per-run number taken from a curve (final, best, AUC, spread, time to a
threshold, divergence step) comes from bench.metrics.convergence.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from bench.metrics.convergence import divergence_steps, gradient_evaluations, summarise_curves, window_aucs
from bench.report.load import NOT_AXES, STATUS_COLUMNS
from bench.report.stats import (
    holm,
    iqm,
    mean_ci,
    median_ci,
    oriented,
    paired_differences,
    paired_seeds_needed,
    paired_test,
    probability_of_improvement,
    unpaired_seeds_needed,
    unpaired_test,
    walsh_positive_fraction,
)
from bench.store import COMPLETE_STATUSES, STATUS_OUTCOMES, TERMINAL_STATUSES, Outcome, Status

Direction = Literal["lower", "higher"]
FINISHED = tuple(status.value for status in Status if status in COMPLETE_STATUSES)
ENDED = tuple(status.value for status in Status if status in TERMINAL_STATUSES)
"""Statuses with an outcome: the runs of every statistic."""
UNFINISHED = tuple(status.value for status in reversed(Status) if status not in TERMINAL_STATUSES)  # running first
STATUSES = (*ENDED, *UNFINISHED)
"""Every status, in the order tables list them."""
OUTCOMES = tuple(outcome.value for outcome in Outcome)
SPEED_AXES = {"step": "generator steps", "grad_evals": "gradient evaluations", "wall_s": "wall time (s)"}
"""The x axes a curve is read against: column -> its name in the report."""
_SIGN = {"lower": -1.0, "higher": 1.0}
_WORST = {"lower": np.inf, "higher": -np.inf}
LAST_K = 3
"""Evaluations whose spread (sample std) measures how steady a run ended: the last 3, or all of them if fewer."""


def grid_axes(jobs: pd.DataFrame, declared: Sequence[str] = ()) -> list[str]:
    """The spec columns that define groups: `objective`, `arch`, then every other flat spec column
    that still varies inside some group of the axes chosen so far (fewest distinct values first).

    A column that varies only because another axis does (an objective's published learning rate, a
    dataset's options) adds no groups and is not an axis; `seed`, `job_id`, `suite`, `device`, the
    status columns and, in a suite with a search, `trial` and what the search samples
    (`searched_columns`) never are: trials are repetitions, like seeds. A `declared` column (one the
    suite sets itself, in its grid or an include rule: `declared_columns`) that varies inside an
    objective x arch group is an axis even when it varies together with another axis, so that a
    group is named by everything the suite changed in it (a packing trick and its batch size).
    """
    axes = ["objective", "arch"]
    if jobs.empty:
        return axes
    skip = set(NOT_AXES) | set(STATUS_COLUMNS) | set(axes) | set(searched_columns(jobs))
    candidates = [column for column in jobs.columns if column not in skip]
    distinct = jobs[candidates].nunique(dropna=False)
    varying = [column for column in sorted(candidates, key=lambda c: (distinct[c], c)) if distinct[column] > 1]

    def varies_within(column: str, groups: list[str]) -> bool:
        return bool((jobs.groupby(groups, dropna=False)[column].nunique(dropna=False) > 1).any())

    primary = list(axes)
    for column in varying:
        if varies_within(column, axes):
            axes.append(column)
    axes += [column for column in varying
             if column in declared and column not in axes and varies_within(column, primary)]
    return axes


def declared_columns(suite_config: Mapping[str, Any]) -> list[str]:
    """The spec columns the stored suite file (a plain mapping) sets itself: bench.suite.set_columns
    of its grid and include rules."""
    from bench.suite import set_columns

    grid, include = suite_config.get("grid"), suite_config.get("include")
    return set_columns(grid if isinstance(grid, Mapping) else (),
                       [rule for rule in include or () if isinstance(rule, Mapping)])


def searched_columns(jobs: pd.DataFrame) -> list[str]:
    """The columns of a search suite's jobs that its trials set: `trial`, each `search.<name>` and
    the spec columns that name sets (bench.suite.search_spec_columns); none without a search."""
    from bench.suite import search_spec_columns

    searched = [column for column in jobs.columns if column.startswith("search.")]
    columns = ["trial"] if "trial" in jobs.columns else []
    for column in searched:
        columns += [column, *search_spec_columns(column.removeprefix("search."))]
    return list(dict.fromkeys(columns))


def repetition_columns(frame: pd.DataFrame) -> list[str]:
    """What tells apart the runs of one group: `seed`, and `trial` in a suite with a search."""
    return ["seed", "trial"] if "trial" in frame.columns else ["seed"]


def repetition_noun(frame: pd.DataFrame) -> str:
    """What the report calls the runs that pair across objectives: `seeds`, or in a suite with a search
    `runs` (a run is one seed of one trial; trial t is the same configuration for every objective)."""
    return "seeds" if repetition_columns(frame) == ["seed"] else "runs"


def repetition_label(key: object, columns: Sequence[str]) -> str:
    """A run's repetition as the report names it: `seed 3`, or `seed 0, trial 5`."""
    values = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{column} {value}" for column, value in zip(columns, values))


def cell_labels(frame: pd.DataFrame, cell_axes: Sequence[str]) -> pd.Series:
    """One readable label per row for its cell: `mlp`, or `mlp, lr_g=0.0001` with more axes."""
    label = frame[cell_axes[0]].astype(str)
    for axis in cell_axes[1:]:
        label = label + f", {axis}=" + frame[axis].astype(str)
    return label


def critic_steps(jobs: pd.DataFrame) -> pd.Series:
    """The spec's `critic_steps` (critic updates per generator step) of each job, as floats."""
    if "critic_steps" not in jobs.columns:
        raise ValueError(f"the jobs table has no `critic_steps` column (columns: {', '.join(map(str, jobs.columns))})")
    return jobs["critic_steps"].astype(float)


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


DESCRIBED = ("mean", "mean_lo", "mean_hi", "median", "median_lo", "median_hi", "iqm")


def describe_over_seeds(frame: pd.DataFrame, keys: Sequence[str], value: str) -> pd.DataFrame:
    """Mean with its 95% Student-t interval, median with its 95% distribution-free order-statistic
    interval, and IQM of `frame[value]` per group of `keys` (bench.report.stats).

    `frame` has one row per run (a `seed` column orders them); rows whose value is NaN are not runs
    and are left out, while +-inf (the worst outcome) is a run: it enters the median, its interval
    and the IQM by rank, and makes the mean infinite. Returns one row per group with a run: the keys,
    `n`, then `mean`, `mean_lo`, `mean_hi`, `median`, `median_lo`, `median_hi`, `iqm`. The mean
    interval is NaN with fewer than 2 runs, the median's with fewer than 6 (none reaches 95% below).
    """
    frame = frame.loc[frame[value].notna()]
    groups, sizes, buckets = _grouped_matrices(frame, keys, value)
    out = {name: np.full(len(groups), np.nan) for name in DESCRIBED}
    for positions, scores in buckets:
        with np.errstate(invalid="ignore"):
            out["mean"][positions] = scores.mean(axis=-1)
            out["mean_lo"][positions], out["mean_hi"][positions] = mean_ci(scores)
        out["median"][positions] = np.median(scores, axis=-1)
        out["median_lo"][positions], out["median_hi"][positions] = median_ci(scores)
        out["iqm"][positions] = iqm(scores)
    groups["n"] = sizes
    for name in DESCRIBED:
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


SUMMARY_COLUMNS = ("final", "best", "best_step", "last_k", "last_k_std", "threshold", "reached",
                   "steps_to_threshold", "wall_s_to_threshold")


def _curve_rows(metrics: pd.DataFrame, job_ids: pd.Series, metric_names: Sequence[str]) -> pd.DataFrame:
    """The finite evaluations of `metric_names` by `job_ids`, sorted by (metric, job_id, step); an
    evaluation written twice is refused, naming the job."""
    rows = metrics.loc[metrics["job_id"].isin(job_ids) & metrics["metric"].isin(list(metric_names))
                       & np.isfinite(metrics["value"])]
    rows = rows.sort_values(["metric", "job_id", "step"], kind="stable")
    repeated = rows.loc[rows.duplicated(["metric", "job_id", "step"]), ["job_id", "metric", "step"]]
    if len(repeated):
        where = ", ".join(f"job {j} {m} at step {s}" for j, m, s in repeated.head(5).itertuples(index=False))
        raise ValueError(f"metrics.csv holds one evaluation twice ({len(repeated)} repeated rows: {where}); "
                         "a curve needs strictly increasing steps")
    return rows


def run_summaries(metrics: pd.DataFrame, jobs: pd.DataFrame, axes: Sequence[str],
                  directions: Mapping[str, Direction], thresholds: Mapping[str, float] | None = None,
                  *, last_k: int = LAST_K) -> pd.DataFrame:
    """One row per run (job with an outcome: done, diverged or failed) and metric with a direction
    that it evaluated: its curve summarised by bench.metrics.convergence (`summarise_curves`).

    A run's curve of a metric is its finite evaluations in step order (a diverged or failed run's
    curve stops at its last finite evaluation). Columns: the axes, `seed`, `status`, `job_id`,
    `critic_steps`, `metric`, then `final`, `best`, `best_step` (generator steps), `last_k` and
    `last_k_std` (sample std of the last min(last_k, T) evaluations; NaN with one), and for metrics
    in `thresholds`: `threshold`, `reached`, `steps_to_threshold` (generator steps),
    `grad_evals_to_threshold` (gradient evaluations, see convergence.gradient_evaluations),
    `wall_s_to_threshold` (seconds); NaN and reached=False when censored, `threshold` NaN for metrics
    without one. Whether a run's numbers count is decided later, by its outcome (`run_outcomes`).
    """
    repeats = repetition_columns(jobs)
    ended = jobs.loc[jobs["status"].isin(ENDED), ["job_id", *repeats, "status", *axes]]
    ended = ended.assign(critic_steps=critic_steps(jobs.loc[ended.index]))
    thresholds = thresholds or {}
    rows = _curve_rows(metrics, ended["job_id"], list(directions))
    frames = []
    for metric_key, curves in rows.groupby("metric", sort=True):
        metric = cast(str, metric_key)  # pandas types a group key as any scalar; these are metric names
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
    runs = ended.merge(scores, on="job_id", how="inner")
    runs["grad_evals_to_threshold"] = gradient_evaluations(runs["steps_to_threshold"], runs["critic_steps"])
    return runs


def run_outcomes(jobs: pd.DataFrame, runs: pd.DataFrame, axes: Sequence[str],
                 directions: Mapping[str, Direction], failed_at: Mapping[str, float]) -> pd.DataFrame:
    """The outcome of every run (job with status done, diverged or failed).

    `runs` are `run_summaries` rows. A done run failed to train when its final value of a ranked
    metric (one in `directions`) with a `failed_at` rule is no better than that value (<= for
    higher-is-better, >= for lower-is-better; MetricInfo.failed_at); otherwise it survived.
    Columns: `job_id`, `seed` (and `trial` with a search), `status`, the axes, `critic_steps`,
    `outcome` (one of OUTCOMES), `survived` (bool), `why` (for a run that failed to train: the
    metric, its final value and the rule, e.g. "classes_covered 1 (failed at <= 1)"; "" otherwise).
    """
    repeats = repetition_columns(jobs)
    ended = jobs.loc[jobs["status"].isin(ENDED), ["job_id", *repeats, "status", *axes]]
    ended = ended.assign(critic_steps=critic_steps(jobs.loc[ended.index])).reset_index(drop=True)
    ruled = {metric: float(value) for metric, value in failed_at.items() if metric in directions}
    checked = runs.loc[runs["metric"].isin(list(ruled)) & (runs["status"] == Status.DONE),
                       ["job_id", "metric", "final"]]
    limit = checked["metric"].map(ruled).astype(float)
    higher = checked["metric"].map(lambda name: directions[name] == "higher").astype(bool)
    failed = np.where(higher, checked["final"] <= limit, checked["final"] >= limit).astype(bool)
    fails = checked.assign(rule=np.where(higher, "<=", ">=")).loc[failed].sort_values(["job_id", "metric"],
                                                                                     kind="stable")
    fails = fails.assign(why=[f"{m} {v:g} (failed at {r} {ruled[m]:g})"
                              for m, v, r in zip(fails["metric"], fails["final"], fails["rule"])])
    why = fails.groupby("job_id", sort=False)["why"].agg("; ".join)
    ended["why"] = ended["job_id"].map(why).fillna("")
    outcome = ended["status"].map({status.value: found.value for status, found in STATUS_OUTCOMES.items()})
    ended["outcome"] = np.where((ended["status"] == Status.DONE) & (ended["why"] != ""),
                                Outcome.FAILED_TO_TRAIN.value, outcome)
    ended["survived"] = ended["outcome"] == Outcome.SURVIVED
    return ended[["job_id", *repeats, "status", *axes, "critic_steps", "outcome", "survived", "why"]]


def run_window_aucs(metrics: pd.DataFrame, outcomes: pd.DataFrame, axes: Sequence[str],
                    metric_names: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean level of each survivor's curve over its cell's common window, on every speed axis.

    For each metric and cell (the axes without `objective`) and each axis of SPEED_AXES (generator
    steps, gradient evaluations = steps * (critic_steps + 1), wall seconds), the window is the span
    every survivor of the cell covers: from the latest first evaluation to the earliest last one.
    Each survivor's `convergence.window_aucs` over it is its curve's mean level over the same budget
    as every other objective's, which its own-range AUC is not once objectives differ in critic
    steps or speed.

    Returns `(aucs, windows)`: `aucs` has `job_id`, `metric`, `auc_step`, `auc_grad_evals`,
    `auc_wall_s` (NaN where the window is empty or the curve is not finite over it); `windows` has
    `metric`, the cell axes, and `<axis>_start`, `<axis>_end` per speed axis.
    """
    cell_axes = [a for a in axes if a != "objective"]
    survivors = outcomes.loc[outcomes["survived"], ["job_id", *cell_axes, "critic_steps"]]
    rows = _curve_rows(metrics, survivors["job_id"], metric_names)
    auc_frames, window_frames = [], []
    for metric, curves in rows.groupby("metric", sort=True):
        job_ids, matrices, lengths = _padded_curves(curves, ("step", "wall_s", "value"))
        info = survivors.set_index("job_id").loc[job_ids].reset_index()
        matrices["grad_evals"] = gradient_evaluations(matrices["step"], info["critic_steps"].to_numpy()[:, None])
        last = lengths - 1
        ends = {axis: pd.DataFrame({"first": matrices[axis][:, 0],
                                    "last": matrices[axis][np.arange(len(job_ids)), last]}) for axis in SPEED_AXES}
        window = info[cell_axes].copy()
        for axis, span in ends.items():
            window[f"{axis}_start"] = span["first"].to_numpy()
            window[f"{axis}_end"] = span["last"].to_numpy()
        reducers = {f"{axis}_start": "max" for axis in SPEED_AXES} | {f"{axis}_end": "min" for axis in SPEED_AXES}
        cell_windows = window.groupby(cell_axes, sort=True, dropna=False).agg(reducers).reset_index()
        per_run = info[cell_axes].merge(cell_windows, on=cell_axes, how="left")
        levels = {f"auc_{axis}": window_aucs(matrices[axis], matrices["value"], lengths,
                                             start=per_run[f"{axis}_start"].to_numpy(),
                                             end=per_run[f"{axis}_end"].to_numpy())
                  for axis in SPEED_AXES}
        auc_frames.append(pd.DataFrame({"job_id": job_ids, "metric": metric, **levels}))
        window_frames.append(cell_windows.assign(metric=metric))
    auc_columns = ["job_id", "metric", *(f"auc_{axis}" for axis in SPEED_AXES)]
    window_columns = ["metric", *cell_axes, *(f"{axis}_{end}" for axis in SPEED_AXES for end in ("start", "end"))]
    aucs = pd.concat(auc_frames, ignore_index=True) if auc_frames else pd.DataFrame(columns=auc_columns)
    windows = pd.concat(window_frames, ignore_index=True) if window_frames else pd.DataFrame(columns=window_columns)
    return aucs[auc_columns], windows[window_columns]


def run_scores(runs: pd.DataFrame, outcomes: pd.DataFrame, axes: Sequence[str],
               directions: Mapping[str, Direction], *, survivors_only: bool = False) -> pd.DataFrame:
    """One row per run and ranked metric of its cell: what every statistic over seeds is computed from.

    A cell's metrics are those any of its runs evaluated, so a run that failed before its first
    evaluation still has a row for each. Columns: the outcome columns (`run_outcomes`), `metric`, the
    curve summaries of `run_summaries` (NaN where the run has no evaluation of the metric), then
    `score` (the final value if the run survived, else the worst outcome: +inf where lower is better,
    -inf where higher is) and `best_score` (likewise from the best value). A surviving run without an
    evaluation of the metric is no run of it and has no row. With `survivors_only`, only survivors.
    """
    cell_axes = [a for a in axes if a != "objective"]
    ranked = runs.loc[runs["metric"].isin(list(directions))]
    cell_metrics = ranked[[*cell_axes, "metric"]].drop_duplicates()
    rows = outcomes.merge(cell_metrics, on=cell_axes, how="inner")
    summary_columns = [c for c in ranked.columns if c not in outcomes.columns or c == "job_id"]
    rows = rows.merge(ranked[summary_columns], on=["job_id", "metric"], how="left")
    rows = rows.loc[~(rows["survived"] & rows["final"].isna())]
    if survivors_only:
        rows = rows.loc[rows["survived"]]
    worst = rows["metric"].map(lambda name: _WORST[directions[name]]).astype(float)
    rows = rows.assign(score=np.where(rows["survived"], rows["final"], worst),
                       best_score=np.where(rows["survived"], rows["best"], worst))
    rows["reached"] = rows["reached"].fillna(False).astype(bool)
    return rows.sort_values(["metric", *axes, "seed"], kind="stable").reset_index(drop=True)


def summarise(scores: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Per group and metric, over seeds, from `run_scores` rows (with the `auc_*` columns of
    `run_window_aucs` merged in).

    Columns: the axes, `metric`, `runs` (runs with an outcome), `survived`; over every run's score
    (the worst outcome for a run that did not survive): `final_median`, `final_median_lo`,
    `final_median_hi`, `final_iqm`, `best_median`; over survivors only: `final_mean`,
    `final_mean_lo`, `final_mean_hi` (Student t), `best_step_median` (generator steps), `curve_n` (the
    survivors with an AUC over the cell's step window), and for `auc_step`, `auc_grad_evals`,
    `auc_wall_s` and `spread` (last-k std) their `_mean`, `_mean_lo`, `_mean_hi`.
    """
    keys = ["metric", *axes]
    over_all = describe_over_seeds(scores, keys, "score")
    table = over_all[[*keys, "n", "median", "median_lo", "median_hi", "iqm"]].rename(columns={
        "n": "runs", "median": "final_median", "median_lo": "final_median_lo", "median_hi": "final_median_hi",
        "iqm": "final_iqm"})
    survived = scores.groupby(keys, sort=True, dropna=False)["survived"].sum().rename("survived").reset_index()
    table = table.merge(survived, on=keys, how="left")
    best = describe_over_seeds(scores, keys, "best_score")[[*keys, "median"]].rename(columns={"median": "best_median"})
    table = table.merge(best, on=keys, how="left")

    survivors = scores.loc[scores["survived"]]
    described = [("final", "final"), ("last_k_std", "spread")] + [(f"auc_{axis}", f"auc_{axis}") for axis in SPEED_AXES]
    for value, prefix in described:
        if value not in survivors.columns:
            survivors = survivors.assign(**{value: np.nan})
        frame = describe_over_seeds(survivors, keys, value)[[*keys, "n", "mean", "mean_lo", "mean_hi"]]
        frame = frame.rename(columns={"n": f"{prefix}_n", "mean": f"{prefix}_mean", "mean_lo": f"{prefix}_mean_lo",
                                      "mean_hi": f"{prefix}_mean_hi"})
        table = table.merge(frame, on=keys, how="left")
    best_step = survivors.groupby(keys, sort=True, dropna=False)["best_step"].median().rename("best_step_median")
    table = table.merge(best_step.reset_index(), on=keys, how="left")
    table = table.rename(columns={"auc_step_n": "curve_n"})
    table = table.drop(columns=[c for c in table.columns if c.endswith("_n") and c != "curve_n"])
    table["curve_n"] = table["curve_n"].fillna(0).astype(int)
    return table


def status_table(jobs: pd.DataFrame, outcomes: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Per group: job counts by status, the runs (jobs with an outcome), how many `survived` and how
    many `failed_to_train`, `divergence_rate` = diverged / (done + diverged), and `train_s` = mean
    training wall time (seconds) of the done and diverged runs."""
    counts = pd.crosstab([jobs[a] for a in axes], jobs["status"]).reindex(columns=list(STATUSES), fill_value=0)
    counts.columns.name = None
    counts["jobs"] = counts[list(STATUSES)].sum(axis=1)
    counts["runs"] = counts[list(ENDED)].sum(axis=1)
    by_outcome = pd.crosstab([outcomes[a] for a in axes], outcomes["outcome"]).reindex(columns=list(OUTCOMES),
                                                                                       fill_value=0)
    counts["survived"] = by_outcome[Outcome.SURVIVED.value].reindex(counts.index, fill_value=0).astype(int)
    counts["failed_to_train"] = by_outcome[Outcome.FAILED_TO_TRAIN.value].reindex(counts.index,
                                                                                 fill_value=0).astype(int)
    finished = counts[list(FINISHED)].sum(axis=1)
    counts["divergence_rate"] = (counts[Status.DIVERGED.value] / finished.where(finished > 0)).astype(float)
    train = jobs.loc[jobs["status"].isin(FINISHED)].groupby(list(axes))["train_s"].mean()
    counts["train_s"] = train.reindex(counts.index)
    return counts.reset_index()


def threshold_table(scores: pd.DataFrame, axes: Sequence[str], thresholds: Mapping[str, float]) -> pd.DataFrame:
    """Per group and thresholded metric, from `run_scores` rows: how many runs reached the threshold
    and when, on each speed axis.

    A survivor reaches it at its first evaluation at least as good; a survivor that never does is
    censored, and a run that did not survive counts as never reaching it (the worst outcome). Both
    take an infinite time, so the medians are over every run and are infinite ("not reached") once
    half the runs never got there; a censored run is never given its run length as a time.
    Columns: the axes, `metric`, `threshold`, `runs`, `survived`, `reached`, `median_step` (generator
    steps), `median_grad_evals` (gradient evaluations), `median_wall_s` (seconds).
    """
    columns = [*axes, "metric", "threshold", "runs", "survived", "reached", "median_step", "median_grad_evals",
               "median_wall_s"]
    rows = scores.loc[scores["metric"].isin(list(thresholds))]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    hit = rows["survived"] & rows["reached"]
    rows = rows.assign(threshold=rows["metric"].map(thresholds).astype(float), hit=hit, **{
        name: np.where(hit, rows[f"{source}_to_threshold"], np.inf)
        for name, source in (("time_step", "steps"), ("time_grad_evals", "grad_evals"), ("time_wall_s", "wall_s"))})
    grouped = rows.groupby(["metric", "threshold", *axes], sort=True, dropna=False)
    table = pd.DataFrame({
        "runs": grouped.size(),
        "survived": grouped["survived"].sum().astype(int),
        "reached": grouped["hit"].sum().astype(int),
        "median_step": grouped["time_step"].median(),
        "median_grad_evals": grouped["time_grad_evals"].median(),
        "median_wall_s": grouped["time_wall_s"].median(),
    }).reset_index()
    return table[columns]


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


def divergence_table(divergence: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Per group, from `run_divergence` rows: `runs` (finished), `diverged` and
    `median_divergence_step` (generator steps, over the diverged runs; NaN if none diverged). The
    divergence rate is `status_table`'s."""
    diverged = Status.DIVERGED.value  # the column counting them is named after the status
    grouped = divergence.assign(**{diverged: divergence["status"] == Status.DIVERGED}).groupby(list(axes), sort=True)
    table = pd.DataFrame({
        "runs": grouped.size(),
        diverged: grouped[diverged].sum().astype(int),
        "median_divergence_step": grouped["divergence_step"].median(),
    }).reset_index()
    return table


VERDICTS = ("objective better", "baseline better", "no significant difference", "undecidable")


def compare_to_baseline(scores: pd.DataFrame, axes: Sequence[str], baseline: str,
                        directions: Mapping[str, Direction], *, alpha: float = 0.05) -> pd.DataFrame:
    """Every objective against `baseline` on the score (`run_scores`) of each ranked metric, cell by cell.

    Runs pair on the seeds both objectives ran in the cell (a run that did not survive is present,
    as the worst outcome; a seed is left out only when one side has no run of it, because its job
    does not exist or has not finished): a Wilcoxon signed-rank test on those pairs with the
    matched-pairs rank-biserial correlation as effect size. Only when no seed is shared, a
    Mann-Whitney U test over all runs with Cliff's delta. Holm's correction runs over every
    comparison of one metric (all objectives, all cells): its m comparisons. Scores are oriented so
    that positive effects and `probability_of_improvement` > 0.5 favour the objective.

    A comparison is decidable when its smallest attainable p-value (stats.min_pvalue_paired /
    min_pvalue_unpaired) times m is below `alpha`: otherwise no outcome of these seeds could make it
    significant on its own, and it is "undecidable", never "no difference". `seeds_needed` is how
    many seeds (per objective) the observed effect would need for 80% power at alpha / m
    (stats.paired_seeds_needed / unpaired_seeds_needed, after Noether 1987; inf when no effect was
    observed).

    Columns: `metric`, the cell axes, `objective`, `baseline`, `test`, `n_objective`, `n_baseline`
    (runs in the test), `survived_objective`, `survived_baseline`, `left_out` (the seeds without a
    pair, e.g. "seed 6 (nsgan only)"; "" when none), `statistic`, `p`, `p_holm`, `min_p`,
    `comparisons` (m), `decidable`, `seeds_needed`, `probability_of_improvement`, `effect`,
    `effect_name`, `median_objective`, `median_baseline` (in the metric's units over the runs in the
    test; +-inf is the worst outcome), `significant` (p_holm < alpha) and `verdict` (one of VERDICTS).
    """
    cell_axes = [a for a in axes if a != "objective"]
    ranked = scores.loc[scores["metric"].isin(list(directions))]
    records = []
    for (metric, *cell), group in ranked.groupby(["metric", *cell_axes], sort=True, dropna=False):
        repeats = repetition_columns(group)
        by_objective = {cast(str, name): frame.set_index(repeats).sort_index()
                        for name, frame in group.groupby("objective", sort=True)}
        if baseline not in by_objective:
            continue
        base = by_objective[baseline]
        direction = directions[cast(str, metric)]
        for objective, frame in by_objective.items():
            if objective == baseline:
                continue
            shared = frame.index.intersection(base.index)
            if len(shared):
                used_x, used_y = frame.loc[shared], base.loc[shared]
                x = oriented(used_x["score"].to_numpy(), direction)
                y = oriented(used_y["score"].to_numpy(), direction)
                result = paired_test(x, y)
                effect_size = walsh_positive_fraction(paired_differences(x, y))
            else:
                used_x, used_y = frame, base
                x = oriented(used_x["score"].to_numpy(), direction)
                y = oriented(used_y["score"].to_numpy(), direction)
                result = unpaired_test(x, y)
                effect_size = probability_of_improvement(x, y)
            left_out = [f"{repetition_label(key, repeats)} ({objective} only)"
                        for key in frame.index.difference(shared)] + [
                f"{repetition_label(key, repeats)} ({baseline} only)"
                for key in base.index.difference(shared)] if len(shared) else []
            records.append({
                "metric": metric, **dict(zip(cell_axes, cell)), "objective": objective, "baseline": baseline,
                "test": result.test, "n_objective": x.size, "n_baseline": y.size,
                "survived_objective": int(used_x["survived"].sum()), "survived_baseline": int(used_y["survived"].sum()),
                "left_out": ", ".join(left_out), "statistic": result.statistic, "p": result.pvalue,
                "min_p": result.min_pvalue, "_effect_size": effect_size,
                "probability_of_improvement": probability_of_improvement(x, y),
                "effect": result.effect, "effect_name": result.effect_name,
                "median_objective": float(np.median(used_x["score"])),
                "median_baseline": float(np.median(used_y["score"])),
            })
    columns = ["metric", *cell_axes, "objective", "baseline", "test", "n_objective", "n_baseline",
               "survived_objective", "survived_baseline", "left_out", "statistic", "p", "p_holm", "min_p",
               "comparisons", "decidable", "seeds_needed", "probability_of_improvement", "effect", "effect_name",
               "median_objective", "median_baseline", "significant", "verdict"]
    computed = [c for c in columns if c not in ("p_holm", "comparisons", "decidable", "seeds_needed", "significant",
                                                "verdict")]
    table = pd.DataFrame.from_records(records, columns=[*computed, "_effect_size"])
    table["p_holm"] = np.nan
    table["comparisons"] = table.groupby("metric")["metric"].transform("size").astype(int)
    for _, index in table.groupby("metric").groups.items():
        table.loc[index, "p_holm"] = holm(table.loc[index, "p"].to_numpy())
    table["decidable"] = table["min_p"] * table["comparisons"] < alpha
    needed = [paired_seeds_needed(effect, alpha=alpha, comparisons=m) if test == "wilcoxon" else
              unpaired_seeds_needed(effect, alpha=alpha, comparisons=m)
              for test, effect, m in zip(table["test"], table["_effect_size"], table["comparisons"])]
    table["seeds_needed"] = np.asarray(needed, dtype=float)
    table["significant"] = table["p_holm"] < alpha
    table["verdict"] = np.select(
        [table["significant"] & (table["effect"] > 0), table["significant"], ~table["decidable"]],
        ["objective better", "baseline better", "undecidable"], default="no significant difference")
    return table[columns]


def rank_objectives(summary: pd.DataFrame, axes: Sequence[str],
                    directions: Mapping[str, Direction]) -> pd.DataFrame:
    """Rank of each objective within each cell and ranked metric (1 = best; ties share the average
    rank), by the IQM of the score over seeds (`summarise`'s `final_iqm`, where the worst outcome
    of a run that did not survive counts). Columns: `metric`, the axes, `final_iqm`, `rank`."""
    cell_axes = [a for a in axes if a != "objective"]
    table = summary.loc[summary["metric"].isin(list(directions)), ["metric", *axes, "final_iqm"]].copy()
    sign = table["metric"].map(lambda name: _SIGN[directions[name]]).to_numpy(dtype=float)
    table["rank"] = (table["final_iqm"] * sign).groupby(
        [table[c] for c in ["metric", *cell_axes]]).rank(ascending=False, method="average")
    return table.reset_index(drop=True)


def curve_bands(metrics: pd.DataFrame, outcomes: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Convergence curves over the runs in `outcomes` (`run_outcomes` rows, or only its survivors):
    per metric, group and evaluation step, the mean value over the runs evaluated there with its
    95% Student-t interval, the mean wall time (seconds) and the gradient evaluations at that step.

    `n` is the number of runs with a finite value at the step and `runs` the group's runs, so
    where runs stopped (diverged, failed) the band says so (see `band_drops`) instead of its mean
    quietly changing population. Columns: `metric`, the axes, `step`, `n`, `runs`, `mean`,
    `mean_lo`, `mean_hi`, `wall_s`, `grad_evals`.
    """
    rows = metrics.loc[np.isfinite(metrics["value"])].merge(
        outcomes[["job_id", "seed", "critic_steps", *axes]], on="job_id", how="inner")
    rows = rows.assign(grad_evals=gradient_evaluations(rows["step"], rows["critic_steps"]))
    keys = ["metric", *axes, "step"]
    bands = describe_over_seeds(rows, keys, "value")[[*keys, "n", "mean", "mean_lo", "mean_hi"]]
    times = rows.groupby(keys, sort=True, dropna=False)[["wall_s", "grad_evals"]].mean().reset_index()
    runs = outcomes.groupby(list(axes), sort=True, dropna=False).size().rename("runs").reset_index()
    bands = bands.merge(times, on=keys, how="left").merge(runs, on=list(axes), how="left")
    return bands[[*keys, "n", "runs", "mean", "mean_lo", "mean_hi", "wall_s", "grad_evals"]]


def band_drops(bands: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Where the number of runs behind a band changes: per metric and group, every step whose `n`
    differs from the step before (the first step compares with the group's `runs`). Columns:
    `metric`, the axes, `step`, `n`, `runs`."""
    keys = ["metric", *axes]
    ordered = bands.sort_values([*keys, "step"], kind="stable")
    before = ordered.groupby(keys, sort=False, dropna=False)["n"].shift(1)
    before = before.fillna(ordered["runs"])
    return ordered.loc[ordered["n"] != before, [*keys, "step", "n", "runs"]].reset_index(drop=True)
