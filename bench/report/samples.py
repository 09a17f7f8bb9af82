"""A job's final samples drawn after training: training saves them as arrays only
(`JobStore.save_final_samples`) and never imports matplotlib; whoever logs an ended job to MLflow
(`bench.launch.flush_to_mlflow`: the launcher, or a remote job once its training is over) draws its
figure here, and the report tiles the arrays itself (`figures.points_figure`,
`figures.image_grid_figure`)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import dataset_offers, load_dataset
from bench.report.figures import final_samples_figure
from bench.spec import JobSpec
from bench.store import JobStore, atomic_write


def mixture_centres(dataset: str, options: Mapping[str, Any], *, root: Path) -> np.ndarray | None:
    """The true mode centres (K, 2) of a dataset whose offers declare mixture centres, else None.
    A mixture reads no file: `root` is only passed on to its loader."""
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
