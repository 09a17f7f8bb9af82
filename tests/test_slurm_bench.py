"""`bench run --executor slurm` against the real local cluster (slurm/cluster.sh start):
a job array completes, a preempted job requeues and ends as if never interrupted, and a
resubmission while jobs run adds none. Runs when BENCH_SLURM_TESTS is set (as in .ci/run)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, TINY_SUITE, run_bench, write_suite

from bench.launch.slurm import sacct_states
from bench.store import SuiteStore

PROFILE = REPO / "slurm" / "profiles" / "local.yaml"

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.usefixtures("cluster_to_ourselves"),
    pytest.mark.skipif(not os.environ.get("BENCH_SLURM_TESTS"),
                       reason="set BENCH_SLURM_TESTS=1 after `slurm/cluster.sh start` to run the SLURM tests"),
]


@pytest.fixture(autouse=True)
def cluster_is_up() -> None:
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip(), (
        f"BENCH_SLURM_TESTS is set but the cluster does not answer: {result.stderr.strip()} "
        "(start it with slurm/cluster.sh start)")


def _slurm_run(suite: Path, tmp_path: Path, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return run_bench(["run", str(suite), "--executor", "slurm", "--profile", str(PROFILE), "--no-progress",
                      "--no-report", *extra], tmp_path, timeout=timeout)


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _resumed_as_uninterrupted(job, tmp_path: Path, stopped: str, resumed: str) -> None:
    """The job stopped once (its log says `stopped` + the step), resumed from there (`resumed` + the
    step) on its second attempt, and logged exactly what the uninterrupted reference run logged."""
    log = job.log_path.read_text()
    interrupted_at = int(log.split(stopped)[1].split()[0])
    assert 100 <= interrupted_at < 1500
    assert f"{resumed}{interrupted_at}" in log
    assert job.read_status()["attempts"] == 2
    expected = pd.read_csv(SuiteStore(tmp_path / "reference" / "tiny").job(job.path.name).metrics_path)
    actual = pd.read_csv(job.metrics_path)
    pd.testing.assert_frame_equal(expected.drop(columns="wall_s"), actual.drop(columns="wall_s"))


def test_a_four_job_array_completes_with_results_and_mlflow_runs(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, {"grid": {"objective": ["nsgan", "rsgan"], "arch": ["mlp"], "seed": [0, 1]}})
    result = _slurm_run(suite, tmp_path, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted 4 jobs as SLURM array" in result.stdout
    store = SuiteStore(tmp_path / "results" / "tiny")
    table = store.jobs_table()
    assert list(table["status"]) == ["done"] * 4
    slurm_ids = [store.job(j).read_status()["slurm_job_id"] for j in store.job_ids()]
    assert len({sid.split("_")[0] for sid in slurm_ids}) == 1  # one array
    assert set(sacct_states(slurm_ids).values()) == {"COMPLETED"}
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bench").experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert {r.data.tags["bench.job_id"] for r in children} == set(store.job_ids())
    assert all(r.info.status == "FINISHED" for r in children)


def test_a_preempted_job_requeues_and_ends_with_the_uninterrupted_metrics(tmp_path: Path) -> None:
    settings = {**TINY_SUITE["train"], "steps": 1500, "checkpoint_every": 500, "log_every": 10, "eval_every": 250}
    suite = write_suite(tmp_path, {"train": settings, "grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0]}})
    reference = run_bench(["run", str(suite), "--executor", "debug", "--threads", "1", "--results", "reference",
                           "--no-tracking", "--no-report", "--no-progress"], tmp_path)
    assert reference.returncode == 0, reference.stderr

    submitted = _slurm_run(suite, tmp_path, "--no-wait", "--no-tracking")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    store = SuiteStore(tmp_path / "results" / "tiny")
    job = store.job(store.job_ids()[0])
    _wait_for(lambda: job.read_status()["status"] == "running" and (job.read_status()["step"] or 0) >= 100,
              120, "the job to pass step 100")
    slurm_id = job.read_status()["slurm_job_id"]
    subprocess.run(["scancel", "--signal=USR2", slurm_id], check=True)
    _wait_for(lambda: job.read_status()["status"] == "done", 240, "the requeued job to finish")
    assert "preempted: checkpoint written; asking SLURM to requeue this job" in job.log_path.read_text()
    _resumed_as_uninterrupted(job, tmp_path, "stop requested: checkpoint written at step ",
                              "resuming from the checkpoint at step ")


def test_a_preempted_packed_task_resumes_every_job_in_it_to_the_uninterrupted_metrics(tmp_path: Path) -> None:
    # two stacks of two seeds, packed into one task: a process per stack, four jobs
    settings = {**TINY_SUITE["train"], "steps": 1500, "checkpoint_every": 500, "log_every": 10, "eval_every": 250}
    suite = write_suite(tmp_path, {"train": settings, "grid": {"objective": ["nsgan", "rsgan"], "arch": ["mlp"],
                                                               "seed": [0, 1]},
                                   "executor": {"name": "debug", "stack_seeds": 2}})
    reference = run_bench(["run", str(suite), "--threads", "1", "--results", "reference",
                           "--no-tracking", "--no-report", "--no-progress"], tmp_path)
    assert reference.returncode == 0, reference.stderr
    profile = tmp_path / "packed.yaml"
    profile.write_text(PROFILE.read_text().replace("cpus_per_task: 1", "cpus_per_task: 2") + "pack: 2\n")

    submitted = run_bench(["run", str(suite), "--executor", "slurm", "--profile", str(profile), "--no-progress",
                           "--no-report", "--no-wait", "--no-tracking"], tmp_path)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "stacked seeds: 2 groups of 4 jobs" in submitted.stdout
    assert "packed: 2 units in 1 SLURM tasks of up to 2" in submitted.stdout
    assert "submitted 4 jobs in 1 tasks as SLURM array" in submitted.stdout
    store = SuiteStore(tmp_path / "results" / "tiny")
    jobs = [store.job(job_id) for job_id in store.job_ids()]
    assert len({job.read_status()["slurm_job_id"] for job in jobs}) == 1  # one task holds all four

    def all_past_step_100() -> bool:
        return all(job.read_status()["status"] == "running" and (job.read_status()["step"] or 0) >= 100
                   for job in jobs)

    _wait_for(all_past_step_100, 180, "the packed jobs to pass step 100")
    assert len({job.read_status()["pid"] for job in jobs}) == 2  # a process per stack
    subprocess.run(["scancel", "--signal=USR2", jobs[0].read_status()["slurm_job_id"]], check=True)
    _wait_for(lambda: all(job.read_status()["status"] == "done" for job in jobs), 300,
              "the requeued task to finish its jobs")
    for job in jobs:
        _resumed_as_uninterrupted(job, tmp_path, "stop requested: checkpoints written at step ",
                                  "resuming 2 stacked seeds from their checkpoints at step ")


def test_resubmitting_while_jobs_run_adds_no_jobs(tmp_path: Path) -> None:
    settings = {**TINY_SUITE["train"], "steps": 20000, "checkpoint_every": 500, "log_every": 100, "eval_every": 5000}
    suite = write_suite(tmp_path, {"train": settings})
    first = _slurm_run(suite, tmp_path, "--no-wait", "--no-tracking")
    assert first.returncode == 0, first.stdout + first.stderr
    store = SuiteStore(tmp_path / "results" / "tiny")
    ids = sorted(store.job(j).read_status()["slurm_job_id"] for j in store.job_ids())
    try:
        second = _slurm_run(suite, tmp_path, "--no-wait", "--no-tracking")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "2 running elsewhere, 0 to resume, 0 to start" in second.stdout
        assert "submitted" not in second.stdout
        assert sorted(store.job(j).read_status()["slurm_job_id"] for j in store.job_ids()) == ids
        status = run_bench(["status", "results/tiny"], tmp_path)
        assert status.returncode == 0 and "slurm" in status.stdout.splitlines()[0]
    finally:
        arrays = sorted({i.split("_")[0] for i in ids})
        subprocess.run(["scancel", *arrays], check=False)
        _wait_for(lambda: not subprocess.run(["squeue", "-h", "-j", ",".join(arrays)], capture_output=True,
                                             text=True).stdout.strip(), 60, "the cancelled jobs to leave the queue")


def test_a_bad_profile_is_one_clear_error(tmp_path: Path, tiny_suite: Path) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text("partition: debug\ngpus: 1\ntime_min: -3\n")
    result = run_bench(["run", str(tiny_suite), "--executor", "slurm", "--profile", str(profile)], tmp_path)
    assert result.returncode == 2
    assert "gpus" in result.stderr and "time_min" in result.stderr
    assert not (tmp_path / "results").exists()
