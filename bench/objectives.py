"""Every adversarial objective as a pair of pure functions of critic outputs.

Notation follows shared objectives.md: `c_real = C(x_r)`, `c_fake = C(x_f)` are raw critic outputs
(logits), shape (batch,) or (batch, num_outcomes) for RealnessGAN. Every loss is minimised and
returned as a scalar tensor. Nothing that needs the critic network or a second forward pass lives
here: that is a penalty (bench.penalties), composed by the training loop.

Adding an objective is one `d_loss`/`g_loss` pair and one `register_objective` call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.registry import Registry

LossFn = Callable[..., Tensor]


@dataclass(frozen=True)
class TrainingDefaults:
    """An objective's published training recipe; a suite may override any field.

    `tricks` are penalty/constraint names with options (see bench.penalties), e.g.
    `(("gradient-penalty", {"weight": 10.0}),)` for WGAN-GP.
    """

    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    critic_steps: int = 1
    tricks: tuple[tuple[str, Mapping[str, Any]], ...] = ()


@dataclass(frozen=True)
class Objective:
    """One adversarial objective, ready to use: `d_loss(c_real, c_fake, **extra)` and
    `g_loss(c_real, c_fake, **extra)` return scalar tensors.

    `extra` carries what an objective needs beyond critic outputs; the keys it accepts are in
    `extra_inputs` (for example `("x_real", "x_fake")` for GAN-QP's distance), and the training
    loop passes exactly those.
    """

    d_loss: LossFn
    g_loss: LossFn
    name: str = ""
    description: str = ""
    paper: str = ""
    defaults: TrainingDefaults = field(default_factory=TrainingDefaults)
    critic_outputs: int = 1
    generator_needs_real: bool = False
    extra_inputs: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ObjectiveEntry:
    """A registry entry: builds an `Objective` from keyword options (with their defaults)."""

    name: str
    description: str
    paper: str
    build: Callable[..., Objective]
    option_defaults: Mapping[str, Any]

    def __call__(self, **options: Any) -> Objective:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            valid = ", ".join(sorted(self.option_defaults)) or "none"
            raise ValueError(f"objective {self.name!r} has no option(s) {', '.join(unknown)}; valid: {valid}")
        merged = {**self.option_defaults, **options}
        built = self.build(**merged)
        return replace(
            built, name=self.name, description=self.description, paper=self.paper,
            options=MappingProxyType(merged),
        )


OBJECTIVES: Registry[ObjectiveEntry] = Registry("objective")


def register_objective(
    name: str, *, description: str, paper: str, build: Callable[..., Objective]
) -> ObjectiveEntry:
    """Register `build(**options) -> Objective`; its keyword defaults are the option defaults."""
    signature = inspect.signature(build)
    option_defaults = {}
    for parameter in signature.parameters.values():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY or parameter.default is inspect.Parameter.empty:
            raise TypeError(f"objective {name!r}: every build option must be keyword-only with a default")
        option_defaults[parameter.name] = parameter.default
    entry = ObjectiveEntry(name, description, paper, build, MappingProxyType(option_defaults))
    return OBJECTIVES.register(name, entry)


def get_objective(name: str, **options: Any) -> Objective:
    """The objective registered as `name`, built with `options` (unknown names/options raise)."""
    return OBJECTIVES.get(name)(**options)


def list_objectives() -> list[ObjectiveEntry]:
    return [entry for _, entry in OBJECTIVES.items()]


# --- standard family ------------------------------------------------------------------------


def _bce_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    # -log sigmoid(C_r) - log(1 - sigmoid(C_f)), through softplus for stability
    return F.softplus(-c_real).mean() + F.softplus(c_fake).mean()


def _nsgan_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    return F.softplus(-c_fake).mean()


def _build_nsgan() -> Objective:
    return Objective(d_loss=_bce_d_loss, g_loss=_nsgan_g_loss)


register_objective(
    "nsgan",
    description="non-saturating GAN: the generator maximises log D(G(z))",
    paper="Goodfellow et al. 2014, Generative Adversarial Nets",
    build=_build_nsgan,
)
