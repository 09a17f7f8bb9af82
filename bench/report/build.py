"""`build_report`: a suite's results folder -> report.md, report.html and figures/ under report/."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import aggregate as agg
from bench.report import figures as figs
from bench.report.load import SuiteResults, load_results
from bench.report.render import Bullets, Document, Image, Paragraph, Section, Table, fmt, fmt_ci, to_html, to_markdown
from bench.report.stats import BOOTSTRAP_SEED
from bench.store import SuiteStore

ALPHA = 0.05
TABLE_RESAMPLES = 1000
CURVE_RESAMPLES = 200
MAX_CONVERGENCE_FIGURES = 6
MAX_UNRANKED_CURVES = 4
MAX_DISTRIBUTION_FIGURES = 6
COVERAGE_METRIC = "modes_covered"


@dataclass(frozen=True)
class ReportResult:
    """What `build_report` wrote and found.

    `report_dir` = `<suite_dir>/report`; `markdown`, `html` the two reports; `figures` the PNGs
    under `report_dir/figures`; `status_counts` jobs per status; `notes` what the report says it
    skipped or could not do; `timings` seconds per stage (load, aggregate, figures, render).
    """

    report_dir: Path
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    num_jobs: int
    status_counts: Mapping[str, int]
    notes: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)


def _registered_directions() -> dict[str, agg.Direction]:
    from bench.metrics import metric_directions

    return metric_directions()


def build_report(
    suite_dir: Path,
    *,
    baseline: str | None = None,
    directions: Mapping[str, agg.Direction] | None = None,
) -> ReportResult:
    """Write `<suite_dir>/report/report.md`, `report.html` and `figures/*.png` from the results.

    `baseline` overrides the suite's `report.baseline` (default `nsgan`); if that objective is not
    in the suite the report says so and skips the comparisons. `directions` maps metric -> "lower" /
    "higher" (is better); by default every registered evaluator's (bench.metrics.metric_directions).
    Metrics without a direction (training losses among them) are plotted and never ranked.
    Works on partial results: unfinished and failed jobs are listed with their reasons and left out
    of the statistics. The previous report/ folder is replaced.
    """
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    results = load_results(Path(suite_dir))
    directions = dict(_registered_directions() if directions is None else directions)
    timings["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    analysis = _analyse(results, directions, baseline)
    timings["aggregate"] = time.perf_counter() - clock

    report_dir = results.suite_dir / "report"
    figures_dir = report_dir / "figures"
    if figures_dir.exists():
        shutil.rmtree(figures_dir)
    figures_dir.mkdir(parents=True)
    clock = time.perf_counter()
    figure_files = _draw_figures(results, analysis, figures_dir)
    timings["figures"] = time.perf_counter() - clock

    clock = time.perf_counter()
    document = _document(results, analysis, figure_files, report_dir)
    markdown_path, html_path = report_dir / "report.md", report_dir / "report.html"
    markdown_path.write_text(to_markdown(document), encoding="utf-8")
    html_path.write_text(to_html(document), encoding="utf-8")
    timings["render"] = time.perf_counter() - clock

    counts = results.jobs["status"].value_counts()
    return ReportResult(
        report_dir=report_dir, markdown=markdown_path, html=html_path,
        figures=tuple(f.path for f in figure_files.values()), num_jobs=len(results.jobs),
        status_counts={s: int(counts.get(s, 0)) for s in agg.STATUSES}, notes=tuple(analysis.notes),
        timings=timings,
    )


# ---- analysis ------------------------------------------------------------------------------------

@dataclass
class _Analysis:
    axes: list[str]
    cell_axes: list[str]
    objectives: list[str]
    cells: list[str]
    ranked: list[str]
    unranked: list[str]
    directions: dict[str, agg.Direction]
    baseline: str
    runs: pd.DataFrame
    summary: pd.DataFrame
    status: pd.DataFrame
    divergence: pd.DataFrame
    thresholds: pd.DataFrame
    comparisons: pd.DataFrame
    ranks: pd.DataFrame
    bands: pd.DataFrame
    notes: list[str]


def _ordered_objectives(jobs: pd.DataFrame, baseline: str) -> list[str]:
    names = sorted(jobs["objective"].unique())
    return ([baseline] if baseline in names else []) + [n for n in names if n != baseline]


def _analyse(results: SuiteResults, directions: dict[str, agg.Direction], baseline: str | None) -> _Analysis:
    jobs, metrics = results.jobs, results.metrics
    notes: list[str] = []
    baseline = baseline or results.report_config.baseline
    axes = agg.grid_axes(jobs)
    cell_axes = axes[1:]
    objectives = _ordered_objectives(jobs, baseline) if len(jobs) else []
    if len(jobs):
        jobs = jobs.assign(cell=agg.cell_labels(jobs, cell_axes))
    else:
        jobs = jobs.assign(cell=pd.Series(dtype=str))
    cells = sorted(jobs["cell"].unique())
    finished = metrics.loc[metrics["job_id"].isin(jobs.loc[jobs["status"].isin(agg.FINISHED), "job_id"])
                           & np.isfinite(metrics["value"])]
    present_metrics = sorted(finished["metric"].unique())
    ranked = [m for m in present_metrics if m in directions]
    unranked = [m for m in present_metrics if m not in directions]

    thresholds = dict(results.report_config.thresholds)
    for metric in sorted(set(thresholds) - set(ranked)):
        why = "it has no direction registered" if metric in present_metrics else "no run has reported it"
        notes.append(f"Threshold on `{metric}` skipped: {why} (ranked metrics: {', '.join(ranked) or 'none'}).")
        del thresholds[metric]
    runs = agg.run_summaries(metrics, jobs, [*axes, "cell"], {m: directions[m] for m in ranked}, thresholds,
                             last_k=agg.LAST_K)
    summary = agg.summarise(runs, [*axes, "cell"], n_resamples=TABLE_RESAMPLES)
    status = agg.status_table(jobs, [*axes, "cell"]) if len(jobs) else pd.DataFrame()
    divergence = agg.divergence_table(agg.run_divergence(metrics, jobs, [*axes, "cell"]), [*axes, "cell"])
    threshold_table = agg.threshold_table(runs, [*axes, "cell"])

    if baseline not in objectives:
        notes.append(f"Baseline `{baseline}` is not among the objectives of this suite "
                     f"({', '.join(objectives) or 'none'}): comparisons skipped.")
        comparisons = pd.DataFrame()
    else:
        comparisons = agg.compare_to_baseline(runs, axes, baseline, directions, alpha=ALPHA)
        if comparisons.empty:
            notes.append(f"No comparison with the baseline `{baseline}`: it or the other objectives have no "
                         "finished runs with ranked metrics yet.")
        else:
            labels = agg.cell_labels(comparisons, cell_axes)
            comparisons = comparisons.assign(cell=labels)
    ranks = agg.rank_objectives(summary, [*axes, "cell"], directions)
    bands = agg.curve_bands(metrics, jobs, [*axes, "cell"], n_resamples=CURVE_RESAMPLES)
    return _Analysis(axes, cell_axes, objectives, cells, ranked, unranked, directions, baseline, runs, summary, status,
                     divergence, threshold_table, comparisons, ranks, bands, notes)


# ---- figures -------------------------------------------------------------------------------------

def _sample_panels(results: SuiteResults, jobs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For each cell and objective, the lowest finished seed with final samples: (points, images)."""
    store = SuiteStore(results.suite_dir)
    finished = jobs.loc[jobs["status"].isin(agg.FINISHED)].sort_values("seed")
    points, images = [], []
    for (cell, objective), group in finished.groupby(["cell", "objective"], sort=True):
        for job_id, seed, dataset in zip(group["job_id"], group["seed"], group["dataset"]):
            samples = store.job(job_id).samples_dir
            record = {"cell": cell, "objective": objective, "seed": int(seed), "dataset": dataset, "job_id": job_id}
            if (samples / "final.npy").exists():
                points.append({**record, "path": samples / "final.npy"})
                break
            if (samples / "final.png").exists():
                images.append({**record, "path": samples / "final.png"})
                break
    columns = ["cell", "objective", "seed", "dataset", "job_id", "path"]
    return pd.DataFrame(points, columns=columns), pd.DataFrame(images, columns=columns)


def _mixture_centres(jobs: pd.DataFrame, panels: pd.DataFrame, suite_dir: Path,
                     notes: list[str]) -> dict[str, np.ndarray | None]:
    """True mode centres (K, 2) per dataset drawn, from bench.data's dataset (its `centers`)."""
    from bench.data import load_dataset

    centres: dict[str, np.ndarray | None] = {}
    option_columns = [c for c in jobs.columns if c.startswith("dataset.")]
    for dataset, job_id in panels.groupby("dataset")["job_id"].first().items():
        row = jobs.loc[jobs["job_id"] == job_id, option_columns].iloc[0]
        options = {c.removeprefix("dataset."): json.loads(v) for c, v in row.items() if isinstance(v, str)}
        try:
            source = load_dataset(dataset, root=suite_dir, options=options)
        except (KeyError, ValueError, FileNotFoundError) as error:
            notes.append(f"True modes of `{dataset}` not drawn: {error}")
            centres[dataset] = None
            continue
        found = getattr(source, "centers", None)
        centres[dataset] = None if found is None else np.asarray(found, dtype=float)
    return centres


def _draw_figures(results: SuiteResults, analysis: _Analysis, figures_dir: Path) -> dict[str, figs.FigureFile]:
    drawn: dict[str, figs.FigureFile] = {}
    if not analysis.objectives:
        return drawn
    palette = figs.objective_palette(analysis.objectives)
    jobs = results.jobs.assign(cell=agg.cell_labels(results.jobs, analysis.cell_axes))
    for metric in analysis.ranked[:MAX_CONVERGENCE_FIGURES]:
        drawn[f"convergence:{metric}"] = figs.convergence_figure(
            analysis.bands, metric, analysis.cells, analysis.objectives, palette,
            figures_dir / f"convergence_{_file_part(metric)}.png")
    if analysis.unranked:
        drawn["convergence:unranked"] = figs.unranked_curves_figure(
            analysis.bands, analysis.unranked[:MAX_UNRANKED_CURVES], analysis.cells, analysis.objectives, palette,
            figures_dir / "training_curves.png")
    for metric in analysis.ranked[:MAX_DISTRIBUTION_FIGURES]:
        drawn[f"final:{metric}"] = figs.distribution_figure(
            analysis.runs, metric, analysis.cells, analysis.objectives, palette,
            figures_dir / f"final_{_file_part(metric)}.png")
    if COVERAGE_METRIC in analysis.ranked:
        drawn["coverage"] = figs.coverage_figure(analysis.summary, COVERAGE_METRIC, analysis.cells,
                                                 analysis.objectives, palette, figures_dir / "mode_coverage.png")
    points, images = _sample_panels(results, jobs)
    if len(points):
        centres = _mixture_centres(jobs, points, results.suite_dir, analysis.notes)
        drawn["points"] = figs.points_figure(points, centres, analysis.cells, analysis.objectives, palette,
                                             figures_dir / "samples_points.png")
    if len(images):
        drawn["images"] = figs.image_grid_figure(images, analysis.cells, analysis.objectives,
                                                 figures_dir / "samples_images.png")
    if len(analysis.ranks):
        mean_ranks = analysis.ranks.groupby(["objective", "cell"], as_index=False)["rank"].mean()
        seeds = figs.seeds_text(analysis.summary["n"])
        drawn["ranks"] = figs.rank_heatmap_figure(mean_ranks, analysis.objectives, analysis.cells,
                                                  figures_dir / "rank_heatmap.png", seeds)
    return drawn


def _file_part(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# ---- document ------------------------------------------------------------------------------------

def _image(figure: figs.FigureFile, report_dir: Path) -> Image:
    return Image(figure.path, figure.path.relative_to(report_dir).as_posix(), figure.caption)


def _group_columns(analysis: _Analysis) -> list[str]:
    return ["objective", *analysis.cell_axes]


def _group_cells(frame: pd.DataFrame, analysis: _Analysis) -> list[list[str]]:
    return frame[_group_columns(analysis)].astype(str).to_numpy().tolist()


def _sorted_groups(frame: pd.DataFrame, analysis: _Analysis) -> pd.DataFrame:
    order = {name: k for k, name in enumerate(analysis.objectives)}
    return frame.assign(_order=frame["objective"].map(order)).sort_values(
        ["cell", "_order"], kind="stable").drop(columns="_order")


def _document(results: SuiteResults, analysis: _Analysis, drawn: dict[str, figs.FigureFile],
              report_dir: Path) -> Document:
    jobs = results.jobs
    counts = jobs["status"].value_counts()
    status_text = ", ".join(f"{int(counts.get(s, 0))} {s}" for s in agg.STATUSES)
    datasets = ", ".join(f"`{d}`" for d in sorted(jobs["dataset"].unique())) if len(jobs) else "none"
    intro: list = [
        Paragraph(f"Suite `{results.name}`: {len(jobs)} jobs ({status_text}) on {datasets}. "
                  f"Grid axes compared: {', '.join(f'`{a}`' for a in analysis.axes)}; seeds are repetitions. "
                  f"Baseline: `{analysis.baseline}`."),
        Paragraph(f"Ranked metrics: {', '.join(f'`{m}`' for m in analysis.ranked) or 'none'}. "
                  f"Plotted, never ranked: {', '.join(f'`{m}`' for m in analysis.unranked) or 'none'}."),
    ]
    if results.jobs_without_spec:
        intro.append(Paragraph(f"Job folders without spec.json (left out): "
                               f"{', '.join(f'`{j}`' for j in results.jobs_without_spec)}."))
    if analysis.notes:
        intro.append(Bullets(tuple(analysis.notes)))

    sections = [_jobs_section(analysis), _unfinished_section(jobs, analysis)]
    sections += _metric_sections(analysis, drawn, report_dir)
    if "coverage" in drawn:
        sections.append(Section("Mode coverage", blocks=[_image(drawn["coverage"], report_dir)]))
    if len(analysis.thresholds):
        sections.append(_threshold_section(analysis))
    curve_figures = [f for key, f in drawn.items() if key.startswith("convergence:")]
    if curve_figures:
        sections.append(Section("Convergence", blocks=[_image(f, report_dir) for f in curve_figures]))
    sections += _comparison_sections(analysis)
    sections.append(_ranking_section(analysis, drawn, report_dir))
    samples = [drawn[k] for k in ("points", "images") if k in drawn]
    if samples:
        sections.append(Section("Samples", blocks=[_image(f, report_dir) for f in samples]))
    sections.append(_method_section())
    return Document(f"Report: {results.name}", intro, sections)


def _jobs_section(analysis: _Analysis) -> Section:
    status = _sorted_groups(analysis.status, analysis) if len(analysis.status) else analysis.status
    if len(status):
        status = status.merge(analysis.divergence[[*analysis.axes, "median_divergence_step"]], on=analysis.axes,
                              how="left")
    columns = (*_group_columns(analysis), "jobs", *agg.STATUSES, "divergence rate", "median divergence step",
               "mean train time (s)")
    rows = []
    for cells, record in zip(_group_cells(status, analysis), status.to_dict("records")) if len(status) else ():
        rate = record["divergence_rate"]
        rows.append((*cells, str(record["jobs"]), *(str(record[s]) for s in agg.STATUSES),
                     "n/a" if not np.isfinite(rate) else f"{rate:.0%}",
                     fmt(record["median_divergence_step"]), fmt(record["train_s"])))
    blocks = [Paragraph("Jobs per group by status. Divergence rate = diverged / (done + diverged); median "
                        "divergence step over the diverged runs (a run's "
                        "divergence step: its first step with a non-finite logged value, else its last logged step); "
                        "train time is the mean `train_s` of finished runs."), Table(columns, tuple(rows))]
    return Section("Jobs", blocks=blocks)


def _unfinished_section(jobs: pd.DataFrame, analysis: _Analysis) -> Section:
    others = jobs.loc[jobs["status"] != "done"]
    if others.empty:
        return Section("Unfinished, failed and diverged jobs", blocks=[Paragraph("Every job is done.")])
    order = {s: k for k, s in enumerate(("failed", "running", "pending", "diverged"))}
    others = others.assign(_order=others["status"].map(order)).sort_values(
        ["_order", "objective", *analysis.cell_axes, "seed", "job_id"], kind="stable")
    columns = ("job", "status", *_group_columns(analysis), "seed", "step", "reason")
    rows = tuple(
        (f"`{r['job_id']}`", r["status"], *(str(r[c]) for c in _group_columns(analysis)), str(r["seed"]),
         "n/a" if pd.isna(r["step"]) else str(int(r["step"])), r["reason"] if isinstance(r["reason"], str) else "")
        for r in others.to_dict("records"))
    return Section("Unfinished, failed and diverged jobs", blocks=[
        Paragraph("Failed, running and pending jobs are left out of the statistics; diverged runs enter with "
                  "their last evaluation."), Table(columns, rows)])


def _metric_sections(analysis: _Analysis, drawn: dict[str, figs.FigureFile], report_dir: Path) -> list[Section]:
    if not analysis.ranked:
        return [Section("Final and best metrics", blocks=[Paragraph("No ranked metric has been reported yet.")])]
    sections = [Section("Final and best metrics", blocks=[Paragraph(
        "Over seeds, per group: n runs; final = value at the last finite evaluation, best = best value over "
        "evaluations; mean and IQM (interquartile mean) with 95% percentile-bootstrap intervals "
        f"({TABLE_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})."), Paragraph(
        "Under each metric, its convergence and stability over the runs with at least two evaluations (n): "
        "normalised AUC = trapezoidal area under the curve over generator steps divided by the run's step range "
        "(a diverged run's ends at its last finite evaluation), the curve's mean level in the metric's units "
        "(better in the metric's direction); last-k spread = sample "
        f"standard deviation of the last {agg.LAST_K} evaluations (all of them if fewer), lower is steadier; "
        "both with their mean and 95% bootstrap interval, and the median step of the best value.")])]
    columns = (*_group_columns(analysis), "n", "final mean", "95% CI", "final median", "final IQM", "IQM 95% CI",
               "best mean", "best 95% CI", "best IQM")
    for metric in analysis.ranked:
        direction = analysis.directions[metric]
        summary = _sorted_groups(analysis.summary.loc[analysis.summary["metric"] == metric], analysis)
        records = summary.to_dict("records")
        rows = tuple(
            (*cells, str(r["n"]), fmt(r["final_mean"]), fmt_ci(r["final_mean_lo"], r["final_mean_hi"]),
             fmt(r["final_median"]), fmt(r["final_iqm"]), fmt_ci(r["final_iqm_lo"], r["final_iqm_hi"]),
             fmt(r["best_mean"]), fmt_ci(r["best_mean_lo"], r["best_mean_hi"]), fmt(r["best_iqm"]))
            for cells, r in zip(_group_cells(summary, analysis), records))
        curve_columns = (*_group_columns(analysis), "n", f"AUC mean ({direction} is better)", "AUC 95% CI",
                         f"last-{agg.LAST_K} spread mean (lower is steadier)", "spread 95% CI",
                         "median step of best")
        curve_rows = tuple(
            (*cells, str(r["curve_n"]), fmt(r["auc_mean"]), fmt_ci(r["auc_mean_lo"], r["auc_mean_hi"]),
             fmt(r["spread_mean"]), fmt_ci(r["spread_mean_lo"], r["spread_mean_hi"]), fmt(r["best_step_median"]))
            for cells, r in zip(_group_cells(summary, analysis), records))
        blocks: list = [Paragraph(f"`{metric}`: {direction} is better."), Table(columns, rows),
                        Paragraph(f"Convergence and stability of `{metric}`:"), Table(curve_columns, curve_rows)]
        if f"final:{metric}" in drawn:
            blocks.append(_image(drawn[f"final:{metric}"], report_dir))
        sections.append(Section(metric, level=3, blocks=blocks))
    return sections


def _threshold_section(analysis: _Analysis) -> Section:
    table = _sorted_groups(analysis.thresholds, analysis).sort_values("metric", kind="stable")
    columns = ("metric", "threshold", *_group_columns(analysis), "runs", "reached", "median steps to reach",
               "median wall time to reach (s)")
    rows = tuple(
        (f"`{r['metric']}`", fmt(r["threshold"]), *cells, str(r["runs"]), str(r["reached"]), fmt(r["median_step"]),
         fmt(r["median_wall_s"]))
        for cells, r in zip(_group_cells(table, analysis), table.to_dict("records")))
    return Section("Steps to threshold", blocks=[
        Paragraph("A run reaches a threshold at its first evaluation at least as good as the threshold (runs = "
                  "finished runs of the group). Runs that never reach it are censored: they count in `runs` but not "
                  "in `reached`, and are left out of the medians, which are over the runs that reached it (n/a when "
                  "none did); a censored run is never given its run length as a time."), Table(columns, rows)])


def _comparison_sections(analysis: _Analysis) -> list[Section]:
    title = f"Comparison with {analysis.baseline}"
    table = analysis.comparisons
    if table.empty:
        return [Section(title, blocks=[Paragraph(
            next((n for n in analysis.notes if "aseline" in n), "No comparison could be made."))])]
    blocks: list = [Paragraph(
        f"Each objective against `{analysis.baseline}` on the final value of each ranked metric, within each cell. "
        "Wilcoxon signed-rank where both ran the same seeds (effect size: matched-pairs rank-biserial "
        "correlation), Mann-Whitney U otherwise (effect size: Cliff's delta); both in [-1, 1], positive favours the "
        "objective. P(improvement) is rliable's probability that a run of the objective beats a run of the "
        f"baseline. p-values are Holm-corrected over all comparisons of one metric; alpha = {ALPHA}.")]
    order = {name: k for k, name in enumerate(analysis.objectives)}
    sentences = []
    for metric, frame in table.groupby("metric", sort=True):
        frame = frame.assign(_order=frame["objective"].map(order)).sort_values(["cell", "_order"], kind="stable")
        rows = []
        for r in frame.to_dict("records"):
            n = f"{r['n_objective']}/{r['n_baseline']}"
            better = r["effect"] > 0
            if r["significant"]:
                verdict = f"{'objective' if better else 'baseline'} better"
                word = "higher" if better == (analysis.directions[metric] == "higher") else "lower"
                sentences.append(
                    f"On {r['cell']}, `{r['objective']}` reaches a {word} final `{metric}` than `{r['baseline']}` "
                    f"(median {fmt(r['median_objective'])} vs {fmt(r['median_baseline'])}; "
                    f"{_test_name(r['test'])} p = {fmt(r['p'])}, Holm-adjusted p = {fmt(r['p_holm'])}; "
                    f"P(improvement) = {fmt(r['probability_of_improvement'])}; {r['effect_name']} = "
                    f"{fmt(r['effect'])}; n = {n} seeds).")
            else:
                verdict = f"no significant difference at n={n}"
            rows.append((r["cell"], r["objective"], n, _test_name(r["test"]), fmt(r["statistic"]), fmt(r["p"]),
                         fmt(r["p_holm"]), fmt(r["probability_of_improvement"]), fmt(r["effect"]),
                         fmt(r["median_objective"]), fmt(r["median_baseline"]), verdict))
        columns = ("cell", "objective", "n (objective/baseline)", "test", "statistic", "p", "Holm p",
                   "P(improvement)", "effect", "median", "baseline median", "verdict")
        blocks += [Paragraph(f"`{metric}` ({analysis.directions[metric]} is better):"), Table(columns, tuple(rows))]
    if sentences:
        blocks.append(Paragraph("Significant differences (Holm-adjusted p < 0.05):"))
        blocks.append(Bullets(tuple(sentences)))
    else:
        blocks.append(Paragraph(f"No objective differs significantly from `{analysis.baseline}` on any ranked metric "
                                "(Holm-adjusted p >= 0.05 throughout; the n of each comparison is in the tables)."))
    return [Section(title, blocks=blocks)]


def _test_name(test: str) -> str:
    return {"wilcoxon": "Wilcoxon", "mann-whitney": "Mann-Whitney U"}[test]


def _ranking_section(analysis: _Analysis, drawn: dict[str, figs.FigureFile], report_dir: Path) -> Section:
    if analysis.ranks.empty:
        return Section("Ranking", blocks=[Paragraph("Nothing to rank yet.")])
    per_metric = analysis.ranks.pivot_table(index="objective", columns="metric", values="rank", aggfunc="mean")
    per_metric["overall"] = analysis.ranks.groupby("objective")["rank"].mean()
    per_metric = per_metric.sort_values(["overall"], kind="stable")
    columns = ("rank", "objective", *(f"{m}" for m in analysis.ranked), "mean rank")
    rows = tuple(
        (str(k + 1), objective, *(fmt(per_metric.loc[objective, m], 3) if m in per_metric.columns else "n/a"
                                  for m in analysis.ranked), fmt(per_metric.loc[objective, "overall"], 3))
        for k, objective in enumerate(per_metric.index))
    blocks: list = [
        Paragraph("Within each cell, objectives are ranked per metric by the IQM of the final value (1 = best, ties "
                  "share the average rank); the table averages those ranks over cells, `mean rank` over metrics too."),
        Table(columns, rows)]
    if "ranks" in drawn:
        blocks.append(_image(drawn["ranks"], report_dir))
    return Section("Ranking", blocks=blocks)


def _method_section() -> Section:
    return Section("Method", blocks=[Bullets((
        "Runs: jobs with status `done` or `diverged`; a run's curve of a metric is its finite evaluations, so a "
        "diverged run contributes its last finite evaluation.",
        "Per-run curve summaries (final, best and its step, normalised AUC, last-k spread, steps and wall time to a "
        "threshold, divergence step) are computed by bench.metrics.convergence.",
        "IQM: mean of the middle 50% of runs (scipy.stats.trim_mean, 25% cut from each end).",
        f"Intervals: 95% percentile bootstrap over runs (scipy.stats.bootstrap, {TABLE_RESAMPLES} resamples in tables, "
        f"{CURVE_RESAMPLES} in convergence bands, fixed seed {BOOTSTRAP_SEED}).",
        "Paired test: two-sided Wilcoxon signed-rank on per-seed differences (zero differences dropped); "
        "unpaired: two-sided Mann-Whitney U.",
        "Multiple comparisons: Holm-Bonferroni over every comparison of one metric.",
        "Probability of improvement: P(X > Y) + 0.5 P(X = Y) over all pairs of runs (rliable).",
    ))])
