"""Mode metrics for 2-D Gaussian mixtures (ring8, grid25), after the VEEGAN / PacGAN protocol.

Every generated point is assigned to its nearest mixture centre; it is *high quality* if it lies
within `quality_sigmas` standard deviations of that centre (3 in both papers). From the
high-quality points per mode come three numbers:

- `modes_covered`: modes holding at least `min_share` of the high-quality points (higher is better);
- `high_quality_fraction`: high-quality points / all points (higher is better);
- `mode_kl`: KL(p || uniform) of the high-quality points' histogram over modes (lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bench.metrics import EvalContext, Evaluator, MetricInfo, register_evaluator
from bench.registry import with_defaults

DEFAULT_SAMPLES = 2500


@dataclass(frozen=True)
class ModeStats:
    """Mode coverage of a point set. `counts[k]`: high-quality points assigned to mode k (length K)."""

    modes_covered: int
    high_quality_fraction: float
    mode_kl: float
    counts: tuple[int, ...]


def mixture_mode_stats(
    samples: Tensor,
    centers: Tensor,
    std: float,
    *,
    quality_sigmas: float = 3.0,
    min_share: float | None = None,
) -> ModeStats:
    """Mode statistics of generated points against a mixture of K isotropic Gaussians.

    samples: (N, 2) generated points; centers: (K, 2) mixture means; std: the components'
    standard deviation, in the same units as the points. A point is high quality if its distance
    to the nearest centre is at most `quality_sigmas * std`.

    A mode is covered if it holds at least `min_share` of the high-quality points (and at least
    one). Default `1 / (5K)`: PacGAN counts a mode lost below 20 of its 100 expected high-quality
    points (2,500 samples over 25 modes), i.e. a fifth of a mode's uniform share; stating it as a
    share of the high-quality points keeps the threshold independent of N and separate from
    sample quality, which `high_quality_fraction` reports on its own.

    `mode_kl` = sum_k p_k log(p_k K) with p the high-quality histogram (0 log 0 = 0), in nats:
    0 when every mode holds the same share, log K when one mode holds them all. With no
    high-quality points it is defined as log K, the worst value any histogram attains, so a
    generator that hits no mode never ranks above one that hits a single mode.
    """
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must have shape (N, 2), got {tuple(samples.shape)}")
    if centers.ndim != 2 or centers.shape[1] != 2 or centers.shape[0] == 0:
        raise ValueError(f"centers must have shape (K, 2) with K >= 1, got {tuple(centers.shape)}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    num_modes = centers.shape[0]
    if min_share is None:
        min_share = 1.0 / (5 * num_modes)
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")

    samples = samples.detach().to("cpu", torch.float64)
    centers = centers.detach().to("cpu", torch.float64)
    num_samples = samples.shape[0]
    if num_samples == 0:
        raise ValueError("samples is empty: no mode statistics for zero points")

    distances = torch.cdist(samples, centers)  # (N, K)
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance <= quality_sigmas * std
    counts = torch.bincount(nearest[high_quality], minlength=num_modes)  # (K,)
    num_high_quality = int(counts.sum())

    if num_high_quality == 0:
        return ModeStats(0, 0.0, math.log(num_modes), tuple(int(c) for c in counts))

    shares = counts.double() / num_high_quality
    # a small tolerance so that a count of exactly min_share * N_hq is not lost to rounding
    covered = (counts > 0) & (shares >= min_share - 1e-12)
    nonzero = shares[shares > 0]
    mode_kl = float((nonzero * torch.log(nonzero * num_modes)).sum())
    return ModeStats(
        modes_covered=int(covered.sum()),
        high_quality_fraction=num_high_quality / num_samples,
        mode_kl=max(mode_kl, 0.0),
        counts=tuple(int(c) for c in counts),
    )


_OPTION_DEFAULTS: Mapping[str, Any] = {"samples": DEFAULT_SAMPLES, "quality_sigmas": 3.0, "min_share": None}


def _evaluate(ctx: EvalContext) -> dict[str, float]:
    options = with_defaults("metric 'mixture-modes'", ctx.options, _OPTION_DEFAULTS)
    with torch.no_grad():
        samples = ctx.sample(int(options["samples"]))
    stats = mixture_mode_stats(
        samples.reshape(samples.shape[0], -1),
        torch.as_tensor(ctx.source.centers),
        float(ctx.source.std),
        quality_sigmas=float(options["quality_sigmas"]),
        min_share=options["min_share"],
    )
    return {
        "modes_covered": float(stats.modes_covered),
        "high_quality_fraction": stats.high_quality_fraction,
        "mode_kl": stats.mode_kl,
    }


MIXTURE_MODES = register_evaluator(
    Evaluator(
        name="mixture-modes",
        description="modes covered, high-quality fraction and mode KL of 2-D mixture samples (VEEGAN/PacGAN)",
        cost="cheap",
        metrics=(
            MetricInfo("modes_covered", "mixture modes holding at least min_share of high-quality samples", "higher"),
            MetricInfo("high_quality_fraction", "share of samples within quality_sigmas std of a centre", "higher"),
            MetricInfo("mode_kl", "KL(high-quality mode histogram || uniform), nats", "lower"),
        ),
        applies_to=lambda source: getattr(source, "kind", None) == "mixture",
        evaluate=_evaluate,
        option_defaults=_OPTION_DEFAULTS,
    )
)
