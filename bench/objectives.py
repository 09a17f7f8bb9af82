"""Every adversarial objective as a pair of pure functions of critic outputs.

Notation follows shared objectives.md: `c_real = C(x_r)`, `c_fake = C(x_f)` are raw critic outputs
(logits), shape (batch,) or (batch, 1), or (batch, num_outcomes) for RealnessGAN. Every loss is
minimised and returned as a scalar tensor. Nothing that needs the critic network or a second
forward pass lives here: that is a penalty (bench.penalties), composed by the training loop.

Adding an objective is one `d_loss`/`g_loss` pair and one `register_objective` call, which declares
the objective's options (bench.registry.Option: default, type, range or choices, description).

Numerics: every loss goes through softplus / logsigmoid / log_softmax or a closed form that is
finite for every real logit, so for |logit| <= 50 every loss with a finite mathematical value is
finite in float32, and so are its gradients. The f-GAN conjugates are evaluated composed with
their output activation, `f*(g_f(v))`, in closed form (reverse KL: `v - 1`; Neyman:
`2 - 2*exp(v/2)`; Hellinger: `exp(v) - 1`; JS: `sp(v) - log 2`): the composition is defined for
every real v, so the restricted domains of `log(-t)`, `sqrt(1 - t)`, `t / (1 - t)` and
`log(2 - exp(t))` are never reached and no clamp is needed there. The constants that do change
a value, each explained where it is defined:

- `MLGAN_MAX_LOGIT = 20.0`: mlgan's `exp(C_f)` is taken at `min(C_f, 20)`.
- `GAN_QP_MIN_DISTANCE = 1e-8`: GAN-QP's / BiGAN-QP's per-sample distance `d` is at least this.
- `REALNESS_ANCHOR_SEED = 0`, `REALNESS_ANCHOR_DRAWS = 1000`: how RealnessGAN's anchors are drawn.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.registry import (
    Option,
    Registry,
    check_build_signature,
    option_defaults,
    resolve,
)

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
    # what the critic judges: "sample" C(x), or "pair" T(x, z) with an encoder E (BiGAN-QP)
    critic_input: Literal["sample", "pair"] = "sample"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ObjectiveEntry:
    """A registry entry: builds an `Objective` from its declared options."""

    name: str
    description: str
    paper: str
    build: Callable[..., Objective]
    options: Mapping[str, Option]

    @property
    def option_defaults(self) -> dict[str, Any]:
        return option_defaults(self.options)

    def __call__(self, **options: Any) -> Objective:
        resolved = resolve(f"objective {self.name!r}", options, self.options)
        built = self.build(**resolved)
        return replace(
            built, name=self.name, description=self.description, paper=self.paper,
            options=MappingProxyType(resolved),
        )


OBJECTIVES: Registry[ObjectiveEntry] = Registry("objective")


def register_objective(
    name: str, *, description: str, paper: str, build: Callable[..., Objective],
    options: Mapping[str, Option] | None = None,
) -> ObjectiveEntry:
    """Register `build(**options) -> Objective` with its declared `options`; `build` takes exactly
    those, keyword-only, and receives them checked and with their defaults filled in."""
    declared = MappingProxyType(dict(options or {}))
    check_build_signature(f"objective {name!r}", build, declared)
    return OBJECTIVES.register(name, ObjectiveEntry(name, description, paper, build, declared))


def get_objective(name: str, **options: Any) -> Objective:
    """The objective registered as `name`, built with `options` (unknown names/options raise)."""
    return OBJECTIVES.get(name)(**options)


def list_objectives() -> list[ObjectiveEntry]:
    return [entry for _, entry in OBJECTIVES.items()]


# --- numerical constants ----------------------------------------------------------------------

# mlgan's generator loss -exp(C_f)/2 grows without bound. A sigmoid critic in float32 already
# reads D = sigmoid(C) = 1 exactly from C ~ 17 on, so logits past 20 carry no further information
# about D; clamping there keeps exp(C_f) <= 4.9e8 and the generator's gradient bounded.
MLGAN_MAX_LOGIT = 20.0

# GAN-QP divides by lambda * d(x_r, x_f); d is 0 only for identical pairs, where the quadratic
# potential would be infinite. The floor keeps the loss finite (and, for L2, keeps the gradient of
# the square root finite at 0) without changing any distance between distinct samples in practice.
GAN_QP_MIN_DISTANCE = 1e-8

# RealnessGAN's anchors are histograms of random draws; drawing them from one fixed seed with a
# local generator makes them identical on every machine, in every process and at every call.
REALNESS_ANCHOR_SEED = 0
REALNESS_ANCHOR_DRAWS = 1000


def _scores(c: Tensor, role: str) -> Tensor:
    """Single-output critic outputs as shape (batch,): accepts (batch,) or (batch, 1)."""
    if c.dim() == 1:
        return c
    if c.dim() == 2 and c.shape[1] == 1:
        return c[:, 0]
    raise ValueError(f"{role}: expected critic outputs of shape (batch,) or (batch, 1), got {tuple(c.shape)}")


_ADAM_DCGAN = TrainingDefaults(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), critic_steps=1)


# --- standard family (seeds 001, 003, 000) ----------------------------------------------------


def bce_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    """Sigmoid cross-entropy critic loss `mean sp(-C_r) + mean sp(C_f)`; c_*: (batch,) or (batch, 1)."""
    # -log sigmoid(C_r) - log(1 - sigmoid(C_f)), through softplus for stability
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    return F.softplus(-c_real).mean() + F.softplus(c_fake).mean()


def _sgan_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    # minimax: the generator minimises log(1 - D(G(z))) = -sp(C_f)
    return -F.softplus(_scores(c_fake, "c_fake")).mean()


def _nsgan_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    return F.softplus(-_scores(c_fake, "c_fake")).mean()


def _mlgan_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    # -D/(1-D)/2 = -exp(C_f)/2; clamped at MLGAN_MAX_LOGIT (see its comment)
    return -0.5 * torch.exp(_scores(c_fake, "c_fake").clamp(max=MLGAN_MAX_LOGIT)).mean()


def _build_sgan() -> Objective:
    return Objective(d_loss=bce_d_loss, g_loss=_sgan_g_loss, defaults=_ADAM_DCGAN)


def _build_nsgan() -> Objective:
    return Objective(d_loss=bce_d_loss, g_loss=_nsgan_g_loss, defaults=_ADAM_DCGAN)


def _build_mlgan() -> Objective:
    return Objective(d_loss=bce_d_loss, g_loss=_mlgan_g_loss, defaults=_ADAM_DCGAN)


register_objective(
    "sgan",
    description="minimax (saturating) GAN: sigmoid cross-entropy critic, the generator minimises log(1 - D(G(z)))",
    paper="Goodfellow et al. 2014, Generative Adversarial Nets (NeurIPS)",
    build=_build_sgan,
)
register_objective(
    "nsgan",
    description="non-saturating GAN: the generator maximises log D(G(z))",
    paper="Goodfellow et al. 2014, Generative Adversarial Nets (NeurIPS)",
    build=_build_nsgan,
)
register_objective(
    "mlgan",
    description=(
        "maximum-likelihood generator loss -exp(C_f)/2 = -D/(1-D)/2 with the sigmoid cross-entropy critic; "
        f"C_f clamped at {MLGAN_MAX_LOGIT:g}"
    ),
    paper="Goodfellow 2014, On distinguishability criteria for estimating generative models; NIPS 2016 Tutorial: GANs",
    build=_build_mlgan,
)


# --- relativistic family (seed 000) -----------------------------------------------------------


def _rsgan_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    # pairs C_r[i] with C_f[i]
    return F.softplus(-(_scores(c_real, "c_real") - _scores(c_fake, "c_fake"))).mean()


def _rsgan_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    return F.softplus(-(_scores(c_fake, "c_fake") - _scores(c_real, "c_real"))).mean()


def _rasgan_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    real_term = F.softplus(-(c_real - c_fake.mean())).mean()
    fake_term = F.softplus(c_fake - c_real.mean()).mean()
    return 0.5 * (real_term + fake_term)


def _rasgan_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    fake_term = F.softplus(-(c_fake - c_real.mean())).mean()
    real_term = F.softplus(c_real - c_fake.mean()).mean()
    return 0.5 * (fake_term + real_term)


def _ralsgan_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    real_term = (c_real - c_fake.mean() - 1).pow(2).mean()
    fake_term = (c_fake - c_real.mean() + 1).pow(2).mean()
    return 0.5 * (real_term + fake_term)


def _ralsgan_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    fake_term = (c_fake - c_real.mean() - 1).pow(2).mean()
    real_term = (c_real - c_fake.mean() + 1).pow(2).mean()
    return 0.5 * (fake_term + real_term)


def _rahinge_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    real_term = F.relu(1 - (c_real - c_fake.mean())).mean()
    fake_term = F.relu(1 + (c_fake - c_real.mean())).mean()
    return 0.5 * (real_term + fake_term)


def _rahinge_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    fake_term = F.relu(1 - (c_fake - c_real.mean())).mean()
    real_term = F.relu(1 + (c_real - c_fake.mean())).mean()
    return 0.5 * (fake_term + real_term)


def _build_rsgan() -> Objective:
    return Objective(d_loss=_rsgan_d_loss, g_loss=_rsgan_g_loss, defaults=_ADAM_DCGAN, generator_needs_real=True)


def _build_rasgan() -> Objective:
    return Objective(d_loss=_rasgan_d_loss, g_loss=_rasgan_g_loss, defaults=_ADAM_DCGAN, generator_needs_real=True)


def _build_ralsgan() -> Objective:
    return Objective(d_loss=_ralsgan_d_loss, g_loss=_ralsgan_g_loss, defaults=_ADAM_DCGAN, generator_needs_real=True)


def _build_rahinge() -> Objective:
    return Objective(d_loss=_rahinge_d_loss, g_loss=_rahinge_g_loss, defaults=_ADAM_DCGAN, generator_needs_real=True)


def _build_r3gan() -> Objective:
    # R3GAN's CIFAR-10 preset starts at lr 2e-4, Adam betas (0, 0.9), gamma 0.05 (its schedules
    # then decay lr to 5e-5 and gamma to 0.005 and raise beta2 to 0.99; the start values are kept)
    defaults = TrainingDefaults(
        optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9), critic_steps=1,
        tricks=(("r1", {"gamma": 0.05}), ("r2", {"gamma": 0.05})),
    )
    return Objective(d_loss=_rsgan_d_loss, g_loss=_rsgan_g_loss, defaults=defaults, generator_needs_real=True)


_RELATIVISTIC_PAPER = (
    "Jolicoeur-Martineau 2019, The relativistic discriminator: a key element missing from standard GAN (ICLR)"
)
register_objective(
    "rsgan",
    description="relativistic standard GAN: is a real sample more realistic than its paired fake?",
    paper=_RELATIVISTIC_PAPER,
    build=_build_rsgan,
)
register_objective(
    "rasgan",
    description="relativistic average standard GAN: each sample against the mean critic output of the other batch",
    paper=_RELATIVISTIC_PAPER,
    build=_build_rasgan,
)
register_objective(
    "ralsgan",
    description="relativistic average least-squares GAN",
    paper=_RELATIVISTIC_PAPER,
    build=_build_ralsgan,
)
register_objective(
    "rahinge",
    description="relativistic average hinge GAN",
    paper=_RELATIVISTIC_PAPER,
    build=_build_rahinge,
)
register_objective(
    "r3gan",
    description="RpGAN (rsgan's losses) regularised with R1 and R2 gradient penalties (tricks r1, r2, gamma 0.05)",
    paper="Huang, Gokaslan, Kuleshov, Tompkin 2024, The GAN is dead; long live the GAN! A Modern Baseline GAN",
    build=_build_r3gan,
)


# --- least squares, hinge, Wasserstein (seeds 003, 004) ----------------------------------------


def _lsgan_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    return 0.5 * (c_real - 1).pow(2).mean() + 0.5 * c_fake.pow(2).mean()


def _lsgan_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    return 0.5 * (_scores(c_fake, "c_fake") - 1).pow(2).mean()


def _hinge_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    return F.relu(1 - c_real).mean() + F.relu(1 + c_fake).mean()


def _wasserstein_d_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    return _scores(c_fake, "c_fake").mean() - _scores(c_real, "c_real").mean()


def _negative_fake_g_loss(c_real: Tensor, c_fake: Tensor) -> Tensor:
    return -_scores(c_fake, "c_fake").mean()


def _build_lsgan() -> Objective:
    return Objective(d_loss=_lsgan_d_loss, g_loss=_lsgan_g_loss, defaults=_ADAM_DCGAN)


def _build_hinge() -> Objective:
    return Objective(d_loss=_hinge_d_loss, g_loss=_negative_fake_g_loss, defaults=_ADAM_DCGAN)


def _build_sngan() -> Objective:
    # SNGAN's standard-CNN recipe as chainer-gan-lib's example.sh runs it (pfnet-research/chainer-gan-lib:
    # --n_dis 1 --adam_beta1 0.5 --adam_beta2 0.999, adam_alpha 2e-4), spectral norm in the critic, with
    # the hinge loss of the paper's best standard-CNN row (Miyato et al. 2018, table 2)
    defaults = replace(_ADAM_DCGAN, tricks=(("spectral-norm", {}),))
    return Objective(d_loss=_hinge_d_loss, g_loss=_negative_fake_g_loss, defaults=defaults)


def _build_wgan() -> Objective:
    defaults = TrainingDefaults(
        optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, critic_steps=5, tricks=(("weight-clipping", {"clip": 0.01}),)
    )
    return Objective(d_loss=_wasserstein_d_loss, g_loss=_negative_fake_g_loss, defaults=defaults)


def _build_wgan_gp() -> Objective:
    defaults = TrainingDefaults(
        optimizer="adam", lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9), critic_steps=5,
        tricks=(("gradient-penalty", {"weight": 10.0}),),
    )
    return Objective(d_loss=_wasserstein_d_loss, g_loss=_negative_fake_g_loss, defaults=defaults)


register_objective(
    "lsgan",
    description="least-squares GAN with targets a=0 (fake), b=1 (real), c=1 (generator)",
    paper="Mao et al. 2017, Least Squares Generative Adversarial Networks (ICCV)",
    build=_build_lsgan,
)
register_objective(
    "hinge",
    description="hinge loss for the critic, -C_f for the generator; no constraint on the critic",
    paper="Lim & Ye 2017, Geometric GAN (arXiv 1705.02894)",
    build=_build_hinge,
)
register_objective(
    "sngan",
    description=(
        "SNGAN: the hinge loss with spectral norm in the critic (trick spectral-norm), Adam(2e-4, 0.5, 0.999), "
        "one critic step (the standard-CNN setting)"
    ),
    paper="Miyato, Kataoka, Koyama, Yoshida 2018, Spectral Normalization for Generative Adversarial Networks "
    "(ICLR); recipe from pfnet-research/chainer-gan-lib example.sh",
    build=_build_sngan,
)
register_objective(
    "wgan",
    description="Wasserstein GAN: critic C_f - C_r with weights clipped to [-0.01, 0.01], RMSprop, 5 critic steps",
    paper="Arjovsky, Chintala, Bottou 2017, Wasserstein GAN (ICML)",
    build=_build_wgan,
)
register_objective(
    "wgan-gp",
    description="Wasserstein GAN with gradient penalty (weight 10), Adam(1e-4, 0, 0.9), 5 critic steps",
    paper="Gulrajani et al. 2017, Improved Training of Wasserstein GANs (NeurIPS)",
    build=_build_wgan_gp,
)


# --- f-GAN (seed 003) -------------------------------------------------------------------------


@dataclass(frozen=True)
class FDivergence:
    """An f-GAN divergence: output activation `g_f(v)` and the conjugate composed with it,
    `f*(g_f(v))`, both elementwise on critic outputs v of any shape, finite for every real v."""

    activation: Callable[[Tensor], Tensor]
    conjugate_of_activation: Callable[[Tensor], Tensor]


def _kl_conjugate(v: Tensor) -> Tensor:
    return torch.exp(v - 1)


def _reverse_kl_activation(v: Tensor) -> Tensor:
    return -torch.exp(-v)


def _reverse_kl_conjugate(v: Tensor) -> Tensor:
    # -1 - log(-t) at t = -exp(-v)
    return v - 1


def _pearson_conjugate(v: Tensor) -> Tensor:
    return 0.25 * v.pow(2) + v


def _neyman_activation(v: Tensor) -> Tensor:
    return 1 - torch.exp(v)


def _neyman_conjugate(v: Tensor) -> Tensor:
    # 2 - 2*sqrt(1 - t) at t = 1 - exp(v)
    return 2 - 2 * torch.exp(0.5 * v)


def _hellinger_activation(v: Tensor) -> Tensor:
    return 1 - torch.exp(-v)


def _hellinger_conjugate(v: Tensor) -> Tensor:
    # t / (1 - t) at t = 1 - exp(-v)
    return torch.expm1(v)


def _js_activation(v: Tensor) -> Tensor:
    return math.log(2.0) - F.softplus(-v)


def _js_conjugate(v: Tensor) -> Tensor:
    # -log(2 - exp(t)) at t = log 2 - sp(-v): exp(t) = 2*sigmoid(v), so -log(2*(1 - sigmoid(v)))
    return F.softplus(v) - math.log(2.0)


def _tv_activation(v: Tensor) -> Tensor:
    return 0.5 * torch.tanh(v)


def _identity(v: Tensor) -> Tensor:
    return v


F_DIVERGENCES: Mapping[str, FDivergence] = MappingProxyType({
    "kl": FDivergence(_identity, _kl_conjugate),
    "reverse-kl": FDivergence(_reverse_kl_activation, _reverse_kl_conjugate),
    "pearson": FDivergence(_identity, _pearson_conjugate),
    "neyman": FDivergence(_neyman_activation, _neyman_conjugate),
    "hellinger": FDivergence(_hellinger_activation, _hellinger_conjugate),
    "js": FDivergence(_js_activation, _js_conjugate),
    "tv": FDivergence(_tv_activation, _tv_activation),
})

_F_GAN_OPTIONS = {
    "generator_form": Option(
        "practical", str, choices=("practical", "saturating"),
        description="the generator's loss: practical -g_f(v_f) (the paper's non-saturating choice) or "
                    "saturating -f*(g_f(v_f))",
    ),
}


def _fgan_d_loss(c_real: Tensor, c_fake: Tensor, *, divergence: FDivergence) -> Tensor:
    c_real, c_fake = _scores(c_real, "c_real"), _scores(c_fake, "c_fake")
    return -(divergence.activation(c_real).mean() - divergence.conjugate_of_activation(c_fake).mean())


def _fgan_g_loss_practical(c_real: Tensor, c_fake: Tensor, *, divergence: FDivergence) -> Tensor:
    return -divergence.activation(_scores(c_fake, "c_fake")).mean()


def _fgan_g_loss_saturating(c_real: Tensor, c_fake: Tensor, *, divergence: FDivergence) -> Tensor:
    return -divergence.conjugate_of_activation(_scores(c_fake, "c_fake")).mean()


def _fgan_builder(short_name: str) -> Callable[..., Objective]:
    divergence = F_DIVERGENCES[short_name]

    def build(*, generator_form: str) -> Objective:
        g_loss = _fgan_g_loss_practical if generator_form == "practical" else _fgan_g_loss_saturating
        return Objective(
            d_loss=functools.partial(_fgan_d_loss, divergence=divergence),
            g_loss=functools.partial(g_loss, divergence=divergence),
            defaults=_ADAM_DCGAN,
        )

    return build


_FGAN_DESCRIPTIONS = {
    "kl": "f-GAN, Kullback-Leibler divergence (g_f(v) = v, f*(t) = exp(t - 1))",
    "reverse-kl": "f-GAN, reverse Kullback-Leibler divergence (g_f(v) = -exp(-v), f*(t) = -1 - log(-t))",
    "pearson": "f-GAN, Pearson chi^2 divergence (g_f(v) = v, f*(t) = t^2/4 + t)",
    "neyman": "f-GAN, Neyman chi^2 divergence (g_f(v) = 1 - exp(v), f*(t) = 2 - 2 sqrt(1 - t))",
    "hellinger": "f-GAN, squared Hellinger distance (g_f(v) = 1 - exp(-v), f*(t) = t / (1 - t))",
    "js": "f-GAN, Jensen-Shannon divergence (g_f(v) = log 2 - sp(-v), f*(t) = -log(2 - exp(t)))",
    "tv": "f-GAN, total variation distance (g_f(v) = tanh(v)/2, f*(t) = t)",
}
for _short_name in F_DIVERGENCES:
    register_objective(
        f"fgan-{_short_name}",
        description=_FGAN_DESCRIPTIONS[_short_name] + "; generator_form 'practical' (-g_f(v_f)) or 'saturating'",
        paper="Nowozin, Cseke, Tomioka 2016, f-GAN: Training Generative Neural Samplers using Variational "
        "Divergence Minimization (NeurIPS)",
        build=_fgan_builder(_short_name),
        options=_F_GAN_OPTIONS,
    )


# --- GAN-QP and BiGAN-QP (seed 002) -----------------------------------------------------------

_QP_DISTANCE = Option(
    "l1", str, choices=("l1", "l2"),
    description="the per-sample distance d: l1 mean absolute difference, l2 root mean squared difference",
)
_QP_LAM = Option(10.0, float, low=0.0, low_open=True,
                 description="lambda: the quadratic term is Delta^2 / (2 lambda d)")
_GAN_QP_OPTIONS = {"distance": _QP_DISTANCE, "lam": _QP_LAM}
_BIGAN_QP_OPTIONS = {
    **_GAN_QP_OPTIONS,
    "beta1": Option(2.0, float, low=0.0, description="weight of the latent guide mean (z - E(G(z)))^2"),
    "beta2": Option(3.0, float, low=0.0, description="weight of the data guide mean (x - G(E(x)))^2"),
}


def qp_distance(a: Tensor, b: Tensor, *, distance: str) -> Tensor:
    """Per-sample distance d(a[i], b[i]) for GAN-QP: shape (batch,), from a, b of shape (batch, ...).

    "l1": mean absolute difference over the non-batch dimensions; "l2": root mean squared
    difference (as the reference code's `sqrt(mean(square(x_r - x_f)))`). Floored at
    GAN_QP_MIN_DISTANCE.
    """
    distance = resolve("qp_distance", {"distance": distance}, {"distance": _QP_DISTANCE})["distance"]
    difference = (a - b).flatten(1)
    if distance == "l1":
        d = difference.abs().mean(dim=1)
    else:
        d = difference.pow(2).mean(dim=1).clamp(min=GAN_QP_MIN_DISTANCE**2).sqrt()
    return d.clamp(min=GAN_QP_MIN_DISTANCE)


def _qp_critic_loss(delta: Tensor, d: Tensor, lam: float) -> Tensor:
    # the distance is a fixed weight of the critic's objective: no gradient flows through it
    return (-delta + delta.pow(2) / (2 * lam * d.detach())).mean()


def _gan_qp_d_loss(
    c_real: Tensor, c_fake: Tensor, *, x_real: Tensor, x_fake: Tensor, distance: str, lam: float
) -> Tensor:
    delta = _scores(c_real, "c_real") - _scores(c_fake, "c_fake")
    return _qp_critic_loss(delta, qp_distance(x_real, x_fake, distance=distance), lam)


def _gan_qp_g_loss(
    c_real: Tensor, c_fake: Tensor, *, x_real: Tensor | None = None, x_fake: Tensor | None = None
) -> Tensor:
    # x_real / x_fake are accepted (the loop passes extra_inputs to both losses) and unused
    return (_scores(c_real, "c_real") - _scores(c_fake, "c_fake")).mean()


def _bigan_qp_d_loss(
    c_real: Tensor, c_fake: Tensor, *, x_real: Tensor, x_fake: Tensor, z_real: Tensor, z_fake: Tensor,
    distance: str, lam: float,
) -> Tensor:
    delta = _scores(c_real, "c_real") - _scores(c_fake, "c_fake")
    d = qp_distance(x_real, x_fake, distance=distance) + qp_distance(z_real, z_fake, distance=distance)
    return _qp_critic_loss(delta, d, lam)


def _bigan_qp_g_loss(
    c_real: Tensor, c_fake: Tensor, *, x_real: Tensor | None = None, x_fake: Tensor | None = None,
    z_real: Tensor | None = None, z_fake: Tensor | None = None,
) -> Tensor:
    return (_scores(c_real, "c_real") - _scores(c_fake, "c_fake")).mean()


def bigan_qp_reconstruction(
    z: Tensor, z_rec: Tensor, x: Tensor, x_rec: Tensor, *, beta1: float, beta2: float
) -> Tensor:
    """BiGAN-QP's two guide terms `beta1 * mean (z - z_rec)^2 + beta2 * mean (x - x_rec)^2`, a scalar.

    Shapes: z, z_rec (batch, latent_dim); x, x_rec (batch, *data_shape). Each mean is over every
    element (batch and features), as the reference code's `K.mean(K.square(...))`.

    The stop-gradients belong where E and G are called (the training loop), exactly:
      - `z_rec = E(G(z).detach())`: the latent guide trains the encoder only, never G;
      - `x_rec = G(E(x).detach())`: the data guide trains the generator only, never E;
      - z is the noise fed to G and x the real batch (neither needs a gradient).
    """
    return beta1 * (z - z_rec).pow(2).mean() + beta2 * (x - x_rec).pow(2).mean()


def _build_gan_qp(*, distance: str, lam: float) -> Objective:
    # the reference code: Adam(2e-4, 0.5), two critic steps per generator step
    defaults = replace(_ADAM_DCGAN, critic_steps=2)
    return Objective(
        d_loss=functools.partial(_gan_qp_d_loss, distance=distance, lam=float(lam)),
        g_loss=_gan_qp_g_loss,
        defaults=defaults,
        generator_needs_real=True,
        extra_inputs=("x_real", "x_fake"),
    )


def _build_bigan_qp(*, distance: str, lam: float, beta1: float, beta2: float) -> Objective:
    defaults = replace(_ADAM_DCGAN, critic_steps=2)
    return Objective(
        d_loss=functools.partial(_bigan_qp_d_loss, distance=distance, lam=float(lam)),
        g_loss=_bigan_qp_g_loss,
        defaults=defaults,
        generator_needs_real=True,
        extra_inputs=("x_real", "x_fake", "z_real", "z_fake"),
        critic_input="pair",
    )


_GAN_QP_PAPER = (
    "Su 2018, GAN-QP: A Novel GAN Framework without Gradient Vanishing and Lipschitz Constraint (arXiv 1811.07296)"
)
register_objective(
    "gan-qp",
    description=(
        "GAN with a quadratic potential: critic -Delta + Delta^2/(2 lam d(x_r, x_f)), generator Delta = C_r - C_f; "
        "no Lipschitz constraint. Needs extra inputs x_real, x_fake (paired element by element)"
    ),
    paper=_GAN_QP_PAPER,
    build=_build_gan_qp,
    options=_GAN_QP_OPTIONS,
)
register_objective(
    "bigan-qp",
    description=(
        "bidirectional GAN-QP: a critic T on (x, z) pairs, Delta = T(x, E(x)) - T(G(z), z), d measured on the "
        "pairs (d(x_r, x_f) + d(z_r, z_f)); the encoder/generator also minimise bigan_qp_reconstruction "
        "with options beta1, beta2. Needs extra inputs x_real, x_fake = G(z_fake), z_real = E(x_real), z_fake"
    ),
    paper=_GAN_QP_PAPER + "; Su 2018, BiGAN-QP (kexue.fm/archives/6214)",
    build=_build_bigan_qp,
    options=_BIGAN_QP_OPTIONS,
)


# --- RealnessGAN (seed 004) -------------------------------------------------------------------

_REALNESS_OPTIONS = {
    "num_outcomes": Option(10, int, low=2,
                           description="outcomes of the critic's realness distribution (the anchors' bins)"),
    "generator_objective": Option(
        2, int, choices=(1, 2, 3),
        description="the paper's generator loss: 1 away from A0; 2 KL(C_r || C_f) away from A0 (the paper's "
                    "choice); 3 towards A1 and away from A0",
    ),
}



@dataclass(frozen=True)
class RealnessAnchors:
    """RealnessGAN's anchor distributions over `num_outcomes` outcomes, float64, each summing to 1.

    `real` is A1 (histogram of U(-1, 1) draws), `fake` is A0 (histogram of N(0, 0.1) draws).
    """

    real: Tensor
    fake: Tensor


def _histogram(samples: Tensor, bins: int) -> Tensor:
    # np.histogram(samples, bins): `bins` equal-width bins spanning [min, max] of the samples,
    # each half-open except the last, which also holds the maximum
    low, high = samples.min(), samples.max()
    index = ((samples - low) / (high - low) * bins).floor().long().clamp(max=bins - 1)
    counts = torch.bincount(index, minlength=bins).to(torch.float64)
    return counts / counts.sum()


@functools.cache
def _realness_anchors_cached(num_outcomes: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator(device="cpu").manual_seed(REALNESS_ANCHOR_SEED)
    # normal draws by Box-Muller from float64 uniforms, so the draws depend only on the
    # Mersenne Twister stream and not on which vectorised normal sampler a build of torch uses
    u1 = torch.rand(REALNESS_ANCHOR_DRAWS, generator=generator, dtype=torch.float64)
    u2 = torch.rand(REALNESS_ANCHOR_DRAWS, generator=generator, dtype=torch.float64)
    gauss = 0.1 * torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos(2.0 * math.pi * u2)
    uniform = torch.rand(REALNESS_ANCHOR_DRAWS, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    return _histogram(uniform, num_outcomes), _histogram(gauss, num_outcomes)


def realness_anchors(num_outcomes: int) -> RealnessAnchors:
    """The anchors A1 (real) and A0 (fake), each shape (num_outcomes,), float64, summing to 1.

    As the paper's code (`np.histogram(draws, num_outcomes)` then `count / sum(count)`): 1000
    draws each, `num_outcomes` equal-width bins over the range [min, max] of the draws
    themselves (so A1 and A0 have their own bin ranges), the last bin closed. The draws come from
    a local torch.Generator seeded with REALNESS_ANCHOR_SEED (first 2x1000 uniforms turned into
    N(0, 0.1) by Box-Muller, then 1000 for U(-1, 1)), so the anchors are identical on every machine
    and at every call (the paper draws them from the run's global numpy seed instead).
    """
    num_outcomes = resolve("objective 'realness'", {"num_outcomes": num_outcomes},
                           {"num_outcomes": _REALNESS_OPTIONS["num_outcomes"]})["num_outcomes"]
    real, fake = _realness_anchors_cached(num_outcomes)
    return RealnessAnchors(real=real.clone(), fake=fake.clone())


def _kl_from_anchor(anchor: Tensor, logits: Tensor) -> Tensor:
    # KL(A || softmax(logits)) per sample, shape (batch,); xlogy makes empty anchor bins contribute 0
    anchor = anchor.to(dtype=logits.dtype, device=logits.device)
    return (torch.xlogy(anchor, anchor) - anchor * F.log_softmax(logits, dim=1)).sum(dim=1)


def _kl_between(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    # KL(softmax(p) || softmax(q)) per sample pair, shape (batch,)
    log_p, log_q = F.log_softmax(p_logits, dim=1), F.log_softmax(q_logits, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def _check_outcomes(c: Tensor, num_outcomes: int, role: str) -> None:
    if c.dim() != 2 or c.shape[1] != num_outcomes:
        raise ValueError(f"realness: {role} must have shape (batch, {num_outcomes}), got {tuple(c.shape)}")


def _realness_d_loss(c_real: Tensor, c_fake: Tensor, *, real_anchor: Tensor, fake_anchor: Tensor) -> Tensor:
    num_outcomes = real_anchor.shape[0]
    _check_outcomes(c_real, num_outcomes, "c_real")
    _check_outcomes(c_fake, num_outcomes, "c_fake")
    return _kl_from_anchor(real_anchor, c_real).mean() + _kl_from_anchor(fake_anchor, c_fake).mean()


def _realness_g_loss(
    c_real: Tensor, c_fake: Tensor, *, real_anchor: Tensor, fake_anchor: Tensor, generator_objective: int
) -> Tensor:
    num_outcomes = real_anchor.shape[0]
    _check_outcomes(c_fake, num_outcomes, "c_fake")
    away_from_fake = -_kl_from_anchor(fake_anchor, c_fake).mean()
    if generator_objective == 1:
        return away_from_fake
    if generator_objective == 2:
        _check_outcomes(c_real, num_outcomes, "c_real")
        return _kl_between(c_real, c_fake).mean() + away_from_fake
    return _kl_from_anchor(real_anchor, c_fake).mean() + away_from_fake


def _build_realness(*, num_outcomes: int, generator_objective: int) -> Objective:
    anchors = realness_anchors(num_outcomes)
    # the paper's code: Adam(1e-4, 0.5, 0.999) for both networks, one critic step, spectral norm in D
    defaults = TrainingDefaults(
        optimizer="adam", lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.999), critic_steps=1, tricks=(("spectral-norm", {}),)
    )
    return Objective(
        d_loss=functools.partial(_realness_d_loss, real_anchor=anchors.real, fake_anchor=anchors.fake),
        g_loss=functools.partial(
            _realness_g_loss, real_anchor=anchors.real, fake_anchor=anchors.fake,
            generator_objective=generator_objective,
        ),
        defaults=defaults,
        critic_outputs=num_outcomes,
        generator_needs_real=generator_objective == 2,
    )


register_objective(
    "realness",
    description=(
        "RealnessGAN: the critic outputs a distribution of realness over num_outcomes outcomes, matched by KL to "
        "anchors A1 (uniform) for reals and A0 (Gaussian) for fakes; generator_objective 1, 2 or 3"
    ),
    paper="Xiangli et al. 2020, Real or Not Real, that is the Question (ICLR)",
    build=_build_realness,
    options=_REALNESS_OPTIONS,
)
