"""Launching a suite's jobs through submitit: in-process (`debug`), as local processes (`local`),
or as SLURM job arrays (`slurm`); skipping what is complete, resuming what was interrupted.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from bench.registry import Option, Registry
from bench.spec import JobSpec
from bench.store import JobStore, SuiteStore

COMPLETE = ("done", "diverged")


@dataclass(frozen=True)
class TrackingTarget:
    """Where a job flushes its MLflow run when it ends."""

    uri: str
    experiment: str
    parent_run_id: str
    artifact_root: Path | None
    varying: tuple[str, ...] = ()  # flat spec keys that vary in the suite: they name and tag runs


@dataclass(frozen=True)
class Paths:
    results_root: Path
    data_root: Path
    cache_dir: Path


def default_paths(results_root: Path) -> Paths:
    """Data and caches live under $BENCH_HOME (default ~/.cache/bench), results where asked."""
    home = Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "bench"))
    return Paths(results_root=results_root, data_root=home / "data", cache_dir=home / "cache")


_stop_requested = threading.Event()


def stop_requested() -> bool:
    return _stop_requested.is_set()


class JobRunner:
    """The callable submitit pickles: trains one job, records its end, flushes it to MLflow.

    Checkpointable: on preemption or time limit submitit calls `checkpoint`, which resubmits
    this same runner; the job resumes from its last checkpoint.

    `tracking` is where the job's MLflow run goes. A cluster job (`launcher_pid` None) writes it
    itself; a local job leaves it to its `bench run` process (`launcher_pid`), which already has
    MLflow loaded, and writes it itself only when that process is gone (killed), so an orphaned
    job's run is not missing until the next `bench run`.
    """

    def __init__(self, spec: JobSpec, suite_dir: Path, paths: Paths, tracking: TrackingTarget | None,
                 threads: int | None, launcher_pid: int | None = None) -> None:
        self.spec = spec
        self.suite_dir = Path(suite_dir)
        self.paths = paths
        self.tracking = tracking
        self.threads = threads
        self.launcher_pid = launcher_pid

    def __call__(self) -> str:
        import torch

        from bench.train import train

        if self.threads:
            torch.set_num_threads(self.threads)
        store = SuiteStore(self.suite_dir).job(self.spec.job_id)
        store.path.mkdir(parents=True, exist_ok=True)
        slurm_id = _slurm_task_id()
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
        with open(store.log_path, "a", buffering=1) as log_file:

            def log(message: str) -> None:
                log_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

            log(f"job {self.spec.job_id} on {socket.gethostname()} pid {os.getpid()}, "
                f"{torch.get_num_threads()} torch threads: "
                f"{self.spec.objective} / {self.spec.arch} / seed {self.spec.seed}")
            try:
                result = train(self.spec, store, data_root=self.paths.data_root, cache_dir=self.paths.cache_dir,
                               should_stop=stop_requested, log=log)
                status = result.status
                log(f"ended {status}" + (f": {result.reason}" if result.reason else ""))
            except Exception as error:  # the suite goes on; the reason is kept
                log(traceback.format_exc())
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
                store.write_status("failed", reason=reason)
                status = "failed"
            finally:
                for signal_number, handler in previous.items():
                    signal.signal(signal_number, handler)
            if preempted.is_set() and status == "pending":
                log("preempted: checkpoint written; asking SLURM to requeue this job")
                handler = previous[_submitit_signal()]
                if callable(handler):
                    handler(_submitit_signal(), None)  # submitit: calls self.checkpoint, requeues, exits
            if status in COMPLETE + ("failed",) and self.tracking is not None and not self._launcher_alive():
                flush_to_mlflow(store, self.tracking, log)
        return status

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


def flush_to_mlflow(store: JobStore, tracking: TrackingTarget, log: Callable[[str], None] = print) -> str | None:
    """Log a finished job's params, metric rows and samples as the suite's child run (idempotent)."""
    from bench.tracking import Tracker

    spec = store.read_spec()
    status = store.read_status()
    if spec is None:
        return None
    try:
        tracker = Tracker(tracking.uri, tracking.experiment, tracking.artifact_root)
        artifacts = sorted(p for p in store.samples_dir.glob("final.*")) if store.samples_dir.exists() else []
        run_id = tracker.log_job(tracking.parent_run_id, spec.job_id, spec.flat(), store.read_metrics(),
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
    if status.get("status") in COMPLETE:
        return False
    slurm_job = status.get("slurm_job_id")
    if slurm_job and slurm_states is not None:
        state = slurm_states.get(str(slurm_job), "")
        if not state:
            # accounting may lag a fresh submission by a moment: recent means queued
            return _age_s(status.get("updated_at")) < UNKNOWN_SLURM_JOB_GRACE_S
        return state.split()[0] in LIVE_SLURM_STATES
    if status.get("status") != "running":
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
    if status.get("status") != "running" or is_live(status, slurm_states):
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
        if status["status"] in COMPLETE:
            plan.complete.append(job)
        elif is_live(status, slurm_states) or (slurm_unanswered and status.get("slurm_job_id")):
            plan.live.append(job)
        elif store.path.joinpath("checkpoint.pt").exists():
            plan.resume.append(job)
        else:
            plan.fresh.append(job)
    return plan


def changed_jobs(jobs: Sequence[JobSpec], suite_store: SuiteStore, axes: Sequence[str]) -> list[str]:
    """Jobs of the grid whose grid position already has results under a different spec: their
    differences, one block per job (empty when none). Such a rerun would mix two experiments."""
    def position(flat: dict[str, str]) -> tuple[str, ...]:
        keys = ["objective", "arch", "seed"] + sorted(
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
        self.counts = {"done": 0, "diverged": 0, "failed": 0, "pending": 0}
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
            self.reached[job_id] = self._step(job_id) if status == "pending" else self.total[job_id]
        for job_id in running:
            self.reached[job_id] = max(self.reached[job_id], self._step(job_id))
        self.running = len(running)
        self._postfix()
        self.bar.update(sum(self.reached.values()) - before)

    def _postfix(self) -> None:
        jobs = len(self.total)
        text = (f"jobs {self.counts['done']}/{jobs} done, {self.running} running, "
                f"{self.counts['diverged']} diverged, {self.counts['failed']} failed")
        if self.counts["pending"]:
            text += f", {self.counts['pending']} interrupted"
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

    `ended(runner, status)` records a job's end (and flushes its MLflow run when this process does
    that); `running` holds the (runner, submitit job) pairs running now, which a stop signal reaches.
    """

    runners: list[JobRunner]
    folder: Path
    max_parallel: int
    profile: Any
    wait: bool
    bar: Progress
    echo: Callable[[str], None]
    ended: Callable[[JobRunner, str], None]
    running: list[tuple[JobRunner, Any]] = field(default_factory=list)


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


def _launch_debug(context: LaunchContext) -> dict[str, str]:
    import submitit

    debug = submitit.DebugExecutor(folder=context.folder)
    results: dict[str, str] = {}
    for runner in context.runners:
        if stop_requested():
            break
        context.bar.update(finished={}, running=[runner.spec.job_id])
        status = debug.submit(runner).result()
        context.ended(runner, status)
        results[runner.spec.job_id] = status
        context.bar.update(finished={runner.spec.job_id: status}, running=[])
    return results


def _launch_local(context: LaunchContext) -> dict[str, str]:
    import submitit

    # a stop (Ctrl-C, SIGTERM) ends new submissions; running jobs checkpoint and end
    local = submitit.LocalExecutor(folder=context.folder)
    local.update_parameters(timeout_min=60 * 24 * 7)
    queue = list(context.runners)
    running = context.running
    results: dict[str, str] = {}
    suite_dir = context.folder.parent
    while queue or running:
        while queue and len(running) < context.max_parallel and not stop_requested():
            runner = queue.pop(0)
            running.append((runner, local.submit(runner)))
        finished: dict[str, str] = {}
        for runner, job in list(running):
            if job.done():
                running.remove((runner, job))
                status = _local_result(job, runner, suite_dir)
                context.ended(runner, status)
                results[runner.spec.job_id] = status
                finished[runner.spec.job_id] = status
        context.bar.update(finished=finished, running=[runner.spec.job_id for runner, _ in running])
        if stop_requested() and not running:
            break
        time.sleep(0.5)
    return results


def _launch_slurm(context: LaunchContext) -> dict[str, str]:
    from bench.launch import slurm

    return slurm.submit_array(context.runners, folder=context.folder, profile=context.profile, wait=context.wait,
                              bar=context.bar, echo=context.echo)


def _slurm_problems() -> list[str]:
    from bench.launch import slurm

    return slurm.availability_problems()


register_executor(Executor(
    "debug", "every job in this process, one after another (tracebacks and debuggers work)",
    _launch_debug, options=THREADS_OPTION, threads=lambda max_parallel: os.cpu_count() or 1,
))
register_executor(Executor(
    "local", "each job in its own process on this machine, max_parallel at once",
    _launch_local,
    options={"max_parallel": Option(2, int, low=1, description="jobs running at once on this machine"),
             **THREADS_OPTION},
    threads=lambda max_parallel: max(1, (os.cpu_count() or 1) // max_parallel),
))
register_executor(Executor(
    "slurm", "SLURM job arrays from a login node, resources from a profile (slurm/profiles/)",
    _launch_slurm,
    options={"profile": Option(None, str, nullable=True,
                               description="the SLURM cluster profile, a YAML file (see slurm/profiles/)"),
             "wait": Option(True, bool, description="wait for the jobs to end (false: return once submitted)"),
             **THREADS_OPTION},
    threads=lambda max_parallel: 1, available=_slurm_problems, needs_profile=True, remote=True,
))


def launch(
    jobs: Sequence[JobSpec],
    *,
    suite_dir: Path,
    paths: Paths,
    tracking: TrackingTarget | None,
    executor: str,
    max_parallel: int,
    threads: int | None,
    progress: bool = True,
    profile: Any = None,
    wait: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, str]:
    """Run `jobs` with the named executor (see EXECUTORS); returns job_id -> final status
    ('submitted' when not waited on)."""
    entry = EXECUTORS.get(executor)
    threads = threads or entry.threads(max_parallel)
    # remote jobs flush their own MLflow run; local ones are flushed here, by the process that
    # already has MLflow loaded (a second or two saved per job), unless this process is killed
    launcher_pid = None if entry.remote else os.getpid()
    runners = [JobRunner(job, suite_dir, paths, tracking, threads, launcher_pid) for job in jobs]

    def ended(runner: JobRunner, status: str) -> None:
        if tracking is not None and status in COMPLETE + ("failed",):
            flush_to_mlflow(SuiteStore(suite_dir).job(runner.spec.job_id), tracking)

    bar = Progress(jobs, suite_dir, progress)
    context = LaunchContext(runners=runners, folder=suite_dir / "submitit", max_parallel=max_parallel,
                            profile=profile, wait=wait, bar=bar, echo=echo, ended=ended)

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


def _local_result(job: Any, runner: JobRunner, suite_dir: Path) -> str:
    try:
        return str(job.result())
    except Exception as error:  # the process died (killed, out of memory): record why
        store = SuiteStore(suite_dir).job(runner.spec.job_id)
        if store.read_status()["status"] not in COMPLETE:
            if stop_requested():
                # killed while stopping on Ctrl-C: not a failure; it resumes from its last checkpoint
                store.write_status("pending", reason="interrupted; resumes from its last checkpoint")
            else:
                reason = str(error).strip().splitlines()[-1][:500] if str(error).strip() else type(error).__name__
                store.write_status("failed", reason=f"job process ended abnormally: {reason}")
        return store.read_status()["status"]
