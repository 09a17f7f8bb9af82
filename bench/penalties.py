"""Terms and constraints that need the critic network or the samples, usable with any objective.

A trick is composed by the training loop, never by an objective: the loop adds every trick's
`critic_term` to the critic loss and every `generator_term` to the generator loss, calls
`after_critic_step` after each critic optimiser step, and merges `critic_options` /
`generator_options` into the architecture options before the networks are built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from bench.registry import Registry


@dataclass(frozen=True)
class TrickInputs:
    """What a trick may look at in one step. Shapes: x_* (batch, *data_shape); c_* as the critic's output."""

    critic: nn.Module
    x_real: Tensor
    x_fake: Tensor
    c_real: Tensor
    c_fake: Tensor


class Trick:
    """Base class: every hook is a no-op unless a trick overrides it."""

    name: str = ""
    description: str = ""

    def critic_term(self, inputs: TrickInputs) -> Tensor | None:
        return None

    def generator_term(self, inputs: TrickInputs) -> Tensor | None:
        return None

    def after_critic_step(self, critic: nn.Module) -> None:
        return None

    def critic_options(self) -> Mapping[str, Any]:
        return {}

    def generator_options(self) -> Mapping[str, Any]:
        return {}


@dataclass(frozen=True)
class TrickEntry:
    name: str
    description: str
    build: Callable[..., Trick]
    option_defaults: Mapping[str, Any]

    def __call__(self, **options: Any) -> Trick:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            valid = ", ".join(sorted(self.option_defaults)) or "none"
            raise ValueError(f"trick {self.name!r} has no option(s) {', '.join(unknown)}; valid: {valid}")
        trick = self.build(**{**self.option_defaults, **options})
        trick.name = self.name
        trick.description = self.description
        return trick


TRICKS: Registry[TrickEntry] = Registry("trick")


def register_trick(name: str, *, description: str, build: Callable[..., Trick], **option_defaults: Any) -> TrickEntry:
    return TRICKS.register(name, TrickEntry(name, description, build, dict(option_defaults)))


def get_trick(name: str, **options: Any) -> Trick:
    """The trick registered as `name`, built with `options` (unknown names/options raise)."""
    return TRICKS.get(name)(**options)


class GradientPenalty(Trick):
    """WGAN-GP: weight * E[(||grad C(x_hat)||_2 - 1)^2] at x_hat = e*x_r + (1-e)*x_f, e ~ U(0,1) per sample."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def critic_term(self, inputs: TrickInputs) -> Tensor:
        x_real, x_fake = inputs.x_real.detach(), inputs.x_fake.detach()
        shape = (x_real.shape[0],) + (1,) * (x_real.dim() - 1)
        mix = torch.rand(shape, device=x_real.device, dtype=x_real.dtype)
        x_hat = (mix * x_real + (1 - mix) * x_fake).requires_grad_(True)
        c_hat = inputs.critic(x_hat)
        (grad,) = torch.autograd.grad(c_hat.sum(), x_hat, create_graph=True)
        norms = grad.flatten(1).norm(2, dim=1)
        return self.weight * (norms - 1).pow(2).mean()


register_trick(
    "gradient-penalty",
    description="WGAN-GP's two-sided penalty on the critic's gradient norm at real/fake interpolates",
    build=GradientPenalty,
    weight=10.0,
)
