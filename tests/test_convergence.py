"""Convergence summaries on hand-made curves (every expected value is worked out in the comments), and
the batched companions checked curve by curve against them on random curves with a fixed seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from torch.testing import assert_close

from bench.metrics.convergence import (
    CurveSummary,
    ThresholdTime,
    best_index,
    divergence_step,
    divergence_steps,
    gradient_evaluations,
    last_k_std,
    normalised_auc,
    summarise_curve,
    summarise_curves,
    time_to_threshold,
    window_auc,
    window_aucs,
)
from bench.store import Status

# a FID-like curve (lower is better) evaluated every 100 steps, 1.5 s apart
STEPS = [0, 100, 200, 300, 400]
WALL_S = [0.0, 1.5, 3.0, 4.5, 6.0]
FID = [10.0, 6.0, 4.0, 5.0, 3.0]


def test_summary_of_a_lower_is_better_curve():
    summary = summarise_curve(STEPS, WALL_S, FID, direction="lower", threshold=5.0, last_k=3)
    expected = CurveSummary(
        direction="lower",
        final=3.0,
        best=3.0,
        best_step=400.0,
        threshold=5.0,
        reached=True,
        steps_to_threshold=200.0,  # first value <= 5 is 4.0, at step 200 (not 5.0 at step 300)
        wall_s_to_threshold=3.0,
        # trapezoids: (10+6)/2*100 + (6+4)/2*100 + (4+5)/2*100 + (5+3)/2*100 = 2150, over 400 steps
        auc=5.375,
        last_k=3,
        last_k_std=1.0,  # [4, 5, 3]: mean 4, squared deviations 0+1+1 = 2, / (3-1) = 1
        divergence_step=math.nan,
    )
    actual, wanted = summary.as_dict(), expected.as_dict()
    assert actual.pop("direction") == wanted.pop("direction")
    assert_close(actual, wanted, equal_nan=True)


def test_threshold_never_reached_is_censored_not_the_run_length():
    hit = time_to_threshold(STEPS, WALL_S, FID, threshold=2.0, direction="lower")
    assert hit.reached is False
    assert math.isnan(hit.step) and math.isnan(hit.wall_s)
    summary = summarise_curve(STEPS, WALL_S, FID, direction="lower", threshold=2.0)
    assert summary.reached is False
    assert math.isnan(summary.steps_to_threshold) and math.isnan(summary.wall_s_to_threshold)


def test_threshold_reached_exactly_counts_and_higher_direction():
    recall = [0.1, 0.4, 0.6, 0.5]
    assert time_to_threshold([0, 10, 20, 30], [0.0, 2.0, 4.0, 6.0], recall, threshold=0.4, direction="higher") == (
        ThresholdTime(reached=True, step=10.0, wall_s=2.0)
    )
    missed = time_to_threshold([0, 10, 20, 30], [0.0, 2.0, 4.0, 6.0], recall, threshold=0.7, direction="higher")
    assert missed.reached is False and math.isnan(missed.step) and math.isnan(missed.wall_s)


def test_best_index_takes_the_first_of_ties_and_skips_nan():
    assert best_index([3.0, 1.0, 1.0, 2.0], direction="lower") == 1
    assert best_index([0.2, math.nan, 0.9, 0.9], direction="higher") == 2
    assert best_index([math.nan, math.nan], direction="lower") == -1


def test_auc_over_uneven_steps_is_the_mean_level():
    # (1+3)/2 * 10 + (3+3)/2 * 30 = 20 + 90 = 110, over 40 steps
    assert_close(normalised_auc([0, 10, 40], [1.0, 3.0, 3.0]), 2.75)
    # a constant curve's mean level is the constant
    assert_close(normalised_auc([5, 6, 50], [7.0, 7.0, 7.0]), 7.0)


def test_one_evaluation_has_no_area_and_no_spread():
    summary = summarise_curve([0], [0.0], [4.0], direction="lower", threshold=5.0, last_k=3)
    assert summary.final == 4.0 and summary.best == 4.0 and summary.best_step == 0.0
    assert summary.reached is True and summary.steps_to_threshold == 0.0
    assert math.isnan(summary.auc) and math.isnan(summary.last_k_std)


def test_gradient_evaluations_count_critic_and_generator_updates():
    # 100 generator steps with 5 critic updates each: 500 critic + 100 generator updates
    assert_close(gradient_evaluations(np.array([100, 250]), 5), np.array([600.0, 1500.0]))
    assert_close(gradient_evaluations(np.array([[100], [100]]), np.array([[1], [5]])), np.array([[200.0], [600.0]]))
    with pytest.raises(ValueError, match=r"critic_steps must be >= 0, got \[-1.0\]"):
        gradient_evaluations([100], -1)


def test_window_auc_is_the_mean_level_over_the_window():
    # the curve (0, 1), (10, 3), (40, 3) over [5, 20]: 2 at x=5 (interpolated), so (2+3)/2 * 5 + 3 * 10 = 42.5
    # over 15
    assert_close(window_auc([0, 10, 40], [1.0, 3.0, 3.0], start=5.0, end=20.0), 42.5 / 15)
    # over the curve's own range it is normalised_auc
    assert_close(window_auc(STEPS, FID, start=0.0, end=400.0), normalised_auc(STEPS, FID))
    # the FID curve against gradient evaluations with 5 critic steps (x6), window [600, 1800] = steps
    # 100..300: (6+4)/2*600 + (4+5)/2*600 = 5700 over 1200
    assert_close(window_auc(gradient_evaluations(STEPS, 5), FID, start=600.0, end=1800.0), 4.75)


def test_window_auc_is_undefined_where_the_curve_does_not_span_the_window():
    assert math.isnan(window_auc([100, 200], [1.0, 2.0], start=50.0, end=150.0))  # starts too late
    assert math.isnan(window_auc([100, 200], [1.0, 2.0], start=100.0, end=250.0))  # ends too early
    assert math.isnan(window_auc([100, 200], [1.0, 2.0], start=150.0, end=150.0))  # an empty window
    # a NaN the window uses (the evaluation after its end) makes it undefined; one outside it does not
    assert math.isnan(window_auc([0, 10, 20, 30], [1.0, 2.0, math.nan, 4.0], start=0.0, end=15.0))
    assert_close(window_auc([0, 10, 20, 30], [1.0, 2.0, 3.0, math.nan], start=0.0, end=20.0), 2.0)


def test_last_k_std_uses_only_the_tail():
    # last 2 of [100, 1, 3]: mean 2, squared deviations 1 + 1 = 2, / (2-1) -> std sqrt(2)
    assert_close(last_k_std([100.0, 1.0, 3.0], 2), math.sqrt(2.0))
    assert math.isnan(last_k_std([1.0, 2.0, math.nan], 2))
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        last_k_std([1.0, 2.0], 0)


def test_diverged_curve():
    steps, wall_s, values = [0, 100, 200, 300], [0.0, 1.0, 2.0, 3.0], [0.1, 0.5, math.nan, math.nan]
    summary = summarise_curve(steps, wall_s, values, direction="higher", threshold=0.5, status="diverged")
    assert summary.divergence_step == 200.0  # first non-finite value
    assert summary.best == 0.5 and summary.best_step == 100.0
    assert math.isnan(summary.final) and math.isnan(summary.auc)
    assert summary.reached is True and summary.steps_to_threshold == 100.0
    # diverged with every recorded value finite: it broke after its last evaluation
    assert divergence_step([0, 100, 200], [1.0, 2.0, 3.0], status="diverged") == 200.0
    assert math.isnan(divergence_step([0, 100, 200], [1.0, math.nan, 3.0], status="failed"))
    assert math.isnan(divergence_step([0, 100, 200], [1.0, 2.0, 3.0], status="done"))


def test_bad_curves_are_refused_with_what_is_valid():
    with pytest.raises(ValueError, match="direction 'up'; valid: lower, higher"):
        summarise_curve(STEPS, WALL_S, FID, direction="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"steps must be strictly increasing, got \[0.0, 100.0, 100.0\]"):
        normalised_auc([0, 100, 100], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="must have one length T"):
        summarise_curve(STEPS, WALL_S[:4], FID, direction="lower")
    with pytest.raises(ValueError, match=r"steps must be 1-D \(T,\), got shape \(1, 5\)"):
        normalised_auc([STEPS], [FID])
    with pytest.raises(ValueError, match="at least one evaluation"):
        normalised_auc([], [])
    with pytest.raises(ValueError, match="status 'crashed'; valid: pending, running, done, diverged, failed"):
        divergence_step(STEPS, FID, status="crashed")


# ---- the batched companions agree with the functions above -----------------------------------------

def _random_curves(rng: np.random.Generator, num_curves: int, length: int):
    """Padded random curves: NaN and inf sprinkled in, garbage (even decreasing steps) in the padding."""
    lengths = rng.integers(1, length + 1, size=num_curves)
    steps = np.cumsum(rng.integers(1, 50, size=(num_curves, length)), axis=1) - rng.integers(0, 2, (num_curves, 1))
    steps = steps.astype(float)
    wall_s = np.cumsum(rng.uniform(0.1, 2.0, size=(num_curves, length)), axis=1)
    values = rng.normal(0.0, 1.0, size=(num_curves, length)).round(1)  # rounding makes ties
    values[rng.random((num_curves, length)) < 0.12] = np.nan
    values[rng.random((num_curves, length)) < 0.03] = np.inf
    padding = np.arange(length) >= lengths[:, None]
    steps[padding] = -rng.integers(0, 1000, size=padding.sum())
    values[padding] = rng.choice([np.nan, 1e9, -1e9], size=padding.sum())
    statuses = rng.choice([status.value for status in Status], size=num_curves)
    return steps, wall_s, values, lengths, statuses


@pytest.mark.parametrize("direction", ["lower", "higher"])
@pytest.mark.parametrize("threshold, last_k", [(None, 3), (0.0, 1), (0.5, 2), (-0.3, 5)])
def test_summarise_curves_agrees_with_summarise_curve_on_random_curves(direction, threshold, last_k):
    rng = np.random.default_rng(20 + last_k)
    steps, wall_s, values, lengths, statuses = _random_curves(rng, num_curves=300, length=7)
    batch = summarise_curves(steps, wall_s, values, lengths, direction=direction, threshold=threshold,
                             last_k=last_k, statuses=statuses)
    assert len(batch) == 300
    for index, size in enumerate(lengths):
        one = summarise_curve(steps[index, :size], wall_s[index, :size], values[index, :size], direction=direction,
                              threshold=threshold, last_k=last_k, status=str(statuses[index]))
        actual, wanted = batch.curve(index).as_dict(), one.as_dict()
        assert actual.pop("direction") == wanted.pop("direction")
        assert actual.pop("reached") is wanted.pop("reached"), index
        assert_close(actual, wanted, equal_nan=True, msg=lambda text, i=index: f"curve {i}: {text}")
    columns = batch.columns()
    assert set(columns) == set(CurveSummary.__dataclass_fields__)
    assert all(column.shape == (300,) for column in columns.values())


def test_divergence_steps_agrees_with_divergence_step():
    rng = np.random.default_rng(5)
    steps, _, values, lengths, statuses = _random_curves(rng, num_curves=200, length=6)
    batch = divergence_steps(steps, values, lengths, statuses=statuses)
    wanted = [divergence_step(steps[i, :n], values[i, :n], status=str(statuses[i])) for i, n in enumerate(lengths)]
    assert_close(batch, np.array(wanted), equal_nan=True)
    assert (~np.isnan(batch) == (statuses == "diverged")).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_window_aucs_agrees_with_window_auc_on_random_curves(seed):
    rng = np.random.default_rng(40 + seed)
    steps, _, values, lengths, _ = _random_curves(rng, num_curves=300, length=7)
    first = steps[:, 0]
    last = steps[np.arange(300), lengths - 1]
    # windows inside, around, across and outside each curve's span, some on an evaluation exactly
    start = first + rng.choice([-5.0, 0.0, 3.0], size=300)
    end = np.where(rng.random(300) < 0.2, start, last + rng.choice([-4.0, 0.0, 6.0], size=300))
    batch = window_aucs(steps, values, lengths, start=start, end=end)
    wanted = [window_auc(steps[i, :n], values[i, :n], start=start[i], end=end[i]) for i, n in enumerate(lengths)]
    assert_close(batch, np.array(wanted), equal_nan=True)
    assert np.isfinite(batch).sum() > 30  # the comparison covers defined windows, not only NaN


def test_summarise_curves_on_a_hand_made_batch():
    # row 0 is the module's FID curve; row 1 is [7, 1] then padding: best 1 at step 10, AUC (7+1)/2 = 4,
    # last-3 spread over the 2 evaluations: std(7, 1) = sqrt(18), threshold 5 reached at step 10 (1.0 s)
    steps = [STEPS, [0, 10, 99, 99, 99]]
    wall_s = [WALL_S, [0.0, 1.0, 0.0, 0.0, 0.0]]
    values = [FID, [7.0, 1.0, math.nan, 0.0, 0.0]]
    batch = summarise_curves(steps, wall_s, values, [5, 2], direction="lower", threshold=5.0)
    assert_close(batch.final, np.array([3.0, 1.0]))
    assert_close(batch.best_step, np.array([400.0, 10.0]))
    assert_close(batch.auc, np.array([5.375, 4.0]))
    assert_close(batch.last_k_std, np.array([1.0, math.sqrt(18.0)]))
    assert batch.reached.tolist() == [True, True]
    assert_close(batch.steps_to_threshold, np.array([200.0, 10.0]))
    assert_close(batch.wall_s_to_threshold, np.array([3.0, 1.0]))
    assert np.isnan(batch.divergence_step).all()  # statuses default to "done"


def test_an_empty_batch_has_empty_summaries():
    batch = summarise_curves(np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0, dtype=int),
                             direction="higher", threshold=1.0)
    assert len(batch) == 0 and all(column.shape == (0,) for column in batch.columns().values())
    assert divergence_steps(np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0, dtype=int), statuses=[]).shape == (0,)


def test_bad_batches_are_refused_with_what_is_valid():
    steps, wall_s, values = np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=3\].*got min 0, max 3"):
        summarise_curves(steps, wall_s, values, [0, 3], direction="lower")
    with pytest.raises(ValueError, match=r"lengths must be integers of shape \(2,\)"):
        summarise_curves(steps, wall_s, values, [1.0, 2.0], direction="lower")
    with pytest.raises(ValueError, match=r"steps must be strictly increasing, got \[0.0, 0.0\] in curve 0"):
        summarise_curves(steps, wall_s, values, [2, 1], direction="lower")
    with pytest.raises(ValueError, match=r"steps must be 2-D \(N, T\), got shape \(3,\)"):
        summarise_curves(steps[0], wall_s, values, [1, 1], direction="lower")
    with pytest.raises(ValueError, match="status 'crashed'; valid: pending, running, done, diverged, failed"):
        divergence_steps(np.array([[0.0, 1.0]]), np.zeros((1, 2)), [2], statuses=["crashed"])
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        summarise_curves(steps, wall_s, values, [1, 1], direction="lower", last_k=0)
