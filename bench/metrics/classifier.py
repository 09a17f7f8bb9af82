"""A small CNN classifier per labelled image dataset: a fast feature extractor and a mode counter.

`get_classifier(source, ...)` trains the classifier on the source's labelled train split, measures
its accuracy on the held-out split, and caches both on disk. The cache key (`classifier_key`) holds
everything the stored weights and accuracy depend on: the dataset's name and shape (C, H, W), the
SHA-256 of every image and label of both splits (`source_fingerprint`), the training seed, and the
training recipe (`classifier_recipe`: architecture, optimiser settings, epoch rule and the source
text of the training code, so that an edit to any of them trains afresh, as joblib.Memory
invalidates a cached call when its function's code changes). The same file is what torch-fidelity
loads as the `bench-classifier` feature extractor: FID, KID and precision/recall are computed in its
penultimate-feature space (`features`, 128-d) and the Inception Score on its `logits`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.store import atomic_write, atomic_write_json
from bench.vision import torch_fidelity

FEATURE_EXTRACTOR_NAME = "bench-classifier"
FEATURE_DIM = 128
CACHE_FORMAT = 2

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
    """How the classifier is trained: `epochs` passes over the train split in batches of `batch_size`,
    Adam at `lr` (one-cycle schedule) with `weight_decay`, each batch shifted by up to `max_shift` px."""

    epochs: int
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_shift: int = 2


# the epoch rule: about STEPS_TARGET optimiser steps, clamped to [MIN_EPOCHS, MAX_EPOCHS] epochs
STEPS_TARGET = 800
MIN_EPOCHS = 2
MAX_EPOCHS = 30


def training_plan(num_train: int) -> TrainingPlan:
    """About 800 optimiser steps (at most 30 epochs) for small sets such as digits and the 5k MNIST subset;
    2 epochs for large ones (MNIST, CIFAR-10)."""
    steps_per_epoch = max(1, num_train // TrainingPlan(epochs=1).batch_size)
    return TrainingPlan(epochs=max(MIN_EPOCHS, min(MAX_EPOCHS, STEPS_TARGET // steps_per_epoch)))


# id(tensor) -> (a weak reference to it, its version counter when hashed, the digest)
_tensor_sha_memo: dict[int, tuple[weakref.ref[Tensor], int, str]] = {}


def tensor_sha256(tensor: Tensor) -> str:
    """SHA-256 (hex) of a tensor's dtype, shape and the bytes of every element (C order, on the CPU).

    Exact: any changed element, label or shape changes it. Measured on one core with SHA extensions:
    0.04-0.05 s for 60,000 x 28 x 28 uint8, 0.12-0.17 s for 50,000 x 3 x 32 x 32 uint8, 0.14-0.19 s and
    0.5-0.6 s for the same as float32 (MNIST's and CIFAR-10's train splits as bench.data holds them).
    Remembered per tensor object within the process, until torch's version counter says the tensor was
    modified in place: a job's dataset is hashed once, not at every evaluation.
    """
    remembered = _tensor_sha_memo.get(id(tensor))
    if remembered is not None and remembered[0]() is tensor and remembered[1] == tensor._version:
        return remembered[2]
    version = tensor._version
    data = tensor.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().data)
    key = id(tensor)

    def forget(reference: weakref.ref[Tensor]) -> None:
        if _tensor_sha_memo.get(key, (None,))[0] is reference:
            del _tensor_sha_memo[key]

    _tensor_sha_memo[key] = (weakref.ref(tensor, forget), version, digest.hexdigest())
    return _tensor_sha_memo[key][2]


def source_fingerprint(source: Any) -> str:
    """SHA-256 (hex) over every image and label of a source's train split and of its test split.

    A cache keyed by it is not fooled by two sources of one name whose options (MNIST's source,
    Stacked MNIST's reference set) or content differ, by even one pixel or one label. About 0.2 s for
    MNIST (70,000 float32 images), 0.7 s for CIFAR-10 (60,000), a few ms for digits.
    """
    parts = []
    for split in (source, getattr(source, "test", None)):
        if split is None:
            parts.append("no-split")
            continue
        parts += [tensor_sha256(split.images), tensor_sha256(split.labels)]
    return hashlib.sha256(" ".join(parts).encode()).hexdigest()


def dataset_key(source: Any) -> dict[str, Any]:
    """The JSON-able identity of a source's data: name, shape (C, H, W) and full-content fingerprint.

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


def classifier_key(source: Any, *, seed: int) -> dict[str, Any]:
    """Everything a trained classifier's weights and held-out accuracy depend on, JSON-able: the
    dataset key (full content of both splits), the class count, the seed and the training recipe."""
    return {"recipe": classifier_recipe(), "seed": seed, "num_classes": int(source.num_classes),
            **dataset_key(source)}


def classifier_paths(source: Any, *, cache_dir: Path, seed: int) -> tuple[Path, Path]:
    """(weights file, accuracy JSON beside it) for `source` trained with `seed`: named
    `<dataset>-<H>px-seed<seed>-<16 hex of the SHA-256 of classifier_key>`."""
    key = classifier_key(source, seed=seed)
    key_hash = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = f"{source.name}-{source.shape[-1]}px-seed{seed}-{key_hash}"
    folder = Path(cache_dir) / "classifiers"
    return folder / f"{stem}.pt", folder / f"{stem}.json"


def _num_held_out(num_images: int) -> int:
    return max(1, round(num_images * HOLDOUT_FRACTION))


def _splits(source: Any, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, test images, test labels), holding out part of train if no test split."""
    images, labels = source.images.detach().cpu().float(), source.labels.detach().cpu().long()
    test = getattr(source, "test", None)
    if test is not None:
        return images, labels, test.images.detach().cpu().float(), test.labels.detach().cpu().long()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    num_test = _num_held_out(len(images))
    test_idx, train_idx = order[:num_test], order[num_test:]
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def held_out_split(source: Any, *, seed: int) -> tuple[Tensor, Tensor]:
    """(images (n, C, H, W), labels (n,)) the classifier trained with `seed` did not train on and is
    scored on: the source's test split, or the sixth of its train split held out when it has none."""
    test = getattr(source, "test", None)
    if test is not None:
        return test.images, test.labels
    _, _, images, labels = _splits(source, seed)
    return images, labels


def _shift(batch: Tensor, generator: torch.Generator, max_shift: int) -> Tensor:
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
            batch = _shift(train_x[idx], generator, plan.max_shift).to(device)
            loss = F.cross_entropy(model(batch), train_y[idx].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval().requires_grad_(False)
    return model, accuracy(model, test_x, test_y)


# the code that decides a trained classifier's weights and accuracy; its source text is part of the recipe
_TRAINING_CODE = (SmallCNN, TrainingPlan, training_plan, _num_held_out, _splits, _shift, accuracy, train_classifier)


@functools.cache
def _training_code_sha256() -> str:
    # read once per process: the code that runs is the code that was imported
    return hashlib.sha256("\n".join(inspect.getsource(part) for part in _TRAINING_CODE).encode()).hexdigest()


def classifier_recipe() -> dict[str, Any]:
    """The classifier's training recipe apart from the data and the seed, JSON-able: the cache format,
    the architecture (SmallCNN's layers, printed for 1 channel and 2 classes: the data set both), the
    optimiser settings (TrainingPlan's defaults), the epoch rule, the held-out fraction, and the
    SHA-256 of the source text of the training code (`_TRAINING_CODE`)."""
    plan = asdict(TrainingPlan(epochs=0))
    del plan["epochs"]
    return {
        "format": CACHE_FORMAT,
        "architecture": repr(SmallCNN(1, 2)),
        "plan": plan,
        "epochs": {"steps_target": STEPS_TARGET, "min": MIN_EPOCHS, "max": MAX_EPOCHS},
        "holdout_fraction": HOLDOUT_FRACTION,
        "code_sha256": _training_code_sha256(),
    }


def classifier_recipe_hash() -> str:
    """12 hex digits of the SHA-256 of `classifier_recipe()`: names the recipe in reports."""
    return hashlib.sha256(json.dumps(classifier_recipe(), sort_keys=True).encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=8)
def _stored_classifier(path: str, size: int, mtime_ns: int) -> dict[str, Any]:
    # one read per file version per process; callers copy the weights into a module of their own
    return torch.load(path, map_location="cpu", weights_only=True)


def load_classifier(path: Path, *, device: torch.device | str = "cpu") -> SmallCNN:
    """The SmallCNN stored at `path` by `get_classifier`, in eval mode without gradients: a new module
    each call (the file is read once per process per file version)."""
    stat = os.stat(path)
    stored = _stored_classifier(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    model = SmallCNN(stored["in_channels"], stored["num_classes"])
    model.load_state_dict(stored["state_dict"])
    return model.to(device).eval().requires_grad_(False)


def classifier_file(source: Any, *, cache_dir: Path, seed: int, device: torch.device | str = "cpu") -> Path:
    """Path of the classifier file for (`source`, `seed`) under `cache_dir`, training it first if missing.

    The file holds the SmallCNN's state; a JSON beside it holds its held-out accuracy, its
    `classifier_key` and the file's SHA-256.
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
    info = {"accuracy": test_accuracy, **classifier_key(source, seed=seed), "weights_sha256": sha256_file(weights_path)}
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

    # torch-fidelity ships no type information and is imported lazily (bench.vision)
    class ClassifierFeatureExtractor(tf.FeatureExtractorBase):  # type: ignore[name-defined]
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
