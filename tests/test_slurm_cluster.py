"""bench.launch.slurm against the real single-node cluster of slurm/cluster.sh.

The cluster tests run only when BENCH_SLURM_TESTS is set (CI sets it after `slurm/cluster.sh start`);
with it set, a cluster that is not up is a failure, not a skip. The parsing helpers are tested
everywhere.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import cloudpickle
import pytest
import submitit

from bench.launch import slurm
from bench.launch.profiles import SlurmProfile, load_profile

# Jobs unpickle the callables below in a fresh python that cannot import this test module by
# name, so they travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO = Path(__file__).resolve().parents[1]


# --- helpers that need no cluster ----------------------------------------------------------------


def test_chunk_keeps_order_and_cuts_the_last_short() -> None:
    assert slurm.chunk(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert slurm.chunk(list("abc"), 3) == [["a", "b", "c"]]
    assert slurm.chunk([], 4) == []


@pytest.mark.parametrize("size", [0, -1, 2.0])
def test_chunk_refuses_a_bad_size(size: object) -> None:
    with pytest.raises(ValueError, match=r"chunk size must be a positive int, got"):
        slurm.chunk([1, 2], size)  # type: ignore[arg-type]


def test_sacct_states_expands_folded_array_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    sacct_output = "\n".join(
        [
            "120|COMPLETED",
            "121_0|RUNNING",
            "121_1|CANCELLED by 0",
            "121_[2-4,7%2]|PENDING",
            "122|REQUEUED",
        ]
    )
    commands: list[list[str]] = []

    def fake_run(command: list[str]) -> str:
        commands.append(command)
        return sacct_output + "\n"

    monkeypatch.setattr(slurm, "_run", fake_run)
    states = slurm.sacct_states(["120", "121", "122"])
    assert states == {
        "120": "COMPLETED",
        "121_0": "RUNNING",
        "121_1": "CANCELLED",
        "121_2": "PENDING",
        "121_3": "PENDING",
        "121_4": "PENDING",
        "121_7": "PENDING",
        "122": "REQUEUED",
    }
    assert commands == [
        ["sacct", "--allocations", "--noheader", "--parsable2", "--format=JobID,State", "--jobs=120,121,122"]
    ]
    assert slurm.sacct_states([]) == {}


def test_states_for_store_asks_sacct_for_recorded_slurm_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = {"a": {"slurm_job_id": "7_0"}, "b": {"slurm_job_id": None}, "c": {"slurm_job_id": "7_2"}}

    class FakeSuiteStore:
        def job_ids(self) -> list[str]:
            return sorted(recorded)

        def job(self, job_id: str) -> types.SimpleNamespace:
            return types.SimpleNamespace(read_status=lambda: recorded[job_id])

    asked: list[list[str]] = []
    monkeypatch.setattr(slurm, "sacct_states", lambda ids: asked.append(ids) or {"7_0": "RUNNING", "7_2": "PENDING"})
    assert slurm.states_for_store(FakeSuiteStore()) == {"7_0": "RUNNING", "7_2": "PENDING"}
    assert asked == [["7_0", "7_2"]]
    recorded.clear()
    assert slurm.states_for_store(FakeSuiteStore()) == {}
    assert len(asked) == 1


def test_slurm_errors_name_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(slurm.SlurmError, match=r"'sacct' not found on PATH"):
        slurm.sacct_states(["1"])


def test_make_slurm_executor_applies_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # build the executor on any machine; nothing is submitted
    monkeypatch.setattr(slurm, "slurm_available", lambda: True)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    profile = load_profile(REPO / "slurm" / "profiles" / "gpu-example.yaml")
    executor = slurm.make_slurm_executor(tmp_path, profile, job_name="suite-a")
    assert executor.cluster == "slurm"
    assert executor._executor.max_num_timeout == 5
    parameters = executor._executor.parameters
    assert parameters["job_name"] == "suite-a"
    assert parameters["time"] == 240 and parameters["mem"] == "32GB" and parameters["partition"] == "gpu"
    assert parameters["array_parallelism"] == 64 and parameters["signal_delay_s"] == 120


def test_make_slurm_executor_needs_the_slurm_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(slurm.SlurmError, match=r"sbatch/srun/sacct/scontrol not found on PATH"):
        slurm.make_slurm_executor(tmp_path, SlurmProfile())


# --- the real cluster ------------------------------------------------------------------------------

# one test at a time on the cluster, whichever pytest-xdist worker runs it
pytestmark = pytest.mark.usefixtures("cluster_to_ourselves")

requires_env = pytest.mark.skipif(
    not os.environ.get("BENCH_SLURM_TESTS"),
    reason="set BENCH_SLURM_TESTS=1 to run against the local cluster (slurm/cluster.sh start)",
)


@pytest.fixture(scope="module")
def cluster_cpus() -> int:
    """The node's CPU count; fails (not skips) when the cluster is not up."""
    hint = "start it with `slurm/cluster.sh start`"
    if not slurm.slurm_available():
        pytest.fail(f"BENCH_SLURM_TESTS is set but the SLURM client tools are not installed; {hint}")
    # a node still "completing" jobs cancelled by an earlier test becomes usable within seconds
    deadline = time.time() + 60
    while True:
        sinfo = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%T %c"], capture_output=True, text=True)
        fields = sinfo.stdout.split()
        if sinfo.returncode != 0 or (fields and fields[0] != "completing") or time.time() > deadline:
            break
        time.sleep(1)
    if sinfo.returncode != 0 or len(fields) != 2 or fields[0] not in {"idle", "mixed", "allocated"}:
        pytest.fail(f"BENCH_SLURM_TESTS is set but the cluster is not up "
                    f"({sinfo.stderr.strip() or sinfo.stdout.strip()}); {hint}")
    sacct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True)
    if sacct.returncode != 0:
        pytest.fail(f"BENCH_SLURM_TESTS is set but accounting does not answer ({sacct.stderr.strip()}); {hint}")
    return int(fields[1])


def wait_final(job_ids: list[str], timeout_s: float) -> dict[str, str]:
    """Poll sacct until every id has a final state; the last states seen on timeout."""
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = slurm.sacct_states(job_ids)
        if all(states.get(job_id) in slurm.FINAL_STATES for job_id in job_ids):
            return states
        time.sleep(1.0)
    return states


def wait_for_file(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} not written within {timeout_s} s"
        time.sleep(0.2)


def square(value: int) -> int:
    return value * value


class CountTo:
    """A checkpointable toy job: counts to `target`, one step every `step_s` seconds.

    Its progress lives in the object, so the copy pickled by `checkpoint` resumes where the
    signal found it; `starts` records where each run began. `progress_file` tells the test
    that the job is running.
    """

    def __init__(self, target: int, step_s: float, progress_file: Path) -> None:
        self.target = target
        self.step_s = step_s
        self.progress_file = progress_file
        self.done = 0
        self.starts: list[int] = []

    def __call__(self) -> tuple[int, list[int]]:
        self.starts.append(self.done)
        while self.done < self.target:
            time.sleep(self.step_s)
            self.done += 1
            self.progress_file.write_text(str(self.done))
        return self.done, self.starts

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self)


class ToyRunner:
    """Stands for the launcher's JobRunner: `spec.job_id` names its one job, calling it returns a status."""

    def __init__(self, job_id: str, status: str) -> None:
        self.spec = types.SimpleNamespace(job_id=job_id)
        self.job_ids = (job_id,)
        self.status = status

    def statuses(self, result: str) -> dict[str, str]:
        return {self.spec.job_id: result}

    def __call__(self) -> str:
        if self.status == "crash":
            raise RuntimeError("toy job crashed")
        return self.status


class RecordingBar:
    """Records what `submit_array` reports: each ended job once, with its status."""

    def __init__(self) -> None:
        self.finished: dict[str, str] = {}

    def update(self, *, finished: dict[str, str], running: list[str]) -> None:
        assert not set(finished) & set(self.finished), "a job reported as ended twice"
        self.finished.update(finished)


def local_profile(**changes: object) -> SlurmProfile:
    """slurm/profiles/local.yaml with `changes`, validated again."""
    base = load_profile(REPO / "slurm" / "profiles" / "local.yaml")
    return SlurmProfile.model_validate({**base.model_dump(), **changes})


@pytest.mark.slurm
@requires_env
def test_job_array_of_four_completes(cluster_cpus: int, tmp_path: Path) -> None:
    assert slurm.max_array_size() == 1001  # MaxArraySize written by slurm/cluster.sh
    executor = slurm.make_slurm_executor(tmp_path / "%j", local_profile(array_parallelism=4))
    array = slurm.submit_job_array(executor, [functools.partial(square, value) for value in range(4)])

    assert array.task_ids == [f"{array.array_id}_{index}" for index in range(4)]
    assert [job.result() for job in array.jobs] == [0, 1, 4, 9]
    assert wait_final(array.task_ids, timeout_s=30) == {task: "COMPLETED" for task in array.task_ids}
    # the array's own id answers with every task
    assert slurm.sacct_states([array.array_id]) == {task: "COMPLETED" for task in array.task_ids}


@pytest.mark.slurm
@requires_env
def test_submit_job_arrays_splits_into_arrays_of_the_given_size(cluster_cpus: int, tmp_path: Path) -> None:
    executor = slurm.make_slurm_executor(tmp_path / "%j", local_profile())
    arrays = slurm.submit_job_arrays(executor, [functools.partial(square, value) for value in range(3)], array_size=2)

    assert [len(array.jobs) for array in arrays] == [2, 1]
    assert arrays[0].task_ids == [f"{arrays[0].array_id}_0", f"{arrays[0].array_id}_1"]
    assert arrays[1].task_ids == [arrays[1].array_id]  # one callable: a plain job, no task suffix
    assert [job.result() for array in arrays for job in array.jobs] == [0, 1, 4]


@pytest.mark.slurm
@requires_env
def test_usr2_checkpoints_requeues_and_resumes(cluster_cpus: int, tmp_path: Path) -> None:
    progress = tmp_path / "progress"
    # time_min 15: submitit counts a signal in the first min(0.8 * limit, limit - 10 min) as a
    # preemption, not a timeout, so the requeue does not use up max_num_timeout
    executor = slurm.make_slurm_executor(tmp_path / "%j", local_profile(time_min=15))
    job = executor.submit(CountTo(target=24, step_s=0.25, progress_file=progress))
    wait_for_file(progress, timeout_s=60)

    slurm.send_signal(job.job_id, "USR2")

    done, starts = job.result()
    assert done == 24
    assert len(starts) == 2 and starts[0] == 0 and 0 < starts[1] < 24, starts
    assert wait_final([job.job_id], timeout_s=30) == {job.job_id: "COMPLETED"}
    log = Path(job.paths.stdout).read_text()
    assert "Caught signal SIGUSR2" in log and "this job is preempted" in log
    assert "Calling checkpoint method." in log
    assert f"Requeued job {job.job_id} (3 remaining timeouts)" in log


@pytest.mark.slurm
@requires_env
def test_preemption_by_a_higher_tier_partition_requeues_and_resumes(cluster_cpus: int, tmp_path: Path) -> None:
    """A job in partition `urgent` needs the whole node: the `debug` job holding it gets USR2
    (preempt_send_user_signal), checkpoints, is requeued, and finishes after the urgent job."""
    progress = tmp_path / "progress"
    whole_node = local_profile(time_min=15, cpus_per_task=cluster_cpus)
    executor = slurm.make_slurm_executor(tmp_path / "%j", whole_node)
    job = executor.submit(CountTo(target=24, step_s=0.25, progress_file=progress))
    wait_for_file(progress, timeout_s=60)

    urgent = subprocess.run(
        ["sbatch", "--parsable", "--partition=urgent", f"--cpus-per-task={cluster_cpus}", "--mem=100M",
         f"--output={tmp_path / 'urgent.out'}", "--wrap=sleep 2"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()

    done, starts = job.result()
    assert done == 24
    assert len(starts) == 2 and starts[0] == 0 and 0 < starts[1] < 24, starts
    assert wait_final([job.job_id, urgent], timeout_s=30) == {job.job_id: "COMPLETED", urgent: "COMPLETED"}
    assert "this job is preempted" in Path(job.paths.stdout).read_text()


@pytest.mark.slurm
@requires_env
def test_submit_array_waits_and_reports_each_status(cluster_cpus: int, tmp_path: Path) -> None:
    runners = [ToyRunner("job-a", "done"), ToyRunner("job-b", "diverged"), ToyRunner("job-c", "crash")]
    bar = RecordingBar()
    messages: list[str] = []
    statuses = slurm.submit_array(runners, folder=tmp_path / "submitit", profile=local_profile(array_parallelism=3),
                                  bar=bar, echo=messages.append, poll_s=1.0)
    assert statuses == {"job-a": "done", "job-b": "diverged", "job-c": "failed"}
    assert bar.finished == {"job-a": "done", "job-b": "diverged", "job-c": "failed"}
    assert re.fullmatch(rf"submitted 3 jobs as SLURM array \d+ \(logs: {re.escape(str(tmp_path))}/submitit\)",
                        messages[0]), messages


@pytest.mark.slurm
@requires_env
def test_submit_array_without_waiting_returns_at_once(cluster_cpus: int, tmp_path: Path) -> None:
    statuses = slurm.submit_array([ToyRunner("job-a", "done")], folder=tmp_path / "submitit",
                                  profile=local_profile(), wait=False, echo=lambda message: None)
    assert statuses == {"job-a": "submitted"}
