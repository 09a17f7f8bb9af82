"""Evaluations run on a schedule during training, and the summaries computed from their curves.

An evaluator is registered by name and produces one or more named metrics (long rows
`metric, value`). The training loop knows nothing of what an evaluator computes: it builds an
`EvalContext` and calls `evaluate`.

An evaluator declares its options (bench.registry.Option) and whether it applies to a dataset from
what the dataset offers (bench.data.DatasetOffers: points or images, labels, channels, mode
structure), never from the dataset's name. A suite that names no metrics gets, for each dataset, the
evaluators marked `default` that apply to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from bench.registry import Option, Registry, option_defaults, resolve

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class MetricInfo:
    """One metric an evaluator produces: what it is and which way is better."""

    name: str
    description: str
    direction: Direction
    ranked: bool = True
    """False for a metric reported as its source publishes it but that a degenerate generator can win
    (PacGAN's modes-covered rule credits uniform noise): shown in tables, never ranked, never the
    basis of a verdict or a comparison."""
    failed_at: float | None = None
    """A finished run whose final value is no better than this (in `direction`) failed to train: it is
    reported as such, not as a done run (e.g. one class covered of ten). None: no such rule."""


@dataclass(frozen=True)
class EvalContext:
    """What an evaluator may use.

    `sample(n)` draws n generator samples, shape (n, *data_shape), values in [-1, 1], on `device`,
    from a fixed evaluation noise stream (the same z at every evaluation of a job); evaluators of
    one evaluation share the tensor drawn for one n, so none modifies it in place.
    `source` is the job's bench.data source (real data, mixture centres, labels).
    `cache_dir` is where real-data statistics and trained helper networks are cached.
    `encode(x)` -> z and `decode(z)` -> x are given for objectives with an encoder (BiGAN-QP), in
    evaluation mode and without gradients; None otherwise.
    """

    sample: Callable[[int], Tensor]
    source: Any
    device: torch.device
    cache_dir: Path
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)
    encode: Callable[[Tensor], Tensor] | None = None
    decode: Callable[[Tensor], Tensor] | None = None


@dataclass(frozen=True)
class Evaluator:
    """One evaluator. `applies_to(offers)` says from a dataset's bench.data.DatasetOffers whether it
    can score that dataset; `default`: a suite that names no metrics gets it wherever it applies.
    `options` are its declared options; `evaluate` reads them resolved through `resolve`."""

    name: str
    description: str
    cost: str
    metrics: tuple[MetricInfo, ...]
    applies_to: Callable[[Any], bool]
    evaluate: Callable[[EvalContext], dict[str, float]]
    options: Mapping[str, Option] = field(default_factory=dict)
    default: bool = False

    @property
    def option_defaults(self) -> dict[str, Any]:
        return option_defaults(self.options)

    def resolve(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """`given` (a suite's metric_options for this evaluator) over the declared defaults, checked."""
        return resolve(f"metric {self.name!r}", given, self.options)


EVALUATORS: Registry[Evaluator] = Registry("metric")


def register_evaluator(evaluator: Evaluator) -> Evaluator:
    return EVALUATORS.register(evaluator.name, evaluator)


def get_evaluator(name: str) -> Evaluator:
    return EVALUATORS.get(name)


def default_evaluators(offers: Any) -> list[str]:
    """Names of the evaluators a suite gets when it names none, for a dataset offering `offers`: those
    marked `default` that apply to it, in registration order."""
    return [name for name, evaluator in EVALUATORS.items() if evaluator.default and evaluator.applies_to(offers)]


def metric_infos() -> dict[str, MetricInfo]:
    """metric name -> its MetricInfo, over every registered evaluator."""
    return {info.name: info for _, ev in EVALUATORS.items() for info in ev.metrics}


def metric_directions() -> dict[str, Direction]:
    """metric name -> 'lower' or 'higher' (is better), over every registered evaluator's ranked metrics
    (`MetricInfo.ranked`); metrics that noise can win are left out, so nothing ranks on them."""
    return {name: info.direction for name, info in metric_infos().items() if info.ranked}


# evaluators register themselves on import; these lines make every one available with the package
from bench.metrics import (  # noqa: E402,F401
    fidelity,
    mixture,  # noqa: E402,F401
    reconstruction,
    stacked,
)
from bench.metrics.mixture import ModeStats, mixture_mode_stats  # noqa: E402,F401
