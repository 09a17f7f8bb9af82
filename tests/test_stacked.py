"""Stacked MNIST mode counting and class coverage: the counting on digits given by hand and sampled with
numpy (answers computed here, by formula and by simulation), then the real digit classifier and its
realistic-digit manifold on stacks pasted from digits it classifies correctly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.testing import assert_close

from bench.data import ImageSource, ImageSplit, StackedMnistSource, dataset_offers
from bench.metrics import EvalContext, get_evaluator, metric_directions, metric_infos
from bench.metrics.classifier import get_classifier, held_out_split
from bench.metrics.stacked import (
    class_coverage,
    digit_manifold,
    kl_from,
    read_digits,
    read_stacks,
    stacked_digit_source,
    stacked_mode_stats,
)


def stub_classifier(images: torch.Tensor) -> torch.Tensor:
    """Reads a digit d from a constant image of value -1 + 0.2 d: logits (n, 10), one-hot at d."""
    digit = ((images.mean(dim=(1, 2, 3)) + 1) / 0.2).round().long()
    return torch.nn.functional.one_hot(digit, 10).float()


def constant_stacks(modes: list[int], size: int = 4) -> torch.Tensor:
    """(N, 3, size, size) stacks whose channels the stub reads as the digits of each mode (r, g, b)."""
    digits = torch.tensor([[m // 100, m // 10 % 10, m % 10] for m in modes], dtype=torch.float32)
    return (-1 + 0.2 * digits)[:, :, None, None].expand(-1, -1, size, size).contiguous()


def digits_of(modes) -> torch.Tensor:
    """(N, 3) red, green and blue digits of each mode 100 r + 10 g + b."""
    modes = torch.as_tensor(modes)
    return torch.stack([modes // 100, modes // 10 % 10, modes % 10], dim=1)


def all_realistic(digits: torch.Tensor) -> torch.Tensor:
    return torch.ones(digits.shape, dtype=torch.bool)


# --- counting ------------------------------------------------------------------------------------------


def test_mode_counting_with_known_modes():
    digits = digits_of([0, 0, 123, 999, 555, 123])
    stats = stacked_mode_stats(digits, all_realistic(digits))
    assert stats.modes_covered == 4
    assert (stats.counts[0], stats.counts[123], stats.counts[555], stats.counts[999]) == (2, 2, 1, 1)
    assert sum(stats.counts) == 6 and stats.counts[321] == 0  # red is the hundreds digit
    # p = (1/3, 1/3, 1/6, 1/6): sum p log(1000 p)
    expected = 2 * (1 / 3) * math.log(1000 / 3) + 2 * (1 / 6) * math.log(1000 / 6)
    assert_close(stats.mode_kl, expected)
    assert (stats.high_quality_fraction, stats.modes_held) == (1.0, 4)


def test_mode_kl_extremes():
    collapsed = stacked_mode_stats(digits_of([42] * 7), all_realistic(digits_of([42] * 7)))
    assert collapsed.modes_covered == 1
    assert_close(collapsed.mode_kl, math.log(1000))
    every_mode = stacked_mode_stats(digits_of(range(1000)), all_realistic(digits_of(range(1000))))
    assert every_mode.modes_covered == 1000
    assert_close(every_mode.mode_kl, 0.0)


def test_uniform_generator_at_the_protocol_sample_count():
    rng = np.random.default_rng(0)
    modes = rng.integers(1000, size=26000)
    digits = digits_of(torch.from_numpy(modes))
    stats = stacked_mode_stats(digits, all_realistic(digits))
    histogram = np.bincount(modes, minlength=1000) / 26000
    nonzero = histogram[histogram > 0]
    assert_close(stats.mode_kl, float((nonzero * np.log(1000 * nonzero)).sum()))
    # expected modes covered: 1000 (1 - (1 - 1/1000)^26000) = 1000 - 5e-9
    assert stats.modes_covered == 1000
    # expected KL: 2N KL is about chi-square(999), so 999 / (2N) = 0.0192; by simulation (400 draws) 0.0194,
    # sd 0.00094
    draws = np.random.default_rng(1).multinomial(26000, np.full(1000, 1e-3), size=400) / 26000
    simulated = np.where(draws > 0, draws * np.log(np.maximum(draws, 1e-300) * 1000), 0.0).sum(axis=1)
    assert abs(simulated.mean() - 999 / 52000) < 5e-4
    assert abs(stats.mode_kl - simulated.mean()) < 4 * simulated.std()
    assert 0.015 < stats.mode_kl < 0.025  # "about 0.02": PacGAN's PacDCGAN rows read 0.06-0.07
    # every sample realistic: each mode holds ~26 (Poisson), 5.2 needed
    assert stats.modes_held == 1000


def test_garbage_spread_over_the_digits_wins_only_the_published_metrics():
    rng = np.random.default_rng(2)
    digits = digits_of(torch.from_numpy(rng.integers(1000, size=26000)))
    garbage = stacked_mode_stats(digits, torch.zeros(digits.shape, dtype=torch.bool))
    assert garbage.modes_covered == 1000 and garbage.mode_kl < 0.025
    assert (garbage.high_quality_fraction, garbage.modes_held) == (0.0, 0)
    assert garbage.high_quality_counts == (0,) * 1000
    # one unrealistic channel is enough to make a sample low quality
    one_channel_off = all_realistic(digits).clone()
    one_channel_off[::2, 1] = False
    stats = stacked_mode_stats(digits, one_channel_off)
    assert stats.high_quality_fraction == 0.5
    assert sum(stats.high_quality_counts) == 13000


def test_held_needs_a_fifth_of_the_uniform_share_of_all_samples():
    # N = 2000: mode 7 has 2 high-quality samples, mode 8 one (and 2 low-quality), mode 5 1995 low-quality
    digits = digits_of([7] * 2 + [8] * 3 + [5] * 1995)
    realistic = all_realistic(digits).clone()
    realistic[3:, 0] = False  # all but the first two mode-7 samples and one mode-8 sample
    stats = stacked_mode_stats(digits, realistic)
    assert (stats.high_quality_counts[7], stats.high_quality_counts[8], stats.high_quality_counts[5]) == (2, 1, 0)
    assert stats.modes_covered == 3
    assert stats.modes_held == 2  # the default needs 0.2 * 2000 / 1000 = 0.4
    assert stacked_mode_stats(digits, realistic, held_fraction_of_uniform=1.0).modes_held == 1  # needs 2


def test_stacked_input_checks():
    digits = digits_of([1, 2])
    with pytest.raises(ValueError, match=r"digits must have shape \(N, 3\) with N >= 1, got \(2, 2\)"):
        stacked_mode_stats(digits[:, :2], all_realistic(digits[:, :2]))
    with pytest.raises(ValueError, match=r"realistic must have the shape of digits \(2, 3\), got \(2, 2\)"):
        stacked_mode_stats(digits, torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="digits must be in 0..9"):
        stacked_mode_stats(torch.tensor([[1, 2, 10]]), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"held_fraction_of_uniform must be in \(0, 1\], got 0"):
        stacked_mode_stats(digits, all_realistic(digits), held_fraction_of_uniform=0)
    with pytest.raises(ValueError, match=r"samples must have shape \(N, 3, H, W\), got \(2, 1, 4, 4\)"):
        read_stacks(torch.zeros(2, 1, 4, 4), None, None)
    with pytest.raises(ValueError, match="samples is empty"):
        read_stacks(torch.zeros(0, 3, 4, 4), None, None)


def test_class_coverage_with_known_classes():
    # 40 samples over K = 4 classes: 20 of class 0, 19 of class 1, 1 of class 2 (share 0.025 < 1/(5*4))
    samples = constant_stacks([0] * 20 + [1] * 19 + [2])[:, 2:3]  # the blue channel holds the digit
    true_distribution = torch.full((4,), 0.25, dtype=torch.float64)

    def four_classes(images: torch.Tensor) -> torch.Tensor:
        return stub_classifier(images)[:, :4]

    coverage = class_coverage(samples, four_classes, true_distribution)
    assert coverage.counts == (20, 19, 1, 0)
    assert coverage.classes_covered == 2
    expected = 0.5 * math.log(0.5 / 0.25) + 0.475 * math.log(0.475 / 0.25) + 0.025 * math.log(0.025 / 0.25)
    assert_close(coverage.class_kl, expected)
    assert class_coverage(samples, four_classes, true_distribution, min_share=0.0).classes_covered == 3
    # mass on a class the data does not have: infinitely far
    assert kl_from(torch.tensor([1, 1]), torch.tensor([1.0, 0.0])) == math.inf


def test_metric_declarations():
    infos = metric_infos()
    declared = {name: (infos[name].direction, infos[name].ranked, infos[name].failed_at) for name in (
        "stacked_modes_covered", "stacked_mode_kl", "stacked_high_quality_fraction", "stacked_modes_held",
        "classes_covered", "class_kl")}
    assert declared == {
        "stacked_modes_covered": ("higher", False, None),
        "stacked_mode_kl": ("lower", False, None),
        "stacked_high_quality_fraction": ("higher", True, None),
        "stacked_modes_held": ("higher", True, 0.0),
        "classes_covered": ("higher", True, 1.0),
        "class_kl": ("lower", True, None),
    }
    assert "stacked_modes_covered" not in metric_directions()
    assert get_evaluator("stacked-modes").option_defaults == {
        "samples": 26000, "classifier_seed": 0, "batch_size": 1000, "quality_neighbours": 3,
        "reference_digits": 5000, "held_fraction_of_uniform": 0.2,
    }
    assert get_evaluator("class-coverage").option_defaults["samples"] == 10000


# --- the real classifier ----------------------------------------------------------------------------


def digit_splits() -> tuple[ImageSplit, ImageSplit]:
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 8.0 - 1.0
    labels = torch.from_numpy(bunch.target).long()
    return ImageSplit(images[:1500], labels[:1500]), ImageSplit(images[1500:], labels[1500:])


@pytest.fixture(scope="module")
def stacked(shared_cache):
    """(bench.data Stacked MNIST source over 8x8 digits, cache dir, digit classifier, the manifold of its
    held-out digits, one correctly classified test image per digit (10, 1, 8, 8))."""
    train, test = digit_splits()
    source = StackedMnistSource("stacked-mnist", train, test, reference_size=100)
    cache_dir = shared_cache
    model, accuracy = get_classifier(stacked_digit_source(source), cache_dir=cache_dir, seed=0)
    assert accuracy >= 0.9
    with torch.no_grad():
        predicted = model(test.images).argmax(1)
    right = predicted == test.labels
    exemplars = torch.stack([test.images[right & (test.labels == d)][0] for d in range(10)])
    manifold = digit_manifold(model, held_out_split(stacked_digit_source(source), seed=0)[0])
    return source, cache_dir, model, manifold, exemplars


def paste(exemplars: torch.Tensor, modes: list[int]) -> torch.Tensor:
    """(N, 3, 8, 8) stacks of correctly classified digits spelling each mode."""
    return torch.stack([torch.cat([exemplars[m // 100], exemplars[m // 10 % 10], exemplars[m % 10]]) for m in modes])


def test_real_classifier_reads_pasted_modes(stacked):
    _, _, model, manifold, exemplars = stacked
    digits, realistic = read_stacks(paste(exemplars, [7, 42, 42, 305, 999, 999, 999]), model, manifold)
    assert digits.tolist() == [[0, 0, 7], [0, 4, 2], [0, 4, 2], [3, 0, 5], [9, 9, 9], [9, 9, 9], [9, 9, 9]]
    assert bool(realistic.all())  # the exemplars are reference digits themselves
    stats = stacked_mode_stats(digits, realistic)
    assert stats.modes_covered == 4
    assert (stats.counts[7], stats.counts[42], stats.counts[305], stats.counts[999]) == (1, 2, 1, 3)
    p = [1 / 7, 2 / 7, 1 / 7, 3 / 7]
    assert_close(stats.mode_kl, sum(q * math.log(1000 * q) for q in p))


def test_manifold_admits_real_digits_and_not_noise(stacked):
    source, _, model, manifold, _ = stacked
    assert manifold.features.shape == (297, 128) and manifold.radii.shape == (297,)
    # the radii are 3rd-nearest-neighbour distances among the reference digits
    distances = torch.cdist(manifold.features, manifold.features)
    assert_close(manifold.radii, distances.sort(dim=1).values[:, 3])
    generator = torch.Generator().manual_seed(0)
    real_rate = manifold.contains(read_digits(source.digits, model)[1]).double().mean()
    noise = torch.rand(1500, 1, 8, 8, generator=generator) * 2 - 1
    noise_rate = manifold.contains(read_digits(noise, model)[1]).double().mean()
    # measured: 0.82 of the training digits, 0.05 of uniform noise
    assert real_rate > 0.7 and noise_rate < 0.15
    with pytest.raises(ValueError, match="a 3-NN manifold needs more than 3 real digits, got 3"):
        digit_manifold(model, source.digits[:3])


def test_stacked_modes_evaluator(stacked):
    source, cache_dir, _, _, exemplars = stacked
    evaluator = get_evaluator("stacked-modes")
    assert evaluator.applies_to(dataset_offers("stacked-mnist", {}))
    assert not evaluator.applies_to(dataset_offers("mnist", {}))
    modes = [11, 11, 250, 868]
    ctx = EvalContext(sample=lambda n: paste(exemplars, modes)[:n], source=source, device=torch.device("cpu"),
                      cache_dir=cache_dir, seed=3, options={"samples": 4})
    values = evaluator.evaluate(ctx)
    assert values == {"stacked_modes_covered": 3.0, "stacked_mode_kl": values["stacked_mode_kl"],
                      "stacked_high_quality_fraction": 1.0, "stacked_modes_held": 3.0}
    assert_close(values["stacked_mode_kl"], 0.5 * math.log(500) + 2 * 0.25 * math.log(250))
    with pytest.raises(ValueError, match="metric 'stacked-modes' has no option 'sample'; valid: batch_size, "
                                         "classifier_seed, held_fraction_of_uniform, quality_neighbours, "
                                         "reference_digits, samples"):
        evaluator.evaluate(EvalContext(sample=ctx.sample, source=source, device=ctx.device, cache_dir=cache_dir,
                                       seed=0, options={"sample": 4}))


def test_class_coverage_evaluator(stacked):
    _, cache_dir, _, _, exemplars = stacked
    train, test = digit_splits()
    # same content as the Stacked MNIST digits and named "mnist": the cached classifier is reused
    digits = ImageSource("mnist", train, test, num_classes=10)
    evaluator = get_evaluator("class-coverage")
    # labelled single-channel images: digits and MNIST, not CIFAR-10's colour or Stacked MNIST's stacks
    assert [evaluator.applies_to(dataset_offers(n, {})) for n in ("digits", "mnist", "cifar10", "stacked-mnist")] == [
        True, True, False, False
    ]
    assert not get_evaluator("stacked-modes").applies_to(dataset_offers("mnist", {}))
    share_of_3 = float((train.labels == 3).double().mean())
    ctx = EvalContext(sample=lambda n: exemplars[3:4].expand(n, -1, -1, -1), source=digits,
                      device=torch.device("cpu"), cache_dir=cache_dir, seed=0, options={"samples": 50})
    values = evaluator.evaluate(ctx)
    # one class of ten: at classes_covered's failed_at, so the run reads as failed to train
    assert values["classes_covered"] == 1.0 == metric_infos()["classes_covered"].failed_at
    assert_close(values["class_kl"], -math.log(share_of_3))  # KL(delta_3 || q) = -log q_3
    # (the session's cache holds other datasets' classifiers too: only MNIST-named ones matter here)
    trained = sorted(p.name for p in (cache_dir / "classifiers").glob("mnist-*.pt"))
    assert len(trained) == 1 and trained[0].startswith("mnist-8px-seed0-")
