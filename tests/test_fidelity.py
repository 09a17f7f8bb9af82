"""Image metrics through torch-fidelity: values against independent numpy/scipy computations, the
real-feature cache (hits for the same content; misses when any real pixel or label, the weights file,
the recipe or torch-fidelity changes), the protocol sample counts, offline Inception weights."""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import digits_8px
from torch.testing import assert_close

from bench.data import DatasetOffers, dataset_offers
from bench.metrics import EvalContext, fidelity, get_evaluator
from bench.metrics.classifier import (
    FEATURE_EXTRACTOR_NAME,
    LabelledImages,
    classifier_file,
    classifier_paths,
    feature_extractor_class,
    get_classifier,
    images_to_uint8,
    sha256_file,
    uint8_to_images,
)
from bench.vision import torch_fidelity

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


def context(source, images, cache_dir: Path, **options) -> EvalContext:
    """An EvalContext whose generator returns the first n rows of `images`."""
    def sample(n: int) -> torch.Tensor:
        assert n <= len(images), f"asked for {n} samples, have {len(images)}"
        return images[:n]

    return EvalContext(sample=sample, source=source, device=torch.device("cpu"), cache_dir=cache_dir, seed=0,
                       options=options)


@pytest.fixture(scope="module")
def digits(tmp_path_factory, shared_cache):
    """(source, a cache dir of its own holding the classifier, the classifier): the classifier comes from the
    session's cache; the real-feature entries these tests count start empty."""
    source = digits_8px()
    cache_dir = tmp_path_factory.mktemp("cache")
    model, _ = get_classifier(source, cache_dir=shared_cache, seed=0)
    for stored, copy in zip(classifier_paths(source, cache_dir=shared_cache, seed=0),
                            classifier_paths(source, cache_dir=cache_dir, seed=0), strict=True):
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stored, copy)
    return source, cache_dir, model


def distorted(images: torch.Tensor) -> torch.Tensor:
    """A different image set: mirrored, with fixed noise, clipped to [-1, 1]."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    return (images.flip(-1) + 0.4 * noise).clamp(-1, 1)


def features_of(model, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features, logits) float64 of images quantised to uint8 as on the torch-fidelity path."""
    with torch.no_grad():
        quantised = uint8_to_images(images_to_uint8(images))
        features = model.features(quantised)
        return features.double().numpy(), model.head(features).double().numpy()


def frechet_distance(real_f: np.ndarray, fake_f: np.ndarray) -> float:
    """|mu_r - mu_f|^2 + tr(C_r + C_f - 2 (C_r C_f)^(1/2)) of two feature sets (n, d), in numpy/scipy."""
    mu_r, mu_f = real_f.mean(0), fake_f.mean(0)
    cov_r, cov_f = np.cov(real_f, rowvar=False), np.cov(fake_f, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_r @ cov_f).real
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * covmean))


def test_metrics_against_themselves(digits):
    source, cache_dir, _ = digits
    values = get_evaluator("fidelity-classifier").evaluate(
        context(source, source.images, cache_dir, samples=1500, real_split="train", kid_subsets=5,
                kid_subset_size=500)
    )
    assert_close(values["fid_classifier"], 0.0, atol=1e-6, rtol=0)
    # every generated sample sits on a real one (distance 0 <= any k-NN radius), and vice versa
    assert values["precision_classifier"] == 1.0 and values["recall_classifier"] == 1.0


def test_metrics_equal_independent_computations(digits):
    source, cache_dir, model = digits
    fake = distorted(source.images)
    values = get_evaluator("fidelity-classifier").evaluate(
        # one KID subset holding every sample is a permutation of the full sets: deterministic
        context(source, fake, cache_dir, samples=1500, real_split="train", kid_subsets=1, kid_subset_size=1500,
                isc_splits=1, prc_neighborhood=3)
    )
    real_f, _ = features_of(model, source.images)
    fake_f, fake_logits = features_of(model, fake)

    fid = frechet_distance(real_f, fake_f)
    assert fid > 1.0
    assert_close(values["fid_classifier"], fid, rtol=1e-4, atol=1e-4)

    # IS, one split: exp(mean_x KL(p(y|x) || p(y)))
    p = torch.softmax(torch.from_numpy(fake_logits), 1).numpy()
    marginal = p.mean(0, keepdims=True)
    inception_score = float(np.exp((p * (np.log(p) - np.log(marginal))).sum(1).mean()))
    assert_close(values["is_classifier"], inception_score, rtol=1e-5, atol=0)

    # KID: unbiased MMD^2 with the kernel (x.y / d + 1)^3
    d = real_f.shape[1]
    def kernel(a, b):
        return (a @ b.T / d + 1) ** 3
    k_ff, k_rr, k_fr = kernel(fake_f, fake_f), kernel(real_f, real_f), kernel(fake_f, real_f)
    m = len(fake_f)
    mmd2 = ((k_ff.sum() - np.trace(k_ff)) + (k_rr.sum() - np.trace(k_rr))) / (m * (m - 1)) - 2 * k_fr.mean()
    assert_close(values["kid_classifier"], float(mmd2), rtol=1e-3, atol=1e-4)

    # precision / recall (Kynkaanniemi et al.), k = 3 nearest neighbours, self excluded
    real_t, fake_t = torch.from_numpy(real_f), torch.from_numpy(fake_f)
    radius_r = torch.cdist(real_t, real_t).kthvalue(4, dim=1).values
    radius_f = torch.cdist(fake_t, fake_t).kthvalue(4, dim=1).values
    precision = (torch.cdist(fake_t, real_t) <= radius_r[None, :]).any(1).double().mean().item()
    recall = (torch.cdist(real_t, fake_t) <= radius_f[None, :]).any(1).double().mean().item()
    assert 0.0 < precision < 1.0 and 0.0 < recall < 1.0
    assert_close(values["precision_classifier"], precision, atol=2 / 1500, rtol=0)  # float32 vs float64 ties
    assert_close(values["recall_classifier"], recall, atol=2 / 1500, rtol=0)


class Counter:
    """Wraps a feature extractor's forward; records the batches it sees."""

    def __init__(self, monkeypatch, cls) -> None:
        self.batches: list[tuple[torch.dtype, tuple[int, ...]]] = []
        forward = cls.forward

        def counted(extractor, images):
            self.batches.append((images.dtype, tuple(images.shape)))
            return forward(extractor, images)

        monkeypatch.setattr(cls, "forward", counted)

    def images(self) -> int:
        count = sum(shape[0] for _, shape in self.batches)
        self.batches.clear()
        return count


def test_real_features_are_extracted_once(digits, monkeypatch):
    source, cache_dir, _ = digits
    counter = Counter(monkeypatch, feature_extractor_class())
    # kid_subset_size defaults to min(1000, 100 generated, 300 real) = 100
    ctx = context(source, distorted(source.images), cache_dir, samples=100, real_split="train", real_samples=300,
                  kid_subsets=3)
    evaluator = get_evaluator("fidelity-classifier")
    first = evaluator.evaluate(ctx)
    assert counter.images() == 100 + 300
    second = evaluator.evaluate(ctx)
    assert counter.images() == 100  # the 300 real images come from the cache
    assert first == second
    cached = sorted(path.name for path in (cache_dir / "fidelity").iterdir())
    assert any(re.fullmatch(r"digits-train-8px-n300-[0-9a-f]{16}-bench-classifier-stat-fid-features\.pt", n)
               for n in cached), cached
    # another real subset size is another cache entry
    evaluator.evaluate(context(source, source.images, cache_dir, samples=100, real_split="train", real_samples=200,
                               kid_subsets=3, kid_subset_size=50))
    assert counter.images() == 100 + 200


# --- the real-feature cache key ----------------------------------------------------------------------


def test_changed_real_images_are_not_served_stale_statistics(digits, monkeypatch, tmp_path):
    """336 of 400 real images changed (all but the 64 evenly spaced ones a sampled fingerprint reads):
    the real features are extracted again and FID is the Frechet distance of the new real features;
    the same content in new tensors is served from the cache."""
    base, cache_dir, model = digits
    weights = classifier_file(base, cache_dir=cache_dir, seed=0)
    real = LabelledImages("digits", base.images[:400], base.labels[:400], 10)
    fake = base.images[400:800]  # other digits: close to the real set before the change
    sampled = set(torch.linspace(0, 399, 64).long().tolist())
    changed_index = torch.tensor([i for i in range(400) if i not in sampled])
    assert len(changed_index) == 336
    changed_images = real.images.clone()
    changed_images[changed_index] = real.images[changed_index].flip(-1)  # mirrored
    changed = LabelledImages("digits", changed_images, real.labels, 10)
    options = {**get_evaluator("fidelity-classifier").option_defaults, "real_split": "train", "kid_subsets": 1,
               "isc_splits": 1}

    def fid(source: LabelledImages) -> float:
        result = fidelity.fidelity_metrics(
            fake, source, extractor=FEATURE_EXTRACTOR_NAME, weights_file=weights, extractor_recipe="recipe",
            rgb=False, cache_dir=tmp_path, device=torch.device("cpu"), options=options,
            evaluator_name="fidelity-classifier",
        )
        return result[torch_fidelity().KEY_METRIC_FID]

    fake_f = features_of(model, fake)[0]
    counter = Counter(monkeypatch, feature_extractor_class())
    first = fid(real)
    assert counter.images() == 400 + 400
    assert_close(first, frechet_distance(features_of(model, real.images)[0], fake_f), rtol=1e-4, atol=1e-4)

    second = fid(changed)
    assert counter.images() == 400 + 400  # the real features were extracted again
    expected = frechet_distance(features_of(model, changed_images)[0], fake_f)
    assert_close(second, expected, rtol=1e-4, atol=1e-4)
    assert second > 2 * first  # the stale value would have been far off (measured: 5.2 against 15.2)

    same_content = LabelledImages("digits", changed_images.clone(), real.labels.clone(), 10)
    assert fid(same_content) == second
    assert counter.images() == 400  # generated only: the real features came from the cache


def test_real_cache_key_covers_every_pixel_label_and_the_extractor(digits, monkeypatch):
    source, cache_dir, _ = digits
    weights = classifier_file(source, cache_dir=cache_dir, seed=0)
    pixels, labels = images_to_uint8(source.images[:400]), source.labels[:400]

    def name(**change) -> str:
        given = {"split": "train", "pixels": pixels, "labels": labels, "rgb": False,
                 "extractor": FEATURE_EXTRACTOR_NAME, "weights_file": weights, "extractor_recipe": "recipe-a"}
        return fidelity.real_cache_name(source, **{**given, **change})[0]

    reference = name()
    assert name(pixels=pixels.clone(), labels=labels.clone()) == reference  # content, not identity
    one_pixel = pixels.clone()
    one_pixel[399, 0, 7, 7] += 1
    swapped = labels.clone()
    swapped[[0, 1]] = labels[[1, 0]]
    assert labels[0] != labels[1]
    names = [reference, name(pixels=one_pixel), name(labels=swapped), name(extractor_recipe="recipe-b"),
             name(rgb=True), name(split="held-out"), name(pixels=pixels[:399], labels=labels[:399])]
    assert len(set(names)) == len(names)
    monkeypatch.setattr(fidelity, "torch_fidelity_version", lambda: "0.0.1")
    assert name() != reference

    monkeypatch.undo()
    name_, key = fidelity.real_cache_name(source, split="train", pixels=pixels, labels=labels, rgb=False,
                                          extractor=FEATURE_EXTRACTOR_NAME, weights_file=weights,
                                          extractor_recipe="recipe-a")
    assert name_ == reference and name_.startswith("digits-train-8px-n400-")
    assert key["pixels_sha256"] == hashlib.sha256(b"torch.uint8(400, 1, 8, 8)" + pixels.numpy().tobytes()).hexdigest()
    assert key["labels_sha256"] == hashlib.sha256(b"torch.int64(400,)" + labels.numpy().tobytes()).hexdigest()
    assert key["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert key["torch_fidelity"] == importlib.metadata.version("torch-fidelity")


# --- protocol sample counts ----------------------------------------------------------------------------


def test_protocol_counts_are_the_defaults():
    inception = get_evaluator("fidelity-inception").option_defaults
    # RGAN's FID: 50,000 generated against all 50,000 CIFAR-10 training images
    assert (inception["samples"], inception["real_split"], inception["real_samples"]) == (50000, "train", None)
    classifier = get_evaluator("fidelity-classifier").option_defaults
    assert (classifier["samples"], classifier["real_split"], classifier["real_samples"]) == (10000, "held-out", None)


def test_real_reference_is_the_whole_split_by_default(digits, monkeypatch, tmp_path):
    source, trained_cache, _ = digits
    cache_dir = tmp_path / "cache"  # the trained classifier, no cached real features
    shutil.copytree(trained_cache / "classifiers", cache_dir / "classifiers")
    counter = Counter(monkeypatch, feature_extractor_class())
    evaluator = get_evaluator("fidelity-classifier")
    evaluator.evaluate(context(source, distorted(source.images), cache_dir, samples=100, kid_subsets=2))
    assert counter.images() == 100 + 297  # every held-out image: the test split, 1797 - 1500
    cached = [path.name for path in (cache_dir / "fidelity").glob("digits-held-out-8px-n297-*.json")]
    assert len(cached) == 1
    evaluator.evaluate(context(source, distorted(source.images), cache_dir, samples=100, kid_subsets=2,
                               real_split="train"))
    assert counter.images() == 100 + 1500  # every training image


def test_options_are_checked(digits):
    source, cache_dir, _ = digits
    evaluator = get_evaluator("fidelity-classifier")
    with pytest.raises(ValueError, match="metric 'fidelity-classifier' has no option 'sampels'; valid: "
                       "batch_size, classifier_seed, isc_splits, kid_subset_size, kid_subsets, "
                       "prc_batch_size, prc_neighborhood, real_samples, real_split, samples"):
        evaluator.evaluate(context(source, source.images, cache_dir, sampels=10))
    with pytest.raises(ValueError, match=re.escape(
        "fidelity-classifier: kid_subset_size=100 exceeds the 20 generated or 300 real images; "
        "isc_splits=30 exceeds the 20 generated images"
    )):
        evaluator.evaluate(context(source, source.images, cache_dir, samples=20, real_split="train", real_samples=300,
                                   isc_splits=30, kid_subset_size=100))
    with pytest.raises(ValueError, match=re.escape(
        "metric 'fidelity-classifier' option samples=0 is invalid; must be an integer >= 1\n"
        "metric 'fidelity-classifier' option real_split='val' is invalid; must be one of held-out, test, train\n"
        "metric 'fidelity-classifier' option real_samples=2.5 is invalid; must be an integer >= 1 or null"
    )):
        evaluator.evaluate(context(source, source.images, cache_dir, samples=0, real_samples=2.5, real_split="val"))
    with pytest.raises(ValueError, match=re.escape(
            "metric 'fidelity-inception' option real_split='held-out' is invalid; must be one of test, train")):
        get_evaluator("fidelity-inception").evaluate(context(source, source.images, cache_dir, real_split="held-out"))


def test_evaluators_are_registered_with_directions():
    classifier_ev, inception_ev = get_evaluator("fidelity-classifier"), get_evaluator("fidelity-inception")
    assert {m.name: m.direction for m in classifier_ev.metrics} == {
        "fid_classifier": "lower", "is_classifier": "higher", "kid_classifier": "lower",
        "precision_classifier": "higher", "recall_classifier": "higher",
    }
    assert [m.name for m in inception_ev.metrics] == [
        "fid_inception", "is_inception", "kid_inception", "precision_inception", "recall_inception",
    ]
    assert all(m.description for m in (*classifier_ev.metrics, *inception_ev.metrics))
    # from what each dataset offers (nothing is read): the classifier needs labels known before reading
    def offers(name: str) -> DatasetOffers:
        return dataset_offers(name, {"path": "pets"} if name == "image-folder" else {})

    assert [classifier_ev.applies_to(offers(n)) for n in ("digits", "mnist", "cifar10")] == [True] * 3
    assert not classifier_ev.applies_to(offers("stacked-mnist"))
    assert not classifier_ev.applies_to(offers("image-folder"))
    assert [inception_ev.applies_to(offers(n)) for n in ("digits", "stacked-mnist", "image-folder")] == [True] * 3
    assert not classifier_ev.applies_to(offers("ring8")) and not inception_ev.applies_to(offers("ring8"))


def test_inception_weights_file_is_the_one_torch_fidelity_downloads():
    url = torch_fidelity().feature_extractor_inceptionv3.URL_INCEPTION_V3
    assert fidelity.INCEPTION_WEIGHTS_URL == url and url.endswith("/" + fidelity.INCEPTION_WEIGHTS_FILE)


# --- Inception, offline -----------------------------------------------------------------------------


def refuse_sampling(n: int) -> torch.Tensor:
    raise AssertionError("sampled before checking the weights")


def test_missing_inception_weights_message(monkeypatch, tmp_path):
    monkeypatch.delenv("BENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    ctx = EvalContext(sample=refuse_sampling, source=digits_8px(), device=torch.device("cpu"), cache_dir=tmp_path,
                      seed=0)
    with pytest.raises(fidelity.MissingWeightsError) as caught:
        get_evaluator("fidelity-inception").evaluate(ctx)
    assert str(caught.value) == (
        f"Inception weights file {WEIGHTS_FILE} not found. Download "
        f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE} on a machine with "
        f"network access, then either set the environment variable BENCH_INCEPTION_WEIGHTS=/path/to/{WEIGHTS_FILE} "
        f"(or the metric option inception_weights of fidelity-inception), or put the file at "
        f"{tmp_path / 'hub' / 'checkpoints' / WEIGHTS_FILE}."
    )
    # a path that is given but absent is named, with where it came from
    monkeypatch.setenv("BENCH_INCEPTION_WEIGHTS", str(tmp_path / "nowhere.pth"))
    with pytest.raises(fidelity.MissingWeightsError, match=re.escape(
        f"Inception weights file {tmp_path / 'nowhere.pth'} (from $BENCH_INCEPTION_WEIGHTS) does not exist."
    )):
        get_evaluator("fidelity-inception").evaluate(ctx)
    # the torch hub location torch-fidelity downloads to is used when present
    hub_file = tmp_path / "hub" / "checkpoints" / WEIGHTS_FILE
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(b"")
    monkeypatch.delenv("BENCH_INCEPTION_WEIGHTS")
    assert fidelity.inception_weights_path({}) == hub_file


@pytest.mark.slow
def test_inception_offline_cache_and_weights_key(tmp_path, monkeypatch):
    """Two grey 8x8 real and two generated images; Inception on CPU runs at a few images per second."""
    weights_a = fidelity.write_random_inception_weights(tmp_path / "a" / WEIGHTS_FILE, seed=0)
    weights_b = fidelity.write_random_inception_weights(tmp_path / "b" / WEIGHTS_FILE, seed=1)
    assert sha256_file(weights_a) != sha256_file(weights_b)
    source = digits_8px()
    source = LabelledImages("digits", source.images[:2], source.labels[:2], 10)
    fake = distorted(source.images)
    counter = Counter(monkeypatch, torch_fidelity().FeatureExtractorInceptionV3)
    options = {"samples": 2, "real_samples": 2, "isc_splits": 1, "kid_subsets": 1, "kid_subset_size": 2,
               "prc_neighborhood": 1, "batch_size": 2}
    evaluator = get_evaluator("fidelity-inception")

    first = evaluator.evaluate(context(source, fake, tmp_path / "cache", inception_weights=str(weights_a), **options))
    assert counter.batches == [(torch.uint8, (2, 3, 8, 8))] * 2  # generated then real: grey repeated to RGB
    assert counter.images() == 4
    assert set(first) == {"fid_inception", "is_inception", "kid_inception", "precision_inception",
                          "recall_inception"}
    assert all(math.isfinite(v) for v in first.values()) and first["fid_inception"] > 0

    # FID's 2048x2048 eigendecomposition takes ~6 s on this CPU and is tested on the classifier path:
    # from here on the Frechet distance is replaced by the distance between the means it is given
    tf_metrics = torch_fidelity().metrics
    monkeypatch.setattr(tf_metrics, "fid_statistics_to_metric", lambda stats_1, stats_2, verbose: {
        torch_fidelity().KEY_METRIC_FID: float(np.abs(stats_1["mu"] - stats_2["mu"]).sum())
    })
    again = evaluator.evaluate(context(source, fake, tmp_path / "cache", inception_weights=str(weights_a), **options))
    assert counter.images() == 2  # the real images' features come from the cache
    assert {k: v for k, v in again.items() if k != "fid_inception"} == {
        k: v for k, v in first.items() if k != "fid_inception"
    }

    # other weights (here through the environment variable): the cached real features do not apply
    monkeypatch.setenv("BENCH_INCEPTION_WEIGHTS", str(weights_b))
    other = evaluator.evaluate(context(source, fake, tmp_path / "cache", **options))
    assert counter.images() == 4
    assert other["fid_inception"] != again["fid_inception"]
