"""A job's final samples drawn after training: training saves them as arrays only
(`JobStore.save_final_samples`) and never imports matplotlib; whoever logs an ended job to MLflow
(`bench.launch.flush_to_mlflow`: the launcher, or a remote job once its training is over) draws its
figure here, and the report tiles the arrays itself (`figures.points_figure`,
`figures.image_grid_figure`, with `tile_images`).

The launcher draws every ended job's figure while other jobs train on the same cores, so this module
loads matplotlib alone (no pyplot, seaborn or pandas) and draws on fixed axes (no layout pass)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from bench.spec import JobSpec
from bench.store import JobStore, atomic_write

GRID_COLUMNS = 8


def mixture_centres(dataset: str, options: Mapping[str, Any], *, root: Path) -> np.ndarray | None:
    """The true mode centres (K, 2) of a dataset whose offers declare mixture centres, else None.
    A mixture reads no file: `root` is only passed on to its loader."""
    from bench.data import dataset_offers, load_dataset

    if dataset_offers(dataset, options).mixture_centres is None:
        return None
    centres = getattr(load_dataset(dataset, root=root, options=options), "centers", None)
    return None if centres is None else np.asarray(centres, dtype=float)


def draw_final_samples(store: JobStore, spec: JobSpec) -> list[Path]:
    """Draw the job's saved final samples to `store.final_figure_path` (written atomically) and
    return [the samples' .npy, the PNG]; [] when the job saved none (it failed before the end)."""
    saved = [path for path in (store.final_points_path, store.final_images_path) if path.exists()]
    if not saved:
        return []
    samples = np.load(saved[0])
    modes = mixture_centres(spec.dataset, dict(spec.dataset_options), root=store.path) if samples.ndim == 2 else None
    figure = io.BytesIO()
    final_samples_figure(samples, figure, title=f"{spec.objective} / {spec.arch} / seed {spec.seed}", modes=modes)
    atomic_write(store.final_figure_path, lambda f: f.write(figure.getvalue()), binary=True)
    return [saved[0], store.final_figure_path]


def tile_images(images: np.ndarray, columns: int = GRID_COLUMNS, padding: int = 2) -> np.ndarray:
    """Images (N, H, W, C) uint8 tiled `columns` to a row with `padding` black pixels around each,
    as torchvision's `make_grid` lays them out: (rows * (H + p) + p, columns' * (W + p) + p, 3) uint8
    with columns' = min(columns, N); one channel is repeated to three."""
    if images.ndim != 4 or images.dtype != np.uint8 or not len(images):
        raise ValueError(f"images must be uint8 (N, H, W, C) with N >= 1, got {images.dtype} {images.shape}")
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    count, height, width, channels = images.shape
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * (height + padding) + padding, columns * (width + padding) + padding, channels),
                    dtype=np.uint8)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid


def final_samples_figure(samples: np.ndarray, target: IO[bytes], *, title: str,
                         modes: np.ndarray | None = None) -> None:
    """One job's final samples as a 4-inch, 400-pixel PNG written to `target`: points (N, 2) scattered
    over the true `modes` (K, 2) when given, or images (N, H, W, C) uint8 tiled by `tile_images`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 4), dpi=100)
    FigureCanvasAgg(figure)
    if samples.ndim == 2:
        ax = figure.add_axes((0.14, 0.09, 0.82, 0.82))
        if modes is not None:
            ax.scatter(modes[:, 0], modes[:, 1], c="red", s=30, marker="x", label="modes")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, label="generated")
        ax.set_aspect("equal", adjustable="datalim")
    else:
        ax = figure.add_axes((0.02, 0.02, 0.96, 0.89))
        ax.imshow(tile_images(samples), interpolation="nearest")
        ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    figure.savefig(target, format="png")
