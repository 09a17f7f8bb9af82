"""Mode counting with the dataset classifier: Stacked MNIST's 1000 modes, and class coverage.

Stacked MNIST (VEEGAN / PacGAN protocol): each of the three channels of a generated sample is
classified by an MNIST classifier; the sample's mode is 100 * red + 10 * green + blue. From the
mode histogram over (by default) 26,000 samples come `modes_covered` (modes with at least one
sample, of 1000) and `mode_kl` = KL(mode histogram || uniform over 1000), in nats.

For labelled single-channel datasets (digits, MNIST), `class-coverage` classifies whole samples and
reports how many classes hold a fair share of them and the KL of the predicted class histogram from
the dataset's class distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bench.metrics import EvalContext, Evaluator, MetricInfo, register_evaluator
from bench.metrics.classifier import LabelledImages, get_classifier
from bench.registry import with_defaults

NUM_STACKED_MODES = 1000
STACKED_SAMPLES = 26000  # VEEGAN and PacGAN count modes over 26k samples

Classifier = Callable[[Tensor], Tensor]  # (N, C, H, W) in [-1, 1] -> logits (N, num_classes)


@dataclass(frozen=True)
class StackedModeStats:
    """Modes of Stacked MNIST samples. `counts[m]`: samples classified as mode m (length 1000)."""

    modes_covered: int
    mode_kl: float
    counts: tuple[int, ...]


@dataclass(frozen=True)
class ClassCoverage:
    """Classes of generated samples. `counts[k]`: samples classified as class k (length K)."""

    classes_covered: int
    class_kl: float
    counts: tuple[int, ...]


@torch.no_grad()
def predict_classes(images: Tensor, classifier: Classifier, *, batch_size: int = 1000) -> Tensor:
    """Argmax class (N,) int64 on CPU of `images` (N, C, H, W) in [-1, 1], in batches of `batch_size`."""
    predictions = [
        classifier(images[start : start + batch_size]).argmax(dim=1).cpu()
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.long)


def kl_from(counts: Tensor, reference: Tensor) -> float:
    """KL(p || q) in nats, p = counts / counts.sum() (K,), q = reference (K,) summing to 1; 0 log 0 = 0.

    Infinite when p puts mass where q has none.
    """
    p = counts.double() / counts.sum()
    q = reference.double()
    support = p > 0
    if bool((q[support] == 0).any()):
        return math.inf
    return max(float((p[support] * torch.log(p[support] / q[support])).sum()), 0.0)


def stacked_mode_stats(samples: Tensor, classifier: Classifier, *, batch_size: int = 1000) -> StackedModeStats:
    """Mode statistics of Stacked MNIST samples.

    samples: (N, 3, H, W) in [-1, 1]; classifier: a 10-class digit classifier taking (n, 1, H, W) in
    [-1, 1] to logits (n, 10). Each channel is classified on its own; mode = 100 r + 10 g + b.
    `modes_covered`: modes with at least one sample (of 1000). `mode_kl`: KL(p || uniform) in nats,
    sum_m p_m log(1000 p_m): 0 for a uniform histogram, log 1000 = 6.908 when all samples share one mode.
    """
    if samples.dim() != 4 or samples.shape[1] != 3:
        raise ValueError(f"samples must have shape (N, 3, H, W), got {tuple(samples.shape)}")
    if samples.shape[0] == 0:
        raise ValueError("samples is empty: no mode statistics for zero samples")
    num_samples, _, height, width = samples.shape
    channels = samples.reshape(num_samples * 3, 1, height, width)  # r, g, b of sample 0, then of sample 1, ...
    digits = predict_classes(channels, classifier, batch_size=batch_size).view(num_samples, 3)
    if bool((digits > 9).any()):
        raise ValueError("the classifier must have 10 outputs (digits 0-9)")
    modes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    counts = torch.bincount(modes, minlength=NUM_STACKED_MODES)
    uniform = torch.full((NUM_STACKED_MODES,), 1.0 / NUM_STACKED_MODES, dtype=torch.float64)
    return StackedModeStats(
        modes_covered=int((counts > 0).sum()),
        mode_kl=kl_from(counts, uniform),
        counts=tuple(int(c) for c in counts),
    )


def class_coverage(
    samples: Tensor,
    classifier: Classifier,
    class_distribution: Tensor,
    *,
    min_share: float | None = None,
    batch_size: int = 1000,
) -> ClassCoverage:
    """Class coverage of generated samples against a dataset's class distribution.

    samples: (N, C, H, W) in [-1, 1]; classifier: (n, C, H, W) -> logits (n, K);
    class_distribution: (K,) class frequencies of the real data, summing to 1.
    A class is covered when it holds at least one sample and at least `min_share` of them (default
    1 / (5K), a fifth of a uniform share, as the mixture mode metric). `class_kl` = KL(predicted
    class histogram || class_distribution) in nats.
    """
    num_classes = class_distribution.shape[0]
    if samples.dim() != 4 or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape (N, C, H, W) with N >= 1, got {tuple(samples.shape)}")
    if min_share is None:
        min_share = 1.0 / (5 * num_classes)
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    predictions = predict_classes(samples, classifier, batch_size=batch_size)
    if bool((predictions >= num_classes).any()):
        raise ValueError(f"the classifier predicts classes beyond the {num_classes} of class_distribution")
    counts = torch.bincount(predictions, minlength=num_classes)
    shares = counts.double() / counts.sum()
    covered = (counts > 0) & (shares >= min_share - 1e-12)
    return ClassCoverage(
        classes_covered=int(covered.sum()),
        class_kl=kl_from(counts, class_distribution),
        counts=tuple(int(c) for c in counts),
    )


def stacked_digit_source(source: Any) -> LabelledImages:
    """The single-channel MNIST digits a Stacked MNIST source is built from, as a labelled source.

    Named "mnist": the classifier cache key is the content, so this is the same classifier as the
    `mnist` dataset's at the same resolution and MNIST source.
    """
    return LabelledImages("mnist", source.digits, source.digit_labels, 10, test=source.test_digits)


def _options(name: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    return with_defaults(f"metric {name!r}", given, defaults)


# the labelled single-channel datasets (a suite knows a dataset's name before it is loaded)
COVERAGE_DATASETS = ("digits", "mnist")

STACKED_DEFAULTS: Mapping[str, Any] = {"samples": STACKED_SAMPLES, "classifier_seed": 0, "batch_size": 1000}
COVERAGE_DEFAULTS: Mapping[str, Any] = {"samples": 10000, "classifier_seed": 0, "batch_size": 1000, "min_share": None}


def evaluate_stacked_modes(ctx: EvalContext) -> dict[str, float]:
    """stacked_modes_covered and stacked_mode_kl over `options["samples"]` generated samples."""
    options = _options("stacked-modes", STACKED_DEFAULTS, ctx.options)
    classifier, _ = get_classifier(
        stacked_digit_source(ctx.source), cache_dir=ctx.cache_dir, seed=options["classifier_seed"], device=ctx.device
    )
    with torch.no_grad():
        samples = ctx.sample(int(options["samples"]))
    stats = stacked_mode_stats(samples, classifier, batch_size=int(options["batch_size"]))
    return {"stacked_modes_covered": float(stats.modes_covered), "stacked_mode_kl": stats.mode_kl}


def evaluate_class_coverage(ctx: EvalContext) -> dict[str, float]:
    """classes_covered and class_kl over `options["samples"]` generated samples."""
    options = _options("class-coverage", COVERAGE_DEFAULTS, ctx.options)
    source = ctx.source
    classifier, _ = get_classifier(source, cache_dir=ctx.cache_dir, seed=options["classifier_seed"], device=ctx.device)
    class_counts = torch.bincount(source.labels.cpu(), minlength=source.num_classes)
    with torch.no_grad():
        samples = ctx.sample(int(options["samples"]))
    coverage = class_coverage(
        samples,
        classifier,
        class_counts.double() / class_counts.sum(),
        min_share=options["min_share"],
        batch_size=int(options["batch_size"]),
    )
    return {"classes_covered": float(coverage.classes_covered), "class_kl": coverage.class_kl}


STACKED_MODES = register_evaluator(
    Evaluator(
        name="stacked-modes",
        description="Stacked MNIST modes covered (of 1000) and KL from uniform, channels classified by an MNIST CNN",
        cost="~15-20 s per 26k samples on one CPU core (first use trains the MNIST classifier: ~20 s on 5k digits)",
        metrics=(
            MetricInfo("stacked_modes_covered", "Stacked MNIST modes (of 1000) with at least one sample", "higher"),
            MetricInfo("stacked_mode_kl", "KL(mode histogram || uniform over 1000 modes), nats", "lower"),
        ),
        applies_to=lambda source: getattr(source, "name", None) == "stacked-mnist",
        evaluate=evaluate_stacked_modes,
        option_defaults=STACKED_DEFAULTS,
    )
)

CLASS_COVERAGE = register_evaluator(
    Evaluator(
        name="class-coverage",
        description="classes covered and KL of the predicted class histogram from the data's, by the dataset CNN",
        cost="~2-3 s per 10k samples on one CPU core (first use trains the classifier: ~20-30 s)",
        metrics=(
            MetricInfo(
                "classes_covered", "classes holding at least min_share of the samples (default 1/(5K))", "higher"
            ),
            MetricInfo("class_kl", "KL(predicted class histogram || real class distribution), nats", "lower"),
        ),
        applies_to=lambda source: getattr(source, "name", None) in COVERAGE_DATASETS,
        evaluate=evaluate_class_coverage,
        option_defaults=COVERAGE_DEFAULTS,
    )
)
