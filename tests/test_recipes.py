"""Named recipes and how a suite changes them: an explicit `tricks` list replaces the published one,
`spectral_norm` switches spectral norm for any objective, and cifar10_losses follows the RGAN code's
CIFAR-10 protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import TINY_SUITE, run_bench_here

from bench.catalogue import build_catalogue
from bench.penalties import get_trick
from bench.suite import SPECTRAL_NORM_TRICK, load_suite, parse_suite

SUITES = Path(__file__).resolve().parents[1] / "suites"

# every objective whose published recipe carries tricks, with them (the papers' recipes)
PUBLISHED_TRICKS = {
    "sngan": ["spectral-norm"],
    "realness": ["spectral-norm"],
    "r3gan": ["r1", "r2"],
    "wgan": ["weight-clipping"],
    "wgan-gp": ["gradient-penalty"],
}


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


def _jobs(catalogue, **top_level):
    suite = {**TINY_SUITE, **top_level}
    return parse_suite(yaml.safe_dump(suite, sort_keys=False), catalogue).jobs


def _names(job) -> list[str]:
    return [name for name, _ in job.tricks]


def test_published_tricks_are_in_every_job_spec_and_id(catalogue) -> None:
    objectives = ["hinge", *PUBLISHED_TRICKS]
    jobs = _jobs(catalogue, grid={"objective": objectives, "arch": ["mlp"], "seed": [0]})
    assert {job.objective: _names(job) for job in jobs} == {"hinge": [], **PUBLISHED_TRICKS}
    assert jobs[0].flat()["tricks"] == "none"
    assert jobs[1].flat()["tricks"] == "spectral-norm"


@pytest.mark.parametrize("objective", sorted(PUBLISHED_TRICKS))
def test_an_empty_tricks_override_removes_the_published_tricks(catalogue, objective: str) -> None:
    grid = {"objective": [objective], "arch": ["mlp"], "seed": [0]}
    (published,) = _jobs(catalogue, grid=grid)
    (without,) = _jobs(catalogue, grid=grid, objectives={objective: {"tricks": []}})
    assert _names(published) == PUBLISHED_TRICKS[objective]
    assert without.tricks == ()
    assert without.job_id != published.job_id


def test_hinge_and_sngan_differ_only_by_spectral_norm(catalogue) -> None:
    hinge, sngan = _jobs(catalogue, grid={"objective": ["hinge", "sngan"], "arch": ["mlp"], "seed": [0]},
                         train={**TINY_SUITE["train"], "lr": None})
    assert (hinge.tricks, sngan.tricks) == ((), (("spectral-norm", ()),))
    # SNGAN's standard-CNN optimiser (chainer-gan-lib example.sh): Adam 2e-4, betas (0.5, 0.999), n_dis 1
    assert (sngan.optimizer, sngan.lr_g, sngan.lr_d, sngan.betas, sngan.critic_steps) == (
        "adam", 2e-4, 2e-4, (0.5, 0.999), 1)
    assert {k: v for k, v in hinge.to_dict().items() if k not in ("objective", "tricks")} == {
        k: v for k, v in sngan.to_dict().items() if k not in ("objective", "tricks")}


def test_tricks_precedence_each_level_replaces_the_one_below(catalogue) -> None:
    grid = {"objective": ["wgan-gp", "r3gan", "nsgan"], "arch": ["mlp"], "seed": [0]}
    train = {**TINY_SUITE["train"], "tricks": ["feature-matching"]}
    overrides = {"r3gan": {"tricks": [{"name": "r1", "options": {"gamma": 1.0}}]}, "nsgan": {"tricks": []}}
    wgan_gp, r3gan, nsgan = _jobs(catalogue, grid=grid, train=train, objectives=overrides)
    assert wgan_gp.tricks == (("feature-matching", (("weight", 1.0),)),)  # train replaces the published GP
    assert r3gan.tricks == (("r1", (("gamma", 1.0),)),)  # the override replaces train (R2 is gone too)
    assert nsgan.tricks == ()  # an empty override replaces train's list
    # a grid axis replaces the override
    axis = {**grid, "tricks": [["label-smoothing"]]}
    assert {job.objective: _names(job) for job in _jobs(catalogue, grid=axis, train=train, objectives=overrides)} == {
        "wgan-gp": ["label-smoothing"], "r3gan": ["label-smoothing"], "nsgan": ["label-smoothing"]}


def test_an_empty_train_tricks_list_removes_every_published_trick(catalogue) -> None:
    jobs = _jobs(catalogue, grid={"objective": sorted(PUBLISHED_TRICKS), "arch": ["mlp"], "seed": [0]},
                 train={**TINY_SUITE["train"], "tricks": []})
    assert [job.tricks for job in jobs] == [()] * len(PUBLISHED_TRICKS)


def test_spectral_norm_is_the_trick_that_sets_the_arch_option() -> None:
    assert dict(get_trick(SPECTRAL_NORM_TRICK).critic_options()) == {"spectral_norm": True}


def test_spectral_norm_switch_for_any_objective(catalogue) -> None:
    grid = {"objective": ["nsgan", "sngan", "wgan-gp"], "arch": ["mlp"], "seed": [0]}
    switched_on = _jobs(catalogue, grid=grid, train={**TINY_SUITE["train"], "spectral_norm": True})
    assert {job.objective: _names(job) for job in switched_on} == {
        "nsgan": ["spectral-norm"], "sngan": ["spectral-norm"], "wgan-gp": ["gradient-penalty", "spectral-norm"]}
    # the per-objective setting beats train's, whatever the tricks list says
    mixed = _jobs(catalogue, grid=grid, train={**TINY_SUITE["train"], "spectral_norm": True},
                  objectives={"sngan": {"spectral_norm": False}, "wgan-gp": {"tricks": []}})
    assert {job.objective: _names(job) for job in mixed} == {
        "nsgan": ["spectral-norm"], "sngan": [], "wgan-gp": ["spectral-norm"]}
    # as a grid axis: one job each way, ids apart
    axis = _jobs(catalogue, grid={"objective": ["rsgan", "sngan"], "arch": ["mlp"], "seed": [0],
                                  "spectral_norm": [False, True]})
    assert [(job.objective, _names(job)) for job in axis] == [
        ("rsgan", []), ("rsgan", ["spectral-norm"]), ("sngan", []), ("sngan", ["spectral-norm"])]
    assert len({job.job_id for job in axis}) == 4


def test_list_objectives_shows_each_published_trick(tmp_path: Path) -> None:
    result = run_bench_here(["list", "objectives"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0]
    # the columns are fixed-width: the tricks column starts where its header does
    start = header.index("tricks")
    rows = {line.split()[0]: line[start:].split()[0] for line in lines[2:] if line.strip() and not line.startswith("`")}
    assert rows["hinge"] == "-"
    assert rows["sngan"] == "spectral-norm"
    assert rows["r3gan"] == "r1,r2"
    assert rows["wgan"] == "weight-clipping"
    assert rows["wgan-gp"] == "gradient-penalty"


# code/stable.sh of AlexiaJM/RelativisticGAN at 2646c0b, CIFAR-10: every loss in both setups, with
# spectral norm; RSGAN-GP in both, RaSGAN-GP in setup I only. (bench objective, gradient penalty)
RGAN_LINES_SETUP_I = [("nsgan", False), ("lsgan", False), ("wgan-gp", True), ("hinge", False), ("rsgan", False),
                      ("rasgan", False), ("ralsgan", False), ("rahinge", False), ("rsgan", True), ("rasgan", True)]
RGAN_LINES_SETUP_II = [("nsgan", False), ("lsgan", False), ("wgan-gp", True), ("hinge", False), ("rsgan", False),
                       ("rasgan", False), ("ralsgan", False), ("rahinge", False), ("rsgan", True)]
SETUP_I = ("adam", 2e-4, (0.5, 0.999), 1)
SETUP_II = ("adam", 1e-4, (0.5, 0.9), 5)


def test_cifar10_losses_follows_the_rgan_protocol(catalogue) -> None:
    suite = load_suite(SUITES / "cifar10_losses.yaml", catalogue)
    seeds = sorted({job.seed for job in suite.jobs})
    expected = sorted(
        (objective, gp, setup, seed)
        for lines, setup in ((RGAN_LINES_SETUP_I, SETUP_I), (RGAN_LINES_SETUP_II, SETUP_II))
        for objective, gp in lines for seed in seeds
    )
    found = []
    for job in suite.jobs:
        assert job.lr_g == job.lr_d
        setup = (job.optimizer, job.lr_g, job.betas, job.critic_steps)
        gp = _names(job) == ["gradient-penalty", "spectral-norm"]
        assert gp or _names(job) == ["spectral-norm"]
        found.append((job.objective, gp, setup, job.seed))
    assert sorted(found) == expected
    assert len(seeds) >= 3
    for job in suite.jobs:
        assert (job.dataset, job.arch, job.batch_size, job.steps, job.eval_every) == (
            "cifar10", "standard-cnn", 32, 100_000, 10_000)
        assert job.latent_dim == 128
        assert dict(job.arch_options)["spectral_norm_head"] is False  # the RGAN code's unnormalised dense output
        assert job.metrics == ("fidelity-inception",)
        assert dict(job.metric_options) == {
            "fidelity-inception": (("real_samples", 50_000), ("real_split", "train"), ("samples", 50_000))}
        # spectral norm drops the critic's batch norm, so the gradient penalty sees per-sample gradients
        assert catalogue.archs[job.arch].critic_coupling({**dict(job.arch_options), "spectral_norm": True}) == []


def test_reuse_fakes_is_a_recipe_key_in_the_spec_and_its_id(catalogue) -> None:
    from dataclasses import replace

    from bench.spec import JobSpec
    from bench.suite import SuiteError

    grid = {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0]}
    (plain,) = _jobs(catalogue, grid=grid)
    (reusing,) = _jobs(catalogue, grid=grid, train={**TINY_SUITE["train"], "reuse_fakes": True})
    assert (plain.reuse_fakes, reusing.reuse_fakes) == (False, True)
    assert reusing.job_id != plain.job_id == replace(reusing, reuse_fakes=False).job_id
    # a spec.json written before the field existed still loads, with the same id
    old = plain.to_dict()
    del old["reuse_fakes"]
    assert JobSpec.from_dict(old) == plain
    with pytest.raises(SuiteError, match=r"train.reuse_fakes: reuse_fakes needs one critic step .* objective "
                                         r"'wgan' runs critic_steps 5: "
                                         r"set objectives: \{wgan: \{reuse_fakes: false\}\}"):
        _jobs(catalogue, grid={**grid, "objective": ["nsgan", "wgan"]},
              train={**TINY_SUITE["train"], "reuse_fakes": True})
    (mixed, wgan) = _jobs(catalogue, grid={**grid, "objective": ["nsgan", "wgan"]},
                          train={**TINY_SUITE["train"], "reuse_fakes": True},
                          objectives={"wgan": {"reuse_fakes": False}})
    assert (mixed.reuse_fakes, wgan.reuse_fakes) == (True, False)
