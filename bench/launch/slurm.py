"""The SLURM side of launching: executors, job arrays, job states, signals.

What the launcher needs from a SLURM cluster, and nothing about what a job computes:

    profile = load_profile(Path("slurm/profiles/local.yaml"))
    executor = make_slurm_executor(folder, profile)
    arrays = submit_job_arrays(executor, [train_job_1, train_job_2, ...])   # chunked by MaxArraySize
    states = sacct_states([job.job_id for array in arrays for job in array.jobs])

Preemption and timeouts go through submitit's checkpointing: a submitted callable object with a
`checkpoint(self, *args, **kwargs)` method returning `submitit.helpers.DelayedSubmission(self, ...)`
is requeued when its job receives USR2. SLURM sends USR2 `signal_delay_s` seconds before the time
limit (submitit writes `#SBATCH --signal=USR2@<signal_delay_s>`); a preemption, or a test, sends it
with `send_signal(job_id)` (`scancel --signal=USR2 <job_id>`, which reaches the job steps, where
submitit's python runs). The handler calls the callable's `checkpoint`, pickles what it returns,
runs `scontrol requeue <job_id>` and exits; the requeued job starts again from that pickle.

Three facts that decide whether this works on a cluster:
- the signal must reach the steps, not the batch shell: `scancel --batch` or `--full` sends USR2
  to bash, which dies of it (the job ends FAILED, no checkpoint);
- a real preemption sends USR2 only where slurm.conf has `SlurmctldParameters=preempt_send_user_signal`
  and the preempted partition a `GraceTime`; otherwise the job gets SIGTERM (which submitit ignores)
  and is requeued by SLURM from the original pickle, so resuming rests on the job's own checkpoint file;
- a requeued job waits `AuthInfo=cred_expire` seconds (default 120) before it may start again.
submitit calls a signal "timed-out" (counted against `max_num_timeout`) when the job has run
min(0.8 * limit, limit - 10 min), so with a limit of 10 minutes or less every USR2 is a timeout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import submitit

from bench.launch.profiles import SlurmProfile
from bench.store import COMPLETE_STATUSES, Status, SuiteStore

T = TypeVar("T")

_COMMAND_TIMEOUT_S = 60

# sacct states that end a job for good (a requeued job passes through REQUEUED/PREEMPTED first
# and then shows PENDING again, so those two are not final).
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "TIMEOUT",
    }
)


class SlurmError(RuntimeError):
    """A SLURM command is missing or failed; the message has the command and its stderr."""


@dataclass(frozen=True)
class ArraySubmission:
    """One submitted job array: its SLURM id and one submitit job per task, in input order.

    `array_id` is the id SLURM printed at submission ("123"); task i is job "123_i". A batch of
    one callable is submitted by submitit as a plain job, whose id is "123" with no task suffix.
    """

    array_id: str
    jobs: list[submitit.Job[Any]]

    @property
    def task_ids(self) -> list[str]:
        return [job.job_id for job in self.jobs]


CLIENT_TOOLS = ("sbatch", "srun", "sacct", "scontrol", "sinfo")
"""The SLURM client commands the slurm executor uses: submit, requeue, account, configure, ask."""

# how long preflight waits for the controller to answer `sinfo`
_PING_TIMEOUT_S = 15


def slurm_available() -> bool:
    """True when this machine can submit to a SLURM cluster (sbatch, srun and sacct are on PATH)."""
    return all(shutil.which(tool) is not None for tool in ("sbatch", "srun", "sacct", "scontrol"))


def availability_problems() -> list[str]:
    """Why this machine cannot submit to SLURM now (empty when it can): client commands missing from
    PATH, or a controller that does not answer `sinfo`. Submits nothing."""
    missing = [tool for tool in CLIENT_TOOLS if shutil.which(tool) is None]
    if missing:
        return [f"SLURM client command{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found on PATH: "
                "the slurm executor submits from a SLURM login node; run there (with the SLURM module "
                "loaded), or choose --executor local"]
    try:
        done = subprocess.run(["sinfo", "--noheader", "--format=%P"], capture_output=True, text=True,
                              timeout=_PING_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        timed_out = isinstance(error, subprocess.TimeoutExpired)
        reason = f"did not answer in {_PING_TIMEOUT_S} s" if timed_out else str(error)
        return [f"the SLURM controller (slurmctld) is unreachable: `sinfo` {reason}"]
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return [f"the SLURM controller (slurmctld) is unreachable: `sinfo` exited {done.returncode}"
                + (f": {said[0]}" if said else "")]
    return []


def _run(command: list[str]) -> str:
    """Run a SLURM client command and return its stdout; SlurmError on any failure."""
    if shutil.which(command[0]) is None:
        raise SlurmError(f"{command[0]!r} not found on PATH: is this a SLURM login node?")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(command)} did not answer in {_COMMAND_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise SlurmError(
            f"{' '.join(command)} exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def scontrol_config() -> dict[str, str]:
    """`scontrol show config` as {key: value} (values as printed, e.g. "MaxArraySize": "1001")."""
    config = {}
    for line in _run(["scontrol", "show", "config"]).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def max_array_size() -> int:
    """The most tasks one job array may have on this cluster (its `MaxArraySize`).

    SLURM allows array indices 0..MaxArraySize-1, so an array of `max_array_size()` tasks fits.
    """
    config = scontrol_config()
    try:
        return int(config["MaxArraySize"])
    except (KeyError, ValueError):
        raise SlurmError(
            f"scontrol show config gave no integer MaxArraySize (got {config.get('MaxArraySize')!r})"
        ) from None


def chunk(items: Sequence[T], size: int) -> list[list[T]]:
    """`items` cut into consecutive lists of at most `size` (the last may be shorter), order kept."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"chunk size must be a positive int, got {size!r}")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def make_slurm_executor(folder: Path, profile: SlurmProfile, *, job_name: str = "bench") -> submitit.AutoExecutor:
    """A submitit executor that submits to SLURM with the profile's resources.

    `folder` holds submitit's pickles and logs (`%j` in it is replaced by the job id); it must be
    visible from the compute nodes. Jobs run this process's python (`sys.executable`).
    """
    if not slurm_available():
        raise SlurmError("sbatch/srun/sacct/scontrol not found on PATH: is this a SLURM login node?")
    executor = submitit.AutoExecutor(
        folder=folder, cluster="slurm", slurm_max_num_timeout=profile.max_num_timeout
    )
    executor.update_parameters(name=job_name, **profile.executor_parameters())
    return executor


def submit_job_array(executor: submitit.Executor, callables: Sequence[Callable[[], Any]]) -> ArraySubmission:
    """Submit `callables` (each called with no arguments) as ONE job array; at most MaxArraySize."""
    if not callables:
        raise ValueError("submit_array needs at least one callable")
    with executor.batch():
        jobs = [executor.submit(function) for function in callables]
    return ArraySubmission(array_id=jobs[0].job_id.split("_")[0], jobs=jobs)


def submit_job_arrays(
    executor: submitit.Executor, callables: Sequence[Callable[[], Any]], *, array_size: int | None = None
) -> list[ArraySubmission]:
    """Submit `callables` as as few job arrays as the cluster allows, in order.

    `array_size` defaults to `max_array_size()`; pass a smaller one to spread work over arrays.
    """
    size = max_array_size() if array_size is None else array_size
    return [submit_job_array(executor, part) for part in chunk(callables, size)]


# "123", "123_4", "123_[0-3]", "123_[1,3,5-7%2]", "123+0" (heterogeneous component)
_SACCT_ID = re.compile(r"^(?P<base>\d+(?:\+\d+)?)(?:_(?P<task>\d+|\[(?P<ranges>[^\]]*)\]))?$")


def _expand_job_id(job_id: str) -> list[str]:
    """"123_[0-2,5%2]" -> ["123_0", "123_1", "123_2", "123_5"]; other ids unchanged."""
    match = _SACCT_ID.match(job_id)
    if match is None or match["ranges"] is None:
        return [job_id]
    ids = []
    for part in match["ranges"].split("%")[0].split(","):
        first, _, last = part.partition("-")
        ids += [f"{match['base']}_{index}" for index in range(int(first), int(last or first) + 1)]
    return ids


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """The current state of each job, from accounting: {job id: STATE}.

    `job_ids` may be plain jobs ("123"), array tasks ("123_4") or whole arrays ("123", which
    yields one entry per task, "123_0", ...). States are sacct's first word ("CANCELLED by 0"
    -> "CANCELLED"): PENDING, RUNNING, REQUEUED, COMPLETED, FAILED, TIMEOUT, ... (see
    FINAL_STATES). Pending array tasks that sacct folds into "123_[2-5]" are expanded. A job that
    accounting does not know yet (just submitted) is absent from the result.
    """
    if not job_ids:
        return {}
    output = _run(["sacct", "--allocations", "--noheader", "--parsable2", "--format=JobID,State",
                   f"--jobs={','.join(job_ids)}"])
    states: dict[str, str] = {}
    for line in output.splitlines():
        job_id, sep, state = line.partition("|")
        if not sep:
            continue
        for expanded in _expand_job_id(job_id.strip()):
            states[expanded] = state.split()[0] if state.strip() else "UNKNOWN"
    return states


def send_signal(job_id: str, signal: str = "USR2") -> None:
    """Send `signal` to the job's steps, as SLURM does before a time limit or a preemption.

    `scancel --signal=USR2 <job_id>` without `--batch`: the signal goes to the job steps (the
    `srun` step where submitit's python runs), not to the batch shell, which would not pass it on.
    """
    _run(["scancel", f"--signal={signal}", job_id])


# ---- what `bench run --executor slurm` and `bench status` call -----------------------------------


class _Spec(Protocol):
    @property
    def job_id(self) -> str: ...


class Runner(Protocol):
    """What one SLURM task runs: called with no arguments, it trains the jobs `job_ids` (one job, a
    stack of seeds, or a pack of those: bench.launch.JobRunner, PackedRunner) and returns what
    `statuses` turns into job_id -> final status (a `bench.store.Status`: done, diverged, failed, or
    pending when stopped); `spec.job_id` names its first job. A `checkpoint` method makes it requeue
    itself on USR2 (see the module docstring)."""

    @property
    def spec(self) -> _Spec: ...

    @property
    def job_ids(self) -> tuple[str, ...]: ...

    def statuses(self, result: Any) -> dict[str, str]: ...

    def __call__(self) -> Any: ...


class Progress(Protocol):
    def update(self, *, finished: dict[str, str], running: list[str]) -> None: ...


def submit_array(
    runners: Sequence[Runner],
    *,
    folder: Path,
    profile: SlurmProfile,
    wait: bool = True,
    bar: Progress | None = None,
    echo: Callable[[str], None] = print,
    poll_s: float = 5.0,
) -> dict[str, str]:
    """Submit `runners` as SLURM job arrays (as few as MaxArraySize allows); {job_id: status}.

    With `wait=False`, every status is "submitted" and this returns at once. With `wait=True`, it
    polls sacct every `poll_s` seconds until every task has a final state: a COMPLETED task's
    status is what its runner returned; a task that ended otherwise (FAILED, TIMEOUT,
    OUT_OF_MEMORY, CANCELLED, ...) is failed, recorded in the job's status.json with the SLURM
    state as reason when the runner carries `suite_dir`. Ctrl-C stops waiting, not the jobs.
    """
    if not runners:
        return {}
    executor = make_slurm_executor(Path(folder), profile, job_name=Path(folder).parent.name or "bench")
    arrays = submit_job_arrays(executor, runners)
    # arrays are consecutive chunks of `runners`, so the jobs line up with them in order
    pairs = list(zip(runners, [job for array in arrays for job in array.jobs], strict=True))
    jobs = sum(len(runner.job_ids) for runner in runners)
    tasks = f" in {len(runners)} tasks" if jobs != len(runners) else ""
    echo(
        f"submitted {jobs} jobs{tasks} as SLURM array{'s' if len(arrays) > 1 else ''} "
        f"{', '.join(array.array_id for array in arrays)} (logs: {folder})"
    )
    # recorded at once, so that a second `bench run` sees these jobs as queued and adds none
    for runner, job in pairs:
        suite_dir = getattr(runner, "suite_dir", None)
        if suite_dir is not None:
            for job_id in runner.job_ids:
                store = SuiteStore(Path(suite_dir)).job(job_id)
                store.write_status(store.read_status()["status"], slurm_job_id=job.job_id)
    statuses = {job_id: "submitted" for runner in runners for job_id in runner.job_ids}
    if not wait:
        return statuses
    pending = {job.job_id: (runner, job) for runner, job in pairs}
    try:
        while pending:
            try:
                states = sacct_states(list(pending))
            except SlurmError as error:
                echo(
                    f"stopped waiting: SLURM accounting did not answer ({str(error).splitlines()[0]}); "
                    f"{len(pending)} jobs go on in SLURM (arrays {', '.join(array.array_id for array in arrays)}); "
                    "`bench status` follows them"
                )
                break
            finished: dict[str, str] = {}
            for task_id, state in states.items():
                if task_id not in pending or state not in FINAL_STATES:
                    continue
                runner, job = pending.pop(task_id)
                ended = _final_statuses(runner, job, task_id, state)
                statuses.update(ended)
                finished.update(ended)
            if bar is not None:
                running = [job_id for task_id, (runner, _) in pending.items()
                           if states.get(task_id) == "RUNNING" for job_id in runner.job_ids]
                bar.update(finished=finished, running=running)
            if pending:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        echo(
            f"stopped waiting: {len(pending)} jobs go on in SLURM "
            f"(arrays {', '.join(array.array_id for array in arrays)}); `bench status` follows them"
        )
    return statuses


def _final_statuses(runner: Runner, job: submitit.Job[Any], task_id: str, state: str) -> dict[str, str]:
    """job_id -> the status each job of a finished task ends with; the jobs of a task that died
    without an answer are failed (but for those its results folder records as complete)."""
    if state == "COMPLETED":
        try:
            return {job_id: str(status) for job_id, status in runner.statuses(job.result()).items()}
        except Exception as error:  # the job's own error, kept as its reason
            reason = f"SLURM job {task_id} COMPLETED without a result: {str(error).strip().splitlines()[-1:]}"
    else:
        reason = f"SLURM job {task_id} ended {state}"
        try:
            job.result()
        except Exception as error:  # the traceback's last line says why
            lines = str(error).strip().splitlines()
            reason += f": {lines[-1][:300]}" if lines else ""
    suite_dir = getattr(runner, "suite_dir", None)
    if suite_dir is None:
        return dict.fromkeys(runner.job_ids, str(Status.FAILED))
    return SuiteStore(Path(suite_dir)).record_lost(runner.job_ids, reason)


def states_for_store(suite_store: Any) -> dict[str, str]:
    """{slurm_job_id: sacct state} for every job of a `bench.store.SuiteStore` whose status.json
    records a `slurm_job_id` ("123_4") and is not complete there (done and diverged jobs need no
    answer from accounting); {} when none is."""
    job_ids = sorted(
        {
            str(status["slurm_job_id"])
            for status in (suite_store.job(job_id).read_status() for job_id in suite_store.job_ids())
            if status.get("slurm_job_id") and status.get("status") not in COMPLETE_STATUSES
        }
    )
    return sacct_states(job_ids) if job_ids else {}


def store_states(suite_store: Any, warn: Callable[[str], None]) -> dict[str, str] | None:
    """`states_for_store`, or None when SLURM cannot be asked: its commands are not on this machine,
    or sacct fails (accounting down), which `warn` is told in one line. None means "the store's
    view is all there is"."""
    if not slurm_available():
        return None
    try:
        return states_for_store(suite_store)
    except SlurmError as error:
        warn(f"SLURM accounting did not answer ({str(error).splitlines()[0]}); showing the results folder's view")
        return None
