"""The training step against a bare PyTorch loop of the same algorithm, with and without reusing the
critic step's fakes in the generator step (`reuse_fakes`, the DCGAN tutorial's loop).

Both sides run NS-GAN (critic loss `sp(-C(x_r)) + sp(C(G(z)))`, generator loss `sp(-C(G(z)))`) with
Adam, on the same networks (copies of the job's, same initial weights), the same real batches and
noise streams. The bare loop is written as the tutorial writes it: `zero_grad` on the model, no
`requires_grad` toggling. The bench side is `bench.train.Job.train_step`. Blocks of steps of the four
loops alternate over the rounds, so all see the same machine load; each figure is the median block,
in CPU time of the process (on a machine shared with other jobs the wall time of a block mostly
measures the others) and, beside it, in wall time.

    .venv/bin/python benchmarks/step_speed.py
    .venv/bin/python benchmarks/step_speed.py --steps 10 --rounds 5 --threads 1

Prints, per case, steps per second of each loop and bench's speed as a fraction of the bare loop's
(1.00: no overhead), and checks that the two compute the same losses. Not a test: run it on purpose.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from bench.catalogue import build_catalogue
from bench.spec import JobSpec
from bench.suite import parse_suite
from bench.train import Job

CASES = {
    "dcgan digits 32px width 64 (the tutorial's), batch 64": ("digits", {"resolution": 32}, "dcgan", {"width": 64}),
    "mlp ring8 2-128-128-128, batch 64": ("ring8", {}, "mlp", {"width": 128, "depth": 3}),
}

def with_reuse(spec: JobSpec, reuse: bool) -> JobSpec:
    """`spec` with the recipe field `reuse_fakes` set."""
    return replace(spec, reuse_fakes=reuse)


def spec_for(dataset: str, dataset_options: dict, arch: str, arch_options: dict) -> JobSpec:
    suite = {
        "name": "step-speed",
        "dataset": {"name": dataset, "options": dataset_options},
        "grid": {"objective": ["nsgan"], "arch": [arch], "seed": [0]},
        "train": {"steps": 100, "batch_size": 64, "device": "cpu", "lr": 2.0e-4, "betas": [0.5, 0.999]},
        "archs": {arch: arch_options},
        "metrics": [],
        "metric_options": {},
    }
    (spec,) = parse_suite(yaml.safe_dump(suite), build_catalogue()).jobs
    return spec


class BareLoop:
    """NS-GAN in plain PyTorch, as the DCGAN tutorial writes its loop, on copies of `job`'s networks and streams."""

    def __init__(self, job: Job, reuse: bool) -> None:
        self.generator, self.critic = copy.deepcopy(job.generator), copy.deepcopy(job.critic)
        spec = job.spec
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=spec.lr_g, betas=spec.betas)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=spec.lr_d, betas=spec.betas)
        self.source, self.batch, self.latent, self.reuse = job.source, spec.batch_size, spec.latent_dim, reuse
        self.data_rng, self.noise_rng = torch.Generator(), torch.Generator()
        self.data_rng.set_state(job.data_rng.get_state())
        self.noise_rng.set_state(job.noise_rng.get_state())

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        x_real = self.source.sample(self.batch, self.data_rng)
        z = torch.randn(self.batch, self.latent, generator=self.noise_rng)
        if self.reuse:
            fake = self.generator(z)
        else:
            with torch.no_grad():
                fake = self.generator(z)
        self.critic.zero_grad()
        loss_d = F.softplus(-self.critic(x_real)).mean() + F.softplus(self.critic(fake.detach())).mean()
        loss_d.backward()
        self.opt_d.step()
        if not self.reuse:
            fake = self.generator(torch.randn(self.batch, self.latent, generator=self.noise_rng))
        self.generator.zero_grad()
        loss_g = F.softplus(-self.critic(fake)).mean()
        loss_g.backward()
        self.opt_g.step()
        return loss_d.detach(), loss_g.detach()


def block_seconds(step: Callable[[], tuple[torch.Tensor, torch.Tensor]], steps: int) -> tuple[float, float]:
    """(CPU seconds of the process, wall seconds) of `steps` steps."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss_d, _ = step()
    float(loss_d)
    return time.process_time() - cpu_started, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="generator steps per timed block (dcgan; mlp runs 20x)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating blocks per loop")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp())
    load = os.getloadavg()
    print(f"CPU, {args.threads} torch thread(s), {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, case in CASES.items():
        base = spec_for(*case)
        steps = args.steps if case[2] == "dcgan" else args.steps * 20
        loops: dict[str, Callable[[], tuple[torch.Tensor, torch.Tensor]]] = {}
        for reuse in (False, True):
            job = Job(with_reuse(base, reuse), data_root=root, cache_dir=root)
            bare = BareLoop(job, reuse)
            for _ in range(3):  # the same computation: the first steps' losses agree
                (bench_d, bench_g), (bare_d, bare_g) = job.train_step(), bare.step()
                torch.testing.assert_close(torch.stack([bench_d, bench_g]), torch.stack([bare_d, bare_g]),
                                           rtol=1e-4, atol=1e-5)
            form = "reuse" if reuse else "no reuse"
            loops[f"bench, {form}"], loops[f"bare, {form}"] = job.train_step, bare.step
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in loops}
        for _ in range(args.rounds):
            for label, step in loops.items():
                times[label].append(block_seconds(step, steps))
        rate = {label: steps / statistics.median(cpu for cpu, _ in blocks) for label, blocks in times.items()}
        wall = {label: steps / statistics.median(w for _, w in blocks) for label, blocks in times.items()}
        print(f"{name} ({steps} steps x {args.rounds} blocks per loop; steps per CPU second, wall in brackets):")
        for form in ("no reuse", "reuse"):
            bench, bare = f"bench, {form}", f"bare, {form}"
            print(f"  {form:8s}: bench {rate[bench]:7.1f} ({wall[bench]:.1f}) steps/s, bare {rate[bare]:7.1f} "
                  f"({wall[bare]:.1f}) steps/s, bench / bare {rate[bench] / rate[bare]:.2f}x "
                  f"({wall[bench] / wall[bare]:.2f}x)")
        for label, speeds in (("CPU", rate), ("wall", wall)):
            print(f"  {label:4s} reuse / no reuse: bench {speeds['bench, reuse'] / speeds['bench, no reuse']:.2f}x, "
                  f"bare {speeds['bare, reuse'] / speeds['bare, no reuse']:.2f}x; bench with reuse / bare without: "
                  f"{speeds['bench, reuse'] / speeds['bare, no reuse']:.2f}x")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
