"""FID, Inception Score, KID and precision/recall through torch-fidelity, in two feature spaces.

`fidelity-classifier` computes them in the penultimate-feature space (and IS on the logits) of the
small classifier bench trains per dataset (bench.metrics.classifier); `fidelity-inception` in the
Inception-v3 space torch-fidelity reproduces from the TF 2015 graph (pool3 2048-d for FID, KID and
PR; unbiased logits for IS). All metric mathematics is torch-fidelity's; bench supplies the inputs
in memory (generated samples are never written to disk) and the cache key of the real-data features:
torch-fidelity's own key is the input name and the extractor name, which ignores the weights file
and the content of the images, so bench names the real input after `real_cache_name`'s key (the
SHA-256 of every real pixel and label used, the extractor, its weights and recipe, torch-fidelity's
version) and lets torch-fidelity cache its features under that name.

Sample counts (each evaluator's own; a suite's `metric_options` for that evaluator override them):

- `fidelity-inception`: 50,000 generated images against every image of the CIFAR-10-style train
  split, the protocol of the relativistic-GAN code (Jolicoeur-Martineau 2018, `GAN_losses_iter.py`,
  `--gen_extra_images` default 50000, "for CIFAR-10 we use 50k, but most people use 10k", scored
  with TTUR's `fid_stats_cifar10_train.npz`, the statistics of all 50,000 training images;
  /work/shared/protocols.md section 4), which the CIFAR-10 suite reproduces. FID depends on the
  number of samples (Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where to
  find them", CVPR 2020), so a value is comparable only with values at the same count: the default
  is the count of the numbers reproduced. Lucic et al. (2018, compare_gan `eval_gan_lib.py`) score
  10,000 generated against the 10,000 test images: `{samples: 10000, real_split: test}`.
- `fidelity-classifier`: 10,000 generated images against every held-out image (the test split, or
  the sixth of the train split the classifier holds out when there is none). No published protocol
  uses this CPU-proxy space. 10,000 is the minimum TTUR's README recommends for FID and Lucic et
  al.'s count; with 128-d features it is far above the dimension a full-rank covariance needs, and
  costs about 6 s per evaluation on one CPU core. The reference is held out because the classifier
  was trained on the train split: its features of images it has fitted are not those of images it
  has not seen, which generated images are (digits at 32 px, 359 images a side: FID 0.39-0.66
  between train and test features, 0.23-0.34 between two sets of train features).

Options (EvalContext.options, declared in CLASSIFIER_OPTIONS and INCEPTION_OPTIONS; unknown keys and
bad values are refused): `samples` generated images; `real_samples` real images at most (None: all of
the split; a fixed subset, seed 0, when smaller); `real_split` "train" or "test" (and "held-out" for
the classifier); `batch_size`; `isc_splits` (10); `kid_subsets` (100) and `kid_subset_size` (None:
min(1000, generated, real)); `prc_neighborhood` k (3) and `prc_batch_size`; `classifier_seed` (0, the
same classifier for every job) or `inception_weights` (a path).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from bench.metrics import EvalContext, Evaluator, MetricInfo, register_evaluator
from bench.metrics.classifier import (
    FEATURE_DIM,
    classifier_file,
    classifier_recipe_hash,
    feature_extractor_class,
    held_out_split,
    images_to_uint8,
    sha256_file,
    tensor_sha256,
)
from bench.metrics.classifier import (
    FEATURE_EXTRACTOR_NAME as CLASSIFIER_EXTRACTOR,
)
from bench.metrics.provenance import count, data_shape, image_size, register_provenance
from bench.registry import Option
from bench.spec import JobSpec
from bench.store import atomic_write_json
from bench.vision import torch_fidelity

INCEPTION_EXTRACTOR = "inception-v3-compat"
# the file torch-fidelity 0.4 downloads (its URL_INCEPTION_V3; a test checks they agree)
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"
INCEPTION_WEIGHTS_ENV = "BENCH_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS_OPTION = "inception_weights"

KID_SUBSET_SIZE = 1000  # Binkowski et al.'s subset size, used when both sets have that many images

# real images are drawn with this seed (not the job's), so every job of a dataset shares one cache entry
REAL_SUBSET_SEED = 0
# names the layout of real_cache_name's key; a change of what the key holds changes it
REAL_CACHE_FORMAT = 2


class MissingWeightsError(FileNotFoundError):
    """A feature extractor's weights file is not on this machine; the message says where to put it."""


class ImageTensorDataset(Dataset):
    """Images held in memory, served as torch-fidelity expects them: uint8 (C, H, W) per item.

    `images`: (N, C, H, W) float in [-1, 1]. With `rgb=True` single-channel images are repeated to
    three channels (Inception's input); torch-fidelity's extractor does any resizing.
    """

    def __init__(self, images: Tensor, *, rgb: bool) -> None:
        if images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}")
        if rgb and images.shape[1] not in (1, 3):
            raise ValueError(f"Inception needs 1 or 3 channels; got {images.shape[1]}")
        self.pixels = images_to_uint8(images.detach().cpu())  # (N, C, H, W) uint8, a quarter of the memory
        self.rgb = rgb

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> Tensor:
        image = self.pixels[index]
        if self.rgb and image.shape[0] == 1:
            image = image.expand(3, -1, -1).contiguous()
        return image


def inception_weights_path(options: Mapping[str, Any]) -> Path:
    """The Inception weights file: `options["inception_weights"]`, else $BENCH_INCEPTION_WEIGHTS, else
    torch-fidelity's download location under the torch hub directory. Never downloads.

    Raises MissingWeightsError naming the file torch-fidelity expects and every place it may go.
    """
    hub_path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    where = (
        f"Download {INCEPTION_WEIGHTS_URL} on a machine with network access, then either set the "
        f"environment variable {INCEPTION_WEIGHTS_ENV}=/path/to/{INCEPTION_WEIGHTS_FILE} (or the metric "
        f"option {INCEPTION_WEIGHTS_OPTION} of fidelity-inception), or put the file at {hub_path}"
    )
    for origin, value in (
        (f"option {INCEPTION_WEIGHTS_OPTION}", options.get(INCEPTION_WEIGHTS_OPTION)),
        (f"${INCEPTION_WEIGHTS_ENV}", os.environ.get(INCEPTION_WEIGHTS_ENV)),
    ):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise MissingWeightsError(f"Inception weights file {path} (from {origin}) does not exist. {where}.")
            return path
    if hub_path.is_file():
        return hub_path
    raise MissingWeightsError(f"Inception weights file {INCEPTION_WEIGHTS_FILE} not found. {where}.")


def write_random_inception_weights(path: Path, *, seed: int) -> Path:
    """Write a randomly initialised Inception-v3 state_dict in torch-fidelity's format to `path`.

    Same architecture and cost as the real weights, meaningless features: for offline tests and
    timing. Convolutions get He-normal weights so activations keep their scale through the network.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    # torch-fidelity ships no type information and is imported lazily (bench.vision)
    class _Unloaded(torch_fidelity().FeatureExtractorInceptionV3):  # type: ignore[misc]
        def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:  # keeps the random init
            return None

    empty = path.with_name(path.name + ".empty")
    torch.save({}, empty)
    try:
        torch.manual_seed(seed)
        model = _Unloaded("random-inception", ["2048"], feature_extractor_weights_path=str(empty))
    finally:
        empty.unlink()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.nn.init.normal_(model.fc.weight, std=0.01)
    torch.save(model.state_dict(), path)
    return path


def torch_fidelity_version() -> str:
    """The installed torch-fidelity's version, from its package metadata (torch-fidelity is not imported)."""
    return importlib.metadata.version("torch-fidelity")


def real_cache_name(
    source: Any,
    *,
    split: str,
    pixels: Tensor,
    labels: Tensor,
    rgb: bool,
    extractor: str,
    weights_file: Path,
    extractor_recipe: str | None,
) -> tuple[str, dict[str, Any]]:
    """(torch-fidelity cache name, full key) of the features of the real images `pixels`.

    `pixels`: (n, C, H, W) uint8, exactly what torch-fidelity reads; `labels`: (n,) theirs. The key
    holds the dataset's name and shape, the split, n, the SHA-256 of every pixel and every label, the
    RGB repetition, the extractor, the SHA-256 of its weights file, its training recipe (the
    classifier's; None for Inception) and torch-fidelity's version: changing any of them, one pixel
    included, names another entry. The name is `<dataset>-<split>-<H>px-n<n>-<16 hex of the key's
    SHA-256>` (torch-fidelity appends the extractor's name and the layer to its file names).
    """
    key = {
        "format": REAL_CACHE_FORMAT,
        "dataset": source.name,
        "shape": list(source.shape),
        "split": split,
        "num_real": len(pixels),
        "pixels_sha256": tensor_sha256(pixels),
        "labels_sha256": tensor_sha256(labels),
        "rgb": rgb,
        "feature_extractor": extractor,
        "weights_sha256": sha256_file(weights_file),
        "extractor_recipe": extractor_recipe,
        "torch_fidelity": torch_fidelity_version(),
    }
    key_hash = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{source.name}-{split}-{source.shape[-1]}px-n{len(pixels)}-{key_hash}", key


def _real_split(source: Any, *, split: str, classifier_seed: int | None, evaluator_name: str) -> tuple[Tensor, Tensor]:
    """(images (n, C, H, W), labels (n,)) of `split` (checked against the evaluator's declared choices):
    "train", "test", or "held-out" (what the classifier trained with `classifier_seed` was not trained on)."""
    if split == "train":
        return source.images, source.labels
    if split == "held-out":
        if classifier_seed is None:
            raise ValueError(f"{evaluator_name}: real_split='held-out' names the classifier's held-out images")
        return held_out_split(source, seed=classifier_seed)
    if getattr(source, "test", None) is None:
        raise ValueError(f"{evaluator_name}: option real_split='test' but dataset {source.name!r} has no test split")
    return source.test.images, source.test.labels


def _real_subset(num_images: int, real_samples: int | None) -> Tensor | None:
    """Sorted indices of the fixed subset of `real_samples` of `num_images` real images (seed
    REAL_SUBSET_SEED), or None when every image is used."""
    if real_samples is None or real_samples >= num_images:
        return None
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(REAL_SUBSET_SEED))
    return order[:real_samples].sort().values


def _real_images(
    source: Any, *, split: str, real_samples: int | None, classifier_seed: int | None, evaluator_name: str
) -> tuple[Tensor, Tensor]:
    """(images (n, C, H, W), labels (n,)) of `split`: all of them, or a fixed subset of `real_samples`."""
    images, labels = _real_split(source, split=split, classifier_seed=classifier_seed, evaluator_name=evaluator_name)
    subset = _real_subset(len(images), real_samples)
    if subset is None:
        return images, labels
    return images[subset], labels[subset]


@contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """numpy's BLAS (torch-fidelity computes FID, KID and precision/recall with numpy) limited to
    `count` threads inside the block, as torch is by torch.set_num_threads.

    Left alone, OpenBLAS runs one thread per core in every process, so two jobs given one core each on
    two cores run four threads that wait on each other: one digits evaluation's KID (100 subsets of
    359) took 4.2 s instead of 1.1 s and FID's eigenvalues 1.1 s instead of 0.02 s (load average ~13).
    The values do not depend on the thread count (tests/test_eval_speed.py pins them).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield


def fidelity_metrics(
    fake_images: Tensor,
    source: Any,
    *,
    extractor: str,
    weights_file: Path,
    extractor_recipe: str | None,
    rgb: bool,
    cache_dir: Path,
    device: torch.device,
    options: Mapping[str, Any],
    evaluator_name: str,
) -> dict[str, float]:
    """torch-fidelity's FID, IS, KID and precision/recall of `fake_images` against `source`'s real images.

    `fake_images`: (N, C, H, W) in [-1, 1]. Real features are cached under `cache_dir/fidelity` by
    `real_cache_name`, its key written beside them as JSON. Returns torch-fidelity's keys:
    frechet_inception_distance, inception_score_mean, kernel_inception_distance_mean, precision,
    recall (and their companions). numpy's BLAS runs on torch's thread count (`blas_threads`).
    """
    real, real_labels = _real_images(
        source, split=options["real_split"], real_samples=options["real_samples"],
        classifier_seed=options.get("classifier_seed"), evaluator_name=evaluator_name,
    )
    num_fake, num_real = len(fake_images), len(real)
    kid_subset_size = options["kid_subset_size"] or min(KID_SUBSET_SIZE, num_fake, num_real)
    problems = []
    if kid_subset_size > min(num_fake, num_real):
        problems.append(
            f"kid_subset_size={options['kid_subset_size']} exceeds the {num_fake} generated or {num_real} real images"
        )
    if options["isc_splits"] > num_fake:
        problems.append(f"isc_splits={options['isc_splits']} exceeds the {num_fake} generated images")
    if options["prc_neighborhood"] >= min(num_fake, num_real):
        problems.append(
            f"prc_neighborhood={options['prc_neighborhood']} needs more than that many generated and real images "
            f"(have {num_fake} and {num_real})"
        )
    if problems:
        raise ValueError(f"{evaluator_name}: " + "; ".join(problems))

    cache_root = Path(cache_dir) / "fidelity"
    cache_root.mkdir(parents=True, exist_ok=True)
    real_input = ImageTensorDataset(real, rgb=rgb)
    name, key = real_cache_name(
        source, split=options["real_split"], pixels=real_input.pixels, labels=real_labels, rgb=rgb,
        extractor=extractor, weights_file=weights_file, extractor_recipe=extractor_recipe,
    )
    key_file = cache_root / f"{name}.json"
    if not key_file.exists():
        atomic_write_json(key_file, key)

    feature_extractor_class()  # registers bench-classifier with torch-fidelity
    cuda = device.type == "cuda"
    with torch.cuda.device(device) if cuda else nullcontext(), blas_threads(torch.get_num_threads()):
        return torch_fidelity().calculate_metrics(
            input1=ImageTensorDataset(fake_images, rgb=rgb),
            input2=real_input,
            input2_cache_name=name,
            cache_root=str(cache_root),
            cache=True,
            cuda=cuda,
            batch_size=options["batch_size"],
            feature_extractor=extractor,
            feature_extractor_weights_path=str(weights_file),
            isc=True,
            fid=True,
            kid=True,
            prc=True,
            isc_splits=options["isc_splits"],
            kid_subsets=options["kid_subsets"],
            kid_subset_size=kid_subset_size,
            prc_neighborhood=options["prc_neighborhood"],
            prc_batch_size=options["prc_batch_size"],
            save_cpu_ram=True,  # no DataLoader workers over in-memory tensors; PR distances in blocks
            verbose=False,
        )


def _bench_names(result: Mapping[str, float], space: str) -> dict[str, float]:
    tf = torch_fidelity()
    return {
        f"fid_{space}": float(result[tf.KEY_METRIC_FID]),
        f"is_{space}": float(result[tf.KEY_METRIC_ISC_MEAN]),
        f"kid_{space}": float(result[tf.KEY_METRIC_KID_MEAN]),
        f"precision_{space}": float(result[tf.KEY_METRIC_PRECISION]),
        f"recall_{space}": float(result[tf.KEY_METRIC_RECALL]),
    }


def _metric_infos(space: str, what: str) -> tuple[MetricInfo, ...]:
    return (
        MetricInfo(f"fid_{space}", f"Frechet distance between real and generated {what} features", "lower"),
        MetricInfo(f"is_{space}", f"Inception Score (exp mean KL of p(y|x) from p(y)) on {what} logits", "higher"),
        MetricInfo(f"kid_{space}", f"Kernel (cubic polynomial MMD^2, unbiased) distance on {what} features", "lower"),
        MetricInfo(
            f"precision_{space}", f"fraction of generated samples inside the real k-NN manifold ({what})", "higher"
        ),
        MetricInfo(
            f"recall_{space}", f"fraction of real samples inside the generated k-NN manifold ({what})", "higher"
        ),
    )


# generated samples per evaluation: RGAN's FID count for Inception, TTUR's minimum for the classifier (module doc)
INCEPTION_SAMPLES = 50000
CLASSIFIER_SAMPLES = 10000


def _samples(default: int) -> Option:
    return Option(default, int, low=1, description="generated images per evaluation")


def _batch_size(default: int) -> Option:
    return Option(default, int, low=1, description="images per batch through the feature extractor")


_COMMON_OPTIONS: dict[str, Option] = {
    "real_samples": Option(None, int, low=1, nullable=True,
                           description="real images at most (a fixed subset, seed 0); null: every image of the split"),
    "isc_splits": Option(10, int, low=1, description="splits of the generated images for the Inception Score"),
    "kid_subsets": Option(100, int, low=1, description="random subsets KID averages over"),
    "kid_subset_size": Option(None, int, low=1, nullable=True,
                              description="images per KID subset; null: min(1000, generated, real)"),
    "prc_neighborhood": Option(3, int, low=1, description="k of the k-NN manifolds of precision and recall"),
    "prc_batch_size": Option(2000, int, low=1, description="features per block of the precision/recall distances"),
}
CLASSIFIER_OPTIONS: dict[str, Option] = {
    "samples": _samples(CLASSIFIER_SAMPLES),
    "real_split": Option("held-out", str, choices=("held-out", "test", "train"),
                         description="the real images: held-out (what the classifier did not train on), test or train"),
    **_COMMON_OPTIONS,
    "batch_size": _batch_size(500),
    "classifier_seed": Option(0, int, low=0, description="seed of the dataset classifier (the same one for every job)"),
}
INCEPTION_OPTIONS: dict[str, Option] = {
    "samples": _samples(INCEPTION_SAMPLES),
    "real_split": Option("train", str, choices=("test", "train"),
                         description="the real images: the test or train split"),
    **_COMMON_OPTIONS,
    "batch_size": _batch_size(64),
    INCEPTION_WEIGHTS_OPTION: Option(
        None, str, nullable=True,
        description=f"path of the Inception weights file; null: ${INCEPTION_WEIGHTS_ENV}, else torch's hub directory",
    ),
}


def _evaluate_fidelity(ctx: EvalContext, *, space: str) -> dict[str, float]:
    """fid/is/kid/precision/recall_<space> of `options["samples"]` generated samples (see module
    doc); `space` is "classifier" (bench's small CNN, grey) or "inception" (RGB)."""
    name = f"fidelity-{space}"
    if space == "classifier":
        options = FIDELITY_CLASSIFIER.resolve(ctx.options)
        weights_file = classifier_file(ctx.source, cache_dir=ctx.cache_dir, seed=options["classifier_seed"],
                                       device=ctx.device)
        extractor, recipe, rgb = CLASSIFIER_EXTRACTOR, classifier_recipe_hash(), False
    else:
        options = FIDELITY_INCEPTION.resolve(ctx.options)
        weights_file = inception_weights_path(options)
        extractor, recipe, rgb = INCEPTION_EXTRACTOR, None, True
    with torch.no_grad():
        fake_images = ctx.sample(int(options["samples"]))
    result = fidelity_metrics(
        fake_images,
        ctx.source,
        extractor=extractor,
        weights_file=weights_file,
        extractor_recipe=recipe,
        rgb=rgb,
        cache_dir=ctx.cache_dir,
        device=torch.device(ctx.device),
        options=options,
        evaluator_name=name,
    )
    return _bench_names(result, space)


def evaluate_classifier_fidelity(ctx: EvalContext) -> dict[str, float]:
    return _evaluate_fidelity(ctx, space="classifier")


def evaluate_inception_fidelity(ctx: EvalContext) -> dict[str, float]:
    return _evaluate_fidelity(ctx, space="inception")


FIDELITY_CLASSIFIER = register_evaluator(
    Evaluator(
        name="fidelity-classifier",
        description="FID, IS, KID, precision/recall in the feature space of bench's small per-dataset classifier",
        cost=("~0.6 s per 1k samples on one CPU core, ~6 s at the default 10k "
              "(first use trains the classifier: ~20-30 s)"),
        metrics=_metric_infos("classifier", "classifier"),
        # the classifier trains on the dataset's labels, so they must be known before it is read; Stacked
        # MNIST's stacks are scored by stacked-modes with the digit classifier instead
        applies_to=lambda offers: offers.kind == "images" and offers.labels and offers.stacked_modes is None,
        evaluate=evaluate_classifier_fidelity,
        options=CLASSIFIER_OPTIONS,
        default=True,
    )
)

FIDELITY_INCEPTION = register_evaluator(
    Evaluator(
        name="fidelity-inception",
        description="FID, IS, KID, precision/recall in torch-fidelity's Inception-v3 (TF 2015) feature space",
        cost="~3 min per 1k samples on one CPU core (+~7 s FID on 2048-d); use a GPU for the default 50k",
        metrics=_metric_infos("inception", "Inception-v3"),
        applies_to=lambda offers: offers.kind == "images" and offers.channels in (1, 3),
        evaluate=evaluate_inception_fidelity,
        options=INCEPTION_OPTIONS,
    )
)


# --- provenance (bench.metrics.provenance) --------------------------------------------------------


def _split_name(split: str, source: Any) -> str:
    """How a real split reads in a provenance row; "held-out" names what it is for `source` when loaded."""
    if split != "held-out":
        return f"{split} split"
    if source is None:
        return "test split, or without one the sixth of train the classifier holds out"
    if getattr(source, "test", None) is None:
        return "the sixth of the train split the classifier holds out"
    return "test split, held out from the classifier"


def _real_provenance(options: Mapping[str, Any], source: Any, evaluator_name: str) -> str:
    """"all 1,438 (train split)", "500 of 1,438 (train split; fixed subset, seed 0)", or without a
    loaded source "all (train split)", "at most 500 (train split; fixed subset, seed 0)"."""
    split, real_samples = options["real_split"], options["real_samples"]
    where = _split_name(split, source)
    subset = f"; fixed subset, seed {REAL_SUBSET_SEED}"
    if source is None:
        return f"all ({where})" if real_samples is None else f"at most {count(real_samples)} ({where}{subset})"
    images, _ = _real_split(source, split=split, classifier_seed=options.get("classifier_seed"),
                            evaluator_name=evaluator_name)
    if real_samples is None or real_samples >= len(images):
        return f"all {count(len(images))} ({where})"
    return f"{count(real_samples)} of {count(len(images))} ({where}{subset})"


def classifier_provenance(spec: JobSpec, options: Mapping[str, Any], source: Any) -> dict[str, str]:
    """fidelity-classifier's provenance: bench's classifier for the dataset (its recipe hash and seed
    name the weights; the file itself exists once a job has trained it), at the data's resolution."""
    shape = data_shape(spec)
    return {
        "extractor": f"bench classifier trained on {spec.dataset} (penultimate, {FEATURE_DIM}-d; IS on its logits)",
        "weights": f"trained on {spec.dataset}, recipe {classifier_recipe_hash()}, seed {options['classifier_seed']}",
        "generated": count(options["samples"]),
        "real": _real_provenance(options, source, FIDELITY_CLASSIFIER.name),
        "resolution": f"{image_size(shape)}, native (no resize), quantised to uint8",
        "torch_fidelity": torch_fidelity_version(),
    }


def inception_provenance(spec: JobSpec, options: Mapping[str, Any], source: Any) -> dict[str, str]:
    """fidelity-inception's provenance: the SHA-256 prefix of the weights file found as
    `inception_weights_path` finds it (hashed once per process per file version), or that it is missing."""
    shape = data_shape(spec)
    try:
        weights_file = inception_weights_path(options)
        weights = f"sha256 {sha256_file(weights_file)[:12]} ({weights_file.name})"
    except MissingWeightsError:
        weights = f"missing on this machine ({INCEPTION_WEIGHTS_FILE})"
    grey = ", grey repeated to RGB" if shape[0] == 1 else ""
    return {
        "extractor": "Inception v3 (TF 2015 graph; pool3, 2048-d; IS on the 1008 unbiased logits)",
        "weights": weights,
        "generated": count(options["samples"]),
        "real": _real_provenance(options, source, FIDELITY_INCEPTION.name),
        "resolution": f"{image_size(shape)} -> 299x299 bilinear (torch-fidelity, as TF 1.x), quantised to uint8{grey}",
        "torch_fidelity": torch_fidelity_version(),
    }


register_provenance(FIDELITY_CLASSIFIER.name, classifier_provenance)
register_provenance(FIDELITY_INCEPTION.name, inception_provenance)
