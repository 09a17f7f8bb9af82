"""Where each metric of a job comes from: one row per evaluator, for the report's methods table.

A row says which feature extractor and which weights an evaluator uses, how many generated samples
and which real images it compares, at which input resolution, and through which torch-fidelity
version. Evaluators that know their own provenance declare it beside their definition with
`register_provenance` (bench.metrics.fidelity does); every other evaluator gets a row derived from
its option defaults. Nothing here trains a network or reads a dataset: counts of real images are
given only when the caller passes the loaded source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bench.metrics import EVALUATORS, Evaluator, get_evaluator
from bench.metrics.classifier import classifier_recipe_hash
from bench.registry import Registry
from bench.spec import JobSpec

PROVENANCE_COLUMNS = ("metric", "extractor", "weights", "generated", "real", "resolution", "torch_fidelity")
NOT_APPLICABLE = "n/a"

Describe = Callable[[JobSpec, Mapping[str, Any], Any], dict[str, str]]
"""(job spec, the evaluator's resolved options, the loaded data source or None) -> every column of
PROVENANCE_COLUMNS but `metric`, as text."""

PROVENANCE: Registry[Describe] = Registry("metric provenance")


def register_provenance(evaluator: str, describe: Describe) -> Describe:
    """Declare how `evaluator` (a registered evaluator's name) describes its provenance."""
    get_evaluator(evaluator)
    return PROVENANCE.register(evaluator, describe)


def evaluator_options(spec: JobSpec, evaluator: Evaluator) -> dict[str, Any]:
    """The options `evaluator` runs with in `spec`: its declared defaults, overridden by the suite's
    `metric_options` for it (an option it does not declare, or a bad value, raises ValueError naming it)."""
    return evaluator.resolve(dict(dict(spec.metric_options).get(evaluator.name, ())))


def count(value: int) -> str:
    """A sample count as text with thousands separators: 50000 -> "50,000"."""
    return f"{int(value):,}"


def data_shape(spec: JobSpec) -> tuple[int, ...]:
    """One sample's shape, (2,) or (C, H, W), from the dataset's name and options (nothing is read)."""
    from bench.data import dataset_shape

    return tuple(dataset_shape(spec.dataset, dict(spec.dataset_options)))


def image_size(shape: tuple[int, ...]) -> str:
    """"HxW" of an image shape (C, H, W)."""
    return f"{shape[-2]}x{shape[-1]}"


def derived_row(spec: JobSpec, evaluator: Evaluator, options: Mapping[str, Any]) -> dict[str, str]:
    """The row of an evaluator that declares no provenance, from its options alone.

    `samples` is the number of generated samples; an evaluator with a `classifier_seed` option
    classifies with bench's dataset classifier (bench.metrics.classifier), any other works on the
    samples themselves (2-D points, or pixels at the dataset's resolution).
    """
    shape = data_shape(spec)
    points = len(shape) == 1
    if "classifier_seed" in options:
        extractor = f"bench classifier trained on {spec.dataset} (argmax class)"
        weights = (f"trained on {spec.dataset}, recipe {classifier_recipe_hash()}, "
                   f"seed {options['classifier_seed']}")
    else:
        extractor = "none (2-D points)" if points else "none (pixels)"
        weights = NOT_APPLICABLE
    return {
        "extractor": extractor,
        "weights": weights,
        "generated": count(options["samples"]) if "samples" in options else NOT_APPLICABLE,
        "real": NOT_APPLICABLE,
        "resolution": NOT_APPLICABLE if points else f"{image_size(shape)}, native",
        "torch_fidelity": NOT_APPLICABLE,
    }


def metric_provenance(spec: JobSpec, *, source: Any = None) -> list[dict[str, str]]:
    """One row per evaluator `spec` runs, in `spec.metrics` order, with the keys PROVENANCE_COLUMNS:

    - `metric`: the evaluator's name;
    - `extractor`: the network whose features or classes the metric uses, or "none (...)";
    - `weights`: SHA-256 prefix of its weights file, or how the bench classifier is trained, or "n/a";
    - `generated`: the number of generated samples (the evaluator's default unless the suite sets it);
    - `real`: how many real images of which split, or "n/a";
    - `resolution`: the evaluator's input resolution and any resizing;
    - `torch_fidelity`: the torch-fidelity version computing the metric, or "n/a".

    `source` (the job's loaded bench.data source, optional) lets rows count the real images of a
    split; without it they name the split only. Reading a weights file's hash is the only disk work.
    """
    rows = []
    for name in spec.metrics:
        evaluator = EVALUATORS.get(name)
        options = evaluator_options(spec, evaluator)
        if name in PROVENANCE:
            described = PROVENANCE.get(name)(spec, options, source)
        else:
            described = derived_row(spec, evaluator, options)
        if set(described) != set(PROVENANCE_COLUMNS[1:]):
            raise ValueError(
                f"provenance of metric {name!r} gives {', '.join(sorted(described))}; "
                f"expected {', '.join(PROVENANCE_COLUMNS[1:])}"
            )
        rows.append({"metric": name, **{column: described[column] for column in PROVENANCE_COLUMNS[1:]}})
    return rows
