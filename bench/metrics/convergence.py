"""Summaries of one metric curve: where it ended, its best, how fast it got somewhere, how steady it is.

A curve is three aligned 1-D arrays over the T evaluations of one job: `steps` (generator steps,
strictly increasing), `wall_s` (seconds since the job started) and `values` (the metric; NaN where
the evaluation produced none, e.g. after divergence), plus the metric's `direction`, "lower" or
"higher" (is better). Every function is pure. A threshold that a curve never reaches is censored:
the time to it is NaN with `reached=False`, never the length of the run.

Speed has more than one axis. Generator steps hide the critic's work: an objective with 5 critic
updates per generator step spends 3x the gradient evaluations of one with 1 per step. A curve can
be read against `gradient_evaluations` (critic updates + generator updates) or against `wall_s`
as well; `window_auc` gives its mean level over a window of any such axis, so that runs are
compared over the same budget rather than each over its own length.

`summarise_curves`, `divergence_steps` and `window_aucs` give the same numbers for N curves at once
(padded to (N, T) with a length per curve), for reports over thousands of runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from bench.metrics import Direction
from bench.store import Status, parse_status

DIRECTIONS = ("lower", "higher")


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

    NaN unless `status` is diverged. steps, values: (T,).
    """
    checked = parse_status(status)
    steps, values = _curve(steps, values)
    if checked is not Status.DIVERGED:
        return math.nan
    broken = np.flatnonzero(~np.isfinite(values))
    return float(steps[broken[0]] if len(broken) else steps[-1])


def gradient_evaluations(steps: ArrayLike, critic_steps: ArrayLike) -> np.ndarray:
    """Gradient evaluations spent after `steps` generator steps with `critic_steps` critic updates
    per generator step: `steps * (critic_steps + 1)` (each generator step is that many critic updates
    and one generator update). Broadcasts; float64."""
    critic_steps = np.asarray(critic_steps, dtype=np.float64)
    if np.any(critic_steps < 0):
        raise ValueError(f"critic_steps must be >= 0, got {np.unique(critic_steps[critic_steps < 0]).tolist()}")
    return np.asarray(steps, dtype=np.float64) * (critic_steps + 1.0)


def window_auc(x: ArrayLike, values: ArrayLike, *, start: float, end: float) -> float:
    """Mean level of a curve over the window [start, end] of its x axis (generator steps, gradient
    evaluations or seconds): the area under the piecewise-linear curve through (x, values) between
    start and end (linear interpolation at both ends), divided by `end - start`. x, values: (T,), x
    strictly increasing.

    NaN when the curve does not span the window (start < x[0] or end > x[-1]), when end <= start,
    or when a value the window uses (the evaluations inside it and the two around each end) is not
    finite. Over a run's own range this is `normalised_auc`.
    """
    x, values = _curve(x, values)
    if not (end > start and x[0] <= start and end <= x[-1]):
        return math.nan
    first = int(np.searchsorted(x, start, side="right")) - 1  # last evaluation at or before start
    last = int(np.searchsorted(x, end, side="left"))  # first evaluation at or after end
    used = values[first: last + 1]
    if not np.all(np.isfinite(used)):
        return math.nan
    inside = x[first: last + 1]
    points = np.concatenate([[start], inside[(inside > start) & (inside < end)], [end]])
    levels = np.interp(points, inside, used)
    return float(np.sum((levels[1:] + levels[:-1]) / 2 * np.diff(points)) / (end - start))


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
    status: str = Status.DONE,
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


# ---- many curves at once -------------------------------------------------------------------------
#
# The report summarises thousands of curves; calling the functions above once per curve costs
# seconds. The companions below compute the same numbers over a padded batch and are tested to agree
# with them curve by curve (tests/test_convergence.py): the rules live above, the speed here.


def _padded(
    steps: ArrayLike, wall_s: ArrayLike, values: ArrayLike, lengths: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 copies of padded curves (N, T), `lengths` (N,) as int64 and `valid` (N, T):
    position j of curve i is an evaluation iff j < lengths[i]; every curve's steps strictly increase."""
    arrays = {
        "steps": np.asarray(steps, dtype=np.float64),
        "wall_s": np.asarray(wall_s, dtype=np.float64),
        "values": np.asarray(values, dtype=np.float64),
    }
    for name, array in arrays.items():
        if array.ndim != 2:
            raise ValueError(f"{name} must be 2-D (N, T), got shape {array.shape}")
    shapes = {name: array.shape for name, array in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"steps, wall_s and values must have one shape (N, T), got {shapes}")
    num_curves, length = arrays["steps"].shape
    lengths = np.asarray(lengths)
    if lengths.shape != (num_curves,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be integers of shape ({num_curves},), got {lengths.dtype} {lengths.shape}")
    if num_curves and (lengths.min() < 1 or lengths.max() > length):
        raise ValueError(f"lengths must lie in [1, T={length}] (a curve needs at least one evaluation), "
                         f"got min {lengths.min()}, max {lengths.max()}")
    lengths = lengths.astype(np.int64)
    if length == 0:  # no curves at all (N = 0): one column of padding keeps the reductions defined
        arrays = {name: np.full((num_curves, 1), np.nan) for name in arrays}
        length = 1
    valid = np.arange(length) < lengths[:, None]
    with np.errstate(invalid="ignore"):
        increasing = np.diff(arrays["steps"], axis=1) > 0
    bad = np.flatnonzero(~np.all(increasing | ~valid[:, 1:], axis=1))
    if len(bad):
        row = bad[0]
        raise ValueError(f"steps must be strictly increasing, got {arrays['steps'][row, :lengths[row]].tolist()} "
                         f"in curve {row}")
    return arrays["steps"], arrays["wall_s"], arrays["values"], lengths, valid


def _statuses(statuses: Sequence[str] | np.ndarray | None, num_curves: int) -> np.ndarray:
    if statuses is None:
        return np.full(num_curves, Status.DONE.value, dtype=object)
    checked = np.asarray(statuses, dtype=object)
    if checked.shape != (num_curves,):
        raise ValueError(f"statuses must have shape ({num_curves},), got {checked.shape}")
    for status in sorted(set(checked.tolist())):
        parse_status(status)
    return checked


def divergence_steps(
    steps: ArrayLike, values: ArrayLike, lengths: ArrayLike, *, statuses: Sequence[str] | np.ndarray
) -> np.ndarray:
    """`divergence_step` of N padded curves: (N,) float. steps, values: (N, T); lengths: (N,) ints,
    curve i being its first lengths[i] positions (the rest is ignored); statuses: (N,) job statuses."""
    steps, _, values, lengths, valid = _padded(steps, steps, values, lengths)
    statuses = _statuses(statuses, len(steps))
    rows = np.arange(len(steps))
    broken = valid & ~np.isfinite(values)
    first_broken = np.argmax(broken, axis=1)
    at = np.where(broken.any(axis=1), first_broken, lengths - 1)
    return np.where(statuses == Status.DIVERGED.value, steps[rows, at], np.nan)


@dataclass(frozen=True)
class CurveSummaries:
    """`CurveSummary` of N curves as columns: every array field has shape (N,) (bool for `reached`,
    float64 otherwise; units as in CurveSummary); `direction`, `threshold` and `last_k` are shared."""

    direction: str
    final: np.ndarray
    best: np.ndarray
    best_step: np.ndarray
    threshold: float
    reached: np.ndarray
    steps_to_threshold: np.ndarray
    wall_s_to_threshold: np.ndarray
    auc: np.ndarray
    last_k: int
    last_k_std: np.ndarray
    divergence_step: np.ndarray

    def __len__(self) -> int:
        return len(self.final)

    def curve(self, index: int) -> CurveSummary:
        """The summary of curve `index`, as `summarise_curve` returns it."""
        fields: dict[str, Any] = {}
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                fields[name] = bool(value[index]) if name == "reached" else float(value[index])
            else:
                fields[name] = value
        return CurveSummary(**fields)

    def columns(self) -> dict[str, np.ndarray]:
        """Every field as an (N,) array (shared fields repeated), e.g. for a pandas.DataFrame."""
        size = len(self)
        return {name: value if isinstance(value, np.ndarray) else np.full(size, value)
                for name, value in vars(self).items()}


def summarise_curves(
    steps: ArrayLike,
    wall_s: ArrayLike,
    values: ArrayLike,
    lengths: ArrayLike,
    *,
    direction: Direction,
    threshold: float | None = None,
    last_k: int = 3,
    statuses: Sequence[str] | np.ndarray | None = None,
) -> CurveSummaries:
    """`summarise_curve` of N curves at once, padded to a common length T.

    steps, wall_s, values: (N, T); curve i is their first `lengths[i]` positions (lengths: (N,) ints
    in [1, T]; what lies beyond is ignored, whatever it holds). statuses: (N,) job statuses (default
    all done). Row i of the result equals `summarise_curve(steps[i, :L], wall_s[i, :L],
    values[i, :L], ...)` with L = lengths[i].
    """
    _check_direction(direction)
    if last_k < 1:
        raise ValueError(f"k must be >= 1, got {last_k}")
    steps, wall_s, values, lengths, valid = _padded(steps, wall_s, values, lengths)
    num_curves, length = steps.shape
    statuses = _statuses(statuses, num_curves)
    rows = np.arange(num_curves)
    finite = valid & np.isfinite(values)

    lower = direction == "lower"
    masked = np.where(finite, values, np.inf if lower else -np.inf)
    best_at = np.argmin(masked, axis=1) if lower else np.argmax(masked, axis=1)
    has_best = finite.any(axis=1)

    if threshold is None:
        reached = np.zeros(num_curves, dtype=bool)
        to_step = np.full(num_curves, np.nan)
        to_wall = np.full(num_curves, np.nan)
    else:
        hits = valid & reaches(values, threshold, direction=direction)
        first_hit = np.argmax(hits, axis=1)
        reached = hits.any(axis=1)
        to_step = np.where(reached, steps[rows, first_hit], np.nan)
        to_wall = np.where(reached, wall_s[rows, first_hit], np.nan)

    # trapezoids between consecutive evaluations; pairs reaching into the padding add nothing
    pairs = valid[:, 1:]
    with np.errstate(invalid="ignore", over="ignore"):
        trapezoids = np.where(pairs, (values[:, 1:] + values[:, :-1]) / 2 * np.diff(steps, axis=1), 0.0)
        span = steps[rows, lengths - 1] - steps[:, 0]
        all_finite = np.all(finite | ~valid, axis=1)
        auc = np.where((lengths >= 2) & all_finite, trapezoids.sum(axis=1) / np.where(span > 0, span, 1.0), np.nan)

    # the last min(k, L) evaluations of each curve
    tail_size = np.minimum(last_k, lengths)
    tail = valid & (np.arange(length) >= (lengths - tail_size)[:, None])
    tail_values = np.where(tail, values, 0.0)
    with np.errstate(invalid="ignore"):
        tail_mean = tail_values.sum(axis=1) / tail_size
        squares = np.where(tail, (values - tail_mean[:, None]) ** 2, 0.0).sum(axis=1)
        spread = np.sqrt(squares / np.maximum(tail_size - 1, 1))
    tail_finite = np.all(np.isfinite(values) | ~tail, axis=1)
    spread = np.where((tail_size >= 2) & tail_finite, spread, np.nan)

    return CurveSummaries(
        direction=direction,
        final=values[rows, lengths - 1],
        best=np.where(has_best, values[rows, best_at], np.nan),
        best_step=np.where(has_best, steps[rows, best_at], np.nan),
        threshold=math.nan if threshold is None else float(threshold),
        reached=reached,
        steps_to_threshold=to_step,
        wall_s_to_threshold=to_wall,
        auc=auc,
        last_k=last_k,
        last_k_std=spread,
        divergence_step=divergence_steps(steps, values, lengths, statuses=statuses),
    )


def window_aucs(x: ArrayLike, values: ArrayLike, lengths: ArrayLike, *, start: ArrayLike,
                end: ArrayLike) -> np.ndarray:
    """`window_auc` of N padded curves: (N,) float. x, values: (N, T); lengths: (N,) ints, curve i
    being its first lengths[i] positions; start, end: the window per curve, (N,) or scalars."""
    x, _, values, lengths, valid = _padded(x, x, values, lengths)
    num_curves = len(x)
    start = np.broadcast_to(np.asarray(start, dtype=np.float64), (num_curves,))
    end = np.broadcast_to(np.asarray(end, dtype=np.float64), (num_curves,))
    rows = np.arange(num_curves)
    spans = (end > start) & (x[:, 0] <= start) & (end <= x[rows, lengths - 1])
    # each segment [x_j, x_j+1] of a curve, cut to the window: [low, high], empty where high <= low
    segment = valid[:, 1:]
    with np.errstate(invalid="ignore"):
        low = np.maximum(x[:, :-1], start[:, None])
        high = np.minimum(x[:, 1:], end[:, None])
        used = segment & (high > low)
        run = x[:, 1:] - x[:, :-1]
        slope = (values[:, 1:] - values[:, :-1]) / np.where(used, run, 1.0)
        at_low = values[:, :-1] + slope * (low - x[:, :-1])
        at_high = values[:, :-1] + slope * (high - x[:, :-1])
        areas = np.where(used, (at_low + at_high) / 2 * (high - low), 0.0)
    finite = np.isfinite(values)
    used_finite = np.all(~used | (finite[:, :-1] & finite[:, 1:]), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = areas.sum(axis=1) / np.where(spans, end - start, 1.0)
    return np.where(spans & used_finite, level, np.nan)
