"""Checks a loaded suite must pass on this machine before `bench run` writes or starts anything.

`preflight` collects every problem (a baseline or threshold naming nothing the suite computes, a
dataset whose files are absent and cannot be fetched, a GPU asked for where there is none, a
scheduler that is not there, a feature extractor's weights missing, results that another spec
made, a results root that cannot be written) and raises ONE `PreflightError` listing them, each
with its place in the suite file, what is missing and how to provide it. What is only worth
knowing (a large suite about to run on CPU) comes back as warnings; the run goes on.

Nothing here downloads, trains or writes: a download host is only asked whether it answers.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from bench.spec import JobSpec
from bench.suite import Problem, Suite, SuiteError, _line_index, dataset_configs

if TYPE_CHECKING:
    from bench.data import HostCheck

# Rough CPU training speed per architecture family: generator steps per second with one critic
# step at batch 64, one torch thread, each architecture at its default options on 32 px images (mlp:
# 2-D points), measured with bench.train.steps_per_second on one core of a small cloud VM. They size a
# warning and `bench plan`'s estimate, nothing more: evaluations are not counted, and a machine may be
# several times faster.
ROUGH_CPU_STEPS_PER_S: Mapping[str, float] = {"mlp": 100.0, "dcgan": 1.0, "resnet": 0.05, "standard-cnn": 0.3}
ROUGH_CPU_STEPS_PER_S_OTHER = 0.3  # an architecture not listed above
# A convolutional network's work grows with the square of its channel width (ngf = ndf), so a job at
# another `width` costs (width / default width)^2 of the rate's: dcgan at width 16 on 32 px digits
# measured 15-16 generator steps/s on one core (suites/sngan_vs_rsgan.yaml), the table's 1 x (64/16)^2.
# The MLP's small layers are bound by per-step overhead, not by width, so its rate is not scaled.
ROUGH_WIDTH_EXPONENT: Mapping[str, float] = {"dcgan": 2.0, "resnet": 2.0, "standard-cnn": 2.0}
# The same on a GPU: none measured yet, so GPU time is estimated only from a suite's own results
# (`bench plan` reads their train_s); add an architecture here once measured, saying where.
ROUGH_GPU_STEPS_PER_S: Mapping[str, float] = {}
ROUGH_STEPS_PER_S: Mapping[str, Mapping[str, float]] = {"cpu": ROUGH_CPU_STEPS_PER_S, "gpu": ROUGH_GPU_STEPS_PER_S}
ROUGH_BATCH = 64
# a suite estimated to need more CPU time than this gets the warning
LARGE_CPU_SUITE_S = 3600.0

NETWORK_TIMEOUT_S = 3.0


class PreflightError(SuiteError):
    """Everything that stops a suite from running on this machine, found before anything was written;
    same format as a SuiteError (file, then one line per problem with its place in the file).
    `warnings` are what the checks found worth saying besides."""

    def __init__(self, source: str, problems: Sequence[Problem], warnings: Sequence[str] = ()) -> None:
        super().__init__(source, problems)
        self.warnings = tuple(warnings)


@dataclass(frozen=True)
class Checked:
    """What the orchestrator needs from a passed preflight: the loaded SLURM profile (when the
    executor takes one) and the warnings to print."""

    profile: Any
    warnings: tuple[str, ...]


def host_answers(url: str) -> bool:
    """Whether the host of `url` accepts a TCP connection within NETWORK_TIMEOUT_S (nothing is sent)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=NETWORK_TIMEOUT_S):
            return True
    except OSError:
        return False


def preflight(
    suite: Suite,
    *,
    executor: str,
    profile_path: Path | None,
    results_root: Path,
    data_root: Path,
    max_parallel: int,
    tracking_uri: str | None = None,
    host_check: HostCheck | None = None,
    cuda_available: Callable[[], bool] | None = None,
) -> Checked:
    """Check `suite` against this machine for a run with `executor`; raises PreflightError naming
    every problem, else returns the loaded profile and the warnings. Reads files, asks a scheduler
    and a download host whether they answer; writes nothing.

    `tracking_uri` is where MLflow runs go (None: not tracked); a server must answer.
    `host_check(url)` says whether a URL's host can be reached (tests pass a stub);
    `cuda_available()` whether this machine has a GPU (default: torch.cuda.is_available).
    """
    from bench.launch import EXECUTORS

    host_check = host_check or host_answers
    jobs = list(suite.jobs)
    problems: list[Problem] = []
    warnings: list[str] = []
    problems += report_problems(suite)
    problems += dataset_problems(suite, data_root, host_check)
    problems += weights_problems(jobs)
    problems += results_problems(suite, results_root)
    if tracking_uri and tracking_uri.startswith(("http://", "https://")) and not host_check(tracking_uri):
        problems.append(Problem(("tracking", "uri"), (
            f"the MLflow server {tracking_uri} does not answer; start it (`bench ui --serve` on that host), "
            "or run with --no-tracking (the results folder keeps everything; a later run logs it)")))

    entry = EXECUTORS.get(executor)
    executor_path: tuple[str | int, ...] = ("executor", "name")
    problems += [Problem(executor_path, f"executor {executor!r} cannot run here: {problem}")
                 for problem in entry.available()]
    profile = None
    if entry.needs_profile:
        profile, problem = _load_profile(suite, executor, profile_path)
        problems += [problem] if problem else []
    gpus = profile.gpus_per_node if profile is not None else None
    parallel = max_parallel if "max_parallel" in entry.options else 1
    device_problems, device_warnings = device_checks(
        jobs, remote=entry.remote, gpus_per_node=gpus, parallel=parallel,
        cuda_available=cuda_available or torch_cuda_available)
    problems += device_problems
    warnings += device_warnings
    if problems:
        lines = _line_index(suite.text)
        located = [Problem(p.path, p.message, p.line or _line_of(lines, p.path)) for p in problems]
        raise PreflightError(suite.source, sorted(_unique(located), key=lambda p: p.line or 0), warnings)
    return Checked(profile=profile, warnings=tuple(warnings))


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    seen: set[tuple[Any, str]] = set()
    out = []
    for problem in problems:
        if (problem.path, problem.message) not in seen:
            seen.add((problem.path, problem.message))
            out.append(problem)
    return out


def _line_of(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    for cut in range(len(path), 0, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _choices(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values))) or "none"


# ------------------------------------------------------------------------------------------------ report


def computed_metrics(jobs: Iterable[JobSpec]) -> set[str]:
    """Names of the metrics the jobs' evaluators produce (fid_inception, modes_covered, ...)."""
    from bench.metrics import get_evaluator

    return {info.name for job in jobs for evaluator in job.metrics for info in get_evaluator(evaluator).metrics}


def report_problems(suite: Suite) -> list[Problem]:
    """A `report.baseline` the suite sets that is not an objective of its grid, and `report.thresholds`
    on metrics no job computes."""
    report = suite.config.report
    problems = []
    objectives = {job.objective for job in suite.jobs}
    if "baseline" in report.model_fields_set and report.baseline not in objectives:
        problems.append(Problem(("report", "baseline"), (
            f"objective {report.baseline!r} is not in the grid, so there is nothing to compare against; "
            f"the grid's objectives: {_choices(objectives)}")))
    if report.thresholds:
        computed = computed_metrics(suite.jobs)
        for metric in report.thresholds:
            if metric not in computed:
                problems.append(Problem(("report", "thresholds", metric), (
                    f"metric {metric!r} is computed by no job of this suite; the jobs compute: {_choices(computed)}")))
    return problems


# ------------------------------------------------------------------------------------------------ data


def dataset_problems(suite: Suite, data_root: Path, host_check: HostCheck) -> list[Problem]:
    """Datasets whose files are absent and cannot be fetched from here, as each dataset declares
    them (bench.data.dataset_missing)."""
    from bench.data import dataset_missing

    problems = []
    places = _dataset_places(suite)
    for (name, options), path in places.items():
        missing = dataset_missing(name, dict(options), root=data_root, host_check=host_check)
        if missing is not None:
            problems.append(Problem(path, missing.message))
    return problems


def _dataset_places(suite: Suite) -> dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[str | int, ...]]:
    """(dataset name, resolved options) of every job -> where the suite names that dataset."""
    configs = dataset_configs(suite.config)
    places: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[str | int, ...]] = {}
    for job in suite.jobs:
        key = (job.dataset, tuple(job.dataset_options))
        if key in places:
            continue
        if "dataset" in suite.config.grid:
            index = next((i for i, config in enumerate(configs) if config.name == job.dataset), 0)
            places[key] = ("grid", "dataset", index)
        else:
            places[key] = ("dataset", "name")
    return places


# ------------------------------------------------------------------------------------------------ weights


def weights_problems(jobs: Iterable[JobSpec]) -> list[Problem]:
    """Feature-extractor weights the jobs' metrics need that are not on this machine."""
    from bench.metrics import get_evaluator
    from bench.metrics.fidelity import (
        FIDELITY_INCEPTION,
        MissingWeightsError,
        inception_weights_path,
    )
    from bench.metrics.provenance import evaluator_options

    problems = []
    for job in jobs:
        if FIDELITY_INCEPTION.name not in job.metrics:
            continue
        options = evaluator_options(job, get_evaluator(FIDELITY_INCEPTION.name))
        try:
            inception_weights_path(options)
        except MissingWeightsError as error:
            given = dict(job.metric_options).get(FIDELITY_INCEPTION.name, ())
            path: tuple[str | int, ...] = (("metric_options", FIDELITY_INCEPTION.name, "inception_weights")
                                           if "inception_weights" in dict(given) else ("metrics",))
            problems.append(Problem(path, f"metric {FIDELITY_INCEPTION.name!r}: {error}"))
    return _unique(problems)


# ------------------------------------------------------------------------------------------------ results


def _can_make_folder_in(folder: Path) -> bool:
    """Whether a folder can be made in `folder`, tried (and removed at once): permission bits do not say
    it for root, read-only mounts or pseudo file systems such as /proc."""
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".bench-write-check-", dir=folder))
    except OSError:
        return False
    return True


def results_problems(suite: Suite, results_root: Path) -> list[Problem]:
    """A results root that cannot be written, and results of this suite made with other specs."""
    from bench.launch import changed_jobs
    from bench.store import SuiteStore

    place: tuple[str | int, ...] = ("--results",)
    existing = results_root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        inside = "" if existing == results_root else f" lies in {existing}, which"
        return [Problem(place, f"results root {results_root}{inside} is a file, not a folder; "
                               "give --results a folder (it is created if missing)")]
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_make_folder_in(existing):
        return [Problem(place, f"results root {results_root}: {existing} is not writable by this user; "
                               "give --results a folder you can write")]
    suite_dir = results_root / suite.name
    if suite_dir.exists() and not suite_dir.is_dir():
        return [Problem(("name",), f"{suite_dir} is a file, so the suite's results folder cannot be made there")]
    axes = list(suite.config.grid) + sorted({k for rule in suite.config.include for k in rule} - set(suite.config.grid))
    changed = changed_jobs(list(suite.jobs), SuiteStore(suite_dir), axes)
    if changed:
        return [Problem(("name",), (
            f"results under {suite_dir} were made with a different spec; refusing to mix them ("
            + " | ".join(changed) + "); use another suite name, or remove that results folder to start again"))]
    return []


# ------------------------------------------------------------------------------------------------ profile


def _load_profile(suite: Suite, executor: str, profile_path: Path | None) -> tuple[Any, Problem | None]:
    from bench.launch.profiles import ProfileError, load_profile

    path = profile_path or (Path(suite.config.executor.profile) if suite.config.executor.profile else None)
    where: tuple[str | int, ...] = ("--profile",) if profile_path else ("executor", "profile")
    if path is None:
        return None, Problem(where, f"the {executor} executor needs a cluster profile: pass --profile "
                                    "slurm/profiles/<cluster>.yaml or set executor.profile")
    try:
        return load_profile(path), None
    except ProfileError as error:
        return None, Problem(where, str(error).replace("\n", "\n    "))


# ------------------------------------------------------------------------------------------------ device


def torch_cuda_available() -> bool:
    """Whether torch sees a CUDA device on this machine."""
    import torch

    return bool(torch.cuda.is_available())


def rough_work(job: JobSpec) -> float:
    """The cost of one generator step of `job` in steps of the rate tables (one critic step at batch
    ROUGH_BATCH, the architecture's default width): (critic_steps + 1) / 2 network updates per step,
    scaled linearly with the batch and, for the architectures of ROUGH_WIDTH_EXPONENT, with the width
    to that power."""
    work = (job.critic_steps + 1) / 2 * job.batch_size / ROUGH_BATCH
    exponent = ROUGH_WIDTH_EXPONENT.get(job.arch)
    width = dict(job.arch_options).get("width")
    if exponent and width:
        from bench.nets import ARCHS

        default = ARCHS.get(job.arch).options["width"].default
        work *= (float(width) / float(default)) ** exponent
    return work


def rough_cpu_seconds(job: JobSpec) -> float:
    """A rough CPU training time for `job`, seconds (ROUGH_CPU_STEPS_PER_S; evaluations not counted)."""
    rate = ROUGH_CPU_STEPS_PER_S.get(job.arch, ROUGH_CPU_STEPS_PER_S_OTHER)
    return job.steps * rough_work(job) / rate


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.0f} h" if seconds >= 36000 else f"{seconds / 3600:.1f} h"


def device_checks(jobs: Sequence[JobSpec], *, remote: bool, gpus_per_node: int | None, parallel: int,
                  cuda_available: Callable[[], bool]) -> tuple[list[Problem], list[str]]:
    """`device: cuda` where the jobs will find no GPU (an error), and `device: auto` where they will
    run on CPU for a long time (a warning with a rough estimate; `parallel` jobs at once here)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    devices = {job.device for job in jobs}
    where: tuple[str | int, ...] = ("train", "device")
    if remote:
        on_cpu = gpus_per_node == 0
        if "cuda" in devices and on_cpu:
            problems.append(Problem(where, "device is cuda but the SLURM profile asks for no GPU (gpus_per_node: 0); "
                                           "set gpus_per_node in the profile, or device: auto or cpu"))
    else:
        on_cpu = not cuda_available()
        if "cuda" in devices and on_cpu:
            problems.append(Problem(where, "device is cuda but this machine has no GPU that torch can use "
                                           "(torch.cuda.is_available() is False); set train.device: auto or cpu, or "
                                           "run on a GPU machine (executor slurm with a profile that asks for "
                                           "gpus_per_node)"))
    cpu_jobs = [job for job in jobs if job.device == "auto"] if on_cpu else []
    if cpu_jobs:
        seconds = sum(rough_cpu_seconds(job) for job in cpu_jobs)
        if seconds > LARGE_CPU_SUITE_S:
            arches = sorted({job.arch for job in cpu_jobs})
            rates = ", ".join(f"{arch} ~{ROUGH_CPU_STEPS_PER_S.get(arch, ROUGH_CPU_STEPS_PER_S_OTHER):g}"
                              for arch in arches)
            steps = sorted({job.steps for job in cpu_jobs})
            where_runs = ("the cluster's nodes (the profile asks for no GPU)" if remote
                          else "this machine, which has no GPU")
            warnings.append(
                f"warning: device auto: {len(cpu_jobs)} jobs will train on CPU on {where_runs}: roughly "
                f"{_hours(seconds)} of CPU time ({len(cpu_jobs)} jobs x {'/'.join(f'{s:,}' for s in steps)} steps at "
                f"{rates} generator steps/s per core; a rough figure, evaluations not counted)"
                + (f", about {_hours(seconds / parallel)} at {parallel} jobs at once"
                   if parallel > 1 and not remote else "")
                + ". Use a GPU machine, or fewer steps, to finish sooner.")
    return problems, warnings
