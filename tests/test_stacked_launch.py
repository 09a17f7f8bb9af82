"""Seeds stacked by the launcher (executor option `stack_seeds`): the seeds of a grid cell run as one
unit and each seed ends with the status and metrics its job alone gives; a cell that cannot be
stacked runs as separate jobs, with the reason said; `--dry-run` says how jobs are grouped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_SUITE, write_suite

from bench.run import RunRequest, run_suite
from bench.store import SuiteStore

TWO_SEEDS = {"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0, 1]},
             "train": {**TINY_SUITE["train"], "steps": 10, "eval_every": 5, "checkpoint_every": 5, "log_every": 5}}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))


def run(folder: Path, stack_seeds: int, overrides: dict | None = None) -> tuple[SuiteStore, list[str]]:
    folder.mkdir()
    executor = {"name": "debug", "stack_seeds": stack_seeds}
    suite = write_suite(folder, {**TWO_SEEDS, **(overrides or {}), "executor": executor})
    lines: list[str] = []
    outcome = run_suite(RunRequest(suite, results=folder / "results", tracking=False, report=False, progress=False),
                        echo=lines.append)
    assert not outcome.failed and not outcome.interrupted
    return SuiteStore(folder / "results" / "tiny"), lines


def test_stacked_seeds_end_as_their_jobs_alone(tmp_path: Path) -> None:
    alone, _ = run(tmp_path / "alone", 1)
    stacked, lines = run(tmp_path / "stacked", 3)
    job_ids = sorted(alone.job_ids())
    assert sorted(stacked.job_ids()) == job_ids and len(job_ids) == 2  # stacking is not part of a job's id
    assert lines[1] == "stacked seeds: 1 group of 2 jobs, each one unit:"
    assert lines[2].startswith("  nsgan / mlp, seeds 0, 1: jobs ")
    for job_id in job_ids:
        assert stacked.job(job_id).read_status()["status"] == "done"
        assert "(stacked: jobs " in stacked.job(job_id).log_path.read_text()
        expected, got = alone.job(job_id).read_metrics(), stacked.job(job_id).read_metrics()
        keys = ["job_id", "step", "metric"]
        assert expected[keys].equals(got[keys]) and len(got) > 0
        torch.testing.assert_close(torch.tensor(got["value"].to_numpy()), torch.tensor(expected["value"].to_numpy()),
                                   rtol=1e-4, atol=1e-5)


def test_a_cell_that_cannot_be_stacked_runs_as_separate_jobs(tmp_path: Path) -> None:
    batch_norm = {"archs": {"mlp": {"width": 32, "depth": 2, "critic_norm": "batch"}}}
    store, lines = run(tmp_path / "run", 2, batch_norm)
    assert lines[1] == ("not stacked, run as separate jobs (nsgan / mlp seeds 0, 1): the critic has layers with state "
                        "besides their weights (BatchNorm1d), which a stacked step cannot keep per seed")
    for job_id in store.job_ids():
        assert store.job(job_id).read_status()["status"] == "done"
        assert "stacked" not in store.job(job_id).log_path.read_text()


def test_the_dry_run_says_how_jobs_are_grouped(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, {**TWO_SEEDS, "grid": {**TWO_SEEDS["grid"], "seed": [0, 1, 2, 3, 4]},
                                   "executor": {"name": "local", "stack_seeds": 2}})
    lines: list[str] = []
    run_suite(RunRequest(suite, dry_run=True, tracking=False), echo=lines.append)
    text = "\n".join(lines)
    assert "\ngrouping (executor stack_seeds 2): 3 units for 5 jobs\nstacked seeds: 2 groups of 4 jobs" in text
    assert "  nsgan / mlp, seeds 0, 1: jobs " in text and "  nsgan / mlp, seeds 2, 3: jobs " in text
    assert not (tmp_path / "results").exists()


def test_stack_seeds_is_refused_below_1_and_pointed_out_where_ignored(tmp_path: Path, capsys, monkeypatch) -> None:
    from bench.cli import main

    bad = write_suite(tmp_path, {"executor": {"name": "debug", "stack_seeds": 0}}, name="bad.yaml")
    assert main(["run", str(bad), "--dry-run"]) != 0
    assert "executor.stack_seeds" in capsys.readouterr().err
    from bench.launch import EXECUTORS, Executor
    from bench.run import RunRequest, run_suite

    # an executor that does not declare stack_seeds (every built-in one does) is pointed out
    monkeypatch.setitem(EXECUTORS._entries, "one-by-one", Executor(
        "one-by-one", "jobs in turn", lambda context: {}, options={}, threads=lambda max_parallel: 1))
    stacked = write_suite(tmp_path, {"executor": {"name": "debug", "stack_seeds": 2}}, name="stacked.yaml")
    warnings: list[str] = []
    run_suite(RunRequest(stacked, executor="one-by-one", dry_run=True), echo=lambda _: None, warn=warnings.append)
    assert ("warning: executor.stack_seeds has no effect with the one-by-one executor: its jobs run one by one"
            in warnings)


def test_a_local_slot_runs_job_after_job_in_one_process(tmp_path: Path) -> None:
    from conftest import run_bench_here

    suite = write_suite(tmp_path, {**TWO_SEEDS, "grid": {**TWO_SEEDS["grid"], "seed": [0, 1, 2]},
                                   "executor": {"name": "local", "max_parallel": 1}})
    ran = run_bench_here(["run", str(suite), "--no-tracking", "--no-report", "--no-progress"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    store = SuiteStore(tmp_path / "results" / "tiny")
    statuses = [store.job(job_id).read_status() for job_id in store.job_ids()]
    assert [status["status"] for status in statuses] == ["done"] * 3
    assert len({status["pid"] for status in statuses}) == 1
    assert all(status["attempts"] == 1 for status in statuses)  # each job ran once


@pytest.mark.slow
def test_a_killed_slot_fails_its_job_and_a_new_slot_runs_the_rest(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import bench_env

    settings = {**TINY_SUITE["train"], "steps": 200, "checkpoint_every": 200, "log_every": 10, "eval_every": 200}
    suite = write_suite(tmp_path, {"train": settings, "executor": {"name": "local", "max_parallel": 1}})
    process = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--no-tracking", "--no-report",
                                "--no-progress"], cwd=tmp_path, env=bench_env(tmp_path),
                               stdout=open(tmp_path / "out", "w"), stderr=open(tmp_path / "err", "w"))
    store = SuiteStore(tmp_path / "results" / "tiny")
    deadline, first = time.time() + 120, None
    while time.time() < deadline and first is None:
        running = [s for s in (store.job(j).read_status() for j in store.job_ids()) if s["status"] == "running"]
        first = running[0] if running and (running[0]["step"] or 0) >= 10 else None
        time.sleep(0.1)
    assert first is not None, (tmp_path / "err").read_text()
    os.kill(int(first["pid"]), signal.SIGKILL)
    assert process.wait(timeout=300) == 1  # a failed job: exit status 1
    statuses = {job_id: store.job(job_id).read_status() for job_id in store.job_ids()}
    killed = [s for s in statuses.values() if s["pid"] == first["pid"]]
    assert len(killed) == 1 and killed[0]["status"] == "failed"
    assert killed[0]["reason"].startswith("job process ended abnormally")
    others = [s for s in statuses.values() if s["pid"] != first["pid"]]
    assert [s["status"] for s in others] == ["done"]
