"""A small CNN classifier per labelled image dataset: a fast feature extractor and a mode counter.

`get_classifier(source, ...)` trains the classifier on the source's labelled train split, measures
its accuracy on the held-out split, and caches both on disk, keyed by the dataset (name, shape
(C, H, W), so the resolution, and a fingerprint of its content, which stands for its options) and
the training seed. The same file is what torch-fidelity loads as the `bench-classifier` feature
extractor: FID, KID and precision/recall are computed in its penultimate-feature space
(`features`, 128-d) and the Inception Score on its `logits`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.store import atomic_write, atomic_write_json
from bench.vision import torch_fidelity

FEATURE_EXTRACTOR_NAME = "bench-classifier"
FEATURE_DIM = 128
CACHE_FORMAT = 1

# used only when a source has no held-out split: this fraction of the train split is held out
HOLDOUT_FRACTION = 1 / 6


@dataclass(frozen=True)
class LabelledImages:
    """A labelled image source with the attributes bench.data image sources have.

    `images`: (N, C, H, W) float32 in [-1, 1]; `labels`: (N,) int64 in [0, num_classes);
    `test`: a held-out split (anything with `images` and `labels`, e.g. bench.data's ImageSplit), or None.
    """

    name: str
    images: Tensor
    labels: Tensor
    num_classes: int
    test: Any = None
    kind: str = "image"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


class SmallCNN(nn.Module):
    """Three conv blocks (16, 32, 128 channels; the first two halve H and W), global average pooling to
    128 features (the penultimate layer, as Inception's pool3), and a linear head.

    Input (N, C, H, W) float in [-1, 1], any H, W >= 4. `features(x)` is (N, 128), non-negative and
    of order 1 (batch-normalised, then ReLU, then averaged); `forward(x)` the logits (N, num_classes).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
            *block(in_channels, 16),
            nn.MaxPool2d(2),
            *block(16, 32),
            nn.MaxPool2d(2),
            *block(32, FEATURE_DIM),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) in [-1, 1] -> penultimate features (N, 128)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) in [-1, 1] -> logits (N, num_classes)."""
        return self.head(self.body(x))


@dataclass(frozen=True)
class TrainingPlan:
    """How the classifier is trained: `epochs` passes over the train split, Adam at `lr`."""

    epochs: int
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4


def training_plan(num_train: int) -> TrainingPlan:
    """About 800 optimiser steps (at most 30 epochs) for small sets such as digits and the 5k MNIST subset;
    2 epochs for large ones (MNIST, CIFAR-10)."""
    steps_per_epoch = max(1, num_train // 64)
    return TrainingPlan(epochs=max(2, min(30, 800 // steps_per_epoch)))


def source_fingerprint(source: Any) -> str:
    """SHA-256 (hex) over the labels and up to 64 evenly spaced images of a source and its test split.

    Cheap (a few milliseconds) and sensitive to which data a source holds: a cache keyed by it is not
    fooled by two sources of one name whose options (MNIST's source, Stacked MNIST's reference set)
    made their content differ.
    """
    digest = hashlib.sha256()
    for split in (source, getattr(source, "test", None)):
        if split is None:
            digest.update(b"no-split")
            continue
        images = split.images.detach().to("cpu", torch.float32).contiguous()
        picks = torch.linspace(0, len(images) - 1, min(64, len(images))).long()
        digest.update(str(tuple(images.shape)).encode())
        digest.update(images[picks].numpy().tobytes())
        digest.update(split.labels.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def dataset_key(source: Any) -> dict[str, Any]:
    """The JSON-able identity of a source's data: name, shape (C, H, W) and content fingerprint.

    Sources do not carry their options; every option that changes the data (resolution, MNIST's
    source, Stacked MNIST's reference size) changes the shape or the fingerprint instead.
    """
    return {"dataset": source.name, "shape": list(source.shape), "fingerprint": source_fingerprint(source)}


_sha_memo: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, remembered per (path, size, mtime) within the process."""
    stat = os.stat(path)
    memo_key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _sha_memo:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _sha_memo[memo_key] = digest.hexdigest()
    return _sha_memo[memo_key]


def classifier_paths(source: Any, *, cache_dir: Path, seed: int) -> tuple[Path, Path]:
    """(weights file, accuracy JSON beside it) for `source` trained with `seed`."""
    key = {"format": CACHE_FORMAT, "seed": seed, **dataset_key(source)}
    key_hash = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = f"{source.name}-{source.shape[-1]}px-seed{seed}-{key_hash}"
    folder = Path(cache_dir) / "classifiers"
    return folder / f"{stem}.pt", folder / f"{stem}.json"


def _splits(source: Any, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, test images, test labels), holding out part of train if no test split."""
    images, labels = source.images.detach().cpu().float(), source.labels.detach().cpu().long()
    test = getattr(source, "test", None)
    if test is not None:
        return images, labels, test.images.detach().cpu().float(), test.labels.detach().cpu().long()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    num_test = max(1, int(round(len(images) * HOLDOUT_FRACTION)))
    test_idx, train_idx = order[:num_test], order[num_test:]
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def _shift(batch: Tensor, generator: torch.Generator, max_shift: int = 2) -> Tensor:
    """Random translations by up to `max_shift` pixels (edge-padded), one per image."""
    n, _, h, w = batch.shape
    padded = F.pad(batch, (max_shift,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, batch.shape[1], h, w + 2 * max_shift)
    picked = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, batch.shape[1], h, w)
    return picked.gather(3, cols)


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int = 512) -> float:
    """Fraction of `images` (N, C, H, W) in [-1, 1] whose argmax logit equals `labels` (N,)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == labels[start : start + batch_size]).sum())
    return correct / len(images)


def train_classifier(source: Any, *, seed: int, device: torch.device | str = "cpu") -> tuple[SmallCNN, float]:
    """Train a SmallCNN on `source`'s train split; returns (model in eval mode, held-out accuracy in [0, 1])."""
    device = torch.device(device)
    train_x, train_y, test_x, test_y = _splits(source, seed)
    plan = training_plan(len(train_x))
    torch.manual_seed(seed)
    model = SmallCNN(source.shape[0], source.num_classes).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=plan.lr, weight_decay=plan.weight_decay)
    steps_per_epoch = max(1, len(train_x) // plan.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=plan.lr, total_steps=plan.epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(plan.epochs):
        order = torch.randperm(len(train_x), generator=generator)
        for step in range(steps_per_epoch):
            idx = order[step * plan.batch_size : (step + 1) * plan.batch_size]
            batch = _shift(train_x[idx], generator).to(device)
            loss = F.cross_entropy(model(batch), train_y[idx].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval().requires_grad_(False)
    return model, accuracy(model, test_x, test_y)


def load_classifier(path: Path, *, device: torch.device | str = "cpu") -> SmallCNN:
    """The SmallCNN stored at `path` by `get_classifier`, in eval mode without gradients."""
    stored = torch.load(path, map_location="cpu", weights_only=True)
    model = SmallCNN(stored["in_channels"], stored["num_classes"])
    model.load_state_dict(stored["state_dict"])
    return model.to(device).eval().requires_grad_(False)


def classifier_file(source: Any, *, cache_dir: Path, seed: int, device: torch.device | str = "cpu") -> Path:
    """Path of the classifier file for (`source`, `seed`) under `cache_dir`, training it first if missing.

    The file holds the SmallCNN's state; a JSON beside it holds its held-out accuracy, the dataset
    key and the file's SHA-256.
    """
    weights_path, info_path = classifier_paths(source, cache_dir=cache_dir, seed=seed)
    if weights_path.exists() and info_path.exists():
        return weights_path
    if source.num_classes < 2:
        raise ValueError(
            f"dataset {source.name!r} has {source.num_classes} class(es): a classifier needs labels of at least 2"
        )
    model, test_accuracy = train_classifier(source, seed=seed, device=device)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    stored = {"in_channels": source.shape[0], "num_classes": source.num_classes, "state_dict": state}
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(weights_path, lambda handle: torch.save(stored, handle), binary=True)
    info = {"accuracy": test_accuracy, "seed": seed, **dataset_key(source), "weights_sha256": sha256_file(weights_path)}
    atomic_write_json(info_path, info)
    return weights_path


def get_classifier(
    source: Any, *, cache_dir: Path, seed: int, device: torch.device | str = "cpu"
) -> tuple[SmallCNN, float]:
    """The classifier for `source` (trained once, then loaded from `cache_dir`) and its test accuracy.

    `source` is a labelled image source (images (N, C, H, W) in [-1, 1], labels (N,), num_classes,
    optional `test` split; without one, a sixth of the train split is held out). Returns (model on
    `device` in eval mode without gradients, held-out accuracy in [0, 1]).
    """
    weights_path = classifier_file(source, cache_dir=cache_dir, seed=seed, device=device)
    info = json.loads(weights_path.with_suffix(".json").read_text())
    return load_classifier(weights_path, device=device), float(info["accuracy"])


def images_to_uint8(images: Tensor) -> Tensor:
    """(N, C, H, W) float in [-1, 1] -> (N, C, H, W) uint8 in [0, 255] (rounded, clamped)."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def uint8_to_images(images: Tensor) -> Tensor:
    """(N, C, H, W) uint8 in [0, 255] -> (N, C, H, W) float32 in [-1, 1]."""
    return images.float() / 127.5 - 1


@functools.cache
def feature_extractor_class() -> type:
    """`ClassifierFeatureExtractor`, registered with torch-fidelity as `bench-classifier` on first call.

    Built on first use so that importing bench.metrics does not import torch-fidelity (and
    torchvision): only computing the metrics does.
    """
    tf = torch_fidelity()

    class ClassifierFeatureExtractor(tf.FeatureExtractorBase):
        """torch-fidelity feature extractor over a cached bench classifier.

        Input: (N, C, H, W) uint8 images (torch-fidelity's convention), C, H and W as the classifier
        was trained on. Features: `features` (N, 128) float32, the penultimate layer (FID, KID, PR);
        `logits` (N, num_classes) float32 (Inception Score). `feature_extractor_weights_path` is the
        classifier file written by `classifier_file` / `get_classifier`.
        """

        def __init__(
            self,
            name: str,
            features_list: list[str],
            feature_extractor_weights_path: str | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(name, features_list)
            if feature_extractor_weights_path is None:
                raise ValueError(
                    f"feature extractor {name!r} needs feature_extractor_weights_path: the classifier file "
                    "written by bench.metrics.classifier.classifier_file"
                )
            self.classifier = load_classifier(Path(feature_extractor_weights_path))

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("features", "logits")

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        @staticmethod
        def get_dummy_input_for_compile() -> Tensor:
            raise NotImplementedError("the classifier feature extractor is not compiled")

        def forward(self, images: Tensor) -> tuple[Tensor, ...]:
            channels = self.classifier.in_channels
            if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != channels:
                raise ValueError(
                    f"{self.name} expects uint8 images (N, {channels}, H, W); got {images.dtype} {tuple(images.shape)}"
                )
            features = self.classifier.features(uint8_to_images(images))
            out = {"features": features, "logits": self.classifier.head(features)}
            return tuple(out[name].float() for name in self.features_list)

    tf.register_feature_extractor(FEATURE_EXTRACTOR_NAME, ClassifierFeatureExtractor)
    return ClassifierFeatureExtractor
