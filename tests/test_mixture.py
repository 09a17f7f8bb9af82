"""Mode metrics for 2-D mixtures on point sets whose answer is known by construction."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from bench.metrics import EvalContext, get_evaluator, metric_directions
from bench.metrics.mixture import ModeStats, mixture_mode_stats

# 8 centres on a line, 1 apart; std 0.1, so "high quality" means within 0.3 of a centre
CENTERS = torch.tensor([[float(k), 0.0] for k in range(8)])
STD = 0.1


def points_at(modes_and_counts: dict[int, int], offset: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """`count` copies of centre `mode` (+ offset) for each entry, shape (sum of counts, 2)."""
    rows = [CENTERS[mode] + torch.tensor(offset) for mode, count in modes_and_counts.items() for _ in range(count)]
    return torch.stack(rows)


def test_three_of_eight_modes():
    stats = mixture_mode_stats(points_at({0: 10, 1: 10, 2: 10}), CENTERS, STD)
    assert stats == ModeStats(
        modes_covered=3, high_quality_fraction=1.0, mode_kl=stats.mode_kl, counts=(10, 10, 10, 0, 0, 0, 0, 0)
    )
    # p = 1/3 on three modes: KL = 3 * 1/3 * log(8/3)
    assert_close(stats.mode_kl, math.log(8 / 3))


def test_points_far_from_every_centre():
    stats = mixture_mode_stats(points_at({0: 5, 3: 5}, offset=(0.0, 2.0)), CENTERS, STD)
    assert stats.modes_covered == 0
    assert stats.high_quality_fraction == 0.0
    assert stats.counts == (0,) * 8
    assert_close(stats.mode_kl, math.log(8))  # defined as the worst value, log K


def test_uniform_over_all_modes_has_zero_kl():
    stats = mixture_mode_stats(points_at({mode: 7 for mode in range(8)}), CENTERS, STD)
    assert stats.modes_covered == 8
    assert stats.high_quality_fraction == 1.0
    assert_close(stats.mode_kl, 0.0)


def test_one_mode_has_kl_log_k():
    stats = mixture_mode_stats(points_at({5: 40}), CENTERS, STD)
    assert stats.modes_covered == 1
    assert stats.counts == (0, 0, 0, 0, 0, 40, 0, 0)
    assert_close(stats.mode_kl, math.log(8))


def test_uneven_histogram_kl_by_hand():
    centers = CENTERS[:2]
    stats = mixture_mode_stats(points_at({0: 3, 1: 1}), centers, STD)
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


def test_mode_below_the_share_is_not_covered():
    centers = CENTERS[:4]  # K = 4: default min_share = 1/20
    # shares 60/100, 30/100, 5/100 (exactly the threshold: covered), 5/100
    assert mixture_mode_stats(points_at({0: 60, 1: 30, 2: 5, 3: 5}), centers, STD).modes_covered == 4
    # 4/100 < 1/20: the last mode is not covered though it has high-quality points
    stats = mixture_mode_stats(points_at({0: 61, 1: 30, 2: 5, 3: 4}), centers, STD)
    assert stats.modes_covered == 3
    assert stats.counts == (61, 30, 5, 4)
    assert mixture_mode_stats(points_at({0: 61, 1: 30, 2: 5, 3: 4}), centers, STD, min_share=0.04).modes_covered == 4
    # the share counts high-quality points only: 90 far-off points do not lower mode 3's share
    with_junk = torch.cat([points_at({0: 60, 1: 30, 2: 5, 3: 5}), torch.full((90, 2), 50.0)])
    junk_stats = mixture_mode_stats(with_junk, centers, STD)
    assert junk_stats.modes_covered == 4
    assert_close(junk_stats.high_quality_fraction, 100 / 190)


def test_bad_inputs_refused():
    with pytest.raises(ValueError, match=r"samples must have shape \(N, 2\), got \(4, 3\)"):
        mixture_mode_stats(torch.zeros(4, 3), CENTERS, STD)
    with pytest.raises(ValueError, match=r"centers must have shape \(K, 2\)"):
        mixture_mode_stats(torch.zeros(4, 2), torch.zeros(0, 2), STD)
    with pytest.raises(ValueError, match="std must be positive, got 0.0"):
        mixture_mode_stats(torch.zeros(4, 2), CENTERS, 0.0)
    with pytest.raises(ValueError, match="min_share must be in"):
        mixture_mode_stats(torch.zeros(4, 2), CENTERS, STD, min_share=1.5)


def make_context(samples: torch.Tensor, drawn: list[int], options: dict) -> EvalContext:
    def sample(count: int) -> torch.Tensor:
        drawn.append(count)
        return samples[:count]

    source = SimpleNamespace(kind="mixture", centers=CENTERS, std=STD)
    return EvalContext(sample=sample, source=source, device=torch.device("cpu"), cache_dir=Path("."), seed=0,
                       options=options)


def test_evaluator_registered_and_evaluates():
    evaluator = get_evaluator("mixture-modes")
    assert evaluator.applies_to(SimpleNamespace(kind="mixture"))
    assert not evaluator.applies_to(SimpleNamespace(kind="images"))
    directions = metric_directions()
    assert (directions["modes_covered"], directions["high_quality_fraction"], directions["mode_kl"]) == (
        "higher", "higher", "lower",
    )

    samples = torch.cat([points_at({0: 2, 1: 2}), torch.full((4, 2), 50.0)])  # 4 good then 4 far off
    drawn: list[int] = []
    result = evaluator.evaluate(make_context(samples, drawn, {"samples": 4}))
    assert drawn == [4]
    assert result == {"modes_covered": 2.0, "high_quality_fraction": 1.0, "mode_kl": result["mode_kl"]}
    assert_close(result["mode_kl"], math.log(4))  # p = (1/2, 1/2) over K = 8
    assert all(type(value) is float for value in result.values())

    drawn.clear()
    result = evaluator.evaluate(make_context(samples, drawn, {}))
    assert drawn == [2500]  # the protocol's default sample count
    assert result["high_quality_fraction"] == 0.5


def test_evaluator_refuses_unknown_option():
    with pytest.raises(ValueError, match="no option.* sample; valid: min_share, quality_sigmas, samples"):
        get_evaluator("mixture-modes").evaluate(make_context(torch.zeros(4, 2), [], {"sample": 4}))
