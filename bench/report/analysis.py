"""Every table a report is written from, computed once from a suite's results (no figures, no files)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report import aggregate as agg
from bench.report.load import SuiteResults

ALPHA = 0.05
COVERAGE_METRICS = ("modes_held", "stacked_modes_held", "classes_covered", "stacked_modes_covered", "modes_covered")
"""Mode-coverage metrics in order of preference for the coverage figure; only a ranked one is drawn."""


@dataclass
class Analysis:
    """A suite's results reduced to the tables of its report.

    `ranked`: metrics with a direction (ranked, compared); `shown`: metrics registered with a
    direction but not ranked (MetricInfo.ranked False: shown as published, never ranked);
    `unranked`: the other logged series (training losses), plotted only. `jobs` has a `cell`
    column; `outcomes`, `scores`, `summary`, ... are the bench.report.aggregate tables over the
    axes plus `cell`. `survivors_only`: the statistics leave out runs that did not survive instead
    of counting them as the worst outcome.
    """

    axes: list[str]
    cell_axes: list[str]
    objectives: list[str]
    cells: list[str]
    ranked: list[str]
    shown: list[str]
    unranked: list[str]
    directions: dict[str, agg.Direction]
    shown_directions: dict[str, agg.Direction]
    failed_at: dict[str, float]
    baseline: str
    survivors_only: bool
    jobs: pd.DataFrame
    outcomes: pd.DataFrame
    runs: pd.DataFrame
    scores: pd.DataFrame
    shown_runs: pd.DataFrame
    summary: pd.DataFrame
    windows: pd.DataFrame
    status: pd.DataFrame
    divergence: pd.DataFrame
    thresholds: pd.DataFrame
    threshold_values: dict[str, float]
    comparisons: pd.DataFrame
    ranks: pd.DataFrame
    bands: pd.DataFrame
    drops: pd.DataFrame
    coverage_metric: str | None
    notes: list[str]

    @property
    def group_axes(self) -> list[str]:
        """The keys of every per-group table: the grid axes and `cell`."""
        return [*self.axes, "cell"]

    @property
    def unfinished(self) -> pd.DataFrame:
        """Jobs that are running or pending: not outcomes yet."""
        return self.jobs.loc[self.jobs["status"].isin(agg.UNFINISHED)]


def ordered_objectives(jobs: pd.DataFrame, baseline: str) -> list[str]:
    """The objectives of `jobs`, the baseline first, then by name."""
    names = sorted(jobs["objective"].unique())
    return ([baseline] if baseline in names else []) + [n for n in names if n != baseline]


def analyse(results: SuiteResults, directions: Mapping[str, agg.Direction], *, baseline: str | None = None,
            failed_at: Mapping[str, float] | None = None, shown: Mapping[str, agg.Direction] | None = None,
            survivors_only: bool = False) -> Analysis:
    """Every table of the report of `results`.

    `directions`: ranked metric -> "lower"/"higher" (is better). `failed_at`: metric -> the value at
    or past which a done run failed to train (only ranked metrics' rules apply). `shown`: metrics
    with a direction that are never ranked (shown as published). `baseline` overrides the suite's.
    """
    jobs, metrics = results.jobs, results.metrics
    notes: list[str] = []
    directions = dict(directions)
    failed_at = {m: float(v) for m, v in (failed_at or {}).items() if m in directions}
    baseline = baseline or results.report_config.baseline
    axes = agg.grid_axes(jobs, agg.declared_columns(results.suite_config))
    cell_axes = axes[1:]
    objectives = ordered_objectives(jobs, baseline) if len(jobs) else []
    if len(jobs):
        jobs = jobs.assign(cell=agg.cell_labels(jobs, cell_axes))
    else:
        jobs = jobs.assign(cell=pd.Series(dtype=str), critic_steps=pd.Series(dtype=str))
    group_axes = [*axes, "cell"]
    cells = sorted(jobs["cell"].unique())
    ended = metrics.loc[metrics["job_id"].isin(jobs.loc[jobs["status"].isin(agg.ENDED), "job_id"])
                        & np.isfinite(metrics["value"])]
    present = sorted(ended["metric"].unique())
    ranked = [m for m in present if m in directions]
    shown_directions = {m: d for m, d in (shown or {}).items() if m in present and m not in directions}
    unranked = [m for m in present if m not in directions and m not in shown_directions]

    threshold_values = dict(results.report_config.thresholds)
    for metric in sorted(set(threshold_values) - set(ranked)):
        why = "it has no direction registered" if metric in present else "no run has reported it"
        if metric in shown_directions:
            why = "it is never ranked"
        notes.append(f"Threshold on `{metric}` skipped: {why} (ranked metrics: {', '.join(ranked) or 'none'}).")
        del threshold_values[metric]

    runs = agg.run_summaries(metrics, jobs, group_axes, {**shown_directions, **{m: directions[m] for m in ranked}},
                             threshold_values, last_k=agg.LAST_K)
    outcomes = agg.run_outcomes(jobs, runs, group_axes, directions, failed_at)
    counted = outcomes.loc[outcomes["survived"]] if survivors_only else outcomes
    shown_runs = runs.loc[runs["metric"].isin(list(shown_directions))].merge(
        outcomes[["job_id", "outcome", "survived"]], on="job_id", how="inner")
    runs = runs.loc[runs["metric"].isin(ranked)]
    scores = agg.run_scores(runs, outcomes, group_axes, directions, survivors_only=survivors_only)
    aucs, windows = agg.run_window_aucs(metrics, outcomes, group_axes, ranked)
    scores = scores.merge(aucs, on=["job_id", "metric"], how="left")
    summary = agg.summarise(scores, group_axes)
    status = agg.status_table(jobs, outcomes, group_axes) if len(jobs) else pd.DataFrame()
    divergence = agg.divergence_table(agg.run_divergence(metrics, jobs, group_axes), group_axes)
    thresholds = agg.threshold_table(scores, group_axes, threshold_values)

    if baseline not in objectives:
        notes.append(f"Baseline `{baseline}` is not among the objectives of this suite "
                     f"({', '.join(objectives) or 'none'}): comparisons skipped.")
        comparisons = pd.DataFrame()
    else:
        comparisons = agg.compare_to_baseline(scores, axes, baseline, directions, alpha=ALPHA)
        if comparisons.empty:
            notes.append(f"No comparison with the baseline `{baseline}`: it or the other objectives have no "
                         "runs with ranked metrics yet.")
        else:
            comparisons = comparisons.assign(cell=agg.cell_labels(comparisons, cell_axes))
    ranks = agg.rank_objectives(summary, group_axes, directions)
    bands = agg.curve_bands(metrics, counted, group_axes)
    drops = agg.band_drops(bands, group_axes)
    coverage = next((m for m in COVERAGE_METRICS if m in ranked), None)
    return Analysis(axes, cell_axes, objectives, cells, ranked, sorted(shown_directions), unranked, directions,
                    shown_directions, failed_at, baseline, survivors_only, jobs, outcomes, runs, scores, shown_runs,
                    summary, windows, status, divergence, thresholds, threshold_values, comparisons, ranks, bands,
                    drops, coverage, notes)
