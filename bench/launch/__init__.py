"""Launching a suite's jobs through submitit: in-process (`debug`), as local processes (`local`),
or as SLURM job arrays (`slurm`); skipping what is complete, resuming what was interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from bench.registry import Option, Registry
from bench.spec import JobSpec
from bench.store import (
    COMPLETE_STATUSES,
    TERMINAL_STATUSES,
    JobStore,
    Status,
    SuiteStore,
    atomic_write_json,
)


@dataclass(frozen=True)
class TrackingTarget:
    """Where a job flushes its MLflow run when it ends: under the parent run of suite `suite`, known by
    its id, or (`parent_run_id` None) found by the suite's tag when flushing (`Tracker.suite_run`)."""

    uri: str
    experiment: str
    parent_run_id: str | None
    artifact_root: Path | None
    varying: tuple[str, ...] = ()  # flat spec keys that vary in the suite: they name and tag runs
    suite: str = ""


class SuiteTracking:
    """A suite's MLflow target with its parent run opened in a thread of this process: importing MLflow
    and creating an SQLite store take seconds of CPU, which would otherwise stand between the start of
    `bench run` and its jobs. `open()` starts the thread (once); the local launcher calls it once its
    slots' first jobs are training, so that it does not take a core from their start either.
    `pending` is the target without the parent's id (what a local job carries: it flushes itself only
    when its launcher is gone, and then finds the parent by tag); `target()` opens the parent if that
    has not begun, waits for it, and raises what opening it raised."""

    def __init__(self, pending: TrackingTarget, params: Mapping[str, str]) -> None:
        self.pending = pending
        self._result: list[TrackingTarget] = []
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._open, args=(dict(params),), name="mlflow-parent", daemon=True)
        self._starting = threading.Lock()

    def open(self) -> None:
        """Begin opening the parent run in the background, unless that has begun."""
        with self._starting:
            if self._thread.ident is None:
                self._thread.start()

    def _open(self, params: dict[str, str]) -> None:
        from dataclasses import replace

        from bench.tracking import Tracker

        try:
            tracker = Tracker(self.pending.uri, self.pending.experiment, self.pending.artifact_root,
                              cache_dir=default_paths(Path.cwd()).cache_dir)
            self._result.append(replace(self.pending, parent_run_id=tracker.suite_run(self.pending.suite, params)))
        except BaseException as error:  # handed to whoever asks for the target
            self._error.append(error)

    def target(self) -> TrackingTarget:
        self.open()
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._result[0]


@dataclass(frozen=True)
class Paths:
    results_root: Path
    data_root: Path
    cache_dir: Path


def default_paths(results_root: Path) -> Paths:
    """Data under $BENCH_HOME/data (default ~/.cache/bench/data); caches under $BENCH_CACHE when set (a
    cache shared by several homes, e.g. on a cluster's scratch), else $BENCH_HOME/cache; results where asked.
    Every cache entry is keyed by its full content, so sharing a cache never mixes results."""
    home = Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "bench"))
    cache = os.environ.get("BENCH_CACHE")
    return Paths(results_root=results_root, data_root=home / "data",
                 cache_dir=Path(cache) if cache else home / "cache")


_stop_requested = threading.Event()


def stop_requested() -> bool:
    return _stop_requested.is_set()


class JobRunner:
    """The callable submitit pickles: trains one job, or the seeds of one grid cell stacked
    (`stacked`: their specs, bench.stacked.train_stacked), records each job's end, flushes each to MLflow.

    Checkpointable: on preemption or time limit submitit calls `checkpoint`, which resubmits
    this same runner; the job resumes from its last checkpoint.

    `tracking` is where the job's MLflow run goes. A cluster job (`launcher_pid` None) writes it
    itself; a local job leaves it to its `bench run` process (`launcher_pid`), which already has
    MLflow loaded, and writes it itself only when that process is gone (killed), so an orphaned
    job's run is not missing until the next `bench run`.
    """

    def __init__(self, spec: JobSpec, suite_dir: Path, paths: Paths, tracking: TrackingTarget | None,
                 threads: int | None, launcher_pid: int | None = None, *, stacked: Sequence[JobSpec] = ()) -> None:
        self.spec = spec
        self.specs: tuple[JobSpec, ...] = tuple(stacked) or (spec,)
        if self.specs[0] != spec:
            raise ValueError("a stacked runner's spec is the first of its stacked specs")
        self.suite_dir = Path(suite_dir)
        self.paths = paths
        self.tracking = tracking
        self.threads = threads
        self.launcher_pid = launcher_pid

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(spec.job_id for spec in self.specs)

    def statuses(self, result: str | dict[str, str]) -> dict[str, str]:
        """job_id -> status from what `__call__` returned (a status for one job, a dict for a stack)."""
        return dict(result) if isinstance(result, dict) else {self.spec.job_id: result}

    def __call__(self) -> str | dict[str, str]:
        import torch

        from bench.stacked import train_stacked
        from bench.train import train

        threads_before = torch.get_num_threads()  # restored at the end: the debug executor runs jobs in this process
        if self.threads:
            torch.set_num_threads(self.threads)
        stores = [SuiteStore(self.suite_dir).job(spec.job_id) for spec in self.specs]
        slurm_id = _slurm_task_id()
        for store in stores:
            store.path.mkdir(parents=True, exist_ok=True)
            if slurm_id:
                store.write_status(store.read_status()["status"], slurm_job_id=slurm_id)
        previous: dict[int, Any] = {}
        preempted = threading.Event()
        if threading.current_thread() is threading.main_thread():
            if slurm_id:
                # submitit's handler would requeue at once, losing the steps since the last
                # checkpoint; instead the loop checkpoints at its next logging interval, and
                # then submitit's handler requeues (see below)
                usr = _submitit_signal()

                def on_preemption(*_: Any) -> None:
                    preempted.set()
                    _stop_requested.set()

                previous[usr] = signal.signal(usr, on_preemption)
            else:
                # Ctrl-C reaches the job through its process group; SIGTERM is what `bench run`
                # forwards when it is stopped alone (by `kill` or a supervisor)
                for signum in STOP_SIGNALS:
                    previous[signum] = signal.signal(signum, lambda *_: _stop_requested.set())
        with ExitStack() as files:
            # a stacked group's lines go to every one of its jobs' logs
            log_files = [files.enter_context(open(store.log_path, "a", buffering=1)) for store in stores]

            def log(message: str) -> None:
                line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
                for log_file in log_files:
                    log_file.write(line)

            seeds = ", ".join(str(spec.seed) for spec in self.specs)
            stacked = f" (stacked: jobs {', '.join(self.job_ids)})" if len(self.specs) > 1 else ""
            log(f"job {self.spec.job_id} on {socket.gethostname()} pid {os.getpid()}, "
                f"{torch.get_num_threads()} torch threads: "
                f"{self.spec.objective} / {self.spec.arch} / seed{'s' if stacked else ''} {seeds}{stacked}")
            statuses: dict[str, str] = {}
            try:
                if len(self.specs) == 1:
                    results = [train(self.spec, stores[0], data_root=self.paths.data_root,
                                     cache_dir=self.paths.cache_dir, should_stop=stop_requested, log=log)]
                else:
                    results = train_stacked(self.specs, stores, data_root=self.paths.data_root,
                                            cache_dir=self.paths.cache_dir, should_stop=stop_requested, log=log)
                for spec, result in zip(self.specs, results, strict=True):
                    statuses[spec.job_id] = result.status
                    seed = f"seed {spec.seed} " if stacked else ""
                    log(f"{seed}ended {result.status}" + (f": {result.reason}" if result.reason else ""))
            except Exception as error:  # the suite goes on; the reason is kept
                log(traceback.format_exc())
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
                for spec, store in zip(self.specs, stores):
                    ended = store.read_status()["status"]
                    if ended in COMPLETE_STATUSES:  # a stacked seed that had ended before the error
                        statuses[spec.job_id] = ended
                    else:
                        store.write_status(Status.FAILED, reason=reason)
                        statuses[spec.job_id] = Status.FAILED
            finally:
                torch.set_num_threads(threads_before)
                for signal_number, handler in previous.items():
                    signal.signal(signal_number, handler)
            if preempted.is_set() and Status.PENDING in statuses.values():
                log("preempted: checkpoint written; asking SLURM to requeue this job")
                handler = previous[_submitit_signal()]
                if callable(handler):
                    handler(_submitit_signal(), None)  # submitit: calls self.checkpoint, requeues, exits
            if self.tracking is not None and not self._launcher_alive():
                for store in stores:
                    if statuses[store.job_id] in TERMINAL_STATUSES:
                        flush_to_mlflow(store, self.tracking, log)
        return statuses[self.spec.job_id] if len(self.specs) == 1 else statuses

    def _launcher_alive(self) -> bool:
        """Whether the `bench run` process that flushes this job's MLflow run is still there."""
        return self.launcher_pid is not None and os.getppid() != 1 and _pid_alive(self.launcher_pid)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a run: jobs checkpoint at their next step and stay pending."""


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine; a killed process its parent has not reaped yet
    (a zombie) is not running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc: signal 0 is all there is
    return fields[0] not in ("Z", "X")


def _slurm_task_id() -> str | None:
    """This process's SLURM job as sacct names it: "123_4" for an array task, else "123"."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _submitit_signal() -> int:
    from submitit.core.job_environment import JobEnvironment

    return int(JobEnvironment._usr_sig())


def flush_to_mlflow(store: JobStore, tracking: TrackingTarget | SuiteTracking,
                    log: Callable[[str], None] = print) -> str | None:
    """Log a finished job's params, metric rows and samples (drawn here: the job only saves them) as
    the suite's child run (idempotent). A failure, opening the suite's parent run included, is logged
    and recorded in the job's status (`mlflow_error`); the next `bench run` retries it."""
    from bench.report.samples import draw_final_samples
    from bench.tracking import Tracker

    spec = store.read_spec()
    status = store.read_status()
    if spec is None:
        return None
    try:
        if isinstance(tracking, SuiteTracking):
            tracking = tracking.target()
        tracker = Tracker(tracking.uri, tracking.experiment, tracking.artifact_root,
                          cache_dir=default_paths(Path.cwd()).cache_dir)
        parent = tracking.parent_run_id or tracker.suite_run(tracking.suite, {"suite": tracking.suite})
        artifacts = draw_final_samples(store, spec)
        run_id = tracker.log_job(parent, spec.job_id, spec.flat(), store.read_metrics(),
                                 status["status"], artifacts, varying=tracking.varying)
    except Exception as error:  # tracking is a view of the store: a failure here loses nothing
        log(f"MLflow logging failed ({type(error).__name__}: {error}); `bench run` retries it")
        store.write_status(status["status"], mlflow_error=str(error)[:300])
        return None
    store.write_status(status["status"], mlflow_run_id=run_id, mlflow_error=None)
    return run_id


# ------------------------------------------------------------------------------------------------


LIVE_SLURM_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING",
                     "REQUEUE_HOLD", "REQUEUE_FED")


# how long a submitted job that sacct does not know yet still counts as queued
UNKNOWN_SLURM_JOB_GRACE_S = 600.0


def _age_s(timestamp: str | None) -> float:
    from datetime import datetime

    if not timestamp:
        return float("inf")
    return (datetime.now(UTC) - datetime.fromisoformat(timestamp)).total_seconds()


def is_live(status: dict[str, Any], slurm_states: dict[str, str] | None = None) -> bool:
    """Whether a job not complete is running or queued somewhere: its SLURM job is pending or
    running (when sacct can be asked), or the process recorded in its status is alive."""
    if status.get("status") in COMPLETE_STATUSES:
        return False
    slurm_job = status.get("slurm_job_id")
    if slurm_job and slurm_states is not None:
        state = slurm_states.get(str(slurm_job), "")
        if not state:
            # accounting may lag a fresh submission by a moment: recent means queued
            return _age_s(status.get("updated_at")) < UNKNOWN_SLURM_JOB_GRACE_S
        return state.split()[0] in LIVE_SLURM_STATES
    if status.get("status") != Status.RUNNING:
        return False
    if slurm_job:
        return True  # recorded as running on a cluster this machine cannot ask: not touched
    if status.get("host") != socket.gethostname():
        return True  # another machine's process: cannot be checked from here, so not touched
    pid = status.get("pid")
    if not pid:
        return False
    return _pid_alive(int(pid)) and int(pid) != os.getpid()


@dataclass
class Plan:
    """What a `bench run` will do with each job of the grid."""

    complete: list[JobSpec] = field(default_factory=list)
    live: list[JobSpec] = field(default_factory=list)
    resume: list[JobSpec] = field(default_factory=list)
    fresh: list[JobSpec] = field(default_factory=list)

    @property
    def to_run(self) -> list[JobSpec]:
        return self.resume + self.fresh


def interrupted_reason(status: dict[str, Any], slurm_states: dict[str, str] | None, *, checkpoint: bool) -> str | None:
    """Why a job recorded as `running` is not running any more (its process is gone, or its SLURM
    job ended), and what the next `bench run` does with it; None when it may still be running."""
    if status.get("status") != Status.RUNNING or is_live(status, slurm_states):
        return None
    then = "resumes from its last checkpoint" if checkpoint else "starts again on the next `bench run`"
    slurm_job = status.get("slurm_job_id")
    if slurm_job:
        state = (slurm_states or {}).get(str(slurm_job))
        ended = f"ended {state.split()[0]}" if state else "is gone"
        return f"SLURM job {slurm_job} {ended}; {then}"
    pid = status.get("pid")
    return f"process {pid} is gone; {then}" if pid else f"no process recorded; {then}"


def plan_jobs(jobs: Sequence[JobSpec], suite_store: SuiteStore,
              slurm_states: dict[str, str] | None = None, *, slurm_unanswered: bool = False) -> Plan:
    """Sort the grid's jobs into complete, live (running or queued elsewhere: not touched), to
    resume and to start. `slurm_unanswered`: SLURM accounting was asked and did not answer, so a
    job recorded as submitted to SLURM and not complete counts as live rather than being run twice."""
    plan = Plan()
    for job in jobs:
        store = suite_store.job(job.job_id)
        status = store.read_status()
        if status["status"] in COMPLETE_STATUSES:
            plan.complete.append(job)
        elif is_live(status, slurm_states) or (slurm_unanswered and status.get("slurm_job_id")):
            plan.live.append(job)
        elif store.checkpoint_path.exists():
            plan.resume.append(job)
        else:
            plan.fresh.append(job)
    return plan


def changed_jobs(jobs: Sequence[JobSpec], suite_store: SuiteStore, axes: Sequence[str]) -> list[str]:
    """Jobs of the grid whose grid position already has results under a different spec: their
    differences, one block per job (empty when none). Such a rerun would mix two experiments."""
    def position(flat: dict[str, str]) -> tuple[str, ...]:
        keys = ["objective", "arch", "seed", "trial"] + sorted(  # `trial`: a search suite's trial, else absent
            {"lr": "lr_g"}.get(axis, axis) for axis in axes if axis not in ("objective", "arch", "seed"))
        return tuple(flat.get(key, "") for key in keys)

    stored: dict[tuple[str, ...], JobSpec] = {}
    for job_id in suite_store.job_ids():
        spec = suite_store.job(job_id).read_spec()
        if spec is not None:
            stored[position(spec.flat())] = spec
    messages = []
    for job in jobs:
        old = stored.get(position(job.flat()))
        if old is not None and old.job_id != job.job_id:
            diff = "; ".join(old.diff(job))
            messages.append(f"job {old.job_id} ({job.objective}/{job.arch}/seed {job.seed}) changed: {diff}")
    return messages


class Progress:
    """The suite's progress bar, counted in generator steps over every job it runs, so that its
    rate and ETA come from measured steps/s of the running jobs (a count of finished jobs says
    nothing until the first ends). The postfix counts jobs: done, running, diverged, failed.

    `update` is given the jobs that ended since the last call (job_id -> status) and the ids of
    the jobs running now; it reads the running jobs' steps from their status.json, which the
    training loop writes at every logging interval.
    """

    def __init__(self, jobs: Sequence[JobSpec], suite_dir: Path, enabled: bool) -> None:
        from tqdm import tqdm

        suite_store = SuiteStore(suite_dir)
        self.stores = {job.job_id: suite_store.job(job.job_id) for job in jobs}
        self.total = {job.job_id: job.steps for job in jobs}
        self.reached = {job_id: self._step(job_id) for job_id in self.total}
        self.bar = tqdm(total=sum(self.total.values()), initial=sum(self.reached.values()), desc=suite_dir.name,
                        unit="step", unit_scale=True, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
        self.counts: dict[str, int] = dict.fromkeys((*TERMINAL_STATUSES, Status.PENDING), 0)
        self.running = 0
        self._postfix()

    def _step(self, job_id: str) -> int:
        step = self.stores[job_id].read_status().get("step")
        return min(int(step or 0), self.total[job_id])

    def update(self, *, finished: Mapping[str, str], running: Sequence[str]) -> None:
        before = sum(self.reached.values())
        for job_id, status in finished.items():
            self.counts[status] = self.counts.get(status, 0) + 1
            # an ended job's steps are spent, whatever its end; an interrupted one keeps its step
            self.reached[job_id] = self._step(job_id) if status == Status.PENDING else self.total[job_id]
        for job_id in running:
            self.reached[job_id] = max(self.reached[job_id], self._step(job_id))
        self.running = len(running)
        self._postfix()
        self.bar.update(sum(self.reached.values()) - before)

    def _postfix(self) -> None:
        jobs = len(self.total)
        text = (f"jobs {self.counts[Status.DONE]}/{jobs} done, {self.running} running, "
                f"{self.counts[Status.DIVERGED]} diverged, {self.counts[Status.FAILED]} failed")
        if self.counts[Status.PENDING]:
            text += f", {self.counts[Status.PENDING]} interrupted"
        self.postfix = text
        self.bar.set_postfix_str(text, refresh=False)

    @property
    def steps_done(self) -> int:
        return sum(self.reached.values())

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------------------------------------
# Executors


@dataclass
class LaunchContext:
    """What an executor's launcher is given: the jobs (as runners) and how to report on them.

    `ended(job_id, status)` records a job's end (and flushes its MLflow run when this process does
    that); `underway()` says the jobs have begun training, so that work kept off their start (opening
    the suite's MLflow parent run) may begin; `running` holds the (runner, submitit job) pairs running
    now, which a stop signal reaches.
    A runner runs one job or a stacked group (`runner.job_ids`, `runner.statuses(result)`).
    """

    runners: list[JobRunner]
    folder: Path
    max_parallel: int
    profile: Any
    wait: bool
    bar: Progress
    echo: Callable[[str], None]
    ended: Callable[[str, str], None]
    underway: Callable[[], None] = lambda: None
    running: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Executor:
    """One way to run a suite's jobs.

    `launch(context)` runs (or submits) them and returns job_id -> final status ('submitted' for
    jobs handed to a scheduler and not waited on). `options` declares the `executor:` settings it reads;
    `threads(max_parallel)` the torch threads per job by default; `available()` what stops it on
    this machine (empty when nothing does); `needs_profile` that it takes a SLURM profile;
    `remote` that its jobs run elsewhere and flush their own MLflow runs.
    """

    name: str
    description: str
    launch: Callable[[LaunchContext], dict[str, str]]
    options: Mapping[str, Option]
    threads: Callable[[int], int]
    available: Callable[[], list[str]] = lambda: []
    needs_profile: bool = False
    remote: bool = False


EXECUTORS: Registry[Executor] = Registry("executor")

THREADS_OPTION = {"threads_per_job": Option(
    None, int, low=1, nullable=True,
    description="torch threads per job (null: the machine's cores shared among the jobs running at once)")}


def register_executor(executor: Executor) -> Executor:
    return EXECUTORS.register(executor.name, executor)


def default_threads(executor: str, max_parallel: int) -> int:
    """Torch threads per job so that parallel jobs do not oversubscribe the cores."""
    return EXECUTORS.get(executor).threads(max_parallel)


STACK_OPTION = {"stack_seeds": Option(
    1, int, low=1,
    description=("seeds of one grid cell trained together as one stacked model (bench.stacked), in groups of up "
                 "to this many, each group one unit (one process); 1: every job alone"))}


def stacking_lines(groups: Sequence[Any]) -> list[str]:
    """What `launch` says of bench.stacked.SeedGroups: the groups trained stacked, and the jobs that
    run alone although stacking was asked, with why."""
    lines = []
    stacked = [group for group in groups if group.stacked]
    if stacked:
        lines.append(f"stacked seeds: {len(stacked)} group{'s' if len(stacked) > 1 else ''} of "
                     f"{sum(len(group.specs) for group in stacked)} jobs, each one unit:")
        lines += [f"  {group.describe()}: jobs {', '.join(spec.job_id for spec in group.specs)}" for group in stacked]
    alone: dict[str, dict[str, list[str]]] = {}  # reason -> cell -> seeds
    for group in groups:
        if group.reason is not None:
            spec = group.specs[0]
            alone.setdefault(group.reason, {}).setdefault(f"{spec.objective} / {spec.arch}", []).append(str(spec.seed))
    for reason, cells in alone.items():
        shown = "; ".join(f"{cell} seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"
                          for cell, seeds in cells.items())
        lines.append(f"not stacked, run as separate jobs ({shown}): {reason}")
    return lines


def _launch_debug(context: LaunchContext) -> dict[str, str]:
    import submitit

    debug = submitit.DebugExecutor(folder=context.folder)
    context.underway()  # the jobs run in this process: the parent run opens beside the first
    results: dict[str, str] = {}
    for runner in context.runners:
        if stop_requested():
            break
        context.bar.update(finished={}, running=list(runner.job_ids))
        statuses = runner.statuses(debug.submit(runner).result())
        for job_id, status in statuses.items():
            context.ended(job_id, status)
        results.update(statuses)
        context.bar.update(finished=statuses, running=[])
    return results


class SlotWorker:
    """The callable one local slot runs: the suite's units (runners) one after another in one process,
    each taken by creating its claim file (`claims/<index>`, exclusively, so two slots never take the
    same unit), so that a slot pays the interpreter's start and the imports once, not once per job.
    After each unit it writes `claims/<index>.ended` (job_id -> status) for the launcher, which flushes
    MLflow from there. A stop request ends the claiming: the running job checkpoints, the rest wait."""

    def __init__(self, runners: Sequence[JobRunner], claims: Path, slot: int) -> None:
        self.runners = list(runners)
        self.claims = Path(claims)
        self.slot = slot

    def __call__(self) -> dict[str, str]:
        statuses: dict[str, str] = {}
        for index, runner in enumerate(self.runners):
            if stop_requested():
                break
            try:
                claim = os.open(self.claims / str(index), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(claim, f"{self.slot} {os.getpid()}".encode())
            os.close(claim)
            ended = {job_id: str(status) for job_id, status in runner.statuses(runner()).items()}
            statuses.update(ended)
            atomic_write_json(self.claims / f"{index}.ended", ended)
        return statuses


class PackedRunner:
    """Several units (JobRunners: a job, or a stack of seeds) run at once in one SLURM task, each in a
    process of its own, sharing the task's GPU and CPUs: a profile's `pack` (bench.launch.profiles),
    so that a GPU is not given one small job.

    Preemption: the signal SLURM sends before a time limit or a preemption reaches this process (and,
    from it, every unit's process); each unit checkpoints at its next step and ends `pending`, and
    once all have ended this task asks submitit to requeue it. The requeued task runs this runner
    again: a unit whose jobs are complete is skipped, the others resume from their checkpoints.
    A unit's process that dies leaves its jobs failed (or pending, when the task was stopping).
    """

    def __init__(self, units: Sequence[JobRunner]) -> None:
        if not units:
            raise ValueError("a packed runner needs at least one unit")
        self.units = list(units)
        self.spec = self.units[0].spec
        self.suite_dir = self.units[0].suite_dir

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(job_id for unit in self.units for job_id in unit.job_ids)

    def statuses(self, result: dict[str, str]) -> dict[str, str]:
        return dict(result)

    def __call__(self) -> dict[str, str]:
        import multiprocessing

        suite = SuiteStore(self.suite_dir)
        statuses = {job_id: str(suite.job(job_id).read_status()["status"]) for job_id in self.job_ids}
        waiting = [unit for unit in self.units
                   if not all(statuses[job_id] in COMPLETE_STATUSES for job_id in unit.job_ids)]
        context = multiprocessing.get_context("spawn")
        preempt = _submitit_signal()
        preempted = threading.Event()
        processes: list[tuple[JobRunner, Any, Any]] = []
        main = threading.current_thread() is threading.main_thread()
        # a unit's process starts with the preemption signal ignored (kept across exec) until its
        # JobRunner sets its own handler, so a signal while it imports torch does not kill it
        previous = signal.signal(preempt, signal.SIG_IGN) if main else None
        try:
            for unit in waiting:
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_run_unit, args=(unit, sender), name=f"bench-{unit.spec.job_id}")
                process.start()
                sender.close()
                processes.append((unit, process, receiver))
        finally:
            if main:
                def on_preemption(*_: Any) -> None:
                    preempted.set()
                    _signal_alive(processes, preempt)  # at once: every step a unit trains on is lost

                signal.signal(preempt, on_preemption)
        try:
            for unit, process, receiver in processes:
                result: dict[str, str] | None = None
                # every second while preempted, the signal goes on to the units still running: one still
                # importing torch ignores it, and takes it once its JobRunner listens (a repeat is harmless)
                while not receiver.poll(1.0 if preempted.is_set() else 0.2):
                    if preempted.is_set():
                        _signal_alive(processes, preempt)
                try:
                    result = receiver.recv()
                except EOFError:  # the unit's process ended without an answer: it died
                    pass
                process.join()
                if result is not None:
                    statuses.update(result)
                    continue
                died = f"its process in the packed SLURM task ended with exit code {process.exitcode} and no result"
                statuses.update(suite.record_lost(unit.job_ids, died, stopping=preempted.is_set(),
                                                  stopped="preempted; resumes from its last checkpoint"))
        finally:
            if main:
                signal.signal(preempt, previous)
        if preempted.is_set() and Status.PENDING in statuses.values() and callable(previous):
            previous(preempt, None)  # submitit: calls self.checkpoint, requeues this task, exits
        return statuses

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _signal_alive(processes: Sequence[tuple[Any, Any, Any]], signum: int) -> None:
    """Send `signum` to every unit process of a packed task that is still running."""
    for _unit, process, _receiver in processes:
        if process.is_alive():
            try:
                os.kill(process.pid, signum)
            except ProcessLookupError:  # it ended between the check and the signal
                pass


def _run_unit(unit: JobRunner, sender: Any) -> None:
    """A packed unit's process: run it, send back job_id -> status."""
    sender.send({job_id: str(status) for job_id, status in unit.statuses(unit()).items()})
    sender.close()


def pack_runners(runners: Sequence[JobRunner], pack: int) -> list[JobRunner | PackedRunner]:
    """`runners` in consecutive packs of up to `pack` units, each pack one PackedRunner (`pack` 1: as they are)."""
    if pack <= 1:
        return list(runners)
    return [PackedRunner(runners[start:start + pack]) for start in range(0, len(runners), pack)]


@contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Processes started inside the block begin with SIGINT ignored (an ignored signal stays ignored across
    exec). submitit's local controller answers a Ctrl-C by SIGKILLing its job one second later, which is
    less than a busy job needs to write its checkpoint; ignoring it, the controller is stopped by the
    SIGTERM the launcher sends it instead, which it forwards to the job without a kill. The job itself
    handles SIGINT again once it runs (JobRunner sets its own handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _launch_local(context: LaunchContext) -> dict[str, str]:
    import uuid

    import submitit

    # a stop (Ctrl-C, SIGTERM) ends new claims and submissions; running jobs checkpoint and end
    local = submitit.LocalExecutor(folder=context.folder)
    local.update_parameters(timeout_min=60 * 24 * 7)
    units = list(context.runners)
    claims = context.folder / f"claims-{uuid.uuid4().hex[:12]}"
    claims.mkdir(parents=True)
    running = context.running
    reported: set[int] = set()
    results: dict[str, str] = {}
    suite_dir = context.folder.parent
    slots = 0
    underway = False

    def report(index: int, statuses: dict[str, str], finished: dict[str, str]) -> None:
        reported.add(index)
        results.update(statuses)
        finished.update(statuses)

    while True:
        unclaimed = sum(1 for index in range(len(units)) if not (claims / str(index)).exists())
        # a live slot takes the next unit itself: new slots only for units no live slot is there for
        for _ in range(min(context.max_parallel - len(running), unclaimed) if not stop_requested() else 0):
            worker = SlotWorker(units, claims, slots)
            slots += 1
            with _sigint_ignored_by_children():
                running.append((worker, local.submit(worker)))
        finished: dict[str, str] = {}
        for index in range(len(units)):
            if index not in reported and (claims / f"{index}.ended").exists():
                report(index, json.loads((claims / f"{index}.ended").read_text()), finished)
        for worker, job in list(running):
            if not job.done():
                continue
            running.remove((worker, job))
            for index, runner in enumerate(units):
                claim = claims / str(index)
                if index in reported or not claim.exists():
                    continue
                # an empty claim: a slot died between creating it and writing its number, this one
                if claim.read_text().split()[:1] not in ([str(worker.slot)], []):
                    continue
                # the slot's process ended without the unit's end marker: it died (killed, out of memory)
                statuses = _local_result(job, runner, suite_dir)
                report(index, {job_id: statuses.get(job_id) or SuiteStore(suite_dir).job(job_id).read_status()["status"]
                               for job_id in runner.job_ids}, finished)
        claimed = [index for index in range(len(units)) if (claims / str(index)).exists() and index not in reported]
        if not underway and (finished or (len(claimed) >= min(slots, len(units)) and all(
                _training(suite_dir, units[index]) for index in claimed))):
            # every slot has imported torch and built its first job: what the launcher does now
            # (opening the MLflow parent) no longer delays the jobs' start
            underway = True
            context.underway()
        for job_id, status in finished.items():
            context.ended(job_id, status)
        context.bar.update(finished=finished, running=[job_id for index in claimed for job_id in units[index].job_ids])
        if not running and (stop_requested() or len(reported) == len(units)):
            break
        time.sleep(0.2)
    return results


def _training(suite_dir: Path, runner: JobRunner) -> bool:
    """Whether the (first) job of `runner` has begun training (its status says running)."""
    return SuiteStore(suite_dir).job(runner.job_ids[0]).read_status().get("status") == Status.RUNNING


def _launch_slurm(context: LaunchContext) -> dict[str, str]:
    from bench.launch import slurm

    runners = pack_runners(context.runners, context.profile.pack)
    if context.profile.pack > 1:
        context.echo(f"packed: {len(context.runners)} units in {len(runners)} SLURM tasks of up to "
                     f"{context.profile.pack}, run at once in each task")
    return slurm.submit_array(runners, folder=context.folder, profile=context.profile, wait=context.wait,
                              bar=context.bar, echo=context.echo)


def _slurm_problems() -> list[str]:
    from bench.launch import slurm

    return slurm.availability_problems()


register_executor(Executor(
    "debug", "every job in this process, one after another (tracebacks and debuggers work)",
    _launch_debug, options={**THREADS_OPTION, **STACK_OPTION}, threads=lambda max_parallel: os.cpu_count() or 1,
))
register_executor(Executor(
    "local", "max_parallel processes on this machine, each running job after job (imports paid once per process)",
    _launch_local,
    options={"max_parallel": Option(2, int, low=1, description="jobs running at once on this machine"),
             **THREADS_OPTION, **STACK_OPTION},
    threads=lambda max_parallel: max(1, (os.cpu_count() or 1) // max_parallel),
))
register_executor(Executor(
    "slurm", "SLURM job arrays from a login node, resources from a profile (slurm/profiles/)",
    _launch_slurm,
    options={"profile": Option(None, str, nullable=True,
                               description="the SLURM cluster profile, a YAML file (see slurm/profiles/)"),
             "wait": Option(True, bool, description="wait for the jobs to end (false: return once submitted)"),
             **THREADS_OPTION, **STACK_OPTION},
    threads=lambda max_parallel: 1, available=_slurm_problems, needs_profile=True, remote=True,
))


def launch(
    jobs: Sequence[JobSpec],
    *,
    suite_dir: Path,
    paths: Paths,
    tracking: SuiteTracking | None,
    executor: str,
    max_parallel: int,
    threads: int | None,
    progress: bool = True,
    profile: Any = None,
    wait: bool = True,
    echo: Callable[[str], None] = print,
    stack_seeds: int = 1,
) -> dict[str, str]:
    """Run `jobs` with the named executor (see EXECUTORS); returns job_id -> final status
    ('submitted' when not waited on). `stack_seeds` > 1: the seeds of each grid cell run in groups
    of up to that many, each group as one unit (one process, one stacked model; bench.stacked.seed_groups),
    a group that cannot be stacked as separate jobs, said with the reason."""
    entry = EXECUTORS.get(executor)
    threads = threads or entry.threads(max_parallel)
    # remote jobs flush their own MLflow run, under the parent's id; local ones are flushed here, by the
    # process that already has MLflow loaded (a second or two saved per job), unless this process is killed
    launcher_pid = None if entry.remote else os.getpid()
    carried = None if tracking is None else tracking.target() if entry.remote else tracking.pending
    if stack_seeds > 1:
        from bench.stacked import seed_groups

        groups = seed_groups(jobs, stack_seeds)
        for line in stacking_lines(groups):
            echo(line)
        runners = [JobRunner(group.specs[0], suite_dir, paths, carried, threads, launcher_pid, stacked=group.specs)
                   for group in groups]
    else:
        runners = [JobRunner(job, suite_dir, paths, carried, threads, launcher_pid) for job in jobs]

    def ended(job_id: str, status: str) -> None:
        if tracking is not None and status in TERMINAL_STATUSES:
            flush_to_mlflow(SuiteStore(suite_dir).job(job_id), tracking)

    bar = Progress(jobs, suite_dir, progress)
    context = LaunchContext(runners=runners, folder=suite_dir / "submitit", max_parallel=max_parallel,
                            profile=profile, wait=wait, bar=bar, echo=echo, ended=ended,
                            underway=tracking.open if tracking is not None else lambda: None)

    def stop(*_: Any) -> None:
        # the jobs checkpoint at their next step; local job processes may not share this process's
        # group (a supervisor's SIGTERM, `kill <pid>`), so they are told directly: submitit's
        # controller forwards SIGTERM to its task
        _stop_requested.set()
        for _runner, job in list(context.running):
            process = getattr(job, "_process", None)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # set explicitly: a shell may start this process with SIGINT ignored
        previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        return entry.launch(context)
    finally:
        bar.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_service(command: Sequence[str], *, grace_s: float = 10.0) -> int:
    """Run a long-lived server (`mlflow ui`, `mlflow server`) in the foreground until it ends or this
    process is told to stop (SIGINT, SIGTERM).

    The server runs in a process group of its own, and a stop is passed to that whole group (its
    workers too), which gets `grace_s` seconds to end before SIGKILL; so stopping this process by
    its pid leaves nothing serving. Returns the server's exit status, or 0 when it was stopped.
    """
    import subprocess

    process = subprocess.Popen(list(command), start_new_session=True)
    stop_at: list[float] = []

    def stop(*_: Any) -> None:
        if not stop_at:
            stop_at.append(time.monotonic())
            _signal_group(process.pid, signal.SIGTERM)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        while True:
            try:
                code = process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stop_at and time.monotonic() - stop_at[0] > grace_s:
                    _signal_group(process.pid, signal.SIGKILL)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        # workers the server left behind serve nothing without it
        _signal_group(process.pid, signal.SIGKILL)
    return 0 if stop_at else code


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _local_result(job: Any, runner: JobRunner, suite_dir: Path) -> dict[str, str]:
    """job_id -> status of each job `runner` ran in the local process `job` (a slot's SlotWorker, whose
    result holds every job it ran), recorded as failed, or pending when stopping, if that process died."""
    try:
        return {job_id: str(status) for job_id, status in runner.statuses(job.result()).items()}
    except Exception as error:  # the process died (killed, out of memory): record why
        # killed while stopping on Ctrl-C is not a failure: the job resumes from its last checkpoint
        said = str(error).strip().splitlines()[-1][:500] if str(error).strip() else type(error).__name__
        return SuiteStore(suite_dir).record_lost(runner.job_ids, f"job process ended abnormally: {said}",
                                                 stopping=stop_requested())
