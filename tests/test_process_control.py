"""Stopping `bench run` the way a supervisor or `kill` does: a signal to the bench process alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY_SUITE, bench_env, run_bench_here, write_suite

from bench.store import SuiteStore


def _start_local_run(tmp_path, steps: int, *, tracking: bool) -> tuple[subprocess.Popen, SuiteStore, list[str]]:
    """`bench run` with the local executor in its own session (so signals sent to its pid reach it
    alone, not its jobs), returned once both jobs are running past step 20."""
    settings = {**TINY_SUITE["train"], "steps": steps, "checkpoint_every": 500, "log_every": 10, "eval_every": 500}
    suite = write_suite(tmp_path, {"train": settings, "executor": {"name": "local", "max_parallel": 2}})
    command = [sys.executable, "-m", "bench", "run", str(suite), "--no-report", "--no-progress"]
    if not tracking:
        command.append("--no-tracking")
    # output to files: job processes inherit them, and a pipe would stay open until they end
    process = subprocess.Popen(command, cwd=tmp_path, env=bench_env(tmp_path), stdout=open(tmp_path / "out", "w"),
                               stderr=open(tmp_path / "err", "w"), text=True, start_new_session=True)
    store = SuiteStore(tmp_path / "results" / "tiny")
    deadline = time.time() + 120
    while time.time() < deadline:
        statuses = [store.job(j).read_status() for j in store.job_ids()]
        if len(statuses) == 2 and all(s["status"] == "running" and (s["step"] or 0) >= 20 for s in statuses):
            break
        time.sleep(0.1)
    assert process.poll() is None, "the run ended before it could be stopped"
    return process, store, command[3:]


@pytest.mark.slow
def test_sigterm_to_bench_alone_stops_its_local_jobs_at_a_checkpoint(tmp_path) -> None:
    process, store, args = _start_local_run(tmp_path, 600, tracking=False)
    started = time.time()
    process.send_signal(signal.SIGTERM)  # the bench process only, as `kill <pid>` does
    process.wait(timeout=120)
    stdout, stderr = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    statuses = [store.job(j).read_status() for j in store.job_ids()]
    assert process.returncode == 130, (stdout, stderr, statuses)
    assert "interrupted" in stderr
    assert [s["status"] for s in statuses] == ["pending", "pending"], statuses
    assert all(s["step"] < 600 for s in statuses), "the jobs ran to their end instead of stopping"
    assert all(store.job(j).checkpoint_path.exists() for j in store.job_ids())
    assert time.time() - started < 30

    again = run_bench_here(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 to resume" in again.stdout
    assert [store.job(j).read_status()["status"] for j in store.job_ids()] == ["done", "done"]


@pytest.mark.slow
def test_jobs_orphaned_by_a_killed_bench_write_their_own_mlflow_runs(tmp_path) -> None:
    import mlflow

    process, store, _ = _start_local_run(tmp_path, 300, tracking=True)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.time() + 120
    while time.time() < deadline and any(store.job(j).read_status()["status"] != "done" for j in store.job_ids()):
        time.sleep(0.2)
    statuses = [store.job(j).read_status() for j in store.job_ids()]
    assert [s["status"] for s in statuses] == ["done", "done"], statuses
    # the job writes its run after its status: wait for the run ids, then look in the store
    while time.time() < deadline and not all(store.job(j).read_status().get("mlflow_run_id") for j in store.job_ids()):
        time.sleep(0.2)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bench")
    children = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("mlflow.parentRunId")]
    assert {r.data.tags["bench.job_id"] for r in children} == set(store.job_ids())
    assert all(r.info.status == "FINISHED" for r in children)


def test_sigterm_before_any_job_runs_exits_130_and_restores_the_handler(monkeypatch, capsys) -> None:
    """Whatever a command is doing when SIGTERM comes (here: before a launcher takes the signals over), it
    ends as Ctrl-C would: exit 130 and the interrupted message, not the signal's default 143."""
    import bench.cli

    def busy(_args) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(bench.cli, "cmd_status", busy)
    before = signal.getsignal(signal.SIGTERM)
    assert bench.cli.main(["status", "anywhere"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
