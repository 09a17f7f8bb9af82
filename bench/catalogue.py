"""The registries seen as a `bench.suite.Catalogue`: what a suite file may name, with which options
(their declarations, so the suite loader checks every value), and what each dataset offers."""

from __future__ import annotations

from bench import data, metrics, nets, objectives, penalties
from bench.suite import (
    ArchInfo,
    Catalogue,
    DatasetInfo,
    MetricInfo,
    ObjectiveInfo,
    TrickInfo,
)

# objectives whose critic judges (x, z) pairs have an encoder, and its reconstructions are scored
EXTRA_METRICS = {"sample": (), "pair": ("reconstruction",)}


def _objective_info(entry: objectives.ObjectiveEntry) -> ObjectiveInfo:
    built = entry()
    defaults = built.defaults
    beta1, beta2 = defaults.betas
    return ObjectiveInfo(
        options=entry.options,
        optimizer=defaults.optimizer,
        lr_g=defaults.lr_g,
        lr_d=defaults.lr_d,
        betas=(beta1, beta2),
        critic_steps=defaults.critic_steps,
        tricks=tuple((name, dict(options)) for name, options in defaults.tricks),
        extra_metrics=EXTRA_METRICS[built.critic_input],
    )


def _arch_info(name: str) -> ArchInfo:
    return ArchInfo(
        options=nets.ARCHS.get(name).options,
        supports=lambda shape: nets.arch_supports(name, shape),
        default_latent_dim=lambda shape: nets.default_latent_dim(name, shape),
        critic_coupling=lambda options: nets.critic_sample_coupling(name, options),
    )


def _trick_info(entry: penalties.TrickEntry) -> TrickInfo:
    trick = entry()
    return TrickInfo(
        options=entry.options,
        needs_per_sample_gradients=entry.needs_per_sample_gradients,
        critic_options=dict(trick.critic_options()),
        packing=lambda options: entry(**options).packing(),
    )


def _dataset_info(name: str) -> DatasetInfo:
    return DatasetInfo(
        options=data.DATASETS.get(name).options,
        shape=lambda options: tuple(data.dataset_shape(name, options)),
        offers=lambda options: data.dataset_offers(name, options),
    )


def _metric_info(evaluator: metrics.Evaluator) -> MetricInfo:
    return MetricInfo(applies=evaluator.applies_to, options=evaluator.options,
                      produces=tuple(info.name for info in evaluator.metrics))


def build_catalogue() -> Catalogue:
    return Catalogue(
        objectives={name: _objective_info(entry) for name, entry in objectives.OBJECTIVES.items()},
        archs={name: _arch_info(name) for name in nets.ARCHS.names()},
        datasets={name: _dataset_info(name) for name in data.DATASETS.names()},
        tricks={name: _trick_info(entry) for name, entry in penalties.TRICKS.items()},
        metrics={name: _metric_info(evaluator) for name, evaluator in metrics.EVALUATORS.items()},
        default_metrics=metrics.default_evaluators,
    )
