"""The SLURM side of launching: executors, job arrays, job states, signals.

What the launcher needs from a SLURM cluster, and nothing about what a job computes:

    profile = load_profile(Path("slurm/profiles/local.yaml"))
    executor = make_slurm_executor(folder, profile)
    arrays = submit_arrays(executor, [train_job_1, train_job_2, ...])   # chunked by MaxArraySize
    states = sacct_states([job.job_id for array in arrays for job in array.jobs])

Preemption and timeouts go through submitit's checkpointing: a submitted callable object with a
`checkpoint(self, *args, **kwargs)` method returning `submitit.helpers.DelayedSubmission(self, ...)`
is requeued when its job receives USR2. SLURM sends USR2 `signal_delay_s` seconds before the time
limit (submitit writes `#SBATCH --signal=USR2@<signal_delay_s>`); a preemption, or a test, sends it
with `send_signal(job_id)` (`scancel --signal=USR2 <job_id>`, which reaches the job steps, where
submitit's python runs). The handler calls the callable's `checkpoint`, pickles what it returns,
runs `scontrol requeue <job_id>` and exits; the requeued job starts again from that pickle.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import submitit

from bench.launch.profiles import SlurmProfile

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


def slurm_available() -> bool:
    """True when this machine can submit to a SLURM cluster (sbatch, srun and sacct are on PATH)."""
    return all(shutil.which(tool) is not None for tool in ("sbatch", "srun", "sacct", "scontrol"))


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


def submit_array(executor: submitit.Executor, callables: Sequence[Callable[[], Any]]) -> ArraySubmission:
    """Submit `callables` (each called with no arguments) as ONE job array; at most MaxArraySize."""
    if not callables:
        raise ValueError("submit_array needs at least one callable")
    with executor.batch():
        jobs = [executor.submit(function) for function in callables]
    return ArraySubmission(array_id=jobs[0].job_id.split("_")[0], jobs=jobs)


def submit_arrays(
    executor: submitit.Executor, callables: Sequence[Callable[[], Any]], *, array_size: int | None = None
) -> list[ArraySubmission]:
    """Submit `callables` as as few job arrays as the cluster allows, in order.

    `array_size` defaults to `max_array_size()`; pass a smaller one to spread work over arrays.
    """
    size = max_array_size() if array_size is None else array_size
    return [submit_array(executor, part) for part in chunk(callables, size)]


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
