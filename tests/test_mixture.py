"""Mode metrics for 2-D mixtures: hand-built point sets whose answer is known by construction, and
sampled generators (uniform noise, 15 of grid25's modes, the data themselves) against answers computed
here with numpy, scipy and the chi-square formula."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import integrate
from torch.testing import assert_close

from bench.data import dataset_offers, load_dataset
from bench.metrics import EvalContext, get_evaluator, metric_directions, metric_infos
from bench.metrics.mixture import ModeStats, data_bin_masses, mixture_mode_stats

# 8 centres on a line, 1 apart; std 0.1, so "high quality" means closer than 0.3 to a centre
CENTERS = torch.tensor([[float(k), 0.0] for k in range(8)])
STD = 0.1
# mass of an isotropic 2-D Gaussian within 3 std: the squared normalised radius is chi-square(2)
WITHIN_3_STD = 1 - math.exp(-4.5)


def points_at(modes_and_counts: dict[int, int], offset: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """`count` copies of centre `mode` (+ offset) for each entry, shape (sum of counts, 2)."""
    rows = [CENTERS[mode] + torch.tensor(offset) for mode, count in modes_and_counts.items() for _ in range(count)]
    return torch.stack(rows)


# --- hand-built point sets ---------------------------------------------------------------------------


def test_published_rule_one_high_quality_sample_covers_and_three_std_is_out():
    # std 0.5, centres 100 apart: 1.5 away is exactly 3 std (1.5 / 0.5 = 3 in binary too)
    centers = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    samples = torch.tensor([
        [1.5, 0.0],  # mode 0 at exactly 3 std: not high quality (PacGAN: dis < 3)
        [101.25, 0.0],  # mode 1 at 2.5 std: its one high-quality sample covers it
        [0.0, 98.5],  # mode 2 at exactly 3 std: not high quality
        [100.0, 100.0], [100.5, 99.5], [99.0, 100.0],  # mode 3: three high-quality samples
    ])
    stats = mixture_mode_stats(samples, centers, 0.5)
    assert stats.counts == (0, 1, 0, 3)
    assert stats.modes_covered == 2
    assert stats.high_quality_fraction == 4 / 6
    assert_close(stats.mode_kl, 0.25 * math.log(4 * 0.25) + 0.75 * math.log(4 * 0.75))
    # a hair wider than 3 std admits both boundary points
    assert mixture_mode_stats(samples, centers, 0.5, quality_sigmas=3.0001).counts == (1, 1, 1, 3)
    # the published count made stricter: at least two high-quality samples
    assert mixture_mode_stats(samples, centers, 0.5, covered_min_samples=2).modes_covered == 1
    # held: a fifth of the uniform share of all 6 samples is 0.3 samples, so any high-quality one
    assert stats.modes_held == 2


def test_three_of_eight_modes():
    stats = mixture_mode_stats(points_at({0: 10, 1: 10, 2: 10}), CENTERS, STD)
    # p_gen = 1/3 on three modes and nothing off-mode; p_data = (1 - e^-4.5) / 8 per mode
    assert stats == ModeStats(
        modes_covered=3, high_quality_fraction=1.0, mode_kl=stats.mode_kl, modes_held=3,
        mode_kl_all=stats.mode_kl_all, counts=(10, 10, 10, 0, 0, 0, 0, 0), num_samples=30,
    )
    assert_close(stats.mode_kl, math.log(8 / 3))
    assert_close(stats.mode_kl_all, math.log((1 / 3) / (WITHIN_3_STD / 8)))


def test_points_far_from_every_centre():
    stats = mixture_mode_stats(points_at({0: 5, 3: 5}, offset=(0.0, 2.0)), CENTERS, STD)
    assert (stats.modes_covered, stats.modes_held, stats.high_quality_fraction) == (0, 0, 0.0)
    assert stats.counts == (0,) * 8
    assert_close(stats.mode_kl, math.log(8))  # defined as the worst value, log K
    assert_close(stats.mode_kl_all, 4.5)  # everything in the off-mode bin: log(1 / e^-4.5)


def test_uniform_over_all_modes_has_zero_published_kl():
    stats = mixture_mode_stats(points_at({mode: 7 for mode in range(8)}), CENTERS, STD)
    assert (stats.modes_covered, stats.modes_held, stats.high_quality_fraction) == (8, 8, 1.0)
    assert_close(stats.mode_kl, 0.0)
    # every point at a centre: nothing in the off-mode bin, which holds e^-4.5 of the data
    assert_close(stats.mode_kl_all, math.log(1 / WITHIN_3_STD))


def test_one_mode_has_kl_log_k():
    stats = mixture_mode_stats(points_at({5: 40}), CENTERS, STD)
    assert (stats.modes_covered, stats.modes_held) == (1, 1)
    assert stats.counts == (0, 0, 0, 0, 0, 40, 0, 0)
    assert_close(stats.mode_kl, math.log(8))
    assert_close(stats.mode_kl_all, math.log(8 / WITHIN_3_STD))


def test_uneven_histogram_kl_by_hand():
    stats = mixture_mode_stats(points_at({0: 3, 1: 1}), CENTERS[:2], STD)
    # p = (3/4, 1/4), K = 2
    assert_close(stats.mode_kl, 0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert stats.modes_covered == 2


def test_quality_radius_is_quality_sigmas_std():
    # distances to the nearest centre: 0, 0.25 (in), 0.35 (out), 0.5 (out; halfway between 0 and 1)
    samples = torch.tensor([[0.0, 0.0], [1.0, 0.25], [2.35, 0.0], [0.5, 0.0]])
    stats = mixture_mode_stats(samples, CENTERS, STD)
    assert stats.high_quality_fraction == 0.5
    assert stats.counts == (1, 1, 0, 0, 0, 0, 0, 0)
    wider = mixture_mode_stats(samples, CENTERS, STD, quality_sigmas=4.0)
    assert wider.high_quality_fraction == 0.75
    assert wider.counts == (1, 1, 1, 0, 0, 0, 0, 0)


def test_held_share_counts_every_sample():
    centers = CENTERS[:4]  # K = 4: held at 1/5 of 1/4 of all N samples, 1/20
    # 100 samples: 5 is exactly the threshold (held), 4 is not
    assert mixture_mode_stats(points_at({0: 60, 1: 30, 2: 5, 3: 5}), centers, STD).modes_held == 4
    stats = mixture_mode_stats(points_at({0: 61, 1: 30, 2: 5, 3: 4}), centers, STD)
    assert (stats.modes_held, stats.modes_covered) == (3, 4)
    assert mixture_mode_stats(points_at({0: 61, 1: 30, 2: 5, 3: 4}), centers, STD,
                              held_fraction_of_uniform=0.16).modes_held == 4
    # 100 far-off points double N: modes 2 and 3 (5 each, threshold now 10) are no longer held,
    # while the published rule still covers them
    with_junk = torch.cat([points_at({0: 60, 1: 30, 2: 5, 3: 5}), torch.full((100, 2), 50.0)])
    junk_stats = mixture_mode_stats(with_junk, centers, STD)
    assert (junk_stats.modes_held, junk_stats.modes_covered) == (2, 4)
    assert_close(junk_stats.high_quality_fraction, 0.5)


def test_bad_inputs_refused():
    with pytest.raises(ValueError, match=r"samples must have shape \(N, 2\), got \(4, 3\)"):
        mixture_mode_stats(torch.zeros(4, 3), CENTERS, STD)
    with pytest.raises(ValueError, match=r"centers must have shape \(K, 2\)"):
        mixture_mode_stats(torch.zeros(4, 2), torch.zeros(0, 2), STD)
    with pytest.raises(ValueError, match="std must be positive, got 0.0"):
        mixture_mode_stats(torch.zeros(4, 2), CENTERS, 0.0)
    with pytest.raises(ValueError, match="quality_sigmas must be positive, got -1"):
        mixture_mode_stats(torch.zeros(4, 2), CENTERS, STD, quality_sigmas=-1)
    with pytest.raises(ValueError, match=r"covered_min_samples must be an integer >= 1, got 0.5"):
        mixture_mode_stats(torch.zeros(4, 2), CENTERS, STD, covered_min_samples=0.5)
    with pytest.raises(ValueError, match=r"held_fraction_of_uniform must be in \(0, 1\], got 0.0"):
        mixture_mode_stats(torch.zeros(4, 2), CENTERS, STD, held_fraction_of_uniform=0.0)


# --- the data's bin masses -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, modes", [("grid25", 25), ("ring8", 8)])
def test_data_bin_masses_are_the_chi_square_masses(tmp_path, name, modes):
    source = load_dataset(name, root=tmp_path, options={})
    masses = data_bin_masses(tuple(map(tuple, source.centers.double().tolist())), source.std, 3.0)
    expected = [WITHIN_3_STD / modes] * modes + [math.exp(-4.5)]
    assert_close(torch.tensor(masses, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                 rtol=0.0, atol=1e-13)


def test_data_bin_masses_clip_overlapping_disks_to_the_nearest_centre():
    # two unit-std components 2 apart, 3 std disks: the regions meet on the bisector x = 1
    def density(y: float, x: float) -> float:
        return (math.exp(-(x**2 + y**2) / 2) + math.exp(-((x - 2) ** 2 + y**2) / 2)) / (2 * 2 * math.pi)

    left, _ = integrate.dblquad(density, -3, 1, lambda x: -math.sqrt(9 - x * x), lambda x: math.sqrt(9 - x * x),
                                epsabs=1e-11)
    masses = data_bin_masses(((0.0, 0.0), (2.0, 0.0)), 1.0, 3.0)
    assert_close(masses[0], left, rtol=0.0, atol=2e-5)
    assert_close(masses[1], left, rtol=0.0, atol=2e-5)  # the mirror image
    assert_close(sum(masses), 1.0)


# --- sampled generators on grid25 and ring8 ------------------------------------------------------------


def numpy_bins(points: np.ndarray, centers: np.ndarray, std: float) -> np.ndarray:
    """(K + 1,) counts: high-quality points per nearest centre, then every other point."""
    distances = np.linalg.norm(points[:, None, :] - centers[None], axis=2) / std
    nearest = distances.argmin(axis=1)
    high_quality = distances.min(axis=1) < 3
    return np.append(np.bincount(nearest[high_quality], minlength=len(centers)), (~high_quality).sum())


def kl_against_data(bins: np.ndarray) -> float:
    """KL(bins / N || p_data) with the chi-square masses of well separated modes, nats."""
    modes = len(bins) - 1
    q = bins / bins.sum()
    p = np.append(np.full(modes, WITHIN_3_STD / modes), math.exp(-4.5))
    return float(sum(qb * math.log(qb / pb) for qb, pb in zip(q, p) if qb > 0))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    source = load_dataset("grid25", root=tmp_path_factory.mktemp("data"), options={})
    return source.centers.double().numpy(), source.std


def mixture_points(centers: np.ndarray, std: float, modes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return centers[modes] + std * rng.standard_normal((len(modes), 2))


def stats_of(points: np.ndarray, centers: np.ndarray, std: float) -> ModeStats:
    return mixture_mode_stats(torch.from_numpy(points), torch.from_numpy(centers), std)


def test_uniform_noise_holds_no_mode_but_wins_the_published_metrics(grid):
    centers, std = grid
    rng = np.random.default_rng(0)
    noise = rng.uniform(-5, 5, size=(2500, 2))  # grid25's square: the centres span [-4, 4]
    fifteen = mixture_points(centers, std, rng.integers(15, size=2500), rng)
    noise_stats, fifteen_stats = stats_of(noise, centers, std), stats_of(fifteen, centers, std)
    noise_bins = numpy_bins(noise, centers, std)

    # each mode's 3-std disk is 0.07% of the square: ~1.77 noise points per mode, Poisson
    per_mode = 2500 * math.pi * (3 * std) ** 2 / 100
    assert noise_stats.modes_held == 0  # 20 needed; P(Poisson(1.77) >= 20) < 1e-14 per mode
    assert noise_stats.modes_covered == int((noise_bins[:25] > 0).sum())
    # published: expected 25 (1 - e^-1.77) = 20.7 covered, sd about 1.9
    assert abs(noise_stats.modes_covered - 25 * (1 - math.exp(-per_mode))) < 4 * 1.9
    assert noise_stats.modes_covered > fifteen_stats.modes_covered == 15
    assert noise_stats.mode_kl < fifteen_stats.mode_kl  # the published KL prefers noise too

    assert fifteen_stats.modes_held == 15
    # about 0.989 against 25 * pi 0.15^2 / 100 = 0.018
    assert fifteen_stats.high_quality_fraction > 0.95 and noise_stats.high_quality_fraction < 0.05
    assert fifteen_stats.mode_kl_all < 1.0 and noise_stats.mode_kl_all > 4.0
    assert_close(noise_stats.mode_kl_all, kl_against_data(noise_bins))
    # noise's population value: almost all off-mode, log(0.982 / e^-4.5) weighted, sd 0.022
    hq = 25 * per_mode / 2500
    population = (1 - hq) * math.log((1 - hq) / math.exp(-4.5)) + hq * math.log(hq / WITHIN_3_STD)
    assert abs(noise_stats.mode_kl_all - population) < 0.09


def test_fifteen_of_twenty_five_modes_kl_by_hand(grid):
    centers, std = grid
    rng = np.random.default_rng(1)
    points = mixture_points(centers, std, rng.integers(15, size=2500), rng)
    stats = stats_of(points, centers, std)
    assert_close(stats.mode_kl_all, kl_against_data(numpy_bins(points, centers, std)))
    # population value: the 15 modes' bins hold (1 - e^-4.5) / 15 each against (1 - e^-4.5) / 25, the
    # off-mode bin matches the data's e^-4.5 (adds 0). The plug-in estimate adds about 15 / (2N) = 0.003;
    # its sd by the delta method is 0.0011
    population = WITHIN_3_STD * math.log(25 / 15)
    assert abs(population - 0.5052) < 1e-4
    assert abs(stats.mode_kl_all - (population + 15 / 5000)) < 4 * 0.0011
    assert (stats.modes_held, stats.modes_covered) == (15, 15)


def test_samples_of_the_data_score_near_zero(grid):
    centers, std = grid
    rng = np.random.default_rng(2)
    points = mixture_points(centers, std, rng.integers(25, size=2500), rng)
    stats = stats_of(points, centers, std)
    assert (stats.modes_held, stats.modes_covered) == (25, 25)
    assert abs(stats.high_quality_fraction - WITHIN_3_STD) < 4 * math.sqrt(WITHIN_3_STD * (1 - WITHIN_3_STD) / 2500)
    # 2N KL is about chi-square with 25 degrees of freedom: mean 25 / (2N) = 0.005, sd sqrt(50) / (2N) = 0.0014
    assert_close(stats.mode_kl_all, kl_against_data(numpy_bins(points, centers, std)))
    assert abs(stats.mode_kl_all - 0.005) < 4 * 0.0014


def test_two_ring_modes_with_thirty_percent_noise_hold_two(tmp_path):
    source = load_dataset("ring8", root=tmp_path, options={})
    centers, std = source.centers.double().numpy(), source.std
    rng = np.random.default_rng(3)
    modes = np.repeat([0, 3], 875)
    noise = rng.uniform(-2.5, 2.5, size=(750, 2))  # the ring's square (radius 2)
    points = np.concatenate([mixture_points(centers, std, modes, rng), noise])
    stats = stats_of(points, centers, std)
    # held needs 2500 / (5 * 8) = 62.5; noise puts 750 * pi 0.06^2 / 25 = 0.34 per mode
    assert stats.modes_held == 2
    assert stats.modes_covered == int((numpy_bins(points, centers, std)[:8] > 0).sum()) >= 2
    assert_close(stats.mode_kl_all, kl_against_data(numpy_bins(points, centers, std)))


# --- the evaluator -------------------------------------------------------------------------------------


def make_context(samples: torch.Tensor, drawn: list[int], options: dict) -> EvalContext:
    def sample(count: int) -> torch.Tensor:
        drawn.append(count)
        return samples[:count]

    source = SimpleNamespace(kind="mixture", centers=CENTERS, std=STD)
    return EvalContext(sample=sample, source=source, device=torch.device("cpu"), cache_dir=Path("."), seed=0,
                       options=options)


def test_metric_declarations():
    infos = metric_infos()
    declared = {name: (infos[name].direction, infos[name].ranked, infos[name].failed_at)
                for name in ("modes_covered", "high_quality_fraction", "mode_kl", "modes_held", "mode_kl_all")}
    assert declared == {
        "modes_covered": ("higher", False, None),
        "high_quality_fraction": ("higher", True, None),
        "mode_kl": ("lower", False, None),
        "modes_held": ("higher", True, 0.0),
        "mode_kl_all": ("lower", True, None),
    }
    directions = metric_directions()
    assert "modes_covered" not in directions and "mode_kl" not in directions
    assert get_evaluator("mixture-modes").option_defaults == {
        "samples": 2500, "quality_sigmas": 3.0, "covered_min_samples": 1, "held_fraction_of_uniform": 0.2,
    }


def test_evaluator_registered_and_evaluates():
    evaluator = get_evaluator("mixture-modes")
    assert evaluator.applies_to(dataset_offers("grid25", {}))
    assert not evaluator.applies_to(dataset_offers("digits", {}))

    samples = torch.cat([points_at({0: 2, 1: 2}), torch.full((4, 2), 50.0)])  # 4 good then 4 far off
    drawn: list[int] = []
    result = evaluator.evaluate(make_context(samples, drawn, {"samples": 4}))
    assert drawn == [4]
    assert result == {"modes_covered": 2.0, "high_quality_fraction": 1.0, "mode_kl": result["mode_kl"],
                      "modes_held": 2.0, "mode_kl_all": result["mode_kl_all"]}
    assert_close(result["mode_kl"], math.log(4))  # p = (1/2, 1/2) over K = 8
    assert_close(result["mode_kl_all"], math.log(0.5 / (WITHIN_3_STD / 8)))
    assert all(type(value) is float for value in result.values())

    drawn.clear()
    result = evaluator.evaluate(make_context(samples, drawn, {}))
    assert drawn == [2500]  # the protocol's default sample count
    assert result["high_quality_fraction"] == 0.5
    # 2 high-quality samples on modes 0 and 1, and N / K = 1: held from a fifth of a sample up to 2
    assert (result["modes_covered"], result["modes_held"]) == (2.0, 2.0)
    result = evaluator.evaluate(make_context(samples, drawn, {"covered_min_samples": 3,
                                                              "held_fraction_of_uniform": 1.0}))
    assert (result["modes_covered"], result["modes_held"]) == (0.0, 2.0)


def test_evaluator_refuses_unknown_option():
    with pytest.raises(ValueError, match="^metric 'mixture-modes' has no option 'sample'; valid: covered_min_samples, "
                                         "held_fraction_of_uniform, quality_sigmas, samples$"):
        get_evaluator("mixture-modes").evaluate(make_context(torch.zeros(4, 2), [], {"sample": 4}))
