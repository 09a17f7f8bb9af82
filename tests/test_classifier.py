"""The dataset classifier: shapes, uint8 conversion, training + disk cache (keyed by every image and
label and by the training recipe), its torch-fidelity extractor."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path

import pytest
import torch
from conftest import digits_8px
from torch.testing import assert_close

from bench.metrics import classifier as classifier_lib
from bench.metrics.classifier import (
    FEATURE_EXTRACTOR_NAME,
    LabelledImages,
    SmallCNN,
    classifier_file,
    classifier_paths,
    classifier_recipe,
    feature_extractor_class,
    get_classifier,
    held_out_split,
    images_to_uint8,
    tensor_sha256,
    uint8_to_images,
)
from bench.vision import torch_fidelity


@pytest.fixture(scope="module")
def trained(shared_cache: Path) -> tuple[LabelledImages, Path, SmallCNN, float]:
    source = digits_8px()
    cache_dir = shared_cache
    model, accuracy = get_classifier(source, cache_dir=cache_dir, seed=0, device="cpu")
    return source, cache_dir, model, accuracy


def test_small_cnn_shapes():
    grey = SmallCNN(1, 10)
    assert grey.features(torch.zeros(5, 1, 32, 32)).shape == (5, 128)
    assert grey(torch.zeros(5, 1, 32, 32)).shape == (5, 10)
    colour = SmallCNN(3, 1000)
    assert colour(torch.zeros(2, 3, 28, 28)).shape == (2, 1000)


def test_uint8_conversion_values():
    images = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -3.0]).view(1, 1, 1, 7)
    # (x + 1) * 127.5 = 0, 63.75, 127.5, 191.25, 255, 318.75, -255 -> rounded half to even, clamped
    assert images_to_uint8(images).flatten().tolist() == [0, 64, 128, 191, 255, 255, 0]
    assert_close(uint8_to_images(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([-1.0, 1.0]))


def test_trained_classifier_is_accurate_and_cached(trained, monkeypatch):
    source, cache_dir, model, accuracy = trained
    assert accuracy >= 0.9  # 8x8 digits, 1,500 training images; measured ~0.95-0.97
    _, info_path = classifier_paths(source, cache_dir=cache_dir, seed=0)
    info = json.loads(info_path.read_text())
    assert info["accuracy"] == accuracy and info["dataset"] == "digits" and info["shape"] == [1, 8, 8]
    # the held-out accuracy is what the stored model scores on the test split
    predictions = model(source.test.images).argmax(1)
    assert_close((predictions == source.test.labels).double().mean().item(), accuracy)

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier was trained again")

    monkeypatch.setattr(classifier_lib, "train_classifier", no_training)
    again, again_accuracy = get_classifier(source, cache_dir=cache_dir, seed=0, device="cpu")
    assert again_accuracy == accuracy
    # the same content in other tensors is the same classifier
    copy = LabelledImages("digits", source.images.clone(), source.labels.clone(), 10,
                          test=LabelledImages("digits", source.test.images.clone(), source.test.labels.clone(), 10))
    assert get_classifier(copy, cache_dir=cache_dir, seed=0)[1] == accuracy
    assert info["recipe"] == classifier_recipe() and info["seed"] == 0 and info["num_classes"] == 10
    assert info["recipe"]["plan"] == {"batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4, "max_shift": 2}
    assert_close(again(source.test.images[:16]), model(source.test.images[:16]))
    assert not again.training and not any(p.requires_grad for p in again.parameters())


def test_cache_key_follows_seed_content_and_resolution(trained):
    source, cache_dir, _, _ = trained
    path = classifier_paths(source, cache_dir=cache_dir, seed=0)[0]
    assert classifier_paths(source, cache_dir=cache_dir, seed=1)[0] != path
    changed = LabelledImages("digits", source.images.flip(-1), source.labels, 10, test=source.test)
    assert classifier_paths(changed, cache_dir=cache_dir, seed=0)[0] != path
    resized = torch.nn.functional.interpolate(source.images, size=16)
    bigger = LabelledImages("digits", resized, source.labels, 10)
    assert classifier_paths(bigger, cache_dir=cache_dir, seed=0)[0].name.startswith("digits-16px-seed0-")


def test_tensor_sha256_is_the_hash_of_dtype_shape_and_bytes():
    pixels = torch.tensor([[1, 2], [3, 4]], dtype=torch.uint8)
    assert tensor_sha256(pixels) == hashlib.sha256(b"torch.uint8(2, 2)" + bytes([1, 2, 3, 4])).hexdigest()
    # a transposed view hashes as its C-order copy
    assert tensor_sha256(pixels.t()) == hashlib.sha256(b"torch.uint8(2, 2)" + bytes([1, 3, 2, 4])).hexdigest()
    values = torch.tensor([1.0, -2.0])
    assert tensor_sha256(values) == hashlib.sha256(b"torch.float32(2,)" + struct.pack("<2f", 1.0, -2.0)).hexdigest()
    assert tensor_sha256(values.double()) != tensor_sha256(values)


def test_cache_key_covers_every_image_label_and_the_recipe(trained, monkeypatch):
    source, cache_dir, _, _ = trained

    def path(images=source.images, labels=source.labels, test=source.test, seed=0):
        return classifier_paths(LabelledImages("digits", images, labels, 10, test=test), cache_dir=cache_dir,
                                seed=seed)[0]

    reference = path()
    assert path(images=source.images.clone(), labels=source.labels.clone()) == reference
    # 336 of the first 400 images mirrored: all but the 64 evenly spaced ones a sampled fingerprint reads
    sampled = set(torch.linspace(0, 399, 64).long().tolist())
    changed_index = torch.tensor([i for i in range(400) if i not in sampled])
    images = source.images.clone()
    images[changed_index] = images[changed_index].flip(-1)
    one_pixel = source.images.clone()
    one_pixel[1499, 0, 4, 4] += 0.5
    swapped = source.labels.clone()
    swapped[[0, 1]] = source.labels[[1, 0]]
    assert source.labels[0] != source.labels[1]
    test_swapped = source.test.labels.clone()
    test_swapped[[0, 1]] = source.test.labels[[1, 0]]
    assert source.test.labels[0] != source.test.labels[1]
    changed_test = LabelledImages("digits", source.test.images, test_swapped, 10)
    paths = [reference, path(images=images), path(images=one_pixel), path(labels=swapped), path(test=changed_test),
             path(test=None), path(seed=1)]
    assert len(set(paths)) == len(paths)
    # the recipe: the epoch rule, the architecture, the training code
    monkeypatch.setattr(classifier_lib, "STEPS_TARGET", 400)
    assert path() != reference
    monkeypatch.undo()
    monkeypatch.setattr(classifier_lib, "FEATURE_DIM", 64)
    assert path() != reference
    monkeypatch.undo()
    monkeypatch.setattr(classifier_lib, "_training_code_sha256", lambda: "0" * 64)
    assert path() != reference
    monkeypatch.undo()
    assert path() == reference


def test_held_out_split_is_what_the_classifier_does_not_train_on():
    source = digits_8px()
    images, labels = held_out_split(source, seed=0)
    assert images is source.test.images and labels is source.test.labels
    no_test = LabelledImages("digits", source.images[:120], source.labels[:120], 10)
    images, labels = held_out_split(no_test, seed=3)
    train_x, _, test_x, test_y = classifier_lib._splits(no_test, 3)
    assert images.shape == (20, 1, 8, 8)  # a sixth of 120
    assert torch.equal(images, test_x) and torch.equal(labels, test_y)
    # none of them is among the images trained on
    assert not (torch.cdist(images.flatten(1), train_x.flatten(1)) == 0).any(1).any()


def test_no_test_split_holds_out_a_sixth(monkeypatch, tmp_path):
    source = digits_8px()
    source = LabelledImages("digits", source.images[:120], source.labels[:120], 10)
    seen = {}

    def fake_training(source, *, seed, device):
        train_x, _, test_x, _ = classifier_lib._splits(source, seed)
        seen.update(train=len(train_x), test=len(test_x))
        return SmallCNN(1, 10).eval(), 0.5

    monkeypatch.setattr(classifier_lib, "train_classifier", fake_training)
    _, accuracy = get_classifier(source, cache_dir=tmp_path, seed=0)
    assert seen == {"train": 100, "test": 20} and accuracy == 0.5


def test_registered_with_torch_fidelity_and_matches_the_model(trained):
    source, cache_dir, model, _ = trained
    tf = torch_fidelity()
    extractor_class = feature_extractor_class()
    assert feature_extractor_class() is extractor_class  # built and registered once
    assert tf.registry.FEATURE_EXTRACTORS_REGISTRY[FEATURE_EXTRACTOR_NAME] is extractor_class
    weights = classifier_file(source, cache_dir=cache_dir, seed=0)
    extractor = tf.utils.create_feature_extractor(
        FEATURE_EXTRACTOR_NAME, ["features", "logits"], cuda=False, feature_extractor_weights_path=str(weights),
        verbose=False,
    )
    pixels = images_to_uint8(source.test.images[:8])
    features, logits = extractor(pixels)
    quantised = uint8_to_images(pixels)
    assert_close(features, model.features(quantised))
    assert_close(logits, model(quantised))
    assert features.shape == (8, 128) and bool((features >= 0).all())
    with pytest.raises(ValueError, match=r"expects uint8 images \(N, 1, H, W\); got torch.float32 \(8, 1, 8, 8\)"):
        extractor(quantised)


def test_importing_the_metrics_does_not_import_torch_fidelity():
    import subprocess
    import sys

    code = "import sys, bench.metrics.fidelity, bench.metrics.stacked; print('torch_fidelity' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_a_single_class_dataset_is_refused(tmp_path):
    images = torch.zeros(10, 1, 8, 8)
    source = LabelledImages("image-folder", images, torch.zeros(10, dtype=torch.long), 1)
    message = "dataset 'image-folder' has 1 class(es): a classifier needs labels of at least 2"
    with pytest.raises(ValueError, match=re.escape(message)):
        get_classifier(source, cache_dir=tmp_path, seed=0)


def test_extractor_without_weights_says_what_it_needs():
    with pytest.raises(ValueError, match="needs feature_extractor_weights_path: the classifier file"):
        feature_extractor_class()(FEATURE_EXTRACTOR_NAME, ["features"])


def test_bench_data_digits_integration(tmp_path, shared_cache):
    """The classifier on bench.data's digits (8 px here for speed), cached by content."""
    from bench.data import load_dataset

    source = load_dataset("digits", root=tmp_path, options={"resolution": 8})
    model, accuracy = get_classifier(source, cache_dir=shared_cache, seed=0)
    assert accuracy >= 0.9
    assert model(source.test.images[:4]).shape == (4, 10)
    weights_path, _ = classifier_paths(source, cache_dir=shared_cache, seed=0)
    assert weights_path.is_file() and weights_path.name.startswith("digits-8px-seed0-")
