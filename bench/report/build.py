"""`build_report`: a suite's results folder -> report.md, report.html and figures/ under report/."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from bench.report import aggregate as agg
from bench.report import figures as figs
from bench.report.analysis import ALPHA, Analysis, analyse
from bench.report.budget import BudgetVerdict, EqualBudget, equal_budget
from bench.report.load import SuiteResults, load_results
from bench.report.references import Reproduction, compare_references, reproductions_section
from bench.report.references import summary_lines as reproduction_lines
from bench.report.render import (
    Block,
    Bullets,
    Document,
    Image,
    Paragraph,
    Section,
    Table,
    fmt,
    to_html,
    to_markdown,
)
from bench.report.stats import POWER, median_ci_ranks
from bench.report.summary import (
    REPRODUCTIONS_TITLE,
    cell_summaries,
    opening_lines,
    score_text,
    summary_text,
    test_text,
    verdict_text,
)
from bench.store import Outcome, Status, SuiteStore

IQM_MIN_RUNS = 4
"""Below this many runs the IQM trims nothing (scipy.stats.trim_mean cuts floor(n / 4) runs from
each end): it is the mean, and the tables leave it out."""


@dataclass(frozen=True)
class ReportResult:
    """What `build_report` wrote and found.

    `report_dir` = `<suite_dir>/report`; `markdown`, `html` the two reports; `figures` the PNGs
    under `report_dir/figures`; `status_counts` jobs per status; `summary` the report's opening
    answer as plain text lines (`summary_lines`); `notes` what the report says it skipped or could
    not do; `timings` seconds per stage (load, aggregate, figures, render); `figure_files` the
    figures by kind (`convergence:<metric>`, `final:<metric>`, `convergence:unranked`, `coverage`,
    `points`, `images`, `ranks`, and for a suite with a search `budget` and `budget:trials`) with
    their captions and, for the rank heatmap, the objectives of its rows in order (`FigureFile.rows`).
    """

    report_dir: Path
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    num_jobs: int
    status_counts: Mapping[str, int]
    summary: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    figure_files: Mapping[str, figs.FigureFile] = field(default_factory=dict)


@dataclass(frozen=True)
class _Rules:
    directions: dict[str, agg.Direction]
    failed_at: dict[str, float]
    shown: dict[str, agg.Direction]


def _rules(directions: Mapping[str, agg.Direction] | None, failed_at: Mapping[str, float] | None) -> _Rules:
    """Ranked directions, failed-to-train rules and shown-but-unranked metrics: the given ones, else
    every registered evaluator's (bench.metrics.metric_infos)."""
    from bench.metrics import metric_infos

    infos = metric_infos()
    if directions is None:
        directions = {name: info.direction for name, info in infos.items() if info.ranked}
    if failed_at is None:
        failed_at = {name: info.failed_at for name, info in infos.items() if info.failed_at is not None}
    shown = {name: info.direction for name, info in infos.items() if not info.ranked and name not in directions}
    return _Rules(dict(directions), {m: float(v) for m, v in failed_at.items() if m in directions}, shown)


def _analysis(suite_dir: Path, baseline: str | None, directions: Mapping[str, agg.Direction] | None,
              failed_at: Mapping[str, float] | None, survivors_only: bool) -> tuple[SuiteResults, Analysis]:
    results = load_results(Path(suite_dir))
    rules = _rules(directions, failed_at)
    return results, analyse(results, rules.directions, baseline=baseline, failed_at=rules.failed_at,
                            shown=rules.shown, survivors_only=survivors_only)


def summary_lines(
    suite_dir: Path,
    *,
    baseline: str | None = None,
    directions: Mapping[str, agg.Direction] | None = None,
    failed_at: Mapping[str, float] | None = None,
    survivors_only: bool = False,
) -> list[str]:
    """The report's opening answer as plain text lines, computed from `<suite_dir>` without writing
    anything: per cell, the best objectives on each ranked metric, which differences the seeds can
    decide and which they cannot, which runs diverged, failed or failed to train, each with its n.
    Arguments as for `build_report`."""
    results, analysis = _analysis(suite_dir, baseline, directions, failed_at, survivors_only)
    return summary_text(analysis, reproduction_lines(compare_references(results, analysis)))


def build_report(
    suite_dir: Path,
    *,
    baseline: str | None = None,
    directions: Mapping[str, agg.Direction] | None = None,
    failed_at: Mapping[str, float] | None = None,
    survivors_only: bool = False,
) -> ReportResult:
    """Write `<suite_dir>/report/report.md`, `report.html` and `figures/*.png` from the results.

    `baseline` overrides the suite's `report.baseline` (default `nsgan`); if that objective is not
    in the suite the report says so and skips the comparisons. `directions` maps metric -> "lower" /
    "higher" (is better) for the ranked metrics, and `failed_at` metric -> the value at or past which
    a done run failed to train; by default every registered evaluator's (bench.metrics.metric_infos:
    ranked metrics, MetricInfo.failed_at). Registered metrics that are not ranked are shown and never
    ranked; other series (training losses) are plotted only.
    Diverged, failed and failed-to-train runs count as the worst outcome in every rank-based
    statistic; `survivors_only` leaves them out instead. Running and pending jobs are listed as
    unfinished, and the report calls its verdicts provisional. The suite's `report.references`
    (published values) are set beside bench's estimates in a "Reproductions" section after the
    summary, one summary line each (bench.report.references). A suite with a `search` block gets an
    "Equal budget" section (bench.report.budget). The previous report/ folder is replaced.
    """
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    results = load_results(Path(suite_dir))
    rules = _rules(directions, failed_at)
    timings["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    analysis = analyse(results, rules.directions, baseline=baseline, failed_at=rules.failed_at, shown=rules.shown,
                       survivors_only=survivors_only)
    reproductions = compare_references(results, analysis)
    summary = summary_text(analysis, reproduction_lines(reproductions))
    budget = equal_budget(analysis, results.metrics, results.suite_config.get("search") or {})
    timings["aggregate"] = time.perf_counter() - clock

    report_dir = SuiteStore(results.suite_dir).report_dir
    figures_dir = report_dir / "figures"
    if figures_dir.exists():
        shutil.rmtree(figures_dir)
    figures_dir.mkdir(parents=True)
    clock = time.perf_counter()
    figure_files = _draw_figures(results, analysis, figures_dir)
    if budget is not None:
        figure_files.update(_budget_figures(budget, analysis, figures_dir))
    timings["figures"] = time.perf_counter() - clock

    clock = time.perf_counter()
    document = _document(results, analysis, figure_files, report_dir, reproductions, budget)
    markdown_path, html_path = report_dir / "report.md", report_dir / "report.html"
    markdown_path.write_text(to_markdown(document), encoding="utf-8")
    html_path.write_text(to_html(document), encoding="utf-8")
    timings["render"] = time.perf_counter() - clock

    counts = results.jobs["status"].value_counts()
    return ReportResult(
        report_dir=report_dir, markdown=markdown_path, html=html_path,
        figures=tuple(f.path for f in figure_files.values()), num_jobs=len(results.jobs),
        status_counts={s: int(counts.get(s, 0)) for s in agg.STATUSES}, summary=tuple(summary),
        notes=tuple(analysis.notes), timings=timings, figure_files=dict(figure_files),
    )


# ---- figures -------------------------------------------------------------------------------------

def _sample_panels(results: SuiteResults, analysis: Analysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For each cell and objective, the lowest surviving seed with final samples: (points, images)."""
    store = SuiteStore(results.suite_dir)
    survivors = analysis.outcomes.loc[analysis.outcomes["survived"], ["job_id"]]
    finished = analysis.jobs.merge(survivors, on="job_id").sort_values("seed")
    points, images = [], []
    for (cell, objective), group in finished.groupby(["cell", "objective"], sort=True):
        for job_id, seed, dataset in zip(group["job_id"], group["seed"], group["dataset"]):
            job = store.job(job_id)
            record = {"cell": cell, "objective": objective, "seed": int(seed), "dataset": dataset, "job_id": job_id}
            if job.final_points_path.exists():
                points.append({**record, "path": job.final_points_path})
                break
            if job.final_images_path.exists():
                images.append({**record, "path": job.final_images_path})
                break
    columns = ["cell", "objective", "seed", "dataset", "job_id", "path"]
    return pd.DataFrame(points, columns=columns), pd.DataFrame(images, columns=columns)


def _mixture_centres(jobs: pd.DataFrame, panels: pd.DataFrame, suite_dir: Path,
                     notes: list[str]) -> dict[str, np.ndarray | None]:
    """True mode centres (K, 2) per dataset drawn, for datasets that declare mixture centres."""
    from bench.report.samples import mixture_centres

    centres: dict[str, np.ndarray | None] = {}
    option_columns = [c for c in jobs.columns if c.startswith("dataset.")]
    for dataset_key, job_id in panels.groupby("dataset")["job_id"].first().items():
        dataset = cast(str, dataset_key)
        row = jobs.loc[jobs["job_id"] == job_id, option_columns].iloc[0]
        options = {c.removeprefix("dataset."): json.loads(v) for c, v in row.items() if isinstance(v, str)}
        try:
            centres[dataset] = mixture_centres(dataset, options, root=suite_dir)
        except (KeyError, ValueError, FileNotFoundError) as error:
            notes.append(f"True modes of `{dataset}` not drawn: {error}")
            centres[dataset] = None
    return centres


def _draw_figures(results: SuiteResults, analysis: Analysis, figures_dir: Path) -> dict[str, figs.FigureFile]:
    drawn: dict[str, figs.FigureFile] = {}
    if not analysis.objectives:
        return drawn
    palette = figs.objective_palette(analysis.objectives)
    for metric in analysis.ranked:
        drawn[f"convergence:{metric}"] = figs.convergence_figure(
            analysis.bands, analysis.drops, metric, analysis.cells, analysis.objectives, palette,
            figures_dir / f"convergence_{_file_part(metric)}.png")
    # a series a run logs once (the `diverged` marker) has no curve
    evaluations = results.metrics.groupby(["metric", "job_id"]).size().groupby(level="metric").max()
    plotted = [m for m in [*analysis.shown, *analysis.unranked] if m in evaluations.index and evaluations[m] > 1]
    single = [m for m in [*analysis.shown, *analysis.unranked] if m not in plotted]
    if plotted:
        drawn["convergence:unranked"] = figs.unranked_curves_figure(
            analysis.bands, analysis.drops, plotted, analysis.cells, analysis.objectives, palette,
            figures_dir / "training_curves.png", single=single)
    for metric in analysis.ranked:
        drawn[f"final:{metric}"] = figs.distribution_figure(
            analysis.scores, metric, analysis.cells, analysis.objectives, palette,
            figures_dir / f"final_{_file_part(metric)}.png")
    if analysis.coverage_metric is not None:
        drawn["coverage"] = figs.coverage_figure(analysis.scores, analysis.coverage_metric, analysis.cells,
                                                 analysis.objectives, palette, figures_dir / "mode_coverage.png")
    points, images = _sample_panels(results, analysis)
    if len(points):
        centres = _mixture_centres(analysis.jobs, points, results.suite_dir, analysis.notes)
        drawn["points"] = figs.points_figure(points, centres, analysis.cells, analysis.objectives, palette,
                                             figures_dir / "samples_points.png")
    if len(images):
        drawn["images"] = figs.image_grid_figure(images, analysis.cells, analysis.objectives,
                                                 figures_dir / "samples_images.png")
    if len(analysis.ranks):
        # as_index=False gives a frame (objective, cell, rank); pandas-stubs types it as a Series
        mean_ranks = cast(pd.DataFrame,
                          analysis.ranks.groupby(["objective", "cell"], as_index=False)["rank"].mean())
        seeds = figs.seeds_text(analysis.summary["runs"])
        order = list(_ranking_table(analysis).index)
        drawn["ranks"] = figs.rank_heatmap_figure(mean_ranks, order, analysis.cells, figures_dir / "rank_heatmap.png",
                                                  seeds)
    return drawn


def _file_part(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# ---- document ------------------------------------------------------------------------------------

def _image(figure: figs.FigureFile, report_dir: Path) -> Image:
    return Image(figure.path, figure.path.relative_to(report_dir).as_posix(), figure.caption)


def _group_columns(analysis: Analysis) -> list[str]:
    return ["objective", *analysis.cell_axes]


def _group_cells(frame: pd.DataFrame, analysis: Analysis) -> list[list[str]]:
    return frame[_group_columns(analysis)].astype(str).to_numpy().tolist()


def _sorted_groups(frame: pd.DataFrame, analysis: Analysis) -> pd.DataFrame:
    order = {name: k for k, name in enumerate(analysis.objectives)}
    return frame.assign(_order=frame["objective"].map(order)).sort_values(
        ["cell", "_order"], kind="stable").drop(columns="_order")


def _interval(low: float, high: float) -> str:
    """`[low, high]` with the worst outcome shown as `worst`; `n/a` when undefined."""
    if np.isnan(low) or np.isnan(high):
        return "n/a"
    return f"[{score_text(low)}, {score_text(high)}]"


def _over(analysis: Analysis) -> str:
    return "survivors" if analysis.survivors_only else "all runs"


def _summary_blocks(analysis: Analysis, reproductions: list[Reproduction]) -> list:
    blocks: list = [Paragraph("Summary. " + " ".join(opening_lines(analysis)))]
    if reproductions:
        blocks += [Paragraph(f"{REPRODUCTIONS_TITLE}:"), Bullets(tuple(reproduction_lines(reproductions)))]
    for summary in cell_summaries(analysis):
        blocks += [Paragraph(f"{summary.title}:"), Bullets(summary.lines)]
    return blocks


def _document(results: SuiteResults, analysis: Analysis, drawn: dict[str, figs.FigureFile],
              report_dir: Path, reproductions: list[Reproduction], budget: EqualBudget | None = None) -> Document:
    jobs = results.jobs
    counts = jobs["status"].value_counts()
    status_text = ", ".join(f"{int(counts.get(s, 0))} {s}" for s in agg.STATUSES)
    datasets = ", ".join(f"`{d}`" for d in sorted(jobs["dataset"].unique())) if len(jobs) else "none"
    intro: list = [
        Paragraph(f"Suite `{results.name}`: {len(jobs)} jobs ({status_text}) on {datasets}. "
                  f"Grid axes compared: {', '.join(f'`{a}`' for a in analysis.axes)}; "
                  f"{'seeds and search trials' if budget is not None else 'seeds'} are repetitions. "
                  f"Baseline: `{analysis.baseline}`."),
        *_summary_blocks(analysis, reproductions),
        Paragraph(f"Ranked metrics: {', '.join(f'`{m}`' for m in analysis.ranked) or 'none'}. "
                  f"Shown as published, never ranked: {', '.join(f'`{m}`' for m in analysis.shown) or 'none'}. "
                  f"Plotted only: {', '.join(f'`{m}`' for m in analysis.unranked) or 'none'}."),
    ]
    if results.jobs_without_spec:
        intro.append(Paragraph(f"Job folders without spec.json (left out): "
                               f"{', '.join(f'`{j}`' for j in results.jobs_without_spec)}."))
    if analysis.notes:
        intro.append(Bullets(tuple(analysis.notes)))

    sections = [reproductions_section(reproductions, analysis)] if reproductions else []
    sections += [_jobs_section(analysis), _unfinished_section(analysis)]
    sections += _metric_sections(analysis, drawn, report_dir)
    if analysis.shown:
        sections.append(_shown_section(analysis))
    if "coverage" in drawn:
        sections.append(Section("Mode coverage", blocks=[_image(drawn["coverage"], report_dir)]))
    if len(analysis.thresholds):
        sections.append(_threshold_section(analysis))
    curve_figures = [f for key, f in drawn.items() if key.startswith("convergence:")]
    if curve_figures:
        sections.append(_convergence_section(analysis, curve_figures, report_dir))
    sections += _comparison_sections(analysis)
    if budget is not None:
        sections.append(_budget_section(budget, analysis, drawn, report_dir))
    sections.append(_ranking_section(analysis, drawn, report_dir))
    samples = [drawn[k] for k in ("points", "images") if k in drawn]
    if samples:
        sections.append(Section("Samples", blocks=[_image(f, report_dir) for f in samples]))
    sections.append(_method_section(analysis))
    return Document(f"Report: {results.name}", intro, sections)


def _jobs_section(analysis: Analysis) -> Section:
    status = _sorted_groups(analysis.status, analysis) if len(analysis.status) else analysis.status
    if len(status):
        status = status.merge(analysis.divergence[[*analysis.axes, "median_divergence_step"]], on=analysis.axes,
                              how="left")
    columns = (*_group_columns(analysis), "jobs", *agg.STATUSES, "survived", "failed to train", "divergence rate",
               "median divergence step", "mean train time (s)")
    rows = []
    for cells, record in zip(_group_cells(status, analysis), status.to_dict("records")) if len(status) else ():
        rate = record["divergence_rate"]
        rows.append((*cells, str(record["jobs"]), *(str(record[s]) for s in agg.STATUSES),
                     f"{record['survived']}/{record['runs']}", str(record["failed_to_train"]),
                     "n/a" if not np.isfinite(rate) else f"{rate:.0%}",
                     fmt(record["median_divergence_step"]), fmt(record["train_s"])))
    blocks: list[Block]
    blocks = [Paragraph("Jobs per group by status. Survived = runs that finished and trained / runs that ended (done, "
                        "diverged or failed); a done run failed to train when its final value of a metric with a "
                        "failed-to-train rule is no better than that rule's value. Divergence rate = diverged / "
                        "(done + diverged); median divergence step over the diverged runs (a run's divergence step: "
                        "its first step with a non-finite logged value, else its last logged step); train time is "
                        "the mean `train_s` of done and diverged runs."), Table(columns, tuple(rows))]
    return Section("Jobs", blocks=blocks)


_LISTED = tuple(kind.value for kind in (Status.FAILED, Status.RUNNING, Status.PENDING, Status.DIVERGED,
                                         Outcome.FAILED_TO_TRAIN))


def _unfinished_section(analysis: Analysis) -> Section:
    jobs = analysis.jobs.merge(analysis.outcomes[["job_id", "outcome", "why"]], on="job_id", how="left")
    jobs["outcome"] = jobs["outcome"].fillna("unfinished")
    listed = jobs.assign(_kind=np.where(jobs["outcome"] == Outcome.FAILED_TO_TRAIN, Outcome.FAILED_TO_TRAIN.value,
                                        jobs["status"]))
    listed = listed.loc[listed["_kind"].isin(_LISTED)]
    title = "Unfinished, failed and diverged jobs"
    if listed.empty:
        return Section(title, blocks=[Paragraph("Every job ended and every run survived.")])
    order = {s: k for k, s in enumerate(_LISTED)}
    repetition = agg.repetition_columns(listed)  # seed, and trial in a suite with a search
    listed = listed.assign(_order=listed["_kind"].map(order)).sort_values(
        ["_order", "objective", *analysis.cell_axes, *repetition, "job_id"], kind="stable")
    columns = ("job", "status", "outcome", *_group_columns(analysis), *repetition, "step", "reason")
    rows = tuple(
        (f"`{r['job_id']}`", r["status"], r["outcome"], *(str(r[c]) for c in _group_columns(analysis)),
         *(str(r[c]) for c in repetition), "n/a" if pd.isna(r["step"]) else str(int(r["step"])),
         r["why"] if r["outcome"] == "failed to train" else (r["reason"] if isinstance(r["reason"], str) else ""))
        for r in listed.to_dict("records"))
    worst = ("are left out of every statistic (survivors-only view)" if analysis.survivors_only else
             "count as the worst outcome in every median, IQM, rank, probability of improvement and test, and are "
             "left out of means")
    return Section(title, blocks=[Paragraph(
        f"Running and pending jobs are not outcomes yet: they enter no statistic, and every verdict is provisional "
        f"until they end. Diverged, failed and failed-to-train runs {worst}; a diverged run is never scored by the "
        "value it reached before it broke."), Table(columns, rows)])


def _windows_text(analysis: Analysis, metric: str) -> str:
    windows = analysis.windows.loc[analysis.windows["metric"] == metric]
    parts = []
    for record in windows.to_dict("records"):
        spans = [f"{agg.SPEED_AXES[axis]} [{fmt(record[f'{axis}_start'])}, {fmt(record[f'{axis}_end'])}]"
                 for axis in agg.SPEED_AXES]
        parts.append(f"{record['cell']}: " + ", ".join(spans))
    return "; ".join(parts) or "none"


def _metric_sections(analysis: Analysis, drawn: dict[str, figs.FigureFile], report_dir: Path) -> list[Section]:
    if not analysis.ranked:
        return [Section("Final and best metrics", blocks=[Paragraph("No ranked metric has been reported yet.")])]
    over = _over(analysis)
    _, coverage = median_ci_ranks(6)
    runs = analysis.summary.loc[analysis.summary["metric"].isin(analysis.ranked), "runs"]
    iqm_shown = bool((runs >= IQM_MIN_RUNS).any())
    iqm_note = ""
    if (runs < IQM_MIN_RUNS).any():
        iqm_note = (f" IQM = mean below {IQM_MIN_RUNS} runs (a 25% cut from each end removes no run), so "
                    + (f"the IQM column reads `n < {IQM_MIN_RUNS}` for those groups." if iqm_shown else
                       "with no group of 4 runs or more the tables have no IQM column."))
    sections = [Section("Final and best metrics", blocks=[Paragraph(
        f"Over seeds, per group: survived = surviving runs / runs; final = a run's value at its last finite "
        f"evaluation. Median, its interval and IQM (interquartile mean) are over {over}"
        + ("" if analysis.survivors_only else ", a run that did not survive counting as the worst outcome (shown as "
           "`worst` where it decides the number)")
        + "; the median's 95% interval is the distribution-free order-statistic interval, which needs at least 6 "
        f"runs (n/a below; with 6 runs it is their range, coverage {coverage:.1%}). Survivors' mean with its 95% "
        "Student-t interval is over survivors only. Best = a run's best value over its evaluations (the worst "
        "outcome for a run that did not survive)." + iqm_note), Paragraph(
        "Under each metric, its convergence and stability over the survivors with a curve (n): AUC = the curve's "
        "mean level (trapezoidal area divided by the window's width, in the metric's units, better in the metric's "
        "direction) over a window every survivor of the cell covers, on three axes: generator steps, gradient "
        "evaluations (critic updates + generator updates = steps x (critic_steps + 1)) and wall time; last-k "
        f"spread = sample standard deviation of the last {agg.LAST_K} evaluations (all of them if fewer), lower is "
        "steadier; both with their mean and 95% Student-t interval, and the median step of the best value.")])]
    columns = (*_group_columns(analysis), "survived", "final median", "median 95% CI",
               *(("final IQM",) if iqm_shown else ()), "survivors' mean", "mean 95% CI (t)", "best median")

    def iqm_cells(record: dict) -> tuple[str, ...]:
        if not iqm_shown:
            return ()
        return (score_text(record["final_iqm"]) if record["runs"] >= IQM_MIN_RUNS else f"n < {IQM_MIN_RUNS}",)

    for metric in analysis.ranked:
        direction = analysis.directions[metric]
        summary = _sorted_groups(analysis.summary.loc[analysis.summary["metric"] == metric], analysis)
        records = summary.to_dict("records")
        rows = tuple(
            (*cells, f"{r['survived']}/{r['runs']}", score_text(r["final_median"]),
             _interval(r["final_median_lo"], r["final_median_hi"]), *iqm_cells(r), fmt(r["final_mean"]),
             _interval(r["final_mean_lo"], r["final_mean_hi"]), score_text(r["best_median"]))
            for cells, r in zip(_group_cells(summary, analysis), records))
        curve_columns = (*_group_columns(analysis), "survived", "n", f"AUC over steps ({direction} is better)",
                         "AUC 95% CI", "AUC over gradient evaluations", "AUC over wall time",
                         f"last-{agg.LAST_K} spread mean (lower is steadier)", "spread 95% CI", "median step of best")
        curve_rows = tuple(
            (*cells, f"{r['survived']}/{r['runs']}", str(r["curve_n"]), fmt(r["auc_step_mean"]),
             _interval(r["auc_step_mean_lo"], r["auc_step_mean_hi"]), fmt(r["auc_grad_evals_mean"]),
             fmt(r["auc_wall_s_mean"]), fmt(r["spread_mean"]), _interval(r["spread_mean_lo"], r["spread_mean_hi"]),
             fmt(r["best_step_median"]))
            for cells, r in zip(_group_cells(summary, analysis), records))
        blocks: list = [Paragraph(f"`{metric}`: {direction} is better."), Table(columns, rows),
                        Paragraph(f"Convergence and stability of `{metric}` "
                                  f"(windows: {_windows_text(analysis, metric)}):"),
                        Table(curve_columns, curve_rows)]
        if f"final:{metric}" in drawn:
            blocks.append(_image(drawn[f"final:{metric}"], report_dir))
        sections.append(Section(metric, level=3, blocks=blocks))
    return sections


def _shown_section(analysis: Analysis) -> Section:
    """Metrics a degenerate generator can win, as their sources publish them: survivors' values only."""
    keys = ["objective", *analysis.cell_axes, "cell"]
    runs = analysis.shown_runs.loc[analysis.shown_runs["survived"]]
    survival = analysis.outcomes.groupby(keys, sort=True)["survived"].agg(["sum", "size"]).reset_index()
    blocks: list = [Paragraph(
        "These metrics are reported as their sources publish them, but a degenerate generator can score well on them "
        "(PacGAN's modes-covered rule credits uniform noise), so they are never ranked, compared or used in a verdict. "
        "Final value over surviving runs (n): median and mean.")]
    columns = (*_group_columns(analysis), "survived", "n", "final median", "final mean")
    for metric in analysis.shown:
        rows = runs.loc[runs["metric"] == metric]
        table = rows.groupby(keys, sort=True)["final"].agg(["size", "median", "mean"]).reset_index()
        table = _sorted_groups(table.merge(survival, on=keys, how="left"), analysis)
        body = tuple((*cells, f"{r['sum']}/{r['size_y']}", str(r["size_x"]), fmt(r["median"]), fmt(r["mean"]))
                     for cells, r in zip(_group_cells(table, analysis), table.to_dict("records")))
        blocks += [Paragraph(f"`{metric}` ({analysis.shown_directions[metric]} is better as published):"),
                   Table(columns, body)]
    return Section("Shown, never ranked", blocks=blocks)


def _threshold_section(analysis: Analysis) -> Section:
    table = _sorted_groups(analysis.thresholds, analysis).sort_values("metric", kind="stable")
    columns = ("metric", "threshold", *_group_columns(analysis), "runs", "survived", "reached", "median steps to reach",
               "median gradient evaluations to reach", "median wall time to reach (s)")

    def time(value: float) -> str:
        return "not reached" if np.isinf(value) else fmt(value)

    rows = tuple(
        (f"`{r['metric']}`", fmt(r["threshold"]), *cells, str(r["runs"]), f"{r['survived']}/{r['runs']}",
         str(r["reached"]), time(r["median_step"]),
         time(r["median_grad_evals"]), time(r["median_wall_s"]))
        for cells, r in zip(_group_cells(table, analysis), table.to_dict("records")))
    return Section("Steps to threshold", blocks=[
        Paragraph("A surviving run reaches a threshold at its first evaluation at least as good as the threshold. A "
                  "survivor that never reaches it is censored, and a run that did not survive counts as never "
                  "reaching it; both take an infinite time, so the medians are over every run (runs) and read "
                  "`not reached` once half of them never got there. A censored run is never given its run length as "
                  "a time. Times are given on three axes: generator steps, gradient evaluations (steps x "
                  "(critic_steps + 1): an objective with 5 critic steps spends 6 per generator step) and wall "
                  "time."), Table(columns, rows)])


def _convergence_section(analysis: Analysis, curve_figures: list[figs.FigureFile], report_dir: Path) -> Section:
    blocks: list = [Paragraph(
        "Each curve is the mean over the runs evaluated at a step, with its 95% Student-t band; a run that stopped "
        "(diverged or failed) leaves the curves from that step on, so where n falls the mean is over fewer runs. "
        + ("Survivors only. " if analysis.survivors_only else "")
        + "The figures mark where n falls; every such step is listed here.")]
    drops = _sorted_groups(analysis.drops, analysis) if len(analysis.drops) else analysis.drops
    if drops.empty:
        blocks.append(Paragraph("Every curve keeps all of its group's runs at every step."))
    else:
        items = []
        for (metric, cell, objective), frame in drops.groupby(["metric", "cell", "objective"], sort=False):
            steps = ", ".join(f"n = {int(r['n'])}/{int(r['runs'])} from step {int(r['step'])}"
                              for r in frame.to_dict("records"))
            items.append(f"`{metric}`, {objective} on {cell}: {steps}.")
        blocks.append(Bullets(tuple(sorted(items))))
    blocks += [_image(f, report_dir) for f in curve_figures]
    return Section("Convergence", blocks=blocks)


def _comparison_sections(analysis: Analysis) -> list[Section]:
    title = f"Comparison with {analysis.baseline}"
    table = analysis.comparisons
    if table.empty:
        return [Section(title, blocks=[Paragraph(
            next((n for n in analysis.notes if "aseline" in n), "No comparison could be made."))])]
    worst = ("runs that did not survive are left out (survivors-only view)" if analysis.survivors_only else
             "a run that diverged, failed or failed to train scores the worst outcome")
    noun = agg.repetition_noun(analysis.jobs)
    pairs_on = ("the seeds both objectives ran" if noun == "seeds" else
                "the (seed, trial) runs both objectives ran, trial t being the same configuration for each")
    blocks: list = [Paragraph(
        f"Each objective against `{analysis.baseline}` on the final value of each ranked metric, within each cell; "
        f"{worst}. Final values compare runs after equal generator steps. Runs pair on {pairs_on} "
        f"(Wilcoxon signed-rank; effect size: matched-pairs rank-biserial correlation); {noun} only one of them "
        f"has are named under `left out`. Mann-Whitney U (effect size: Cliff's delta) only when they share no "
        f"{noun[:-1]}. "
        "Both effects in [-1, 1], positive favours the objective. P(improvement) is rliable's probability that a run "
        f"of the objective beats a run of the baseline. p-values are Holm-corrected over the m comparisons of one "
        f"metric; alpha = {ALPHA}. Min attainable p is the smallest p these run counts allow (2/2^n paired, "
        "2/C(n1+n2, n1) unpaired): where it times m is not below alpha the comparison is undecidable, never "
        f"\"no difference\". {noun.capitalize()} needed: {noun} per objective for {POWER:.0%} power to find the "
        "observed effect at alpha/m (Noether 1987).")]
    order = {name: k for k, name in enumerate(analysis.objectives)}
    sentences = []
    for metric_key, frame in table.groupby("metric", sort=True):
        metric = cast(str, metric_key)
        frame = frame.assign(_order=frame["objective"].map(order)).sort_values(["cell", "_order"], kind="stable")
        rows = []
        for r in frame.to_dict("records"):
            n = f"{r['n_objective']}/{r['n_baseline']}"
            if r["significant"]:
                better = r["effect"] > 0
                word = "higher" if better == (analysis.directions[metric] == "higher") else "lower"
                sentences.append(
                    f"On {r['cell']}, `{r['objective']}` reaches a {word} final `{metric}` than `{r['baseline']}` "
                    f"(median {score_text(r['median_objective'])} vs {score_text(r['median_baseline'])}; "
                    f"{test_text(r['test'])} p = {fmt(r['p'])}, Holm-adjusted p = {fmt(r['p_holm'])}; "
                    f"P(improvement) = {fmt(r['probability_of_improvement'])}; {r['effect_name']} = "
                    f"{fmt(r['effect'])}; n = {n} {noun}; survived {r['survived_objective']}/{r['n_objective']} "
                    f"and {r['survived_baseline']}/{r['n_baseline']}).")
            needed = r["seeds_needed"]
            rows.append((r["cell"], r["objective"], test_text(r["test"]), n,
                         f"{r['survived_objective']}/{r['survived_baseline']}", r["left_out"] or "none",
                         fmt(r["statistic"]), fmt(r["p"]), fmt(r["p_holm"]), fmt(r["min_p"]),
                         fmt(r["probability_of_improvement"]), fmt(r["effect"]), score_text(r["median_objective"]),
                         score_text(r["median_baseline"]), str(int(needed)) if np.isfinite(needed) else "n/a",
                         verdict_text(r)))
        columns = ("cell", "objective", "test", "n (objective/baseline)", "survived (objective/baseline)", "left out",
                   "statistic", "p", "Holm p", "min attainable p", "P(improvement)", "effect", "median",
                   "baseline median", f"{noun} needed", "verdict")
        blocks += [Paragraph(f"`{metric}` ({analysis.directions[metric]} is better):"), Table(columns, tuple(rows))]
    if sentences:
        blocks.append(Paragraph(f"Significant differences (Holm-adjusted p < {ALPHA}):"))
        blocks.append(Bullets(tuple(sentences)))
    else:
        blocks.append(Paragraph(f"No objective differs significantly from `{analysis.baseline}` on any ranked metric "
                                f"(Holm-adjusted p >= {ALPHA} throughout; the n of each comparison, and whether it "
                                "could have, are in the tables)."))
    if not analysis.unfinished.empty:
        blocks.append(Paragraph(f"Provisional: {len(analysis.unfinished)} jobs have not finished; these verdicts may "
                                "change when they do."))
    return [Section(title, blocks=blocks)]


def _budget_figures(budget: EqualBudget, analysis: Analysis, figures_dir: Path) -> dict[str, figs.FigureFile]:
    palette = figs.objective_palette(analysis.objectives)
    metrics = [m for m in analysis.ranked if m in budget.floors]
    return {
        "budget": figs.budget_figure(budget.curves, metrics, analysis.cells, analysis.objectives, palette,
                                     figures_dir / "budget_curves.png"),
        "budget:trials": figs.trial_scores_figure(budget.trial_scores, metrics, analysis.cells, analysis.objectives,
                                                  palette, figures_dir / "budget_trials.png"),
    }


def _space_text(space: Mapping[str, object]) -> str:
    """The search block as the report states it: each dimension, its distribution and range."""
    dimensions = space.get("space")
    parts = []
    for name, param in (dimensions.items() if isinstance(dimensions, dict) else ()):
        if not isinstance(param, dict):
            continue
        kind = param.get("distribution")
        values = param.get("values")
        drawn = (f"one of {{{', '.join(str(v) for v in values)}}}" if kind == "choice" and isinstance(values, list)
                 else f"{kind} on [{param.get('low')}, {param.get('high')}]")
        only = param.get("only")
        on = f" (only for {', '.join(f'`{o}`' for o in only)})" if isinstance(only, list) else ""
        parts.append(f"`{name}` {drawn}{on}")
    return "; ".join(parts) or "none"


def _budget_verdict_text(verdict: BudgetVerdict, row: pd.Series) -> str:
    interval = f"{fmt(row['expected'])} (95% interval [{fmt(row['low'])}, {fmt(row['high'])}])"
    if verdict.decided:
        return f"`{verdict.best}` is best with {interval}, and that is decided: no other objective's interval overlaps"
    if not verdict.overlapping:
        return f"`{verdict.best}` has {interval}, alone in its cell: nothing to decide"
    def named(objectives: tuple[str, ...]) -> str:
        *most, last = [f"`{o}`" for o in objectives]
        return f"{'those' if most else 'that'} of {', '.join(most) + ' and ' if most else ''}{last}"

    clear = f" (it is clear of {named(verdict.clear)})" if verdict.clear else ""
    return (f"`{verdict.best}` has the best estimate, {interval}, but that is not decided at this budget: its "
            f"interval overlaps {named(verdict.overlapping)}{clear}")


def _budget_section(budget: EqualBudget, analysis: Analysis, drawn: dict[str, figs.FigureFile],
                    report_dir: Path) -> Section:
    curves = budget.curves
    trials = budget.trials
    seed = budget.space.get("seed", 0)
    declared = budget.space.get("trials", trials)
    ended = curves.groupby(["metric", "cell", "objective"])["trials"].max()
    floors = ", ".join(f"`{m}` {fmt(v)}" for m, v in budget.floors.items())
    blocks: list = [Paragraph(
        "Every objective was tuned by the same random search (Lucic et al. 2018: with enough tuning most "
        f"objectives reach similar scores, so a fair comparison spends an equal budget on each): {declared} "
        f"trials drawn i.i.d. from one space ({_space_text(budget.space)}; sampling seed {seed}), trial t being "
        "the same configuration for every objective, each trained once per seed. The curve is the expected best "
        f"final value after n = 1..{trials} trials (Dodge et al. 2019: the best of n draws from the N trials' "
        "empirical distribution, the maximum or, for a lower-is-better metric, the minimum; E_1 is the mean over "
        "trials, and n never exceeds the N trials run). Its interval is a 95% bootstrap over trials; Tang et al. "
        "2020 argue this estimator is biased and its bootstrap intervals poor, so a best objective is called "
        "decided only where its interval overlaps no other's. A trial that diverged, failed or failed to train "
        f"scores the worst value the suite logged for the metric ({floors}); with several seeds a trial scores "
        "the median over them.")]
    if int(ended.min()) != declared:
        blocks.append(Paragraph(
            f"Provisional: the objectives have ended {int(ended.min())} to {int(ended.max())} of the {declared} "
            "trials, so the curves below are not yet at an equal budget (each stops at its own N), and every "
            "statement here may change when the other trials end."))
    verdicts = {(v.metric, v.cell, v.budget): v for v in budget.verdicts}
    lines = []
    for metric in [m for m in analysis.ranked if m in budget.floors]:
        for cell in analysis.cells:
            parts = []
            for n in sorted({1, trials}):
                verdict = verdicts.get((metric, cell, n))
                if verdict is None:
                    continue
                curve = curves.loc[(curves["metric"] == metric) & (curves["cell"] == cell)
                                   & (curves["objective"] == verdict.best)]
                row = curve.loc[curve["n"] == min(n, int(curve["trials"].max()))].iloc[0]
                parts.append(f"at n = {n}, {_budget_verdict_text(verdict, row)}")
            if parts:
                where = f" on {cell}" if len(analysis.cells) > 1 else ""
                lines.append(f"`{metric}` ({analysis.directions[metric]} is better){where}: " + "; ".join(parts) + ".")
    blocks.append(Bullets(tuple(lines)))
    first, last = curves.loc[curves["n"] == 1], curves.loc[curves["n"] == curves["trials"]]
    table = first.merge(last, on=["metric", "cell", "objective", "trials"], suffixes=("_1", "_N"))
    counts = budget.trial_scores.groupby(["metric", "cell", "objective"]).agg(
        lost=("survived", lambda s: int((s == 0).sum()))).reset_index()
    table = table.merge(counts, on=["metric", "cell", "objective"], how="left")
    order = {name: k for k, name in enumerate(analysis.objectives)}
    table = table.assign(_order=table["objective"].map(order)).sort_values(["metric", "cell", "_order"])
    columns = ("metric", "cell", "objective", "trials (N)", "trials lost", "E_1 (mean)", "E_1 95% interval",
               "E_N", "E_N 95% interval", "E_N +- sd (Dodge)")
    rows = tuple(
        (f"`{r['metric']}`", r["cell"], r["objective"], str(int(r["trials"])), str(int(r["lost"])),
         fmt(r["expected_1"]), f"[{fmt(r['low_1'])}, {fmt(r['high_1'])}]", fmt(r["expected_N"]),
         f"[{fmt(r['low_N'])}, {fmt(r['high_N'])}]", f"[{fmt(r['sd_low_N'])}, {fmt(r['sd_high_N'])}]")
        for r in table.to_dict("records"))
    blocks += [Paragraph("Per objective: trials lost (diverged, failed or failed to train in every seed), the "
                         "expected best at n = 1 and at n = N with their bootstrap intervals, and at n = N the "
                         "spread of the best of N (E_N +- sd, clipped to the observed range)."),
               Table(columns, rows)]
    blocks += [_image(drawn[key], report_dir) for key in ("budget", "budget:trials") if key in drawn]
    return Section("Equal budget", blocks=blocks)


def _ranking_table(analysis: Analysis) -> pd.DataFrame:
    """Mean rank per objective (index, best first: the order of the ranking table and the rank
    heatmap's rows) and ranked metric (columns), averaged over cells, with `overall` over metrics too."""
    per_metric = analysis.ranks.pivot_table(index="objective", columns="metric", values="rank", aggfunc="mean")
    per_metric["overall"] = analysis.ranks.groupby("objective")["rank"].mean()
    return per_metric.sort_values(["overall"], kind="stable")


def _ranking_section(analysis: Analysis, drawn: dict[str, figs.FigureFile], report_dir: Path) -> Section:
    if analysis.ranks.empty:
        return Section("Ranking", blocks=[Paragraph("Nothing to rank yet.")])
    per_metric = _ranking_table(analysis)
    survival = analysis.outcomes.groupby("objective")["survived"].agg(["sum", "size"])
    columns = ("rank", "objective", "survived", *(f"{m}" for m in analysis.ranked), "mean rank")
    rows = tuple(
        (str(k + 1), objective, f"{int(survival.loc[objective, 'sum'])}/{int(survival.loc[objective, 'size'])}",
         *(fmt(per_metric.loc[objective, m], 3) if m in per_metric.columns else "n/a" for m in analysis.ranked),
         fmt(per_metric.loc[objective, "overall"], 3))
        for k, objective in enumerate(per_metric.index))
    blocks: list = [
        Paragraph(f"Within each cell, objectives are ranked per metric by the IQM of the final value over "
                  f"{_over(analysis)} (1 = best, ties share the average rank"
                  + ("" if analysis.survivors_only else "; a run that did not survive counts as the worst outcome")
                  + "); the table averages those ranks over cells, `mean rank` over metrics too; survived = surviving "
                  "runs / runs over all cells."),
        Table(columns, rows)]
    if "ranks" in drawn:
        blocks.append(_image(drawn["ranks"], report_dir))
    return Section("Ranking", blocks=blocks)


def _method_section(analysis: Analysis) -> Section:
    return Section("Method", blocks=[Bullets((
        "Runs: jobs with status `done`, `diverged` or `failed`; running and pending jobs are unfinished, enter no "
        "statistic and make every verdict provisional. A run survived when it is done and no failed-to-train rule "
        "(MetricInfo.failed_at, on a ranked metric) catches its final value.",
        ("Survivors-only view: every statistic is over surviving runs; survival is still shown."
         if analysis.survivors_only else
         "Scores: a surviving run scores its final value, any other run the worst outcome, so medians, IQMs, ranks, "
         "probabilities of improvement and the tests count it as losing to every survivor and tying with the other "
         "losses. Means and curve summaries are over survivors and say so."),
        "Per-run curve summaries (final, best and its step, AUC over a window on any axis, last-k spread, time to a "
        "threshold, divergence step) are computed by bench.metrics.convergence; gradient evaluations = generator "
        "steps x (critic_steps + 1).",
        "IQM: mean of the middle 50% of runs (rliable; scipy.stats.trim_mean, 25% cut from each end).",
        "Intervals: 95% Student-t interval of the mean (scipy.stats.t); for the median, the distribution-free "
        "order-statistic interval [x_(k), x_(n+1-k)] with binomial coverage of at least 95% (n >= 6). A percentile "
        "bootstrap is not used: with 2, 3, 5 and 10 runs its 95% interval of the mean covers the true mean about "
        "50%, 74%, 84% and 89% of the time (normal scores; tests/test_verdicts_intervals.py).",
        "Paired test: two-sided Wilcoxon signed-rank on the shared seeds' differences (scipy.stats.wilcoxon; zero "
        "differences dropped; exact or, with ties, exact permutation p for up to 13 pairs); unpaired: two-sided "
        "Mann-Whitney U (scipy.stats.mannwhitneyu; exact permutation p with ties when the splits number at most "
        "9999).",
        "Multiple comparisons: Holm-Bonferroni over every comparison of one metric. A comparison is decidable when "
        "its minimum attainable p (2/2^n for n pairs; 2/C(n1+n2, n1) unpaired) times the m comparisons is below "
        f"alpha = {ALPHA}.",
        f"Seeds needed: Noether's (1987) normal approximation for {POWER:.0%} power at alpha/m, from the observed "
        "effect (the share of positive Walsh averages of the paired differences, or P(improvement) unpaired); "
        "it errs towards more seeds for large effects.",
        "Probability of improvement: P(X > Y) + 0.5 P(X = Y) over all pairs of runs (rliable).",
        f"Figures: every ranked metric has a convergence and a final-value figure, each over at most "
        f"{figs.MAX_FACETS} cells (the tables cover every cell). A metric's y axis is logarithmic when its plotted "
        f"values are all positive and span more than a factor of {figs.LOG_SPAN:g}, and its final values (each "
        "curve's last mean) have their median below the range's geometric middle, as an FID falling from 300 to 5 "
        "does; the caption then says so.",
    ))])
