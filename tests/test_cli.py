"""The command line: help texts, listings, status, ui, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_bench_here

from bench.cli import build_parser, main
from bench.objectives import OBJECTIVES

COMMANDS = ["run", "plan", "list", "status", "report", "ui"]


def test_every_command_has_help_with_a_description(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    top = capsys.readouterr().out
    for command in COMMANDS:
        assert command in top
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert text.startswith(f"usage: bench {command}")
        subparser = build_parser()._subparsers._group_actions[0].choices[command]
        assert subparser.description and subparser.description.split()[0] in text
        # every option is documented
        for action in subparser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"bench {command} {action.option_strings} has no help"


def test_list_objectives_fits_a_100_column_terminal(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["list", "objectives"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "optimizer", "critic", "tricks", "description"]
    assert max(len(line) for line in lines) <= 100
    rows = {line.split()[0]: line for line in lines[2:] if line and not line.startswith("`")}
    assert set(rows) == set(OBJECTIVES.names())
    # only what each optimiser uses: RMSprop has no betas
    assert rows["wgan"].split()[:6] == ["wgan", "rmsprop", "5e-5", "5", "weight-clipping", "Wasserstein"]
    assert rows["wgan-gp"].split()[:7] == ["wgan-gp", "adam", "1e-4", "(0,0.9)", "5", "gradient-penalty", "Wasserstein"]
    assert rows["nsgan"].split()[1:5] == ["adam", "2e-4", "(0.5,0.999)", "1"]
    assert lines[-1] == "`bench list objectives NAME` shows one in full (paper, options); --wide, every column."


def test_list_objectives_wide_has_every_column(capsys) -> None:
    assert main(["list", "objectives", "--wide"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "optimizer", "critic", "tricks", "description", "paper"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert "Gulrajani" in rows["wgan-gp"] and "weights clipped to [-0.01, 0.01]" in rows["wgan"]


def test_list_one_objective_in_full(capsys) -> None:
    assert main(["list", "objectives", "wgan"]) == 0
    assert capsys.readouterr().out == (
        "name            wgan\n"
        "description     Wasserstein GAN: critic C_f - C_r with weights clipped to [-0.01, 0.01], RMSprop, "
        "5 critic steps\n"
        "paper           Arjovsky, Chintala, Bottou 2017, Wasserstein GAN (ICML)\n"
        "optimizer       rmsprop\n"
        "learning rate   5e-5 (generator and critic)\n"
        "critic steps    5 per generator step\n"
        "tricks          weight-clipping (clip=0.01)\n"
        "critic outputs  1\n"
        "critic judges   samples\n"
        "options: none\n")
    assert main(["list", "objectives", "wgan-gp"]) == 0
    out = capsys.readouterr().out
    assert "betas           (0, 0.9)\n" in out and "tricks          gradient-penalty (weight=10.0)\n" in out


@pytest.mark.parametrize(("what", "name", "expected"), [
    ("objectives", "gan-qp", "  distance  'l1'  one of l1, l2; the per-sample distance d"),
    ("archs", "mlp", "  width "),
    ("datasets", "image-folder", "  path        required  a string; the folder of images"),
    ("tricks", "r1", "  gamma  10.0  a number >= 0;"),
    ("metrics", "mixture-modes", "metric mode_kl "),
    ("executors", "local", "  max_parallel     2     an integer >= 1; jobs running at once on this machine"),
])
def test_list_one_part_in_full(capsys, what: str, name: str, expected: str) -> None:
    assert main(["list", what, name]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", name] and expected in out


@pytest.mark.parametrize(("what", "expected"), [
    ("archs", ["mlp", "dcgan"]),
    ("datasets", ["ring8", "grid25", "digits", "mnist", "stacked-mnist", "cifar10", "image-folder"]),
    ("tricks", ["gradient-penalty", "r1", "r2", "weight-clipping", "spectral-norm", "feature-matching"]),
    ("metrics", ["modes_covered", "high_quality_fraction", "mode_kl", "x_reconstruction_mse"]),
    ("executors", ["debug", "local", "slurm"]),
])
def test_list_names_every_registered_part(capsys, what: str, expected: list[str]) -> None:
    assert main(["list", what]) == 0
    names = {line.split()[0 if what != "metrics" else 1] for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(expected) <= names


def test_list_metrics_gives_direction_and_cost(capsys) -> None:
    main(["list", "metrics"])
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["mode_kl"].split()[2] == "lower"
    assert rows["modes_covered"].split()[2] == "higher"


def test_unknown_list_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["list", "losses"])
    assert caught.value.code == 2
    assert "invalid choice: 'losses'" in capsys.readouterr().err


def test_status_and_report_refuse_a_folder_that_is_not_a_suite(tmp_path: Path, capsys) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert "not a suite results folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2


def test_status_after_a_run(tiny_suite: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "bench-home"))
    assert main(["run", str(tiny_suite), "--no-tracking", "--no-report", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["status", "results/tiny"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["job_id", "objective", "arch", "seed", "status", "step", "steps", "reason"]
    assert sorted(line.split()[1] for line in lines[2:4]) == ["nsgan", "rsgan"]
    assert all(line.split()[4:7] == ["done", "60", "60"] for line in lines[2:4])
    assert lines[-1] == "2 jobs: done 2"


def test_ui_runs_mlflow_on_the_results_store(tmp_path: Path, capsys) -> None:
    # a results folder without a store is refused (an empty UI would hide a mistyped --results) ...
    assert main(["ui", "--results", str(tmp_path / "results"), "--print-only"]) == 2
    assert f"no MLflow store at {tmp_path / 'results' / 'mlflow.db'}" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "mlflow.db").touch()
    assert main(["ui", "--results", str(tmp_path / "results"), "--print-only", "--port", "5123"]) == 0
    out = capsys.readouterr().out
    assert f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}" in out
    assert "mlflow ui" in out and "--port 5123" in out
    assert f"{tmp_path / 'results' / 'mlartifacts'}" in out
    main(["ui", "--results", str(tmp_path / "results"), "--print-only", "--serve"])
    assert "mlflow server" in capsys.readouterr().out


def test_local_jobs_split_the_cores(tmp_path: Path, tiny_suite: Path) -> None:
    ran = run_bench_here(["run", str(tiny_suite), "--executor", "local", "--max-parallel", "2", "--no-tracking",
                          "--no-report", "--no-progress"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    import os

    expected = max(1, (os.cpu_count() or 1) // 2)
    logs = list((tmp_path / "results" / "tiny" / "jobs").glob("*/log.txt"))
    assert len(logs) == 2
    assert all(f"{expected} torch threads" in log.read_text() for log in logs)


def test_a_dataset_axis_runs_with_tracking(tmp_path: Path, capsys, monkeypatch) -> None:
    from conftest import write_suite

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "bench-home"))
    path = write_suite(tmp_path, {"grid": {"dataset": ["ring8", "grid25"], "objective": ["nsgan"], "arch": ["mlp"],
                                           "seed": [0]}})
    text = path.read_text().replace("dataset:\n  name: ring8\n", "")
    path.write_text(text)
    assert main(["run", str(path), "--no-report", "--no-progress"]) == 0
    assert "status: done 2" in capsys.readouterr().out
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    (parent,) = [r for r in client.search_runs([client.get_experiment_by_name("bench").experiment_id])
                 if not r.data.tags.get("mlflow.parentRunId")]
    assert parent.data.params["dataset"] == "ring8,grid25"


def test_report_prints_its_summary(tmp_path: Path, capsys) -> None:
    from test_verdicts import write_diverged_suite

    suite_dir = write_diverged_suite(tmp_path)
    assert main(["report", str(suite_dir)]) == 0
    out = capsys.readouterr().out
    summary = out.split("\nsummary:\n", 1)[1].splitlines()
    assert summary[0] == "Every job has ended."
    assert summary[1].startswith("Diverged, failed and failed-to-train runs count as the worst outcome")
    assert "ring8, mlp:" in summary
    assert "  - wgan: 6/6 seeds diverged (median divergence step 150)." in summary
    assert main(["report", str(suite_dir), "--survivors-only"]) == 0
    summary = capsys.readouterr().out.split("\nsummary:\n", 1)[1].splitlines()
    assert summary[1].startswith("Survivors-only view: diverged, failed and failed-to-train runs are left out")


def test_the_report_built_after_a_run_prints_its_summary(tmp_path: Path, capsys) -> None:
    from test_verdicts import write_diverged_suite

    from bench.run import build_report

    suite_dir = write_diverged_suite(tmp_path)
    build_report(suite_dir)
    out = capsys.readouterr().out
    assert out.startswith(f"report: {suite_dir / 'report' / 'report.md'} (")
    assert "\nsummary:\nEvery job has ended.\n" in out
    assert "  - wgan: 6/6 seeds diverged (median divergence step 150).\n" in out



def test_report_refuses_a_baseline_no_job_trains(tiny_suite: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "bench-home"))
    assert main(["run", str(tiny_suite), "--no-tracking", "--no-report", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", "results/tiny", "--baseline", "wgan"]) == 2
    assert capsys.readouterr().err.strip() == (
        "--baseline wgan: no job of results/tiny trains it; the objectives there: nsgan, rsgan")
    assert not (tmp_path / "results" / "tiny" / "report").exists()
