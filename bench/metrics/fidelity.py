"""FID, Inception Score, KID and precision/recall through torch-fidelity, in two feature spaces.

`fidelity-classifier` computes them in the penultimate-feature space (and IS on the logits) of the
small classifier bench trains per dataset (bench.metrics.classifier); `fidelity-inception` in the
Inception-v3 space torch-fidelity reproduces from the TF 2015 graph (pool3 2048-d for FID, KID and
PR; unbiased logits for IS). All metric mathematics is torch-fidelity's; bench supplies the inputs
in memory (generated samples are never written to disk) and the cache key of the real-data features:
torch-fidelity's own key is the input name and the extractor name, which ignores the weights file,
so bench names the real input after (dataset, split, resolution, number of real images, feature
extractor, SHA-256 of the weights file) and lets torch-fidelity cache its features under that name.

Options (EvalContext.options; unknown keys are refused): `samples` generated images (10,000);
`real_samples` real images at most (10,000; a fixed subset when the split is larger); `real_split`
"train" or "test"; `batch_size`; `isc_splits` (10); `kid_subsets` (100) and `kid_subset_size`
(None: min(1000, generated, real)); `prc_neighborhood` k (3) and `prc_batch_size`;
`classifier_seed` (0, the same classifier for every job) or `inception_weights` (a path).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from bench.metrics import EvalContext, Evaluator, MetricInfo, register_evaluator
from bench.metrics.classifier import (
    FEATURE_EXTRACTOR_NAME as CLASSIFIER_EXTRACTOR,
    classifier_file,
    dataset_key,
    feature_extractor_class,
    images_to_uint8,
    sha256_file,
)
from bench.registry import with_defaults
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

    class _Unloaded(torch_fidelity().FeatureExtractorInceptionV3):
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


def real_cache_name(
    source: Any, *, split: str, num_real: int, extractor: str, weights_file: Path
) -> tuple[str, dict[str, Any]]:
    """(torch-fidelity cache name, full key) of one set of real features.

    The name is `<dataset>-<split>-<H>px-n<num_real>-<16 hex of the key's SHA-256>` (torch-fidelity
    appends the extractor's name and the layer to its file names); the key holds the dataset's name,
    shape and content fingerprint, the split, the number of real images, the extractor and the
    SHA-256 of its weights file.
    """
    key = {
        **dataset_key(source),
        "split": split,
        "num_real": num_real,
        "feature_extractor": extractor,
        "weights_sha256": sha256_file(weights_file),
    }
    key_hash = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{source.name}-{split}-{source.shape[-1]}px-n{num_real}-{key_hash}", key


def _resolve_options(evaluator_name: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    return with_defaults(f"metric {evaluator_name!r}", given, defaults)


def _real_images(source: Any, *, split: str, real_samples: int, evaluator_name: str) -> Tensor:
    """(n, C, H, W) real images of `split`, at most `real_samples`, a fixed subset when capped."""
    if split == "train":
        images = source.images
    elif split == "test":
        if getattr(source, "test", None) is None:
            raise ValueError(
                f"{evaluator_name}: option real_split='test' but dataset {source.name!r} has no test split"
            )
        images = source.test.images
    else:
        raise ValueError(f"{evaluator_name}: option real_split={split!r}; valid: test, train")
    if real_samples < len(images):
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(REAL_SUBSET_SEED))
        images = images[order[:real_samples].sort().values]
    return images


def fidelity_metrics(
    fake_images: Tensor,
    source: Any,
    *,
    extractor: str,
    weights_file: Path,
    rgb: bool,
    cache_dir: Path,
    device: torch.device,
    options: Mapping[str, Any],
    evaluator_name: str,
) -> dict[str, float]:
    """torch-fidelity's FID, IS, KID and precision/recall of `fake_images` against `source`'s real images.

    `fake_images`: (N, C, H, W) in [-1, 1]. Real features are cached under `cache_dir/fidelity` by
    `real_cache_name`. Returns torch-fidelity's keys: frechet_inception_distance,
    inception_score_mean, kernel_inception_distance_mean, precision, recall (and their companions).
    """
    real = _real_images(
        source, split=options["real_split"], real_samples=options["real_samples"], evaluator_name=evaluator_name
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
    name, key = real_cache_name(
        source, split=options["real_split"], num_real=num_real, extractor=extractor, weights_file=weights_file
    )
    key_file = cache_root / f"{name}.json"
    if not key_file.exists():
        key_file.write_text(json.dumps(key, indent=2, sort_keys=True))

    feature_extractor_class()  # registers bench-classifier with torch-fidelity
    cuda = device.type == "cuda"
    with torch.cuda.device(device) if cuda else nullcontext():
        return torch_fidelity().calculate_metrics(
            input1=ImageTensorDataset(fake_images, rgb=rgb),
            input2=ImageTensorDataset(real, rgb=rgb),
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


_COMMON_DEFAULTS: dict[str, Any] = {
    "samples": 10000,
    "real_samples": 10000,
    "real_split": "train",
    "isc_splits": 10,
    "kid_subsets": 100,
    "kid_subset_size": None,  # min(1000, generated, real)
    "prc_neighborhood": 3,
    "prc_batch_size": 2000,
}
CLASSIFIER_DEFAULTS: dict[str, Any] = {**_COMMON_DEFAULTS, "batch_size": 500, "classifier_seed": 0}
INCEPTION_DEFAULTS: dict[str, Any] = {**_COMMON_DEFAULTS, "batch_size": 64, INCEPTION_WEIGHTS_OPTION: None}


# the labelled datasets the classifier is trained on (Stacked MNIST has its own mode metric; an image
# folder's labels, if any, are not known before it is read)
CLASSIFIER_DATASETS = ("digits", "mnist", "cifar10")


def _evaluate_fidelity(ctx: EvalContext, *, space: str) -> dict[str, float]:
    """fid/is/kid/precision/recall_<space> of `options["samples"]` generated samples (see module
    doc); `space` is "classifier" (bench's small CNN, grey) or "inception" (RGB)."""
    name = f"fidelity-{space}"
    if space == "classifier":
        options = _resolve_options(name, CLASSIFIER_DEFAULTS, ctx.options)
        weights_file = classifier_file(ctx.source, cache_dir=ctx.cache_dir, seed=options["classifier_seed"],
                                       device=ctx.device)
        extractor, rgb = CLASSIFIER_EXTRACTOR, False
    else:
        options = _resolve_options(name, INCEPTION_DEFAULTS, ctx.options)
        weights_file = inception_weights_path(options)
        extractor, rgb = INCEPTION_EXTRACTOR, True
    with torch.no_grad():
        fake_images = ctx.sample(int(options["samples"]))
    result = fidelity_metrics(
        fake_images,
        ctx.source,
        extractor=extractor,
        weights_file=weights_file,
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
        cost="~0.6 s per 1k samples on one CPU core (first use trains the classifier: ~20-30 s)",
        metrics=_metric_infos("classifier", "classifier"),
        applies_to=lambda source: getattr(source, "name", None) in CLASSIFIER_DATASETS,
        evaluate=evaluate_classifier_fidelity,
        option_defaults=CLASSIFIER_DEFAULTS,
    )
)

FIDELITY_INCEPTION = register_evaluator(
    Evaluator(
        name="fidelity-inception",
        description="FID, IS, KID, precision/recall in torch-fidelity's Inception-v3 (TF 2015) feature space",
        cost="~3 min per 1k samples on one CPU core (+~7 s FID on 2048-d); use a GPU",
        metrics=_metric_infos("inception", "Inception-v3"),
        applies_to=lambda source: getattr(source, "kind", None) == "image",
        evaluate=evaluate_inception_fidelity,
        option_defaults=INCEPTION_DEFAULTS,
    )
)
