"""Reconstruction errors of objectives with an encoder (BiGAN-QP): how well G(E(x)) returns x and
E(G(z)) returns z, on a fixed batch of real data and of noise."""

from __future__ import annotations

import torch

from bench.metrics import EvalContext, Evaluator, MetricInfo, register_evaluator
from bench.registry import Option

# how many real samples / noise vectors the errors are averaged over (at most)
DEFAULT_SAMPLES = 1000


def reconstruction_errors(ctx: EvalContext) -> dict[str, float]:
    """`x_reconstruction_mse`: mean over elements of (x - G(E(x)))^2 on real data;
    `z_reconstruction_mse`: mean of (z - E(G(z)))^2 on standard-normal z. Both from fixed draws
    (a generator seeded by the job's seed), so successive evaluations are comparable."""
    if ctx.encode is None or ctx.decode is None:
        raise ValueError("metric 'reconstruction' needs an objective with an encoder (bigan-qp)")
    count = RECONSTRUCTION.resolve(ctx.options)["samples"]
    rng = torch.Generator().manual_seed(ctx.seed * 7919 + 4)
    x = ctx.source.sample(count, rng).to(ctx.device)
    z_of_x = ctx.encode(x)
    x_rec = ctx.decode(z_of_x)
    z = torch.randn(z_of_x.shape, generator=rng).to(ctx.device)
    z_rec = ctx.encode(ctx.decode(z))
    return {
        "x_reconstruction_mse": float((x - x_rec).pow(2).mean()),
        "z_reconstruction_mse": float((z - z_rec).pow(2).mean()),
    }


RECONSTRUCTION = register_evaluator(
    Evaluator(
        name="reconstruction",
        description="BiGAN-QP reconstruction errors of G(E(x)) and E(G(z))",
        cost="negligible (one encoder/generator pass over 1k samples)",
        metrics=(
            MetricInfo("x_reconstruction_mse", "mean squared error of G(E(x)) against real x", "lower"),
            MetricInfo("z_reconstruction_mse", "mean squared error of E(G(z)) against z", "lower"),
        ),
        # it applies to every dataset; the objectives with an encoder add it to their jobs
        applies_to=lambda offers: True,
        evaluate=reconstruction_errors,
        options={"samples": Option(DEFAULT_SAMPLES, int, low=1,
                                   description="real samples and noise vectors the errors are averaged over")},
    )
)
