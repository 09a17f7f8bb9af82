"""`bench run` as one function, `run_suite`: load and check a suite, plan its jobs, run them, report.

The order is the contract: everything that can be found wrong with the request (the suite file,
the command-line settings, this machine: see bench.preflight) is found and raised as one error
BEFORE anything is written; only then are the results folder, the job specs, the MLflow parent
run and the jobs made. A second run skips complete jobs and resumes interrupted ones.

    outcome = run_suite(RunRequest(Path("suites/quickstart.yaml")))
    outcome.failed, outcome.interrupted, outcome.counts

Raises bench.suite.SuiteError (and its bench.preflight.PreflightError) for bad input.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.spec import JobSpec
from bench.suite import Suite


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class RunRequest:
    """What `bench run` was asked: the suite file and the settings that override the suite's.

    `None` means "the suite's value" (`executor`, `max_parallel`, `threads`, `profile`, `wait`).
    `only` cuts the suite to the jobs that match its filters (bench.suite.select_jobs).
    """

    suite: Path
    executor: str | None = None
    max_parallel: int | None = None
    threads: int | None = None
    profile: Path | None = None
    results: Path = Path("results")
    wait: bool | None = None
    tracking: bool = True
    report: bool = True
    progress: bool = True
    dry_run: bool = False
    only: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: job counts by status in the results folder, and whether it was interrupted
    or left jobs with a scheduler (`submitted`, not waited on)."""

    suite_dir: Path
    jobs: int
    counts: Mapping[str, int] = field(default_factory=dict)
    interrupted: bool = False
    submitted: int = 0

    @property
    def failed(self) -> bool:
        from bench.store import Status

        return bool(self.counts.get(Status.FAILED))


def run_suite(request: RunRequest, *, echo: Callable[[str], None] = print,
              warn: Callable[[str], None] = _to_stderr) -> RunOutcome:
    """Run the suite of `request` (see the module docstring); `echo` gets progress lines, `warn`
    warnings. With `dry_run`, prints the grid and the metrics' protocols, runs the checks and
    returns without writing anything."""
    from bench.catalogue import build_catalogue
    from bench.launch import EXECUTORS, default_paths
    from bench.preflight import PreflightError, preflight
    from bench.suite import load_suite, select_jobs

    whole = load_suite(request.suite, build_catalogue())
    suite = select_jobs(whole, request.only)
    if request.only:
        filters = " ".join(f"{key}={','.join(values)}" for key, values in request.only)
        echo(f"--only {filters}: {len(suite.jobs)} of the suite's {len(whole.jobs)} jobs")
    config = suite.config
    executor = request.executor or config.executor.name
    entry = EXECUTORS.get(executor)
    max_parallel = request.max_parallel or config.executor.max_parallel
    results_root = Path(request.results).resolve()
    paths = default_paths(results_root)
    suite_dir = results_root / suite.name
    for flag, key, given in (("--max-parallel", "max_parallel", request.max_parallel),
                             ("--profile", "profile", request.profile),
                             ("--wait/--no-wait", "wait", request.wait)):
        if given is not None and key not in entry.options:
            warn(f"warning: {flag} has no effect with the {executor} executor")
    stack_seeds = config.executor.stack_seeds if "stack_seeds" in entry.options else 1
    if config.executor.stack_seeds > 1 and stack_seeds == 1:
        warn(f"warning: executor.stack_seeds has no effect with the {executor} executor: its jobs run one by one")
    if request.dry_run:
        print_plan(suite, echo, stack_seeds=stack_seeds)
    try:
        checked = preflight(suite, executor=executor, profile_path=request.profile, results_root=results_root,
                            data_root=paths.data_root, max_parallel=max_parallel,
                            tracking_uri=_tracking_uri(suite, results_root) if request.tracking else None)
    except PreflightError as error:
        for line in error.warnings:
            warn(line)
        raise
    for line in checked.warnings:
        warn(line)
    if request.dry_run:
        return RunOutcome(suite_dir=suite_dir, jobs=len(suite.jobs))
    return _run(suite, request, executor=executor, profile=checked.profile, max_parallel=max_parallel,
                stack_seeds=stack_seeds, results_root=results_root, echo=echo, warn=warn)


def _run(suite: Suite, request: RunRequest, *, executor: str, profile: Any, max_parallel: int, stack_seeds: int,
         results_root: Path, echo: Callable[[str], None], warn: Callable[[str], None]) -> RunOutcome:
    from bench.launch import default_paths, launch, plan_jobs, stop_requested
    from bench.store import Status, SuiteStore

    config = suite.config
    jobs = list(suite.jobs)
    suite_dir = results_root / suite.name
    suite_store = SuiteStore(suite_dir)
    slurm_states, unanswered = _slurm_view(suite_store, warn)
    plan = plan_jobs(jobs, suite_store, slurm_states, slurm_unanswered=unanswered)
    suite_store.write_suite_yaml(suite.text)
    echo(f"suite {suite.name}: {len(jobs)} jobs: {len(plan.complete)} complete, {len(plan.live)} running "
         f"elsewhere, {len(plan.resume)} to resume, {len(plan.fresh)} to start ({executor} executor)")
    for job in plan.fresh:
        store = suite_store.job(job.job_id)
        store.write_spec(job)
        if not store.status_path.exists():
            store.write_status(Status.PENDING)

    tracking = None
    if config.tracking.enabled and request.tracking:
        tracking = _suite_tracking(suite, results_root)
    submitted = 0
    if not plan.to_run:
        echo("nothing to train: every job is complete" if not plan.live else
             "nothing to start: the remaining jobs are running")
    else:
        started = time.perf_counter()
        try:
            statuses = launch(plan.to_run, suite_dir=suite_dir, paths=default_paths(results_root), tracking=tracking,
                              executor=executor, max_parallel=max_parallel,
                              threads=request.threads or config.executor.threads_per_job,
                              progress=request.progress, profile=profile,
                              wait=config.executor.wait if request.wait is None else request.wait, echo=echo,
                              stack_seeds=stack_seeds)
        except KeyboardInterrupt:
            return RunOutcome(suite_dir=suite_dir, jobs=len(jobs), interrupted=True)
        if stop_requested():
            return RunOutcome(suite_dir=suite_dir, jobs=len(jobs), interrupted=True)
        submitted = sum(1 for status in statuses.values() if status == "submitted")
        if submitted:
            echo(f"{submitted} jobs were handed to the {executor} executor and go on without this process: follow "
                 f"them with `bench status {_shown_path(suite_dir)}`; once they end, "
                 f"`bench report {_shown_path(suite_dir)}` builds the report")
        else:
            echo(f"ran {len(plan.to_run)} jobs in {time.perf_counter() - started:.1f}s")
    if tracking is not None:
        _flush_missing(plan.complete, suite_store, tracking)
    counts = summarise(suite_store, jobs, echo)
    if request.report and not submitted:
        build_report(suite_dir, echo)
    return RunOutcome(suite_dir=suite_dir, jobs=len(jobs), counts=counts, submitted=submitted)


def _shown_path(path: Path) -> str:
    """`path` relative to the working directory when it lies under it (as a user would type it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _slurm_view(suite_store: Any, warn: Callable[[str], None]) -> tuple[dict[str, str] | None, bool]:
    """sacct's states of the store's unfinished SLURM jobs, and whether sacct was asked and failed
    (then the jobs recorded as submitted are left alone)."""
    from bench.store import COMPLETE_STATUSES

    recorded = [suite_store.job(job_id).read_status() for job_id in suite_store.job_ids()]
    if not any(status.get("slurm_job_id") and status["status"] not in COMPLETE_STATUSES for status in recorded):
        return None, False
    from bench.launch import slurm

    states = slurm.store_states(suite_store, warn)
    return states, states is None and slurm.slurm_available()


def _tracking_uri(suite: Suite, results_root: Path) -> str | None:
    from bench.tracking import default_tracking_uri

    if not suite.config.tracking.enabled:
        return None
    return suite.config.tracking.uri or default_tracking_uri(results_root)


def _suite_tracking(suite: Suite, results_root: Path) -> Any:
    """The suite's MLflow target, its parent run opening in the background (bench.launch.SuiteTracking)."""
    from bench.launch import SuiteTracking, TrackingTarget
    from bench.suite import varying_fields

    config = suite.config
    jobs = list(suite.jobs)
    uri = _tracking_uri(suite, results_root)
    assert uri is not None  # tracking is enabled
    artifact_root = None if uri.startswith("http") else results_root / "mlartifacts"
    datasets = ",".join(dict.fromkeys(job.dataset for job in jobs))
    pending = TrackingTarget(uri=uri, experiment=config.tracking.experiment, parent_run_id=None,
                             artifact_root=artifact_root, varying=tuple(_compared_keys(suite, varying_fields(jobs))),
                             suite=suite.name)
    return SuiteTracking(pending, {"suite": suite.name, "jobs": str(len(jobs)), "dataset": datasets})


def _compared_keys(suite: Suite, varying: Sequence[str]) -> list[str]:
    """The flat spec keys the suite compares: those its grid axes and include rules set, where they
    vary. A key that varies only with another axis (an objective's published lr, a dataset's
    options) is not among them, so MLflow run names stay short: `rsgan / mlp / seed 0 / dataset=ring8`."""
    from bench.suite import set_columns

    return [key for key in set_columns(suite.config.grid, suite.config.include) if key in varying]


def _flush_missing(complete: Sequence[JobSpec], suite_store: Any, tracking: Any) -> None:
    from bench.launch import flush_to_mlflow

    for job in complete:
        store = suite_store.job(job.job_id)
        if not store.read_status().get("mlflow_run_id"):
            flush_to_mlflow(store, tracking)


def summarise(suite_store: Any, jobs: Sequence[JobSpec], echo: Callable[[str], None] = print) -> dict[str, int]:
    """Print the jobs' statuses (counts, then each failed or diverged job with its reason); the counts."""
    from bench.store import Status

    statuses = [suite_store.job(job.job_id).read_status() for job in jobs]
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status["status"]] = counts.get(status["status"], 0) + 1
    echo("status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for job, status in zip(jobs, statuses, strict=True):
        if status["status"] in (Status.FAILED, Status.DIVERGED):
            echo(f"  {job.job_id} {job.objective}/{job.arch}/seed {job.seed}: {status['status']}: "
                 f"{status.get('reason')}")
    return counts


def build_report(suite_dir: Path, echo: Callable[[str], None] = print) -> None:
    """Build the report of a results folder and print where it is and its opening summary."""
    from bench.report import build_report as build

    started = time.perf_counter()
    result = build(suite_dir)
    echo(f"report: {result.markdown} ({time.perf_counter() - started:.1f}s)")
    print_summary(result.summary, echo)


def print_summary(lines: Sequence[str], echo: Callable[[str], None] = print) -> None:
    """The report's opening answer (ReportResult.summary), as `bench report` and `bench run` print it."""
    if lines:
        echo("\nsummary:")
        echo("\n".join(lines))


# ------------------------------------------------------------------------------------------------ dry run


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """Rows as a plain text table under a header and a rule, columns padded to their widest cell."""
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip(),
             "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)


def print_plan(suite: Suite, echo: Callable[[str], None] = print, *, stack_seeds: int = 1) -> None:
    """The expanded grid (one row per job, the columns that vary), what each metric measures and
    with which protocol, how the jobs are grouped when seeds are stacked (`stack_seeds` > 1; stacking
    is not part of a job's id: a stacked seed computes what its job alone does), and the job count last."""
    from bench.suite import varying_fields

    jobs = list(suite.jobs)
    leading = ["objective", "arch", "seed"]
    columns = ["job_id"] + leading + [c for c in varying_fields(jobs) if c not in leading]
    echo(table([{"job_id": job.job_id, **job.flat()} for job in jobs], columns))
    protocols = metric_protocols(jobs)
    if protocols:
        echo("\nmetrics (what each evaluation measures, and its protocol):")
        echo("\n".join(protocols))
    if stack_seeds > 1:
        from bench.launch import stacking_lines
        from bench.stacked import seed_groups

        groups = seed_groups(jobs, stack_seeds)
        echo(f"\ngrouping (executor stack_seeds {stack_seeds}): {len(groups)} units for {len(jobs)} jobs")
        echo("\n".join(stacking_lines(groups)))
    echo(f"\n{len(jobs)} jobs")


def metric_protocols(jobs: Sequence[JobSpec]) -> list[str]:
    """For each distinct metric setup of the jobs (evaluator, its options, dataset): what it
    measures and its protocol (extractor, weights, generated and real samples, resolution,
    schedule), from bench.metrics.provenance on one job of that setup."""
    from bench.metrics import get_evaluator
    from bench.metrics.provenance import evaluator_options, metric_provenance

    setups: dict[tuple[Any, ...], JobSpec] = {}
    schedules: dict[tuple[Any, ...], set[tuple[int, int]]] = {}
    for job in jobs:
        for name in job.metrics:
            options = evaluator_options(job, get_evaluator(name))
            key = (name, repr(sorted(options.items())), job.dataset, job.dataset_options)
            setups.setdefault(key, job)
            schedules.setdefault(key, set()).add((job.eval_every, job.steps))
    datasets = {job.dataset for job in jobs}
    lines: list[str] = []
    for key, job in setups.items():
        name = key[0]
        evaluator = get_evaluator(name)
        (row,) = [row for row in metric_provenance(job) if row["metric"] == name]
        on = f" (dataset {job.dataset})" if len(datasets) > 1 else ""
        lines.append(f"  {name}{on}: {evaluator.description}")
        lines.append(f"    reports        {', '.join(info.name for info in evaluator.metrics)}")
        for column in ("extractor", "weights", "generated", "real", "resolution", "torch_fidelity"):
            if row[column] != "n/a":
                label = column.replace("_", "-")
                value = f"{row[column]} samples per evaluation" if column == "generated" else row[column]
                lines.append(f"    {label:<14} {value}")
        every = sorted(schedules[key])
        lines.append("    schedule       " + "; ".join(
            f"every {eval_every:,} steps over {steps:,} ({1 + -(-steps // eval_every)} evaluations per job)"
            for eval_every, steps in every))
    return lines
