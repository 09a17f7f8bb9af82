"""Summaries of one metric curve: where it ended, its best, how fast it got somewhere, how steady it is.

A curve is three aligned 1-D arrays over the T evaluations of one job: `steps` (generator steps,
strictly increasing), `wall_s` (seconds since the job started) and `values` (the metric; NaN where
the evaluation produced none, e.g. after divergence), plus the metric's `direction`, "lower" or
"higher" (is better). Every function is pure. A threshold that a curve never reaches is censored:
the time to it is NaN with `reached=False`, never the length of the run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from bench.metrics import Direction

DIRECTIONS = ("lower", "higher")
STATUSES = ("pending", "running", "done", "diverged", "failed")


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}; valid: {', '.join(DIRECTIONS)}")


def _curve(steps: ArrayLike, values: ArrayLike, wall_s: ArrayLike | None = None) -> tuple[np.ndarray, ...]:
    """Validated float64 copies: 1-D, equal lengths, at least one point, steps strictly increasing."""
    arrays = {"steps": np.asarray(steps, dtype=np.float64), "values": np.asarray(values, dtype=np.float64)}
    if wall_s is not None:
        arrays["wall_s"] = np.asarray(wall_s, dtype=np.float64)
    for name, array in arrays.items():
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D (T,), got shape {array.shape}")
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"steps, values (and wall_s) must have one length T, got {lengths}")
    if lengths["steps"] == 0:
        raise ValueError("a curve needs at least one evaluation (T >= 1)")
    if not np.all(np.diff(arrays["steps"]) > 0):
        raise ValueError(f"steps must be strictly increasing, got {arrays['steps'].tolist()}")
    return tuple(arrays.values())


def best_index(values: ArrayLike, *, direction: Direction) -> int:
    """Index of the best finite value (the first one on ties); -1 if no value is finite. values: (T,)."""
    _check_direction(direction)
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return -1
    masked = np.where(finite, values, np.inf if direction == "lower" else -np.inf)
    return int(np.argmin(masked) if direction == "lower" else np.argmax(masked))


def reaches(values: ArrayLike, threshold: float, *, direction: Direction) -> np.ndarray:
    """(T,) bool: value <= threshold ("lower") or >= threshold ("higher"); NaN never reaches."""
    _check_direction(direction)
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return values <= threshold if direction == "lower" else values >= threshold


@dataclass(frozen=True)
class ThresholdTime:
    """When a curve first reached a threshold: `step` (generator steps) and `wall_s` (seconds) of the
    first evaluation at or past it. Censored (never reached): `reached=False`, both NaN."""

    reached: bool
    step: float
    wall_s: float


def time_to_threshold(
    steps: ArrayLike, wall_s: ArrayLike, values: ArrayLike, *, threshold: float, direction: Direction
) -> ThresholdTime:
    """First evaluation whose value is at or past `threshold` (see `reaches`). steps, wall_s, values: (T,)."""
    steps, values, wall_s = _curve(steps, values, wall_s)
    hits = np.flatnonzero(reaches(values, threshold, direction=direction))
    if len(hits) == 0:
        return ThresholdTime(reached=False, step=math.nan, wall_s=math.nan)
    first = hits[0]
    return ThresholdTime(reached=True, step=float(steps[first]), wall_s=float(wall_s[first]))


def normalised_auc(steps: ArrayLike, values: ArrayLike) -> float:
    """Trapezoidal area under values(steps) divided by the step range: the curve's mean level, in the
    metric's units. steps, values: (T,). NaN if T < 2 or any value is not finite."""
    steps, values = _curve(steps, values)
    if len(steps) < 2 or not np.all(np.isfinite(values)):
        return math.nan
    area = float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(steps)))
    return area / float(steps[-1] - steps[0])


def last_k_std(values: ArrayLike, k: int) -> float:
    """Sample standard deviation (ddof=1) of the last `k` values (T,); NaN with fewer than 2 of them
    or if any is not finite."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    tail = np.asarray(values, dtype=np.float64)[-k:]
    if len(tail) < 2 or not np.all(np.isfinite(tail)):
        return math.nan
    return float(np.std(tail, ddof=1))


def divergence_step(steps: ArrayLike, values: ArrayLike, *, status: str) -> float:
    """The step at which a diverged job broke: its first non-finite value, else its last evaluation.

    NaN unless `status` is "diverged". steps, values: (T,).
    """
    if status not in STATUSES:
        raise ValueError(f"status {status!r}; valid: {', '.join(STATUSES)}")
    steps, values = _curve(steps, values)
    if status != "diverged":
        return math.nan
    broken = np.flatnonzero(~np.isfinite(values))
    return float(steps[broken[0]] if len(broken) else steps[-1])


@dataclass(frozen=True)
class CurveSummary:
    """One metric curve summarised. Steps in generator steps, times in seconds, values in the metric's units.

    `best_step` is NaN and `best` NaN when no value is finite. With no threshold given, `threshold`,
    `steps_to_threshold` and `wall_s_to_threshold` are NaN and `reached` False.
    """

    direction: str
    final: float
    best: float
    best_step: float
    threshold: float
    reached: bool
    steps_to_threshold: float
    wall_s_to_threshold: float
    auc: float
    last_k: int
    last_k_std: float
    divergence_step: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise_curve(
    steps: ArrayLike,
    wall_s: ArrayLike,
    values: ArrayLike,
    *,
    direction: Direction,
    threshold: float | None = None,
    last_k: int = 3,
    status: str = "done",
) -> CurveSummary:
    """Every summary of one curve. steps, wall_s, values: (T,) aligned; see the module doc."""
    _check_direction(direction)
    steps_arr, values_arr, wall_arr = _curve(steps, values, wall_s)
    best_at = best_index(values_arr, direction=direction)
    if threshold is None:
        hit = ThresholdTime(reached=False, step=math.nan, wall_s=math.nan)
    else:
        hit = time_to_threshold(steps_arr, wall_arr, values_arr, threshold=threshold, direction=direction)
    return CurveSummary(
        direction=direction,
        final=float(values_arr[-1]),
        best=float(values_arr[best_at]) if best_at >= 0 else math.nan,
        best_step=float(steps_arr[best_at]) if best_at >= 0 else math.nan,
        threshold=math.nan if threshold is None else float(threshold),
        reached=hit.reached,
        steps_to_threshold=hit.step,
        wall_s_to_threshold=hit.wall_s,
        auc=normalised_auc(steps_arr, values_arr),
        last_k=last_k,
        last_k_std=last_k_std(values_arr, last_k),
        divergence_step=divergence_step(steps_arr, values_arr, status=status),
    )
