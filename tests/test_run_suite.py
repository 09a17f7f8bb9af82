"""The orchestrator behind `bench run` (bench.run.run_suite) and the executor registry it launches through."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO, TINY_SUITE, write_suite

import bench.preflight
from bench.cli import main
from bench.launch import (
    EXECUTORS,
    Executor,
    LaunchContext,
    default_threads,
    plan_jobs,
    slurm,
)
from bench.registry import UnknownNameError
from bench.run import RunRequest, run_suite
from bench.store import SuiteStore

QUICK = {**TINY_SUITE["train"], "steps": 20, "eval_every": 10, "checkpoint_every": 10}
ONE_JOB = {"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0]}, "train": QUICK}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))


def test_the_executors_are_a_registry() -> None:
    assert EXECUTORS.names() == ["debug", "local", "slurm"]
    assert list(EXECUTORS.get("local").options) == ["max_parallel", "threads_per_job", "stack_seeds"]
    assert list(EXECUTORS.get("debug").options) == ["threads_per_job", "stack_seeds"]
    assert EXECUTORS.get("slurm").needs_profile and EXECUTORS.get("slurm").remote
    assert default_threads("slurm", 4) == 1
    with pytest.raises(UnknownNameError, match=r"^unknown executor 'cluster'; valid: debug, local, slurm$"):
        EXECUTORS.get("cluster")


def fake_executor(monkeypatch: pytest.MonkeyPatch, launch, **fields) -> None:
    """Register, for this test only, an executor named `queue` that runs `launch(context)`."""
    entry = Executor("queue", "a stand-in scheduler", launch, options={}, threads=lambda max_parallel: 1, **fields)
    monkeypatch.setitem(EXECUTORS._entries, "queue", entry)


def test_a_run_trains_then_a_rerun_skips_what_is_complete(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, ONE_JOB)
    assert main(["run", str(suite), "--no-tracking", "--no-report", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("suite tiny: 1 jobs: 0 complete, 0 running elsewhere, 0 to resume, 1 to start "
                          "(debug executor)\nran 1 jobs in ")
    assert out.endswith("status: done 1\n")
    lines: list[str] = []
    outcome = run_suite(RunRequest(suite, tracking=False, report=False, progress=False), echo=lines.append)
    assert (outcome.counts, outcome.failed, outcome.interrupted, outcome.submitted) == ({"done": 1}, False, False, 0)
    assert lines[1] == "nothing to train: every job is complete"


def test_jobs_left_with_a_scheduler_say_how_to_follow_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_executor(monkeypatch, lambda context: {runner.spec.job_id: "submitted" for runner in context.runners},
                  remote=True)
    lines: list[str] = []
    outcome = run_suite(RunRequest(write_suite(tmp_path), executor="queue", tracking=False, progress=False),
                        echo=lines.append)
    assert outcome.submitted == 2 and outcome.counts == {"pending": 2}
    assert lines[1] == ("2 jobs were handed to the queue executor and go on without this process: follow them "
                        "with `bench status results/tiny`; once they end, `bench report results/tiny` builds "
                        "the report")
    assert not any(line.startswith(("ran ", "report:")) for line in lines)


def test_a_failed_job_exits_1(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_all(context: LaunchContext) -> dict[str, str]:
        for runner in context.runners:
            SuiteStore(runner.suite_dir).job(runner.spec.job_id).write_status("failed", reason="ValueError: bad batch")
        return {runner.spec.job_id: "failed" for runner in context.runners}

    fake_executor(monkeypatch, fail_all)
    assert main(["run", str(write_suite(tmp_path)), "--executor", "queue", "--no-tracking", "--no-report"]) == 1
    assert "nsgan/mlp/seed 0: failed: ValueError: bad batch" in capsys.readouterr().out


def test_an_interrupted_run_exits_130(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(context: LaunchContext) -> dict[str, str]:
        raise KeyboardInterrupt

    fake_executor(monkeypatch, interrupted)
    assert main(["run", str(write_suite(tmp_path)), "--executor", "queue", "--no-tracking", "--no-progress"]) == 130
    assert capsys.readouterr().err == ("\ninterrupted: running jobs checkpoint and stay pending; run the same "
                                       "command again to resume\n")


def test_a_service_failing_mid_run_is_one_line_and_exit_1(tmp_path: Path, capsys,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def sbatch_refuses(context: LaunchContext) -> dict[str, str]:
        raise slurm.SlurmError("sbatch exited with 1: sbatch: error: invalid partition specified: gpu")

    fake_executor(monkeypatch, sbatch_refuses)
    assert main(["run", str(write_suite(tmp_path)), "--executor", "queue", "--no-tracking", "--no-progress"]) == 1
    assert capsys.readouterr().err == ("bench run: SlurmError: sbatch exited with 1: sbatch: error: invalid "
                                       "partition specified: gpu\n")


def test_an_option_the_executor_ignores_is_pointed_out(tmp_path: Path, capsys) -> None:
    assert main(["run", str(write_suite(tmp_path)), "--dry-run", "--max-parallel", "3"]) == 0
    assert capsys.readouterr().err == "warning: --max-parallel has no effect with the debug executor\n"


def test_a_dry_run_shows_what_each_metric_measures(tmp_path: Path, capsys) -> None:
    assert main(["run", str(write_suite(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("metrics (what each evaluation measures, and its protocol):\n"
            "  mixture-modes: 2-D mixture modes") in out
    assert "    generated      500 samples per evaluation\n" in out
    assert "    schedule       every 20 steps over 60 (4 evaluations per job)\n" in out
    assert not (tmp_path / "results").exists()


def test_a_dry_run_of_the_cifar10_suite_shows_its_inception_protocol(tmp_path: Path, capsys,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("BENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm"))
    monkeypatch.setattr(bench.preflight, "host_answers", lambda url: False)
    monkeypatch.chdir(REPO)  # where the suite's profile path starts
    # the plan is printed, then what stops a run on this machine (no data, weights or SLURM here)
    assert main(["run", "suites/cifar10_losses.yaml", "--dry-run", "--results", str(tmp_path / "results")]) == 2
    captured = capsys.readouterr()
    assert "  fidelity-inception: FID, IS, KID, precision/recall in torch-fidelity's Inception-v3" in captured.out
    assert "    generated      50,000 samples per evaluation\n" in captured.out
    assert "    real           at most 50,000 (train split; fixed subset, seed 0)\n" in captured.out
    assert "    resolution     32x32 -> 299x299 bilinear" in captured.out
    assert captured.out.endswith("\n57 jobs\n")
    assert captured.err.startswith("suites/cifar10_losses.yaml: 3 problems\n")
    assert not (tmp_path / "results").exists()


def test_waiting_ends_when_accounting_stops_answering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runners = [SimpleNamespace(spec=SimpleNamespace(job_id=f"job{i}"), job_ids=(f"job{i}",)) for i in range(2)]
    jobs = [SimpleNamespace(job_id=f"9_{i}") for i in range(2)]
    monkeypatch.setattr(slurm, "make_slurm_executor", lambda folder, profile, job_name: None)
    monkeypatch.setattr(slurm, "submit_job_arrays", lambda executor, callables: [slurm.ArraySubmission("9", jobs)])

    def accounting_down(job_ids: list[str]) -> dict[str, str]:
        raise slurm.SlurmError("sacct exited with 1: Problem talking to the database")

    monkeypatch.setattr(slurm, "sacct_states", accounting_down)
    said: list[str] = []
    statuses = slurm.submit_array(runners, folder=tmp_path / "submitit", profile=None, wait=True, echo=said.append)
    assert statuses == {"job0": "submitted", "job1": "submitted"}
    assert said[-1] == ("stopped waiting: SLURM accounting did not answer (sacct exited with 1: Problem talking to "
                        "the database); 2 jobs go on in SLURM (arrays 9); `bench status` follows them")


def test_submitted_jobs_count_as_live_when_accounting_does_not_answer(tmp_path: Path) -> None:
    from bench.catalogue import build_catalogue
    from bench.suite import load_suite

    jobs = list(load_suite(write_suite(tmp_path), build_catalogue()).jobs)
    store = SuiteStore(tmp_path / "results" / "tiny")
    store.job(jobs[0].job_id).write_status("pending", slurm_job_id="5_0")
    assert len(plan_jobs(jobs, store).live) == 0
    assert len(plan_jobs(jobs, store, slurm_unanswered=True).live) == 1


def test_mlflow_runs_are_named_by_the_axes_the_suite_compares() -> None:
    from bench.catalogue import build_catalogue
    from bench.run import _compared_keys
    from bench.suite import parse_suite, varying_fields
    from bench.tracking import run_label

    suite = parse_suite(yaml.safe_dump({
        **TINY_SUITE, "dataset": None,
        "grid": {"dataset": ["ring8", "grid25"], "objective": ["nsgan", "wgan"], "arch": ["mlp"], "seed": [0, 1]},
        "train": {key: value for key, value in TINY_SUITE["train"].items() if key != "lr"},
    }), build_catalogue())
    varying = varying_fields(list(suite.jobs))
    assert {"lr_g", "optimizer", "dataset.std"} <= set(varying)  # they vary, but only with an axis
    keys = _compared_keys(suite, varying)
    assert keys == ["dataset", "objective", "seed"]
    wgan = next(job for job in suite.jobs if job.objective == "wgan" and job.dataset == "grid25")
    assert run_label(wgan.flat(), keys)[0] == f"wgan / mlp / seed {wgan.seed} / dataset=grid25"


def test_only_runs_a_slice_of_the_grid_under_the_suite_s_own_job_ids(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, {"grid": {"objective": ["nsgan", "lsgan"], "arch": ["mlp"], "seed": [0, 1]},
                                   "train": QUICK})
    flags = ["--no-tracking", "--no-report", "--no-progress"]
    assert main(["run", str(suite), "--only", "objective=lsgan", "--only", "seed=1", *flags]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--only objective=lsgan seed=1: 1 of the suite's 4 jobs\n")
    store = SuiteStore(tmp_path / "results" / "tiny")
    (ran,) = store.job_ids()
    spec = store.job(ran).read_spec()
    assert (spec.objective, spec.seed) == ("lsgan", 1)
    # the rest of the suite, run later, keeps that job and adds the other three
    assert main(["run", str(suite), *flags]) == 0
    assert "4 jobs: 1 complete, 0 running elsewhere, 0 to resume, 3 to start" in capsys.readouterr().out
    assert ran in store.job_ids() and len(store.job_ids()) == 4


def test_only_refuses_keys_and_values_the_suite_does_not_have(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, {"grid": {"objective": ["nsgan", "lsgan"], "arch": ["mlp"], "seed": [0, 1]},
                                   "train": QUICK})
    assert main(["run", str(suite), "--only", "objective=lsgn,nsgan", "--only", "colour=red", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--only objective: no job of the suite has objective lsgn; its values: lsgan, nsgan" in err
    assert "--only colour: no job of the suite has the key 'colour'; keys that vary in it: objective, seed" in err
    # values are compared as YAML reads them: the learning rate written two ways is one value
    assert main(["run", str(suite), "--only", "lr_g=1e-3", "--only", "seed=1.0", "--dry-run"]) == 0
    assert "--only lr_g=1e-3 seed=1.0: 2 of the suite's 4 jobs" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(suite), "--only", "objective"])
    assert exit_info.value.code == 2
    assert "'objective' is not KEY=VALUE[,VALUE...]" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
