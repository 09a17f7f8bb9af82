"""Mode metrics for 2-D Gaussian mixtures (ring8, grid25): the published VEEGAN / PacGAN numbers, and two
that uniform noise cannot win.

Every generated point is assigned to its nearest mixture centre; it is *high quality* (HQ) when its
distance to that centre, in standard deviations, is strictly below `quality_sigmas` (3 in both papers).

Published, reported as the papers compute them:

- `modes_covered`: modes with at least one HQ point (PacGAN's `MetricLogger`; VEEGAN's project page).
  Not ranked: 2,500 points of uniform noise over [-5, 5]^2 cover 25 (1 - e^-1.77) = 20.7 of grid25's
  25 modes on average (18-22 in three draws), more than a perfect generator of 15 modes.
- `high_quality_fraction`: HQ points / all points. Ranked.
- `mode_kl`: KL(HQ histogram || uniform over the K modes). Not ranked: it drops every low-quality
  point, so noise, whose few HQ points spread evenly, scores 0.25-0.47 on grid25 (three draws), below
  the 15-mode generator's log(25/15) = 0.51.

Noise-proof and ranked, so that verdicts on mode collapse rest on them:

- `modes_held`: modes whose HQ points make up at least a fifth of the mode's uniform share of *all*
  points, (1/5) N / K (`held_fraction_of_uniform`).
- `mode_kl_all`: KL(p_gen || p_data) over K + 1 bins, each mode's HQ region plus one off-mode bin, with
  p_data the true mixture's mass in each bin; low-quality points count, in the off-mode bin.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from bench.metrics import EvalContext, Evaluator, MetricInfo, register_evaluator
from bench.registry import Option

DEFAULT_SAMPLES = 2500
"""Generator samples scored per evaluation: PacGAN's `num_log_figure_sample` (2DGrid/2DRing `config.py`)
and VEEGAN's "2500 samples from each trained model"."""

QUALITY_SIGMAS = 3.0
"""PacGAN `extensions.py` `dis_thre=3`; VEEGAN: "within three standard deviations of the nearest mode"."""

COVERED_MIN_SAMPLES = 1
"""PacGAN / VEEGAN: a mode is covered when at least one high-quality sample is nearest to it."""

HELD_FRACTION_OF_UNIFORM = 0.2
"""A mode is held when its HQ samples reach this fraction of its uniform share N / K of all samples."""

# Gauss-Legendre nodes along the radius and equally spaced angles of the quadrature that integrates
# the mixture density over each mode's high-quality disk (see `data_bin_masses`)
_RADIAL_NODES = 32
_ANGULAR_NODES = 512


@dataclass(frozen=True)
class ModeStats:
    """Mode statistics of N points against a mixture of K modes.

    `counts[k]`: HQ points nearest to mode k (length K); `num_samples`: N, all points scored.
    The metric fields are defined in `mixture_mode_stats`.
    """

    modes_covered: int
    high_quality_fraction: float
    mode_kl: float
    modes_held: int
    mode_kl_all: float
    counts: tuple[int, ...]
    num_samples: int


def mixture_mode_stats(
    samples: Tensor,
    centers: Tensor,
    std: float,
    *,
    quality_sigmas: float = QUALITY_SIGMAS,
    covered_min_samples: int = COVERED_MIN_SAMPLES,
    held_fraction_of_uniform: float = HELD_FRACTION_OF_UNIFORM,
) -> ModeStats:
    """Mode statistics of generated points against an equal-weight mixture of K isotropic Gaussians.

    samples: (N, 2) generated points; centers: (K, 2) mixture means; std: the components' standard
    deviation per coordinate, in the units of the points.

    High quality (PacGAN `synthetic_data_experiments/PacGAN/pacgan/extensions.py`, `MetricLogger`,
    L115 and L155-172 at fjxmlzn/PacGAN 190853e): a point's normalised distance to mode k is
    `sqrt(sum_d (x_d - mu_kd)^2 / std^2)`; the point belongs to the nearest mode and is high quality
    when that distance is strictly below `quality_sigmas` (`dis < dis_thre`, `dis_thre = 3`). A point
    at exactly 3 std is not high quality. VEEGAN's project page (akashgit/VEEGAN `index.md`, "Synthetic
    Dataset") states the same rule in words.

    Published metrics:

    - `modes_covered`: modes with at least `covered_min_samples` HQ points; 1 is PacGAN's rule
      (`len(nonzero(detail_of_coverage))`, `extensions.py` L171) and VEEGAN's ("nearest to at least one
      high quality sample").
    - `high_quality_fraction`: HQ points / N (`extensions.py` L172).
    - `mode_kl` = sum_k p_k log(K p_k), p the HQ histogram normalised over the HQ points (0 log 0 = 0),
      nats: PacGAN's Table 1 "reverse KL". The 2-D code logs a JSD, not a KL; this is the formula of
      PacGAN's Stacked-MNIST `log_metrics` (KL(p_gen || uniform)) applied to the HQ histogram. With no
      HQ point it is log K, the worst value a histogram attains.

    Noise-proof metrics:

    - `modes_held`: modes k with counts_k >= held_fraction_of_uniform * N / K. The denominator is all N
      points, so points off every mode lower each mode's share instead of vanishing from it. With the
      default fifth: on grid25 at N = 2,500 a mode needs 20 HQ points where the data put 98.9
      (binomial sd 9.7, so a perfect generator loses none: P < 1e-22 per mode), while uniform noise
      over [-5, 5]^2 puts 1.8 on average (Poisson; P(>= 20) < 1e-14). Put otherwise, a mode is held
      when the generator gives its HQ disk about a fifth or more of the mass the data give it. A fixed
      share keeps the rule independent of N; a per-mode significance test (as NDB, Richardson and
      Weiss 2018, "On GANs and GMMs") would instead flag small imbalances as lost at large N.
    - `mode_kl_all` = sum_b q_b log(q_b / p_b) over K + 1 bins: bin k < K holds the HQ points of mode k,
      bin K (off-mode) every other point; q = histogram / N, p = the true mixture's mass in each bin
      (`data_bin_masses`; for well separated modes p_k = (1 - exp(-s^2/2)) / K and p_K = exp(-s^2/2),
      s = quality_sigmas: the squared normalised radius of an isotropic 2-D Gaussian is chi-square
      with 2 degrees of freedom). Direction KL(p_gen || p_data), as the published KL, and it needs no
      smoothing: every p_b > 0, so a bin the generator leaves empty adds 0 log 0 = 0 and the value is
      finite. It is 0 for the data themselves (plug-in bias about K / (2N) = 0.005 on grid25 at
      2,500 samples), (1 - e^-4.5) log(K / k) = 0.505 for a perfect generator of 15 of the 25 modes,
      and about 4.4 for noise over grid25's square (almost everything off-mode: log(1 / e^-4.5) = 4.5).
    """
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must have shape (N, 2), got {tuple(samples.shape)}")
    if centers.ndim != 2 or centers.shape[1] != 2 or centers.shape[0] == 0:
        raise ValueError(f"centers must have shape (K, 2) with K >= 1, got {tuple(centers.shape)}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    if not quality_sigmas > 0:
        raise ValueError(f"quality_sigmas must be positive, got {quality_sigmas}")
    if isinstance(covered_min_samples, bool) or not isinstance(covered_min_samples, int) or covered_min_samples < 1:
        raise ValueError(f"covered_min_samples must be an integer >= 1, got {covered_min_samples!r}")
    if not 0.0 < held_fraction_of_uniform <= 1.0:
        raise ValueError(f"held_fraction_of_uniform must be in (0, 1], got {held_fraction_of_uniform}")
    num_samples = samples.shape[0]
    if num_samples == 0:
        raise ValueError("samples is empty: no mode statistics for zero points")
    num_modes = centers.shape[0]

    samples = samples.detach().to("cpu", torch.float64)
    centers = centers.detach().to("cpu", torch.float64)
    # as PacGAN: the per-coordinate normalised distance to every centre, then the nearest
    distances = ((samples[:, None, :] - centers[None, :, :]).square() / std**2).sum(dim=2).sqrt()  # (N, K)
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance < quality_sigmas
    counts = torch.bincount(nearest[high_quality], minlength=num_modes)  # (K,)
    num_high_quality = int(counts.sum())

    modes_covered = int((counts >= covered_min_samples).sum())
    # counts_k >= f N / K, compared as counts_k K >= f N with a tolerance for f's rounding
    modes_held = int((counts.double() * num_modes >= held_fraction_of_uniform * num_samples - 1e-9).sum())

    if num_high_quality == 0:
        mode_kl = math.log(num_modes)
    else:
        shares = counts.double() / num_high_quality
        nonzero = shares[shares > 0]
        mode_kl = max(float((nonzero * torch.log(nonzero * num_modes)).sum()), 0.0)

    generated = torch.cat([counts, torch.tensor([num_samples - num_high_quality])]).double() / num_samples
    data = torch.tensor(
        data_bin_masses(tuple(map(tuple, centers.tolist())), float(std), float(quality_sigmas)), dtype=torch.float64
    )
    support = generated > 0
    mode_kl_all = max(float((generated[support] * torch.log(generated[support] / data[support])).sum()), 0.0)

    return ModeStats(
        modes_covered=modes_covered,
        high_quality_fraction=num_high_quality / num_samples,
        mode_kl=mode_kl,
        modes_held=modes_held,
        mode_kl_all=mode_kl_all,
        counts=tuple(int(c) for c in counts),
        num_samples=num_samples,
    )


@functools.lru_cache(maxsize=32)
def data_bin_masses(centers: tuple[tuple[float, float], ...], std: float, quality_sigmas: float) -> tuple[float, ...]:
    """The true mixture's probability of each of the K + 1 bins of `mode_kl_all` (length K + 1, sum 1).

    centers: K (x, y) means of an equal-weight mixture of isotropic Gaussians of standard deviation
    `std`. Bin k < K is mode k's high-quality region: the points within r = `quality_sigmas * std` of
    centre k that are nearer to k than to any other centre (the disk clipped to k's nearest-centre
    cell). Bin K is the rest.

    Each region's mass, (1/K) sum_j P(X_j in region k) over all components j, so including the mass
    other components spill into it, is integrated in polar coordinates about centre k: 512 equally
    spaced angles, and along each ray 32 Gauss-Legendre radii from 0 to where the ray leaves the region
    (r, or the cell's edge if nearer). When the disks do not overlap (r at most half the distance
    between any two centres: ring8 and grid25 at their defaults, by a factor of 6 or more) each region
    is the whole disk and the result is exact to rounding: (1 - exp(-q^2 / 2)) / K per mode (q =
    quality_sigmas; the squared normalised radius is chi-square with 2 degrees of freedom) plus a spill
    below 1e-290. Where disks overlap, the ray's length has kinks at the cells' corners, which limits
    the angular sum to about 1e-5 in absolute terms (grid25 at std 0.5: off-mode mass 0.002130, against
    0.002135 with 2048 angles and 0.00214 +- 0.00001 by Monte Carlo). Components farther than r + 39 std
    from a centre are left out of its region's sum: their density there is below the smallest float64
    (exp(-39^2 / 2) < 1e-330). The off-mode mass is 1 minus the rest, floored at 1e-12 (it is
    exp(-4.5) = 0.0111 at q = 3; the floor binds only above q = 7.4, where rounding would otherwise
    decide it).
    """
    means = np.asarray(centers, dtype=np.float64)  # (K, 2)
    num_modes = means.shape[0]
    radius = quality_sigmas * std
    nodes, weights = np.polynomial.legendre.leggauss(_RADIAL_NODES)  # on [-1, 1]
    angles = 2 * np.pi * np.arange(_ANGULAR_NODES) / _ANGULAR_NODES
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (A, 2)
    masses = []
    for k in range(num_modes):
        to_others = np.delete(means, k, axis=0) - means[k]  # (K - 1, 2)
        # the ray rho * u stays nearer to k than to j while rho * (u . v_j) <= |v_j|^2 / 2
        along = directions @ to_others.T  # (A, K - 1)
        with np.errstate(divide="ignore"):
            to_edge = np.where(along > 0, (to_others**2).sum(axis=1) / (2 * along), np.inf)
        upper = np.minimum(radius, to_edge.min(axis=1, initial=np.inf))  # (A,)
        radii = upper[:, None] * (nodes + 1) / 2  # (A, R)
        area_weights = (upper[:, None] / 2) * weights * radii * (2 * np.pi / _ANGULAR_NODES)
        points = means[k] + radii[:, :, None] * directions[:, None, :]  # (A, R, 2)
        near = means[np.linalg.norm(means - means[k], axis=1) < radius + 39 * std]  # (J, 2), k among them
        squared = ((points[:, :, None, :] - near) ** 2).sum(axis=3)  # (A, R, J)
        density = np.exp(-squared / (2 * std**2)).sum(axis=2) / (2 * np.pi * std**2 * num_modes)
        masses.append(float((density * area_weights).sum()))
    off_mode = max(1.0 - sum(masses), 1e-12)
    return (*masses, off_mode)


_OPTIONS: Mapping[str, Option] = {
    "samples": Option(DEFAULT_SAMPLES, int, low=1, description="generator samples scored per evaluation"),
    "quality_sigmas": Option(QUALITY_SIGMAS, float, low=0.0, low_open=True,
                             description="a sample is high quality within this many std of its nearest centre"),
    "covered_min_samples": Option(COVERED_MIN_SAMPLES, int, low=1,
                                  description="high-quality samples a mode needs to count as covered"),
    "held_fraction_of_uniform": Option(HELD_FRACTION_OF_UNIFORM, float, low=0.0, high=1.0, low_open=True,
                                       description="share of its uniform share N/K a mode needs to count as held"),
}


def _evaluate(ctx: EvalContext) -> dict[str, float]:
    options = MIXTURE_MODES.resolve(ctx.options)
    with torch.no_grad():
        samples = ctx.sample(int(options["samples"]))
    stats = mixture_mode_stats(
        samples.reshape(samples.shape[0], -1),
        torch.as_tensor(ctx.source.centers),
        float(ctx.source.std),
        quality_sigmas=float(options["quality_sigmas"]),
        covered_min_samples=options["covered_min_samples"],
        held_fraction_of_uniform=float(options["held_fraction_of_uniform"]),
    )
    return {
        "modes_covered": float(stats.modes_covered),
        "high_quality_fraction": stats.high_quality_fraction,
        "mode_kl": stats.mode_kl,
        "modes_held": float(stats.modes_held),
        "mode_kl_all": stats.mode_kl_all,
    }


MIXTURE_MODES = register_evaluator(
    Evaluator(
        name="mixture-modes",
        description="2-D mixture modes: PacGAN/VEEGAN's published counts, and noise-proof modes held and KL",
        cost="cheap",
        metrics=(
            MetricInfo(
                "modes_covered",
                "modes nearest to at least covered_min_samples (1) high-quality samples (PacGAN/VEEGAN); "
                "uniform noise scores high: never ranked",
                "higher",
                ranked=False,
            ),
            # ranked: noise scores its area ratio (about 0.02 on grid25) and only points within 3 std of a
            # mode score. It rewards precision, which a collapsed generator has: coverage is judged by
            # modes_held and mode_kl_all. No failed_at: a run is judged failed once, by modes_held (0 held
            # modes already means fewer than a fifth of the points are high quality).
            MetricInfo("high_quality_fraction", "share of samples within quality_sigmas std of their nearest mode",
                       "higher"),
            MetricInfo(
                "mode_kl",
                "KL(high-quality mode histogram || uniform), nats (PacGAN's reverse KL); drops low-quality "
                "samples, so noise scores low: never ranked",
                "lower",
                ranked=False,
            ),
            # failed_at 0: no mode holds even a fifth of its share of the samples, i.e. the generator put
            # nothing recognisable as a mode anywhere. One held mode is total collapse, reported as such.
            MetricInfo(
                "modes_held",
                "modes whose high-quality samples reach held_fraction_of_uniform (1/5) of their uniform share "
                "N/K of all samples",
                "higher",
                failed_at=0.0,
            ),
            # no failed_at: its failures (points off every mode, about log(1 / e^-4.5) = 4.5) are the runs
            # modes_held already reports as failed
            MetricInfo(
                "mode_kl_all",
                "KL(p_gen || p_data) over each mode's high-quality region plus an off-mode bin, nats",
                "lower",
            ),
        ),
        applies_to=lambda offers: offers.mixture_centres is not None,
        evaluate=_evaluate,
        options=_OPTIONS,
        default=True,
    )
)
