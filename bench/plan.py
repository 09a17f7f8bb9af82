"""`bench plan SUITE`: what a suite will cost and whether its seeds can decide its comparisons, before
anything runs.

Cost: jobs, generator steps and gradient evaluations, and training time per architecture from the
rough rate tables of bench.preflight, or from the rate measured on this suite's own results (each
job's `train_s` over the steps it reached) where they exist. Evaluations are not counted.

Seeds: the report compares each objective with the baseline within each cell, with a two-sided
Wilcoxon signed-rank test on the seeds both ran, Holm-corrected over the m comparisons of one metric
at alpha = bench.report.analysis.ALPHA. A comparison needs at least

- the smallest n whose minimum attainable p, 2 / 2^n, is below alpha / m (Holm's first step); fewer
  seeds cannot reach significance whatever they show;
- the n with which the test finds a standardized effect d (the mean of the paired differences over
  their standard deviation) with probability POWER at level alpha / m: the normal approximation of
  the paired t-test, n_t = ((z_{1 - alpha/(2m)} + z_power) / d)^2, divided by the Wilcoxon test's
  asymptotic relative efficiency to it under normal differences, 3/pi = 0.955 (Lehmann,
  Nonparametrics, 1975, ch. 4), rounded up;

and the seeds needed are the larger of the two. Objectives that share no seed are compared by the
Mann-Whitney U test: 2 / C(2n, n) for the first bound, and n = 2 n_t per objective (d: the difference
of the means over the common standard deviation) divided by 3/pi for the second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import scipy.stats

from bench.preflight import ROUGH_BATCH, ROUGH_CPU_STEPS_PER_S_OTHER, ROUGH_STEPS_PER_S, rough_work
from bench.report.stats import POWER, min_pvalue_paired, min_pvalue_unpaired
from bench.spec import JobSpec
from bench.suite import Suite

WILCOXON_ARE = 3 / math.pi
"""Asymptotic relative efficiency of the Wilcoxon signed-rank (and Mann-Whitney U) test to the t-test
under normal data: the t-test's sample size divided by this is the rank test's."""
DEFAULT_EFFECT = 0.8
"""The standardized effect `bench plan` sizes seeds for unless told (Cohen's "large")."""


# ------------------------------------------------------------------------------------------------ seeds


def attainable_seeds(alpha: float, comparisons: int, *, paired: bool = True) -> int:
    """The smallest number of seeds (pairs, or runs per objective unpaired) whose minimum attainable
    two-sided p-value (bench.report.stats.min_pvalue_paired / min_pvalue_unpaired) times
    `comparisons` is below `alpha`."""
    def min_p(n: int) -> float:
        return min_pvalue_paired(n) if paired else min_pvalue_unpaired(n, n)

    return next(n for n in range(1, 10_000) if min_p(n) * comparisons < alpha)


def effect_seeds(effect: float, alpha: float, comparisons: int, *, power: float = POWER,
                 paired: bool = True) -> int:
    """Seeds (pairs, or runs per objective unpaired) with which the rank test finds a standardized
    effect `effect` (d > 0) with probability `power` at level `alpha / comparisons`, two-sided:
    `ceil(n_t / (3/pi))` with `n_t = k ((z_{1 - alpha/(2m)} + z_power) / d)^2`, k = 1 paired and 2
    unpaired (see the module doc)."""
    if not effect > 0:
        raise ValueError(f"the effect size must be positive, got {effect!r}")
    z = scipy.stats.norm.ppf(1 - alpha / (2 * comparisons)) + scipy.stats.norm.ppf(power)
    t_test = (1 if paired else 2) * (z / effect) ** 2
    return math.ceil(t_test / WILCOXON_ARE)


@dataclass(frozen=True)
class SeedsNeeded:
    """Seeds one comparison needs: `attainable` for significance to be possible at all, `effect` for
    POWER to find the effect, `needed` the larger."""

    attainable: int
    effect: int

    @property
    def needed(self) -> int:
        return max(self.attainable, self.effect)


def seeds_needed(effect: float, alpha: float, comparisons: int, *, power: float = POWER,
                 paired: bool = True) -> SeedsNeeded:
    return SeedsNeeded(attainable_seeds(alpha, comparisons, paired=paired),
                       effect_seeds(effect, alpha, comparisons, power=power, paired=paired))


@dataclass(frozen=True)
class CellComparisons:
    """The comparisons of one cell: each of `objectives` against the baseline, on `seeds` shared
    seeds each (the fewest, when they differ), paired when every one shares at least one seed.
    `objectives` is empty when the cell has no baseline job."""

    cell: str
    objectives: tuple[str, ...]
    seeds: int
    paired: bool


def _cells_frame(jobs: Sequence[JobSpec]) -> pd.DataFrame:
    """One row per job (job_id, the flat spec, `seed` as int) with the `cell` label the report gives it
    (bench.report.aggregate: the grid axes found in the jobs, the cell being the axes but `objective`)."""
    from bench.report import aggregate as agg

    frame = pd.DataFrame([{"job_id": job.job_id, **job.flat()} for job in jobs])
    frame = frame.assign(seed=frame["seed"].astype("int64"))
    return frame.assign(cell=agg.cell_labels(frame, agg.grid_axes(frame)[1:]))


def cell_comparisons(jobs: Sequence[JobSpec], baseline: str) -> list[CellComparisons]:
    """Every cell of the suite (the report's groups without their objective: bench.report.aggregate's
    grid axes and cell labels) with the comparisons the report will make in it."""
    from bench.report import aggregate as agg

    found = []
    for cell, group in _cells_frame(jobs).groupby("cell", sort=True):
        repeats = agg.repetition_columns(group)  # seeds, and trials in a suite with a search
        seeds = {str(name): set(part[repeats].itertuples(index=False, name=None))
                 for name, part in group.groupby("objective", sort=True)}
        if baseline not in seeds:
            found.append(CellComparisons(str(cell), (), 0, True))
            continue
        others = [str(name) for name in seeds if name != baseline]
        shared = [len(seeds[name] & seeds[baseline]) for name in others]
        paired = all(shared)
        counts = shared if paired else [min(len(seeds[name]), len(seeds[baseline])) for name in others]
        found.append(CellComparisons(str(cell), tuple(others), min(counts, default=0), paired))
    return found


def holm_families(jobs: Sequence[JobSpec], baseline: str) -> dict[str, int]:
    """Ranked metric -> m, the comparisons Holm's correction runs over (each objective against the
    baseline in each cell where both compute the metric)."""
    from bench.metrics import get_evaluator

    ranked = {job.job_id: {info.name for name in job.metrics for info in get_evaluator(name).metrics if info.ranked}
              for job in jobs}
    families: dict[str, int] = {}
    for _, group in _cells_frame(jobs).groupby("cell", sort=True):
        by_objective: dict[str, set[str]] = {}
        for objective, job_id in zip(group["objective"], group["job_id"]):
            by_objective.setdefault(objective, set()).update(ranked[job_id])
        if baseline not in by_objective:
            continue
        for objective, metrics in by_objective.items():
            if objective != baseline:
                for metric in metrics & by_objective[baseline]:
                    families[metric] = families.get(metric, 0) + 1
    return dict(sorted(families.items()))


# ------------------------------------------------------------------------------------------------ time


@dataclass(frozen=True)
class MeasuredRate:
    """A training rate measured on a suite's results: `steps_per_s` in the rate tables' unit
    (generator steps with one critic step at batch ROUGH_BATCH per second of `train_s`), from `jobs`
    job folders that trained `steps` generator steps in `train_s` seconds."""

    steps_per_s: float
    jobs: int
    steps: int
    train_s: float


def measured_rates(suite_dir: Path) -> dict[str, MeasuredRate]:
    """Architecture -> its rate over the job folders of `suite_dir` (a results folder) whose status
    records steps and a training time (train_s, evaluations excluded); {} when there are none."""
    from bench.store import SuiteStore

    store = SuiteStore(suite_dir)
    sums: dict[str, list[float]] = {}
    for job_id in store.job_ids():
        job = store.job(job_id)
        spec = job.read_spec()
        status = job.read_status()
        step, train_s = status.get("step"), status.get("train_s")
        if spec is None or not step or not train_s or train_s <= 0:
            continue
        total = sums.setdefault(spec.arch, [0, 0.0, 0, 0.0])
        total[0] += 1
        total[1] += step * rough_work(spec)
        total[2] += int(step)
        total[3] += float(train_s)
    return {arch: MeasuredRate(work / seconds, int(jobs), int(steps), seconds)
            for arch, (jobs, work, steps, seconds) in sorted(sums.items())}


@dataclass(frozen=True)
class ArchTime:
    """Training time of the suite's jobs on one architecture: `work` in steps of the rate tables
    (bench.preflight.rough_work), and seconds per device kind (None where no rate is known)."""

    arch: str
    jobs: int
    generator_steps: int
    work: float
    cpu_rate: float
    gpu_rate: float | None
    measured: MeasuredRate | None

    def seconds(self, device: str) -> float | None:
        """Training seconds on `device` ("cpu", "gpu", or "measured")."""
        rate = {"cpu": self.cpu_rate, "gpu": self.gpu_rate,
                "measured": self.measured.steps_per_s if self.measured else None}[device]
        return None if rate is None else self.work / rate


def arch_times(jobs: Sequence[JobSpec], measured: Mapping[str, MeasuredRate]) -> list[ArchTime]:
    """Per architecture of `jobs`, its work and rates: the rough tables' and the measured one."""
    found = []
    for arch in sorted({job.arch for job in jobs}):
        mine = [job for job in jobs if job.arch == arch]
        found.append(ArchTime(
            arch=arch, jobs=len(mine), generator_steps=sum(job.steps for job in mine),
            work=sum(job.steps * rough_work(job) for job in mine),
            cpu_rate=ROUGH_STEPS_PER_S["cpu"].get(arch, ROUGH_CPU_STEPS_PER_S_OTHER),
            gpu_rate=ROUGH_STEPS_PER_S["gpu"].get(arch), measured=measured.get(arch)))
    return found


def duration_text(seconds: float | None) -> str:
    """`45 s`, `12 min`, `3.4 h`, `1,234 h`; `n/a` without a rate."""
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600
    return f"{hours:,.0f} h" if hours >= 100 else f"{hours:.1f} h"


# ------------------------------------------------------------------------------------------------ text


def _alpha() -> float:
    from bench.report.analysis import ALPHA

    return ALPHA


def plan_lines(suite: Suite, *, effect: float = DEFAULT_EFFECT, results_root: Path = Path("results")) -> list[str]:
    """What `bench plan` prints for `suite`, one line per item: cost, then seeds against what the
    comparisons need."""
    from bench.run import table

    jobs = list(suite.jobs)
    steps = sum(job.steps for job in jobs)
    grad_evals = sum(job.steps * (job.critic_steps + 1) for job in jobs)
    lines = [f"suite {suite.name}: {len(jobs)} jobs, {steps:,} generator steps "
             f"({grad_evals:,} gradient evaluations: generator steps x (critic_steps + 1))", ""]

    suite_dir = results_root / suite.name
    measured = measured_rates(suite_dir)
    times = arch_times(jobs, measured)
    rows = [{"arch": t.arch, "jobs": t.jobs, "generator steps": f"{t.generator_steps:,}",
             "rough CPU rate": f"{t.cpu_rate:g}", "CPU time": duration_text(t.seconds("cpu")),
             "rough GPU rate": "n/a" if t.gpu_rate is None else f"{t.gpu_rate:g}",
             "GPU time": duration_text(t.seconds("gpu")),
             **({"measured rate": f"{t.measured.steps_per_s:.3g}" if t.measured else "n/a",
                 "measured time": duration_text(t.seconds("measured"))} if measured else {})}
            for t in times]
    columns = ["arch", "jobs", "generator steps", "rough CPU rate", "CPU time", "rough GPU rate", "GPU time"]
    columns += ["measured rate", "measured time"] if measured else []
    lines += ["training time, one job at a time (evaluations not counted):", *table(rows, columns).splitlines(), ""]

    def total(device: str) -> str:
        seconds = [t.seconds(device) for t in times]
        return "n/a" if any(s is None for s in seconds) else duration_text(sum(s for s in seconds if s is not None))

    at_measured = ""
    if measured:
        seconds = sum(t.seconds("measured" if t.measured else "cpu") or 0.0 for t in times)
        where = "" if all(t.measured for t in times) else " where there is one and the rough CPU rate elsewhere"
        at_measured = f", at the measured rate{where} {duration_text(seconds)}"
    lines.append(f"total: CPU {total('cpu')}, GPU {total('gpu')}{at_measured}.")
    no_gpu = [t.arch for t in times if t.gpu_rate is None]
    lines.append(
        f"Rates are generator steps per second at one critic step and batch {ROUGH_BATCH}, one job using one "
        f"core or one GPU, at the architecture's default width; a job's time scales with (critic_steps + 1) / 2, "
        f"batch / {ROUGH_BATCH} and, for the convolutional architectures, (width / default width)^2. The rough "
        "rates are bench.preflight's tables, measured with bench.train.steps_per_second on one core of a small "
        f"cloud VM (other architectures: {ROUGH_CPU_STEPS_PER_S_OTHER:g})"
        + (f"; no GPU rate has been measured for {', '.join(no_gpu)} (n/a)" if no_gpu else "")
        + ". They are rough: a machine may be several times faster or slower.")
    if measured:
        parts = [f"{arch} {rate.steps_per_s:.3g} ({rate.jobs} jobs, {rate.steps:,} steps in {rate.train_s:,.1f} s)"
                 for arch, rate in measured.items()]
        lines.append(f"Measured on this suite's results under {suite_dir} (train_s over the steps each job "
                     f"reached, on whatever machine ran them), used instead of the rough rates: {'; '.join(parts)}.")
    lines.append("")
    lines += _seed_lines(suite, effect)
    return lines


def _seed_lines(suite: Suite, effect: float) -> list[str]:
    from bench.run import table

    jobs = list(suite.jobs)
    alpha = _alpha()
    baseline = suite.config.report.baseline
    objectives = sorted({job.objective for job in jobs})
    if baseline not in objectives:
        return [f"seeds: no comparisons, the baseline {baseline!r} is not among the objectives "
                f"({', '.join(objectives)})."]
    families = holm_families(jobs, baseline)
    cells = cell_comparisons(jobs, baseline)
    if not families:
        return [f"seeds: no comparisons (no cell has {baseline} beside another objective with a ranked metric)."]
    lines = []
    by_m: dict[int, list[str]] = {}
    for metric, m in families.items():
        by_m.setdefault(m, []).append(metric)
    m = max(by_m)
    metrics_text = "; ".join(f"m = {count} for {', '.join(names)}" for count, names in sorted(by_m.items()))
    lines.append(f"seeds: each objective against {baseline} within each cell, two-sided, alpha = {alpha:g}, Holm over "
                 f"the comparisons of one metric ({metrics_text}); sized for the largest m = {m}, {POWER:.0%} power "
                 f"and a standardized effect d = {effect:g}:")
    rows = []
    for paired in sorted({cell.paired for cell in cells if cell.objectives}, reverse=True):
        need = seeds_needed(effect, alpha, m, paired=paired)
        z = scipy.stats.norm.ppf(1 - alpha / (2 * m)) + scipy.stats.norm.ppf(POWER)
        formula = "ceil(((z_{1-alpha/(2m)} + z_power) / d)^2 / (3/pi))" if paired else \
            "ceil(2 ((z_{1-alpha/(2m)} + z_power) / d)^2 / (3/pi))"
        worked = f"ceil({'' if paired else '2 '}({z:.4f} / {effect:g})^2 / {WILCOXON_ARE:.4f})"
        if paired:
            lines += ["  paired Wilcoxon signed-rank, per comparison:",
                      f"    attainable: 2/2^n < alpha/m = {alpha / m:.4g} from n = {need.attainable} "
                      f"(2/2^{need.attainable} = {min_pvalue_paired(need.attainable):.4g}"
                      + (f", 2/2^{need.attainable - 1} = {min_pvalue_paired(need.attainable - 1):.4g}"
                         if need.attainable > 1 else "") + ")"]
        else:
            lines += ["  Mann-Whitney U (objectives that share no seed), per comparison:",
                      f"    attainable: 2/C(2n, n) < alpha/m = {alpha / m:.4g} from n = {need.attainable} runs "
                      "per objective"]
        lines += [f"    effect d = {effect:g}: {formula} = {worked} = {need.effect}",
                  f"    needed: {need.needed} {'paired seeds' if paired else 'runs per objective'}"]
    short = undecidable = 0
    for cell in cells:
        if not cell.objectives:
            rows.append({"cell": cell.cell, "compared": f"none (no {baseline} job)", "seeds": "-", "needed": "-",
                         "enough": "-"})
            continue
        need = seeds_needed(effect, alpha, m, paired=cell.paired)
        enough = cell.seeds >= need.needed
        short += 0 if enough else len(cell.objectives)
        undecidable += len(cell.objectives) if cell.seeds < need.attainable else 0
        verdict = "yes" if enough else ("no, undecidable" if cell.seeds < need.attainable else "no, underpowered")
        rows.append({"cell": cell.cell, "compared": f"{len(cell.objectives)} vs {baseline}",
                     "seeds": f"{cell.seeds}{'' if cell.paired else ' unpaired'}", "needed": str(need.needed),
                     "enough": verdict})
    lines += table(rows, ["cell", "compared", "seeds", "needed", "enough"]).splitlines()
    total = sum(len(cell.objectives) for cell in cells)
    if short:
        lines.append(f"Not enough for {short} of the {total} comparisons: {undecidable} have fewer seeds than the "
                     "attainable bound, so they are undecidable whatever the runs show; "
                     f"{short - undecidable} can reach significance but have under {POWER:.0%} power at d = "
                     f"{effect:g}.")
    else:
        lines.append(f"Enough: each of the {total} comparisons has the seeds it needs.")
    return lines
