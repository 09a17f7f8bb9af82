"""Stacked MNIST mode counting and class coverage: counting logic on a stub classifier with known
outputs, then the real digit classifier on stacks pasted from digits it classifies correctly."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from sklearn.datasets import load_digits
from torch.testing import assert_close

from bench.data import ImageSource, ImageSplit, StackedMnistSource
from bench.metrics import EvalContext, get_evaluator
from bench.metrics.classifier import get_classifier
from bench.metrics.stacked import class_coverage, kl_from, stacked_digit_source, stacked_mode_stats


def stub_classifier(images: torch.Tensor) -> torch.Tensor:
    """Reads a digit d from a constant image of value -1 + 0.2 d: logits (n, 10), one-hot at d."""
    digit = ((images.mean(dim=(1, 2, 3)) + 1) / 0.2).round().long()
    return torch.nn.functional.one_hot(digit, 10).float()


def constant_stacks(modes: list[int], size: int = 4) -> torch.Tensor:
    """(N, 3, size, size) stacks whose channels the stub reads as the digits of each mode (r, g, b)."""
    digits = torch.tensor([[m // 100, m // 10 % 10, m % 10] for m in modes], dtype=torch.float32)
    return (-1 + 0.2 * digits)[:, :, None, None].expand(-1, -1, size, size).contiguous()


def test_mode_counting_with_known_modes():
    stats = stacked_mode_stats(constant_stacks([0, 0, 123, 999, 555, 123]), stub_classifier)
    assert stats.modes_covered == 4
    assert (stats.counts[0], stats.counts[123], stats.counts[555], stats.counts[999]) == (2, 2, 1, 1)
    assert sum(stats.counts) == 6 and stats.counts[321] == 0  # red is the hundreds digit
    # p = (1/3, 1/3, 1/6, 1/6): sum p log(1000 p)
    expected = 2 * (1 / 3) * math.log(1000 / 3) + 2 * (1 / 6) * math.log(1000 / 6)
    assert_close(stats.mode_kl, expected)


def test_mode_kl_extremes():
    collapsed = stacked_mode_stats(constant_stacks([42] * 7), stub_classifier)
    assert collapsed.modes_covered == 1
    assert_close(collapsed.mode_kl, math.log(1000))
    every_mode = stacked_mode_stats(constant_stacks(list(range(1000)), size=2), stub_classifier, batch_size=333)
    assert every_mode.modes_covered == 1000
    assert_close(every_mode.mode_kl, 0.0)


def test_stacked_input_checks():
    with pytest.raises(ValueError, match=r"samples must have shape \(N, 3, H, W\), got \(2, 1, 4, 4\)"):
        stacked_mode_stats(torch.zeros(2, 1, 4, 4), stub_classifier)
    with pytest.raises(ValueError, match="samples is empty"):
        stacked_mode_stats(torch.zeros(0, 3, 4, 4), stub_classifier)


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


# --- the real classifier ----------------------------------------------------------------------------


def digit_splits() -> tuple[ImageSplit, ImageSplit]:
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 8.0 - 1.0
    labels = torch.from_numpy(bunch.target).long()
    return ImageSplit(images[:1500], labels[:1500]), ImageSplit(images[1500:], labels[1500:])


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    """(bench.data Stacked MNIST source over 8x8 digits, cache dir, digit classifier, one correctly
    classified test image per digit (10, 1, 8, 8))."""
    train, test = digit_splits()
    source = StackedMnistSource("stacked-mnist", train, test, reference_size=100)
    cache_dir = tmp_path_factory.mktemp("cache")
    model, accuracy = get_classifier(stacked_digit_source(source), cache_dir=cache_dir, seed=0)
    assert accuracy >= 0.9
    with torch.no_grad():
        predicted = model(test.images).argmax(1)
    right = predicted == test.labels
    exemplars = torch.stack([test.images[right & (test.labels == d)][0] for d in range(10)])
    return source, cache_dir, model, exemplars


def paste(exemplars: torch.Tensor, modes: list[int]) -> torch.Tensor:
    """(N, 3, 8, 8) stacks of correctly classified digits spelling each mode."""
    return torch.stack([torch.cat([exemplars[m // 100], exemplars[m // 10 % 10], exemplars[m % 10]]) for m in modes])


def test_real_classifier_counts_pasted_modes(stacked):
    _, _, model, exemplars = stacked
    stats = stacked_mode_stats(paste(exemplars, [7, 42, 42, 305, 999, 999, 999]), model)
    assert stats.modes_covered == 4
    assert (stats.counts[7], stats.counts[42], stats.counts[305], stats.counts[999]) == (1, 2, 1, 3)
    p = [1 / 7, 2 / 7, 1 / 7, 3 / 7]
    assert_close(stats.mode_kl, sum(q * math.log(1000 * q) for q in p))


def test_stacked_modes_evaluator(stacked):
    source, cache_dir, _, exemplars = stacked
    evaluator = get_evaluator("stacked-modes")
    assert evaluator.applies_to(source) and not evaluator.applies_to(ImageSource("mnist", *digit_splits(), 10))
    assert evaluator.option_defaults["samples"] == 26000
    modes = [11, 11, 250, 868]
    ctx = EvalContext(sample=lambda n: paste(exemplars, modes)[:n], source=source, device=torch.device("cpu"),
                      cache_dir=cache_dir, seed=3, options={"samples": 4})
    values = evaluator.evaluate(ctx)
    assert values["stacked_modes_covered"] == 3.0
    assert_close(values["stacked_mode_kl"], 0.5 * math.log(500) + 2 * 0.25 * math.log(250))
    with pytest.raises(ValueError, match="metric 'stacked-modes' has no option\\(s\\) sample; valid: batch_size, classifier_seed, samples"):
        evaluator.evaluate(EvalContext(sample=ctx.sample, source=source, device=ctx.device, cache_dir=cache_dir,
                                       seed=0, options={"sample": 4}))


def test_class_coverage_evaluator(stacked):
    _, cache_dir, _, exemplars = stacked
    train, test = digit_splits()
    # same content as the Stacked MNIST digits and named "mnist": the cached classifier is reused
    digits = ImageSource("mnist", train, test, num_classes=10)
    evaluator = get_evaluator("class-coverage")
    assert evaluator.applies_to(digits)
    assert [evaluator.applies_to(SimpleNamespace(name=n, kind="image", shape=())) for n in ("mnist", "cifar10")] == [
        True, False
    ]
    assert not get_evaluator("stacked-modes").applies_to(digits)
    share_of_3 = float((train.labels == 3).double().mean())
    ctx = EvalContext(sample=lambda n: exemplars[3:4].expand(n, -1, -1, -1), source=digits,
                      device=torch.device("cpu"), cache_dir=cache_dir, seed=0, options={"samples": 50})
    values = evaluator.evaluate(ctx)
    assert values["classes_covered"] == 1.0
    assert_close(values["class_kl"], -math.log(share_of_3))  # KL(delta_3 || q) = -log q_3
    trained = sorted(p.name for p in (cache_dir / "classifiers").glob("*.pt"))
    assert len(trained) == 1 and trained[0].startswith("mnist-8px-seed0-")
