"""Stacked training (bench.stacked): K seeds of one grid cell as one model give each seed the metrics,
checkpoints and status of its own job; what cannot be stacked is refused with the reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY_SUITE

from bench.catalogue import build_catalogue
from bench.objectives import OBJECTIVES
from bench.spec import JobSpec, freeze_options
from bench.stacked import StackedJobs, _GlobalRNG, stackable, train_stacked
from bench.store import SuiteStore
from bench.suite import parse_suite
from bench.train import Job, train

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


def _specs(catalogue, objective: str = "nsgan", seeds=SEEDS, *, arch: str = "mlp", arch_options=None,
           images: bool = False, **train_settings) -> list[JobSpec]:
    """One grid cell of TINY_SUITE at `seeds`; `images`: digits at 28 px, no metrics."""
    suite = {
        **TINY_SUITE,
        "grid": {"objective": [objective], "arch": [arch], "seed": list(seeds)},
        "train": {**TINY_SUITE["train"], "steps": 30, "batch_size": 32, "eval_every": 15, "checkpoint_every": 15,
                  "log_every": 5, **train_settings},
        "archs": {arch: arch_options or {"width": 16, "depth": 2}},
    }
    if images:
        suite.update(dataset={"name": "digits", "options": {"resolution": 28}}, metrics=[], metric_options={})
    return sorted(parse_suite(yaml.safe_dump(suite), catalogue).jobs, key=lambda spec: spec.seed)


def _separately(specs, root: Path) -> list[pd.DataFrame]:
    suite = SuiteStore(root / "separate")
    for spec in specs:
        assert train(spec, suite.job(spec.job_id), data_root=root, cache_dir=root, log=lambda _: None).status == "done"
    return [suite.job(spec.job_id).read_metrics() for spec in specs]


def _assert_same_metrics(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    """Same rows (job, step, metric) in the same order, values within float tolerance."""
    keys = ["job_id", "step", "metric"]
    pd.testing.assert_frame_equal(expected[keys], got[keys])
    torch.testing.assert_close(torch.tensor(got["value"].to_numpy()), torch.tensor(expected["value"].to_numpy()),
                               rtol=1e-4, atol=1e-5)


# nsgan: the plain loop; wgan-gp: five critic steps and a gradient penalty drawing from each seed's
# global RNG; wgan: RMSprop and weight clipping applied to each seed's slice
@pytest.mark.parametrize("objective", ["nsgan", "wgan-gp", "wgan"])
def test_stacked_seeds_write_what_separate_jobs_write(catalogue, tmp_path, objective) -> None:
    specs = _specs(catalogue, objective)
    assert stackable(specs) is None
    expected = _separately(specs, tmp_path)
    suite = SuiteStore(tmp_path / "stacked")
    stores = [suite.job(spec.job_id) for spec in specs]
    results = train_stacked(specs, stores, data_root=tmp_path, cache_dir=tmp_path, log=lambda _: None)
    assert [(r.status, r.step) for r in results] == [("done", 30)] * len(specs)
    for spec, store, reference in zip(specs, stores, expected):
        assert store.read_spec() == spec
        status = store.read_status()
        assert (status["status"], status["step"], status["attempts"]) == ("done", 30, 1)
        assert store.checkpoint_path.exists() and store.final_points_path.exists()
        metrics = store.read_metrics()
        assert {"loss_d", "loss_g", "mode_kl"} <= set(metrics["metric"])
        _assert_same_metrics(reference, metrics)


def test_per_seed_optimizer_states_are_slices_of_the_stacked_ones() -> None:
    """Adam, RMSprop and SGD are elementwise: one optimiser over stacked parameters leaves, bit for bit,
    each seed's parameters and state where that seed's own optimiser leaves them."""
    makers = {"adam": lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.5, 0.999)),
              "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3), "sgd": lambda p: torch.optim.SGD(p, lr=1e-2)}
    shapes = [(16, 8), (16,), (1, 16)]
    generator = torch.Generator().manual_seed(0)
    for name, make in makers.items():
        per_seed = [[torch.randn(shape, generator=generator, requires_grad=True) for shape in shapes] for _ in SEEDS]
        stacked = [torch.stack([params[i].detach() for params in per_seed]).requires_grad_(True)
                   for i in range(len(shapes))]
        optimizers, stacked_optimizer = [make(params) for params in per_seed], make(stacked)
        for step in range(12):
            grads = [[torch.randn(shape, generator=generator) * 10.0 ** (step % 5 - 2) for shape in shapes]
                     for _ in SEEDS]
            for params, optimizer, seed_grads in zip(per_seed, optimizers, grads):
                for parameter, grad in zip(params, seed_grads):
                    parameter.grad = grad.clone()
                optimizer.step()
            for i, leaf in enumerate(stacked):
                leaf.grad = torch.stack([seed_grads[i] for seed_grads in grads])
            stacked_optimizer.step()
        for seed, (params, optimizer) in enumerate(zip(per_seed, optimizers)):
            for i, parameter in enumerate(params):
                assert torch.equal(stacked[i][seed], parameter), name
                for key, value in stacked_optimizer.state[stacked[i]].items():
                    own = optimizer.state[parameter][key]
                    assert torch.equal(value if key == "step" else value[seed], own), (name, key)


def _model(specs, root: Path) -> StackedJobs:
    jobs, rngs = [], []
    for spec in specs:
        jobs.append(Job(spec, data_root=root, cache_dir=root))
        rngs.append(_GlobalRNG(jobs[-1].device))
    return StackedJobs(jobs, rngs)


@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_every_objective_stacks_or_says_why(catalogue, tmp_path, objective) -> None:
    """Each registered objective's published recipe either stacks, and then two stacked steps leave every
    seed's losses and weights where two steps of its own job leave them, or is refused with a reason."""
    specs = _specs(catalogue, objective, seeds=(0, 1), batch_size=8)
    reason = stackable(specs)
    if reason is not None:
        tricks = {name for name, _ in specs[0].tricks}
        if objective == "bigan-qp":
            assert reason == ("objective 'bigan-qp' plays the pair game (an encoder and a pair critic); "
                              "only the sample game is stacked")
        else:
            assert "spectral-norm" in tricks
            assert reason == ("the critic has layers with state besides their weights (_SpectralNorm), which a "
                              "stacked step cannot keep per seed")
        return
    _assert_steps_match(specs, tmp_path)


def _assert_steps_match(specs, root: Path, steps: int = 3) -> None:
    """`steps` stacked steps give each seed the losses, and leave it the samples, of its own job's steps.

    Samples rather than single weights: a weight whose gradient is rounding noise (a unit no sample
    activates) moves by up to the learning rate per Adam step, in the direction of that noise."""
    model = _model(specs, root)
    stacked_losses = [model.train_step() for _ in range(steps)]
    for seed, spec in enumerate(specs):
        job = Job(spec, data_root=root, cache_dir=root)
        for loss_d, loss_g in stacked_losses:
            own_d, own_g = job.train_step()
            torch.testing.assert_close(loss_d[seed], own_d, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(loss_g[seed], own_g, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.jobs[seed].sample(64), job.sample(64), rtol=1e-4, atol=1e-5)


def test_a_convolutional_cell_without_batch_norm_stacks(catalogue, tmp_path) -> None:
    specs = _specs(catalogue, "nsgan", seeds=(0, 1), arch="dcgan", images=True, batch_size=8,
                   arch_options={"width": 4, "norm": "none", "critic_norm": "layer"})
    assert stackable(specs) is None
    _assert_steps_match(specs, tmp_path)
    with_batch_norm = _specs(catalogue, "nsgan", seeds=(0, 1), arch="dcgan", images=True, arch_options={"width": 4})
    assert stackable(with_batch_norm) == ("the generator has layers with state besides their weights (BatchNorm2d), "
                                          "which a stacked step cannot keep per seed")


def test_stop_and_resume_stacked_and_resume_alone(catalogue, tmp_path) -> None:
    """A stacked group stopped part way resumes, stacked, to the metrics of an uninterrupted stacked run;
    each seed's checkpoint is the one `train` writes, so one seed also resumes alone."""
    specs = _specs(catalogue, "rsgan")
    full = SuiteStore(tmp_path / "full")
    train_stacked(specs, [full.job(s.job_id) for s in specs], data_root=tmp_path, cache_dir=tmp_path,
                  log=lambda _: None)

    resumed = SuiteStore(tmp_path / "resumed")
    stores = [resumed.job(s.job_id) for s in specs]
    calls = iter([False] * 11 + [True])  # stops at step 12: between logging intervals and checkpoints
    first = train_stacked(specs, stores, data_root=tmp_path, cache_dir=tmp_path,
                          should_stop=lambda: next(calls, False), log=lambda _: None)
    assert [(r.status, r.step) for r in first] == [("pending", 12)] * len(specs)
    assert all(store.read_status()["status"] == "pending" for store in stores)
    alone = SuiteStore(tmp_path / "alone").job(specs[1].job_id)
    alone.path.mkdir(parents=True)
    for name in ("spec.json", "metrics.csv", "checkpoint.pt"):
        (alone.path / name).write_bytes((stores[1].path / name).read_bytes())

    second = train_stacked(specs, stores, data_root=tmp_path, cache_dir=tmp_path, log=lambda _: None)
    assert [r.status for r in second] == ["done"] * len(specs)
    for spec, store in zip(specs, stores):
        expected = full.job(spec.job_id).read_metrics().drop(columns="wall_s")
        pd.testing.assert_frame_equal(expected, store.read_metrics().drop(columns="wall_s"))
        assert store.read_status()["attempts"] == 2

    assert train(specs[1], alone, data_root=tmp_path, cache_dir=tmp_path, log=lambda _: None).status == "done"
    (separate,) = _separately(specs[1:2], tmp_path)
    _assert_same_metrics(separate, alone.read_metrics())


def test_a_diverging_seed_is_recorded_and_the_others_train_on(catalogue, tmp_path, monkeypatch) -> None:
    specs = _specs(catalogue, "nsgan")
    expected = _separately(specs, tmp_path)
    step_once = StackedJobs.train_step
    steps = {"done": 0}

    def poisoning_seed_1_at_step_7(model: StackedJobs):
        steps["done"] += 1
        if steps["done"] == 7:
            with torch.no_grad():
                for weights in model.g_params.values():
                    weights[1].fill_(float("nan"))
        return step_once(model)

    monkeypatch.setattr(StackedJobs, "train_step", poisoning_seed_1_at_step_7)
    suite = SuiteStore(tmp_path / "stacked")
    stores = [suite.job(spec.job_id) for spec in specs]
    results = train_stacked(specs, stores, data_root=tmp_path, cache_dir=tmp_path, log=lambda _: None)
    assert [(r.status, r.step, r.reason) for r in results] == [
        ("done", 30, None), ("diverged", 7, "non-finite loss at step 7"), ("done", 30, None)]
    assert stores[1].read_status()["status"] == "diverged"
    diverged = stores[1].read_metrics()
    assert diverged.iloc[-1][["step", "metric", "value"]].tolist() == [7, "diverged", 1.0]
    assert int(diverged[diverged["metric"] == "loss_d"]["step"].max()) == 5
    for seed in (0, 2):
        _assert_same_metrics(expected[seed], stores[seed].read_metrics())


def test_stackable_says_why_a_group_cannot_be_stacked(catalogue) -> None:
    specs = _specs(catalogue, "nsgan")
    assert stackable(specs) is None
    assert stackable([]) == "no jobs to stack"
    assert stackable([specs[0], replace(specs[1], lr_d=1e-2, batch_size=8)]) == (
        "the jobs differ in more than their seed: batch_size, lr_d")
    assert stackable([specs[0], specs[0]]) == "the seeds are not distinct: [0, 0]"
    batch_norm = [replace(s, arch_options=freeze_options({**dict(s.arch_options), "critic_norm": "batch"}))
                  for s in specs]
    assert stackable(batch_norm) == ("the critic has layers with state besides their weights (BatchNorm1d), which a "
                                     "stacked step cannot keep per seed")
    matching = [replace(s, tricks=(("feature-matching", (("weight", 1.0),)),)) for s in specs]
    assert stackable(matching).startswith("trick 'feature-matching': its generator term needs more of the critic "
                                          "than a per-seed view gives (TypeError: trick 'feature-matching' needs a "
                                          "critic with features(x)")


def test_an_unstackable_group_is_refused_before_anything_is_written(catalogue, tmp_path) -> None:
    specs = _specs(catalogue, "nsgan")
    stores = [SuiteStore(tmp_path).job(spec.job_id) for spec in specs]
    with pytest.raises(ValueError,
                       match=r"^these jobs cannot be trained stacked: the seeds are not distinct: \[0, 0\]$"):
        train_stacked([specs[0], specs[0]], stores[:2], data_root=tmp_path, cache_dir=tmp_path)
    assert not any(store.path.exists() for store in stores)


def test_jobs_resuming_from_different_steps_are_trained_one_after_another(catalogue, tmp_path) -> None:
    specs = _specs(catalogue, "nsgan")
    expected = _separately(specs, tmp_path)
    suite = SuiteStore(tmp_path / "mixed")
    stores = [suite.job(spec.job_id) for spec in specs]
    calls = iter([False] * 4 + [True])
    assert train(specs[2], stores[2], data_root=tmp_path, cache_dir=tmp_path, should_stop=lambda: next(calls, False),
                 log=lambda _: None).step == 5
    said = []
    results = train_stacked(specs, stores, data_root=tmp_path, cache_dir=tmp_path, log=said.append)
    assert said[0] == "the checkpoints are at different steps ([None, 5]): training the 3 jobs one after another"
    assert [(r.status, r.step) for r in results] == [("done", 30)] * 3
    for reference, store in zip(expected, stores):
        pd.testing.assert_frame_equal(reference.drop(columns="wall_s"), store.read_metrics().drop(columns="wall_s"))
