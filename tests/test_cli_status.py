"""`bench status` and `bench report` on results folders in every state: grid order, no `nan`,
jobs whose process is gone, SLURM jobs with accounting up, lagging or down."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import write_suite

from bench.catalogue import build_catalogue
from bench.cli import main
from bench.store import SuiteStore
from bench.suite import load_suite


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))


def stored_suite(tmp_path: Path, overrides: dict | None = None) -> tuple[SuiteStore, list]:
    """A results folder as `bench run` leaves it before training: suite.yaml and each job's spec."""
    suite = load_suite(write_suite(tmp_path, overrides), build_catalogue())
    store = SuiteStore(tmp_path / "results" / suite.name)
    store.write_suite_yaml(suite.text)
    for job in suite.jobs:
        store.job(job.job_id).write_spec(job)
    return store, list(suite.jobs)


def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sacct: str) -> Path:
    """SLURM client commands on PATH; `sacct` is the body of its script. Each call is logged."""
    tools = tmp_path / "slurm-bin"
    tools.mkdir()
    log = tmp_path / "sacct-calls"
    for tool in ("sbatch", "srun", "scontrol", "sinfo"):
        (tools / tool).write_text("#!/bin/sh\nexit 0\n")
    (tools / "sacct").write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n{sacct}\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    return log


ACCOUNTING_DOWN = "echo 'sacct: error: Problem talking to the database: Connection refused' >&2\nexit 1"


def status_lines(capsys) -> list[str]:
    assert main(["status", "results/tiny"]) == 0
    return capsys.readouterr().out.splitlines()


def test_jobs_show_in_grid_order_without_nan(tmp_path: Path, capsys) -> None:
    objectives = ["nsgan", "rsgan"]
    store, jobs = stored_suite(tmp_path, {"grid": {"objective": objectives, "arch": ["mlp"], "seed": [0]}})
    assert sorted(job.job_id for job in jobs) != [job.job_id for job in jobs]  # grid order is not id order
    store.job(jobs[0].job_id).write_status("failed", reason="RuntimeError: boom")
    store.job(jobs[1].job_id).write_status("done", step=60)
    lines = status_lines(capsys)
    assert [line.split()[1] for line in lines[2:4]] == objectives
    assert lines[2].endswith("failed  -     60     RuntimeError: boom")
    assert lines[3].endswith("done    60    60")
    assert "nan" not in "\n".join(lines)
    assert lines[-1] == "2 jobs: done 1, failed 1"


def test_without_a_readable_suite_yaml_jobs_show_in_id_order(tmp_path: Path, capsys) -> None:
    store, jobs = stored_suite(tmp_path, {"grid": {"objective": ["rsgan", "nsgan"], "arch": ["mlp"], "seed": [0]}})
    store.suite_yaml_path.write_text("not: [a suite")
    lines = status_lines(capsys)
    assert [line.split()[0] for line in lines[2:4]] == sorted(job.job_id for job in jobs)


def test_a_job_whose_process_is_gone_shows_as_interrupted(tmp_path: Path, capsys) -> None:
    store, jobs = stored_suite(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    first, second = (store.job(job.job_id) for job in jobs)
    first.write_status("running", step=20, pid=gone.pid, host=socket.gethostname())
    first.checkpoint_path.write_bytes(b"checkpoint")
    second.write_status("running", step=0, pid=gone.pid, host=socket.gethostname())
    lines = status_lines(capsys)
    assert lines[2].split()[4] == "interrupted"
    assert lines[2].endswith(f"process {gone.pid} is gone; resumes from its last checkpoint")
    assert lines[3].endswith(f"process {gone.pid} is gone; starts again on the next `bench run`")
    assert lines[-1] == "2 jobs: interrupted 2"


def test_a_running_job_elsewhere_is_left_as_running(tmp_path: Path, capsys) -> None:
    store, jobs = stored_suite(tmp_path)
    store.job(jobs[0].job_id).write_status("running", step=20, pid=1, host="another-node")
    assert status_lines(capsys)[2].split()[4] == "running"


def test_accounting_is_not_asked_about_complete_jobs(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    store, jobs = stored_suite(tmp_path)
    calls = fake_slurm(tmp_path, monkeypatch, ACCOUNTING_DOWN)
    for index, job in enumerate(jobs):
        store.job(job.job_id).write_status("done", step=60, slurm_job_id=f"4242_{index}")
    lines = status_lines(capsys)
    assert lines[0].split() == ["job_id", "objective", "arch", "seed", "status", "step", "steps", "slurm", "reason"]
    assert [line.split()[7] for line in lines[2:4]] == ["4242_0", "4242_1"]
    assert not calls.exists()
    assert capsys.readouterr().err == ""
    # nor does `bench run` ask, or fail, when every job is done
    assert main(["run", "tiny.yaml", "--no-tracking", "--no-report", "--no-progress"]) == 0
    assert "nothing to train: every job is complete" in capsys.readouterr().out
    assert not calls.exists()


def test_accounting_down_falls_back_to_the_store(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    store, jobs = stored_suite(tmp_path)
    fake_slurm(tmp_path, monkeypatch, ACCOUNTING_DOWN)
    store.job(jobs[0].job_id).write_status("done", step=60, slurm_job_id="4242_0")
    store.job(jobs[1].job_id).write_status("running", step=20, slurm_job_id="4242_1")
    assert main(["status", "results/tiny"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ("SLURM accounting did not answer (sacct --allocations --noheader --parsable2 "
                            "--format=JobID,State --jobs=4242_1 exited with 1: sacct: error: Problem talking to the "
                            "database: Connection refused); showing the results folder's view\n")
    lines = captured.out.splitlines()
    assert lines[3].split()[4] == "running" and "4242_1 unknown" in lines[3]


def test_a_run_with_accounting_down_leaves_submitted_jobs_alone(tmp_path: Path, capsys,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store, jobs = stored_suite(tmp_path)
    fake_slurm(tmp_path, monkeypatch, ACCOUNTING_DOWN)
    store.job(jobs[0].job_id).write_status("done", step=60, slurm_job_id="4242_0")
    store.job(jobs[1].job_id).write_status("pending", slurm_job_id="4242_1")
    assert main(["run", "tiny.yaml", "--no-tracking", "--no-report", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "SLURM accounting did not answer" in captured.err
    assert "1 complete, 1 running elsewhere, 0 to resume, 0 to start" in captured.out
    assert "nothing to start: the remaining jobs are running" in captured.out


def test_queued_array_tasks_show_their_state(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    store, jobs = stored_suite(tmp_path)
    # sacct folds pending tasks of an array into one line; a task it does not list yet is queued
    fake_slurm(tmp_path, monkeypatch, "echo '77_[0-1%1]|PENDING'")
    store.job(jobs[0].job_id).write_status("pending", slurm_job_id="77_0")
    store.job(jobs[1].job_id).write_status("pending", slurm_job_id="78_0")
    lines = status_lines(capsys)
    assert "77_0 PENDING" in lines[2]
    assert "78_0 queued" in lines[3]
    assert "?" not in "\n".join(lines)


def test_report_on_a_folder_with_no_jobs(tmp_path: Path, capsys) -> None:
    (tmp_path / "results" / "tiny" / "jobs").mkdir(parents=True)
    assert main(["report", "results/tiny"]) == 2
    assert capsys.readouterr().err == ("results/tiny: no jobs under results/tiny/jobs yet, so there is nothing to "
                                       "report; `bench run SUITE` runs them\n")
    assert not (tmp_path / "results" / "tiny" / "report").exists()


def test_status_of_a_folder_that_does_not_exist(tmp_path: Path, capsys) -> None:
    assert main(["status", "results/nope"]) == 2
    assert capsys.readouterr().err == "results/nope: not a suite results folder (no jobs/ inside)\n"
