"""Terms and constraints that need the critic network or the samples, usable with any objective.

A trick is composed by the training loop, never by an objective: the loop adds every trick's
`critic_term` to the critic loss and every `generator_term` to the generator loss, calls
`after_critic_step` after each critic optimiser step, and merges `critic_options` /
`generator_options` into the architecture options before the networks are built.

Registered: `gradient-penalty`, `r1`, `r2`, `weight-clipping`, `spectral-norm`, `label-smoothing`,
`feature-matching`, `minibatch-discrimination`, `virtual-batch-norm`, `packing`. A trick's
`packing()` is how many samples the critic judges at once (PacGAN; 1 for every other trick): the
game packs them before the critic (bench.train), and every critic input a trick sees is packed.
Critics built by bench.nets expose `features(x) -> (batch, F)` and `head(features) -> outputs` with
`forward(x) == head(features(x))`; feature matching relies on it.

A trick registered with `needs_per_sample_gradients=True` penalises the gradient of each sample's
critic output with respect to that sample (gradient penalty, R1, R2). That gradient means what the
penalty intends only when a sample's output depends on that sample alone: under batch norm (in
training mode) or minibatch discrimination it also depends on the batch-mates, so the penalised
norm changes with whichever samples share the batch. Suites refuse such a pairing at load time
(bench.suite) and the training loop refuses to build it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from bench.registry import (
    Option,
    Registry,
    check_build_signature,
    option_defaults,
    resolve,
)


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

    def packing(self) -> int:
        """How many samples the critic judges as one input (PacGAN's packing degree m)."""
        return 1


@dataclass(frozen=True)
class TrickEntry:
    """A registry entry: builds a `Trick` from its declared options.

    `needs_per_sample_gradients`: the trick's term uses grad_x C(x) of each sample, so the critic's
    output for a sample must not depend on the other samples of its batch.
    """

    name: str
    description: str
    build: Callable[..., Trick]
    options: Mapping[str, Option]
    needs_per_sample_gradients: bool = False

    @property
    def option_defaults(self) -> dict[str, Any]:
        return option_defaults(self.options)

    def __call__(self, **options: Any) -> Trick:
        trick = self.build(**resolve(f"trick {self.name!r}", options, self.options))
        trick.name = self.name
        trick.description = self.description
        return trick


TRICKS: Registry[TrickEntry] = Registry("trick")


def register_trick(
    name: str, *, description: str, build: Callable[..., Trick], needs_per_sample_gradients: bool = False,
    options: Mapping[str, Option] | None = None,
) -> TrickEntry:
    """Register `build(**options) -> Trick` under `name` with its declared `options` (duplicates refused);
    `build` takes exactly those, keyword-only, and receives them checked and with their defaults."""
    declared = MappingProxyType(dict(options or {}))
    check_build_signature(f"trick {name!r}", build, declared)
    return TRICKS.register(name, TrickEntry(name, description, build, declared, needs_per_sample_gradients))


def get_trick(name: str, **options: Any) -> Trick:
    """The trick registered as `name`, built with `options` (unknown names/options raise)."""
    return TRICKS.get(name)(**options)


def squared_gradient_norm(critic: nn.Module, x: Tensor) -> Tensor:
    """||grad_x sum_outputs C(x)||^2 per sample, shape (batch,), for x of shape (batch, ...).

    x is detached first, so the gradient is taken at the samples' values; the graph is kept
    (create_graph) so a penalty on it trains the critic.
    """
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1)


class GradientPenalty(Trick):
    """WGAN-GP: weight * E[(||grad C(x_hat)||_2 - 1)^2] at x_hat = e*x_r + (1-e)*x_f, e ~ U(0,1) per sample."""

    def __init__(self, *, weight: float) -> None:
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
    needs_per_sample_gradients=True,
    options={"weight": Option(10.0, float, low=0.0, description="the penalty's weight lambda (WGAN-GP: 10)")},
)


class R1Penalty(Trick):
    """R1: gamma/2 * E||grad_x C(x_r)||^2 on the real batch (Mescheder et al. 2018).

    For a multi-output critic the gradient is that of the sum of the outputs.
    """

    def __init__(self, *, gamma: float) -> None:
        self.gamma = gamma

    def critic_term(self, inputs: TrickInputs) -> Tensor:
        return 0.5 * self.gamma * squared_gradient_norm(inputs.critic, inputs.x_real).mean()


class R2Penalty(Trick):
    """R2: gamma/2 * E||grad_x C(x_f)||^2 on the fake batch (as R1, at the generator's samples)."""

    def __init__(self, *, gamma: float) -> None:
        self.gamma = gamma

    def critic_term(self, inputs: TrickInputs) -> Tensor:
        return 0.5 * self.gamma * squared_gradient_norm(inputs.critic, inputs.x_fake).mean()


class WeightClipping(Trick):
    """WGAN's constraint: every critic parameter clipped to [-clip, clip] after each critic step."""

    def __init__(self, *, clip: float) -> None:
        self.clip = clip

    def after_critic_step(self, critic: nn.Module) -> None:
        with torch.no_grad():
            for parameter in critic.parameters():
                parameter.clamp_(-self.clip, self.clip)


class SpectralNorm(Trick):
    """Spectral normalisation of every critic layer (Miyato et al. 2018): an architecture option."""

    def critic_options(self) -> Mapping[str, Any]:
        return {"spectral_norm": True}


class LabelSmoothing(Trick):
    """One-sided label smoothing (Salimans et al. 2016): the real target of the sigmoid
    cross-entropy critic loss becomes 1 - smooth.

    `(1-s)*sp(-C_r) + s*sp(C_r)` equals `sp(-C_r) + s*(sp(C_r) - sp(-C_r)) = sp(-C_r) + s*C_r`, so
    the term added to the critic loss is `smooth * mean(C_r)`. It is meant for the sigmoid
    cross-entropy family (sgan, nsgan, mlgan), whose critic loss is `mean sp(-C_r) + mean sp(C_f)`;
    with any other objective it is just a linear term on C_r and has no label to smooth.
    """

    def __init__(self, *, smooth: float) -> None:
        self.smooth = smooth

    def critic_term(self, inputs: TrickInputs) -> Tensor:
        return self.smooth * inputs.c_real.mean()


def _critic_features(critic: nn.Module, x: Tensor) -> Tensor:
    features = getattr(critic, "features", None)
    if not callable(features):
        raise TypeError(
            f"trick 'feature-matching' needs a critic with features(x) -> (batch, F); "
            f"{type(critic).__name__} has none (critics built by bench.nets have it)"
        )
    return features(x).flatten(1)


class FeatureMatching(Trick):
    """Feature matching (Salimans et al. 2016): the generator term
    `weight * ||mean_batch features(x_r) - mean_batch features(x_f)||_2^2` (summed over the F
    features of `critic.features`). The real side is computed without a graph: it does not
    depend on the generator.
    """

    def __init__(self, *, weight: float) -> None:
        self.weight = weight

    def generator_term(self, inputs: TrickInputs) -> Tensor:
        with torch.no_grad():
            real_mean = _critic_features(inputs.critic, inputs.x_real).mean(dim=0)
        fake_mean = _critic_features(inputs.critic, inputs.x_fake).mean(dim=0)
        return self.weight * (real_mean - fake_mean).pow(2).sum()


class MinibatchDiscrimination(Trick):
    """Minibatch discrimination (Salimans et al. 2016): a critic layer that sees similarity across
    the batch; the layer is built by bench.nets from the architecture option."""

    def critic_options(self) -> Mapping[str, Any]:
        return {"minibatch_discrimination": True}


class VirtualBatchNorm(Trick):
    """Virtual batch norm (Salimans et al. 2016): the generator normalises with statistics of a
    fixed reference batch; the layer is built by bench.nets from the architecture option."""

    def generator_options(self) -> Mapping[str, Any]:
        return {"norm": "virtual-batch"}


class Packing(Trick):
    """PacGAN's packing (Lin, Khetan, Fanti, Oh 2018, "PacGAN: The power of two samples in generative
    adversarial networks", NeurIPS; fjxmlzn/PacGAN): the critic judges m samples at once, all real or
    all generated, concatenated along the channel axis of images or the feature axis of vectors
    (PacGAN's `bricks.py` L62-67 and its Stacked-MNIST `model.py`), so a batch of B samples is B/m
    critic inputs. The critic's first layer takes m times the channels; everything else is the
    architecture's. The objective's losses and every trick's terms are taken over the B/m packed
    inputs (a gradient penalty's norm is per packed input). PacGAN's batch of 100 packed inputs is
    `batch_size` 100 m here, since bench's batch counts samples."""

    def __init__(self, *, m: int) -> None:
        self.m = m

    def packing(self) -> int:
        return self.m


register_trick(
    "r1",
    description="R1 penalty gamma/2 * E||grad C(x_r)||^2 on real samples",
    build=R1Penalty,
    needs_per_sample_gradients=True,
    options={"gamma": Option(10.0, float, low=0.0,
                             description="the penalty's weight gamma (the term is gamma/2 E||grad||^2)")},
)
register_trick(
    "r2",
    description="R2 penalty gamma/2 * E||grad C(x_f)||^2 on generated samples",
    build=R2Penalty,
    needs_per_sample_gradients=True,
    options={"gamma": Option(10.0, float, low=0.0,
                             description="the penalty's weight gamma (the term is gamma/2 E||grad||^2)")},
)
register_trick(
    "weight-clipping",
    description="clip every critic parameter to [-clip, clip] after each critic step (WGAN)",
    build=WeightClipping,
    options={"clip": Option(0.01, float, low=0.0, low_open=True,
                            description="every critic parameter is clipped to [-clip, clip] (WGAN: 0.01)")},
)
register_trick(
    "spectral-norm",
    description="spectral normalisation of the critic's layers (SNGAN)",
    build=SpectralNorm,
)
register_trick(
    "label-smoothing",
    description="one-sided label smoothing: real target 1 - smooth in the sigmoid cross-entropy critic loss",
    build=LabelSmoothing,
    options={"smooth": Option(0.1, float, low=0.0, high=1.0, high_open=True,
                              description="the real target becomes 1 - smooth")},
)
register_trick(
    "feature-matching",
    description="generator term: squared L2 distance between batch means of critic features on real and fake",
    build=FeatureMatching,
    options={"weight": Option(1.0, float, low=0.0,
                              description="weight of the feature-matching term in the generator loss")},
)
register_trick(
    "minibatch-discrimination",
    description="a minibatch-discrimination layer in the critic (cross-sample similarity features)",
    build=MinibatchDiscrimination,
)
register_trick(
    "virtual-batch-norm",
    description="virtual batch normalisation in the generator (statistics of a fixed reference batch)",
    build=VirtualBatchNorm,
)
register_trick(
    "packing",
    description="PacGAN: the critic judges m samples at once, concatenated along channels (or features); "
                "batch_size must be a multiple of m",
    build=Packing,
    options={"m": Option(2, int, low=2, description="samples per critic input (PacGAN's packing degree)")},
)
