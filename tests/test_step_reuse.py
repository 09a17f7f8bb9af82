"""Reusing the critic step's fakes in the generator step (`reuse_fakes`, the DCGAN tutorial's loop):
one noise draw and one generator forward per step; the critic step is unchanged; the generator
learns from the critic step's samples as the updated critic judges them."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
import yaml
from conftest import TINY_SUITE

from bench.catalogue import build_catalogue
from bench.spec import JobSpec
from bench.stacked import StackedJobs, _GlobalRNG
from bench.suite import parse_suite
from bench.train import Job


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


def _spec(catalogue, objective: str = "nsgan", *, reuse: bool, arch: str = "mlp", seed: int = 0, **train) -> JobSpec:
    images = arch == "dcgan"
    suite = {
        **TINY_SUITE,
        "dataset": {"name": "digits", "options": {"resolution": 32}} if images else {"name": "ring8"},
        "grid": {"objective": [objective], "arch": [arch], "seed": [seed]},
        "train": {**TINY_SUITE["train"], "batch_size": 16, **train},
        "archs": {"mlp": {"width": 16, "depth": 2}, "dcgan": {"width": 4}},
        "metrics": [],
        "metric_options": {},
    }
    (spec,) = parse_suite(yaml.safe_dump(suite), catalogue).jobs
    return replace(spec, reuse_fakes=reuse)


def _draws(generator: torch.Generator, count: int, shape: tuple[int, ...]) -> torch.Generator:
    for _ in range(count):
        torch.randn(shape, generator=generator)
    return generator


@pytest.mark.parametrize("objective", ["nsgan", "bigan-qp"])
def test_the_noise_stream_advances_once_per_step_with_reuse_and_twice_without(catalogue, tmp_path, objective) -> None:
    # bigan-qp (the pair game) at one critic step: its recipe's two are refused with reuse
    reusing = Job(_spec(catalogue, objective, reuse=True, critic_steps=1), data_root=tmp_path, cache_dir=tmp_path)
    plain = Job(_spec(catalogue, objective, reuse=False, critic_steps=1), data_root=tmp_path, cache_dir=tmp_path)
    start = reusing.noise_rng.get_state()
    assert torch.equal(start, plain.noise_rng.get_state())
    for _ in range(3):
        reusing.train_step()
        plain.train_step()
    shape = (reusing.spec.batch_size, reusing.spec.latent_dim)
    once, twice = torch.Generator(), torch.Generator()
    once.set_state(start)
    twice.set_state(start)
    assert torch.equal(reusing.noise_rng.get_state(), _draws(once, 3, shape).get_state())
    assert torch.equal(plain.noise_rng.get_state(), _draws(twice, 6, shape).get_state())


@pytest.mark.parametrize(("objective", "arch"), [("nsgan", "dcgan"), ("rsgan", "mlp")])
def test_the_first_generator_loss_judges_the_critic_steps_fakes_after_the_critic_update(
    catalogue, tmp_path, objective, arch
) -> None:
    """With reuse, step 1's L_G is the objective's generator loss of the updated critic on G_0(z_1), the
    samples the critic step drew (on DCGAN the tutorial's loop; rsgan's L_G also reads C(x_r)). Without
    reuse the generator step draws new noise, and the same recomputation does not give its L_G."""
    losses = {}
    for reuse in (True, False):
        job = Job(_spec(catalogue, objective, reuse=reuse, arch=arch), data_root=tmp_path, cache_dir=tmp_path)
        generator_before = copy.deepcopy(job.generator)  # training mode: batch norm uses the batch's statistics
        data_rng, noise_rng = torch.Generator(), torch.Generator()
        data_rng.set_state(job.data_rng.get_state())
        noise_rng.set_state(job.noise_rng.get_state())
        critic_before = copy.deepcopy(job.critic.state_dict())
        _, loss_g = job.train_step()
        x_real = job.source.sample(job.spec.batch_size, data_rng)
        z = torch.randn(job.spec.batch_size, job.spec.latent_dim, generator=noise_rng)
        assert any(not torch.equal(before, after) for before, after in zip(critic_before.values(),
                                                                          job.critic.state_dict().values()))
        with torch.no_grad():
            c_fake = job.critic(generator_before(z))
            c_real = job.critic(x_real) if job.objective.generator_needs_real else c_fake.new_empty(0)
            losses[reuse] = (loss_g, job.objective.g_loss(c_real, c_fake))
    torch.testing.assert_close(*losses[True])
    assert not torch.allclose(*losses[False])


def test_the_critic_step_is_the_same_with_and_without_reuse(catalogue, tmp_path) -> None:
    jobs = [Job(_spec(catalogue, "rsgan", reuse=reuse), data_root=tmp_path, cache_dir=tmp_path)
            for reuse in (True, False)]
    (reuse_d, reuse_g), (plain_d, plain_g) = (job.train_step() for job in jobs)
    assert torch.equal(reuse_d, plain_d)
    for with_reuse, without in zip(jobs[0].critic.parameters(), jobs[1].critic.parameters()):
        assert torch.equal(with_reuse, without)
    assert not torch.equal(reuse_g, plain_g)


def test_reuse_is_refused_with_more_than_one_critic_step(catalogue, tmp_path) -> None:
    spec = _spec(catalogue, "wgan-gp", reuse=True)
    assert spec.critic_steps == 5
    with pytest.raises(ValueError, match=r"^reuse_fakes needs critic_steps 1 \(the generator step reuses the one "
                                         r"critic step's fakes\); got critic_steps 5$"):
        Job(spec, data_root=tmp_path, cache_dir=tmp_path)


def test_stacked_seeds_reuse_fakes_as_their_own_jobs_do(catalogue, tmp_path) -> None:
    specs = [_spec(catalogue, "rsgan", reuse=True, seed=seed) for seed in (0, 1)]
    jobs, rngs = [], []
    for spec in specs:
        jobs.append(Job(spec, data_root=tmp_path, cache_dir=tmp_path))
        rngs.append(_GlobalRNG(jobs[-1].device))
    model = StackedJobs(jobs, rngs)
    stacked = [model.train_step() for _ in range(3)]
    for seed, spec in enumerate(specs):
        job = Job(spec, data_root=tmp_path, cache_dir=tmp_path)
        for loss_d, loss_g in stacked:
            own_d, own_g = job.train_step()
            torch.testing.assert_close(loss_d[seed], own_d, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(loss_g[seed], own_g, rtol=1e-5, atol=1e-6)
        assert torch.equal(model.jobs[seed].noise_rng.get_state(), job.noise_rng.get_state())
