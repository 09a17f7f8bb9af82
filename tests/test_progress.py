"""The suite progress bar counts generator steps, read from the running jobs' status files."""

from __future__ import annotations

from types import SimpleNamespace

from bench.launch import Progress
from bench.store import SuiteStore


def test_progress_counts_steps_of_running_jobs_and_jobs_by_state(tmp_path) -> None:
    suite_dir = tmp_path / "suite"
    store = SuiteStore(suite_dir)
    jobs = [SimpleNamespace(job_id=name, steps=100) for name in ("a", "b", "c")]
    for job in jobs:
        store.job(job.job_id).path.mkdir(parents=True)
    store.job("c").write_status("pending", step=60)  # resumed: its 60 steps are already done
    bar = Progress(jobs, suite_dir, enabled=False)
    assert (bar.bar.total, bar.steps_done) == (300, 60)

    store.job("a").write_status("running", step=40)
    store.job("b").write_status("running", step=10)
    bar.update(finished={}, running=["a", "b"])
    assert bar.steps_done == 60 + 40 + 10
    assert bar.postfix == "jobs 0/3 done, 2 running, 0 diverged, 0 failed"

    store.job("a").write_status("diverged", step=55)
    store.job("b").write_status("running", step=30)
    bar.update(finished={"a": "diverged"}, running=["b"])
    assert bar.steps_done == 60 + 100 + 30  # a diverged job's remaining steps are not to come
    assert bar.postfix == "jobs 0/3 done, 1 running, 1 diverged, 0 failed"

    store.job("b").write_status("pending", step=50)
    bar.update(finished={"b": "pending"}, running=[])
    assert bar.steps_done == 60 + 100 + 50
    assert bar.postfix == "jobs 0/3 done, 0 running, 1 diverged, 0 failed, 1 interrupted"
    bar.close()
