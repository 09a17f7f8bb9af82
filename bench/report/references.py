"""Published values beside bench's estimates: each `report.references` entry of a suite, matched to
the groups of jobs its `where` selects (bench.suite.reference_matches), with the survivors' mean and
its 95% Student-t interval, the median, n and survival, whether the published value lies inside the
interval, and what bench's jobs do differently from the paper's setting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.report.analysis import Analysis
from bench.report.load import SuiteResults
from bench.report.render import Paragraph, Section, Table
from bench.report.stats import mean_ci
from bench.report.summary import score_text
from bench.spec import JobSpec
from bench.store import SuiteStore
from bench.suite import Reference, reference_matches

INSIDE, OUTSIDE = "inside", "outside"
ONE_RUN = "no interval at n=1"
NO_SURVIVOR = "no surviving runs"
NO_RUN = "no finished runs"
VERDICTS = (INSIDE, OUTSIDE, ONE_RUN, NO_SURVIVOR, NO_RUN)
"""Where a published value falls against bench's 95% t-interval of the survivors' mean: inside or
outside it; no interval with one survivor; none with no survivor (every run diverged, failed or failed
to train) or no run that has ended."""


@dataclass(frozen=True)
class Estimate:
    """bench's estimate for one group (objective and cell) that a reference selects.

    `jobs`: the selected jobs of the group; `runs`: those with an outcome (done, diverged, failed);
    `survived`: surviving runs; `n`: survivors with a final value of the metric, over which `mean`
    and its 95% Student-t interval `mean_lo`, `mean_hi` are taken (NaN below 2); `median` is over
    the runs the report's own median of that metric uses (every run, one that did not survive
    scoring the worst outcome, for a ranked metric; survivors otherwise). Units: the metric's.
    `differences`: what these jobs do differently from the reference's `steps` and `samples`.
    """

    objective: str
    cell: str
    jobs: int
    runs: int
    survived: int
    n: int
    mean: float
    mean_lo: float
    mean_hi: float
    median: float
    verdict: str
    differences: tuple[str, ...]


@dataclass(frozen=True)
class Reproduction:
    """One reference and bench's estimates for the groups it selects (in the report's order; empty
    when it selects no job of these results). `note` says why there is no estimate at all."""

    reference: Reference
    estimates: tuple[Estimate, ...]
    note: str = ""

    @property
    def title(self) -> str:
        return self.reference.paper + (f", {self.reference.table}" if self.reference.table else "")


def verdict(value: float, n: int, runs: int, low: float, high: float) -> str:
    """Where `value` falls against the interval [low, high] of a mean over `n` survivors of `runs` runs."""
    if runs == 0:
        return NO_RUN
    if n == 0:
        return NO_SURVIVOR
    if n == 1:
        return ONE_RUN
    return INSIDE if low <= value <= high else OUTSIDE


def _specs(results: SuiteResults, job_ids: Sequence[str]) -> dict[str, JobSpec]:
    store = SuiteStore(results.suite_dir)
    found = {job_id: store.job(job_id).read_spec() for job_id in job_ids}
    return {job_id: spec for job_id, spec in found.items() if spec is not None}


def _samples(spec: JobSpec, metric: str) -> int | None:
    """Generated samples per evaluation of the evaluator of `spec` that reports `metric` (None when it
    takes no sample count)."""
    from bench.metrics import get_evaluator
    from bench.metrics.provenance import evaluator_options

    for name in spec.metrics:
        evaluator = get_evaluator(name)
        if metric in [info.name for info in evaluator.metrics]:
            samples = evaluator_options(spec, evaluator).get("samples")
            return None if samples is None else int(samples)
    return None


def differences(reference: Reference, specs: Sequence[JobSpec]) -> tuple[str, ...]:
    """Where `specs` (the selected jobs of one group) differ from the paper's `steps` (generator steps
    per run) and `samples` (generated samples per evaluation of the metric), when the reference gives them."""
    found = []
    if reference.steps is not None:
        steps = sorted({spec.steps for spec in specs})
        if steps != [reference.steps]:
            found.append(f"generator steps per run: bench {' / '.join(f'{s:,}' for s in steps)}, "
                         f"the paper {reference.steps:,}")
    if reference.samples is not None:
        counts = sorted({_samples(spec, reference.metric) for spec in specs}, key=lambda c: -1 if c is None else c)
        if counts != [reference.samples]:
            shown = " / ".join("no sample count" if c is None else f"{c:,}" for c in counts)
            found.append(f"generated samples per evaluation of {reference.metric}: bench {shown}, "
                         f"the paper {reference.samples:,}")
    return tuple(found)


def compare_references(results: SuiteResults, analysis: Analysis) -> list[Reproduction]:
    """Every reference of the suite's `report.references` beside bench's estimate for each group
    (objective and cell) of the jobs its `where` selects among `analysis.jobs`."""
    references = results.report_config.references
    if not references:
        return []
    specs = _specs(results, list(analysis.jobs["job_id"]))
    found = []
    for reference in references:
        selected = [job_id for job_id, spec in specs.items() if reference_matches(reference.where, spec)]
        metric = reference.metric
        if not selected:
            found.append(Reproduction(reference, (), "it selects no job of these results"))
            continue
        if metric not in analysis.ranked and metric not in analysis.shown:
            found.append(Reproduction(reference, (), (
                f"no ended run has reported `{metric}` with a direction this report knows")))
            continue
        found.append(Reproduction(reference, tuple(_estimates(reference, analysis, selected, specs))))
    return found


def _estimates(reference: Reference, analysis: Analysis, selected: Sequence[str],
               specs: dict[str, JobSpec]) -> list[Estimate]:
    metric = reference.metric
    ranked = metric in analysis.ranked
    jobs = analysis.jobs.loc[analysis.jobs["job_id"].isin(selected), ["job_id", "objective", "cell"]]
    runs = analysis.runs if ranked else analysis.shown_runs
    finals = runs.loc[runs["metric"] == metric].set_index("job_id")["final"]
    scores = analysis.scores.loc[analysis.scores["metric"] == metric].set_index("job_id")["score"]
    outcomes = analysis.outcomes.set_index("job_id")
    order = {name: k for k, name in enumerate(analysis.objectives)}
    groups = jobs.assign(_order=jobs["objective"].map(order)).sort_values(["cell", "_order"], kind="stable")
    estimates = []
    for (cell, objective), group in groups.groupby(["cell", "objective"], sort=False):
        ended = outcomes.loc[outcomes.index.intersection(list(group["job_id"]))]
        survivors = ended.index[ended["survived"].to_numpy(dtype=bool)]
        values = finals.reindex(survivors).dropna().to_numpy(dtype=float)
        mean = float(values.mean()) if values.size else float("nan")
        low, high = (float(bound) for bound in mean_ci(values)) if values.size else (float("nan"), float("nan"))
        if ranked and not analysis.survivors_only:
            counted = scores.reindex(ended.index).dropna().to_numpy(dtype=float)
        else:
            counted = values
        estimates.append(Estimate(
            objective=str(objective), cell=str(cell), jobs=len(group), runs=len(ended), survived=len(survivors),
            n=values.size, mean=mean, mean_lo=low, mean_hi=high,
            median=float(np.median(counted)) if counted.size else float("nan"),
            verdict=verdict(reference.value, values.size, len(ended), low, high),
            differences=differences(reference, [specs[job_id] for job_id in group["job_id"]]),
        ))
    return estimates


def _where_text(value: object) -> str:
    """A `where` value as a suite writes it: lists in brackets, true/false in lower case."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_where_text(item) for item in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _interval(estimate: Estimate) -> str:
    if np.isnan(estimate.mean_lo):
        return "n/a"
    return f"[{score_text(estimate.mean_lo)}, {score_text(estimate.mean_hi)}]"


def _survival(estimate: Estimate) -> str:
    unfinished = estimate.jobs - estimate.runs
    return f"{estimate.survived}/{estimate.runs}" + (f" ({unfinished} unfinished)" if unfinished else "")


def _estimate_text(estimate: Estimate) -> str:
    if estimate.verdict == NO_RUN:
        return f"{estimate.objective} on {estimate.cell}: {NO_RUN} ({estimate.jobs} jobs unfinished)"
    if estimate.verdict == NO_SURVIVOR:
        return (f"{estimate.objective} on {estimate.cell}: {NO_SURVIVOR} ({_survival(estimate)} survived), "
                f"median {score_text(estimate.median)}")
    interval = f" {_interval(estimate)}" if estimate.n > 1 else ""
    text = (f"{estimate.objective} on {estimate.cell}: survivors' mean {score_text(estimate.mean)}{interval} "
            f"(n={estimate.n}, {_survival(estimate)} survived), median {score_text(estimate.median)}: "
            f"{estimate.verdict}")
    if estimate.differences:
        text += "; differs: " + "; ".join(estimate.differences)
    return text


def summary_line(reproduction: Reproduction) -> str:
    """One line for the report's summary: the published value and bench's estimate for each group."""
    reference = reproduction.reference
    head = f"{reproduction.title}: {reference.metric} {reference.value:g} published"
    if not reproduction.estimates:
        return f"{head}; {reproduction.note}."
    return f"{head}; bench " + "; ".join(_estimate_text(e) for e in reproduction.estimates) + "."


def summary_lines(reproductions: Sequence[Reproduction]) -> list[str]:
    return [summary_line(reproduction) for reproduction in reproductions]


def reproductions_section(reproductions: Sequence[Reproduction], analysis: Analysis) -> Section:
    """The report's "Reproductions" section: per reference, its source and the paper's setting, then
    one row per group it selects."""
    median_over = ("survivors" if analysis.survivors_only else
                   "every run for a ranked metric (a run that did not survive scoring the worst outcome, shown as "
                   "`worst` where it decides the number), survivors for a metric shown but never ranked")
    blocks: list = [Paragraph(
        "Published values (references of the suite's `report.references`, each with the confidence label of its "
        "source) beside bench's estimate for each group of jobs the reference selects. Survivors' mean with its 95% "
        f"Student-t interval over the n surviving runs with a final value; median over {median_over}. `inside` / "
        f"`outside`: whether the published value lies in that interval; `{ONE_RUN}` with one survivor, "
        f"`{NO_SURVIVOR}` when every ended run diverged, failed or failed to train, `{NO_RUN}` when none has "
        "ended. The interval is for bench's mean: a published single run can fall outside it by its own seed's "
        "luck alone. `Differs` names where bench's jobs depart from the steps and samples the reference gives; "
        "the paper's setting is quoted as written in the suite.")]
    columns = ("objective", "cell", "survived", "n", "survivors' mean", "mean 95% CI (t)", "median", "published",
               "published value is", "differs from the paper")
    for reproduction in reproductions:
        reference = reproduction.reference
        where = ", ".join(f"{key}={_where_text(value)}" for key, value in reference.where.items())
        text = (f"{reproduction.title}: `{reference.metric}` = {reference.value:g}. Selects {where}. "
                f"Source: {reference.source}.")
        if reference.setting:
            text += f" The paper's setting: {reference.setting}."
        blocks.append(Paragraph(text))
        if not reproduction.estimates:
            blocks.append(Paragraph(f"No estimate: {reproduction.note}."))
            continue
        rows = tuple(
            (e.objective, e.cell, _survival(e), str(e.n), score_text(e.mean), _interval(e), score_text(e.median),
             f"{reference.value:g}", e.verdict, "; ".join(e.differences) or "none known")
            for e in reproduction.estimates)
        blocks.append(Table(columns, rows))
    return Section("Reproductions", blocks=blocks)
