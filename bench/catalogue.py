"""The registries seen as a `bench.suite.Catalogue`: what a suite file may name, and with which options."""

from __future__ import annotations

from types import SimpleNamespace

from bench import data, metrics, nets, objectives, penalties
from bench.suite import (
    ArchInfo,
    Catalogue,
    DatasetInfo,
    MetricInfo,
    ObjectiveInfo,
    TrickInfo,
)


def dataset_kind(shape: tuple[int, ...]) -> str:
    """'mixture' for points (D,), 'image' for (C, H, W)."""
    return "mixture" if len(shape) == 1 else "image"


# objectives whose critic judges (x, z) pairs have an encoder, and its reconstructions are scored
EXTRA_METRICS = {"sample": (), "pair": ("reconstruction",)}


def _objective_info(entry: objectives.ObjectiveEntry) -> ObjectiveInfo:
    built = entry()
    defaults = built.defaults
    return ObjectiveInfo(
        option_defaults=dict(entry.option_defaults),
        optimizer=defaults.optimizer,
        lr_g=defaults.lr_g,
        lr_d=defaults.lr_d,
        betas=tuple(defaults.betas),
        critic_steps=defaults.critic_steps,
        tricks=tuple((name, dict(options)) for name, options in defaults.tricks),
        extra_metrics=EXTRA_METRICS[built.critic_input],
    )


def _arch_info(name: str) -> ArchInfo:
    return ArchInfo(
        option_defaults=nets.arch_option_defaults(name),
        supports=lambda shape, name=name: nets.arch_supports(name, shape),
        default_latent_dim=lambda shape, name=name: nets.default_latent_dim(name, shape),
        critic_coupling=lambda options, name=name: nets.critic_sample_coupling(name, options),
    )


def _trick_info(entry: penalties.TrickEntry) -> TrickInfo:
    trick = entry()
    return TrickInfo(
        option_defaults=dict(entry.option_defaults),
        needs_per_sample_gradients=entry.needs_per_sample_gradients,
        critic_options=dict(trick.critic_options()),
    )


def _dataset_info(name: str) -> DatasetInfo:
    return DatasetInfo(
        option_defaults=data.dataset_option_defaults(name),
        shape=lambda options, name=name: tuple(data.dataset_shape(name, options)),
        kind=lambda options, name=name: dataset_kind(tuple(data.dataset_shape(name, options))),
    )


def _metric_info(evaluator: metrics.Evaluator) -> MetricInfo:
    def applies(dataset: str, kind: str, shape: tuple[int, ...]) -> bool:
        return bool(evaluator.applies_to(SimpleNamespace(name=dataset, kind=kind, shape=shape)))

    return MetricInfo(applies=applies, option_defaults=dict(evaluator.option_defaults))


DEFAULT_METRICS = {"mixture": ["mixture-modes"], "image": ["fidelity-classifier"]}


def default_metrics(dataset: str, kind: str) -> list[str]:
    """The evaluators a suite gets when it names none: those of its kind that apply to the dataset."""
    names = []
    for name in DEFAULT_METRICS.get(kind, []):
        if name in metrics.EVALUATORS and _metric_info(metrics.get_evaluator(name)).applies(dataset, kind, ()):
            names.append(name)
    if dataset == "stacked-mnist" and "stacked-modes" in metrics.EVALUATORS:
        names.append("stacked-modes")
    return names


def build_catalogue() -> Catalogue:
    return Catalogue(
        objectives={name: _objective_info(entry) for name, entry in objectives.OBJECTIVES.items()},
        archs={name: _arch_info(name) for name in nets.ARCHS.names()},
        datasets={name: _dataset_info(name) for name in data.DATASETS.names()},
        tricks={name: _trick_info(entry) for name, entry in penalties.TRICKS.items()},
        metrics={name: _metric_info(evaluator) for name, evaluator in metrics.EVALUATORS.items()},
        default_metrics=default_metrics,
    )
