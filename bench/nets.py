"""Architectures by name: each builds a generator, a critic, an encoder and a pair critic for a data shape.

- `mlp`: the standard toy-GAN multilayer perceptrons, for flat data such as the 2-D mixtures (shape (2,)).
  Options give the critic its own width and depth, maxout hidden layers (Goodfellow et al. 2013), the
  generator's hidden layers no bias, and every linear layer N(0, init_std^2) weights with zero biases:
  together the networks of the ALI / PacGAN mixture experiments (fjxmlzn/PacGAN
  `synthetic_data_experiments/2DRing_GAN&PacGAN/pacgan_task.py` L43-90, `config.py` L16-22).
- `dcgan`: the DCGAN of the tutorial in shared seed 003 (ConvTranspose/BatchNorm/ReLU generator ending in
  tanh, Conv/BatchNorm/LeakyReLU(0.2) critic), for square 28, 32 or 64 px images with 1 or 3 channels.
- `resnet`: SNGAN's CIFAR-10 ResNet (Miyato et al. 2018, appendix): a generator of up-sampling residual
  blocks (BN, ReLU, nearest 2x upsample, 3x3 convs) ending in BN-ReLU-conv3x3-tanh, and a critic of an
  optimised first block, residual down-sampling blocks, ReLU, global sum pooling and a linear head;
  32 px (SNGAN's setting), also 28 and 64 px, 1 or 3 channels. One `width` sets both networks: the
  generator has `width` channels and the critic `width // 2` (SNGAN: 256 and 128). SNGAN trains this
  critic under spectral norm only: without it, the sum over the 8 x 8 positions gives logits of tens at
  initialisation (|c| up to about 30 on digits at the default width), where tanh- and sigmoid-shaped
  losses have almost no gradient; `pooling: mean` (the layout of Gulrajani et al. 2017's CIFAR-10
  ResNet critic) divides them by the number of positions. BiGAN-QP's encoder is the critic's trunk
  with batch norm in its blocks and a linear output; its pair critic joins that trunk with a z branch.
- `standard-cnn`: the "standard CNN" of the SNGAN paper (Miyato et al. 2018, table 3) as the RGAN code
  (AlexiaJM/RelativisticGAN `code/GAN_losses_iter.py`, `--arch 1`) builds it for 32 px: z 128 -> dense
  4x4x512 (no normalisation) -> three deconv4 s2 (256, 128, 64) each with BN and ReLU -> conv3 -> tanh;
  critic conv3 64, conv4 s2 64, conv3 128, conv4 s2 128, conv3 256, conv4 s2 256, conv3 512, each with
  LeakyReLU(0.1) and batch norm after the first six (dropped under spectral norm, as `--spectral True`),
  then a dense output. `width` scales every layer (64: the paper's sizes). The RGAN code leaves the
  output layer without spectral norm; SNGAN's chainer code normalises it (`spectral_norm_head`).

Every critic exposes `features(x) -> (B, F)` and `head(f) -> (B,)` (or (B, critic_outputs)), with
`forward(x) == head(features(x))`; outputs are raw logits. Options common to every architecture:
`spectral_norm` (every conv/linear of the critic parametrised by torch's spectral norm, and the
critic's batch norm dropped, as in SNGAN), `minibatch_discrimination` (Salimans et al. 2016, a layer
inside the head), `norm` for the generator (`batch`, `virtual-batch`, `none`) and `critic_norm`.

`critic_sample_coupling(arch, options)` says whether a critic's output for one sample depends on the
other samples of its batch (batch norm in training mode, minibatch discrimination); penalties on
per-sample gradients (bench.penalties) must not run on such a critic.

Weights are drawn from torch's global RNG only, so the training loop's seed fixes the networks. The
virtual batch norm reference batch is drawn from its own fixed-seed generator and leaves the global
RNG untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from bench.registry import REQUIRED, Option, Registry, option_defaults, resolve

__all__ = [
    "ARCHS",
    "Architecture",
    "Critic",
    "Generator",
    "Maxout",
    "MinibatchDiscrimination",
    "PairCritic",
    "SampleCoupling",
    "VirtualBatchNorm",
    "arch_option_defaults",
    "arch_supports",
    "build_critic",
    "build_encoder",
    "build_generator",
    "build_pair_critic",
    "critic_sample_coupling",
    "default_latent_dim",
    "list_archs",
    "pack_samples",
    "parameter_count",
]

# The virtual batch norm reference batch: drawn once per network from this seed, N(0, 1) like z.
VBN_REFERENCE_SEED = 0
VBN_REFERENCE_SIZE = 64

DataShape = tuple[int, ...]


# --- sizes ----------------------------------------------------------------------------------------

# the sizes every builder takes beside the architecture's options, checked as options are
_SIZES = {
    "latent_dim": Option(REQUIRED, int, low=1, description="size of the latent code z"),
    "critic_outputs": Option(1, int, low=1, description="critic outputs per sample (RealnessGAN: num_outcomes)"),
}


# --- layers ---------------------------------------------------------------------------------------


class VirtualBatchNorm(nn.Module):
    """Virtual batch norm (Salimans et al. 2016), for input whose first `reference_size` rows are the
    activations of a fixed reference batch.

    Reference rows are normalised with the reference batch's statistics; every other example with
    statistics of the reference batch plus itself (weight 1/(reference_size + 1) on itself). Per
    channel: input (N, C) or (N, C, H, W), statistics over the batch and the spatial dimensions.
    Train and eval modes behave the same.
    """

    def __init__(self, num_features: int, reference_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.reference_size = reference_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, h: Tensor) -> Tensor:
        size = self.reference_size
        spatial = tuple(range(2, h.dim()))
        view = (1, -1) + (1,) * len(spatial)
        reference, batch = h[:size], h[size:]
        ref_mean = reference.mean(dim=(0, *spatial))
        ref_meansq = reference.pow(2).mean(dim=(0, *spatial))
        new = 1.0 / (size + 1)
        if spatial:
            own_mean, own_meansq = batch.mean(dim=spatial), batch.pow(2).mean(dim=spatial)
        else:
            own_mean, own_meansq = batch, batch.pow(2)
        mean = (1 - new) * ref_mean + new * own_mean  # (B, C)
        meansq = (1 - new) * ref_meansq + new * own_meansq
        ref_var = ref_meansq - ref_mean.pow(2)
        var = meansq - mean.pow(2)
        out_ref = (reference - ref_mean.view(view)) / torch.sqrt(ref_var.view(view) + self.eps)
        out = (batch - mean.view(*mean.shape, *(1,) * len(spatial))) / torch.sqrt(
            var.view(*var.shape, *(1,) * len(spatial)) + self.eps
        )
        return torch.cat([out_ref, out]) * self.weight.view(view) + self.bias.view(view)


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): x (B, in_features) -> (B, units), each unit the largest of
    `pieces` affine maps of x. One Linear to units * pieces outputs, then the maximum over each unit's
    consecutive `pieces` outputs, as Blocks' `LinearMaxout` (a Linear, then `Maxout` reshaping the last
    axis to (units, pieces))."""

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units = units
        self.pieces = pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=2)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016): f (B, F) -> cat(f, o) (B, F + kernels).

    M = f @ T with T (F, kernels, kernel_dims); o[i, k] = sum_{j != i} exp(-||M[i, k] - M[j, k]||_1),
    so a batch of near-identical samples gives large o. T ~ N(0, 0.05) as in the paper's code (the
    tutorial's N(0, 1) makes every distance so large that o is 0 for features of any width).
    """

    def __init__(self, in_features: int, kernels: int, kernel_dims: int) -> None:
        super().__init__()
        self.kernels = kernels
        self.kernel_dims = kernel_dims
        self.T = nn.Parameter(torch.empty(in_features, kernels * kernel_dims))
        nn.init.normal_(self.T, 0.0, 0.05)

    def forward(self, f: Tensor) -> Tensor:
        m = (f @ self.T).view(f.shape[0], self.kernels, self.kernel_dims).transpose(0, 1)  # (K, B, D)
        distances = torch.cdist(m, m, p=1)  # (K, B, B)
        similarity = torch.exp(-distances).sum(dim=2) - 1.0  # minus exp(0) of each sample with itself
        return torch.cat([f, similarity.transpose(0, 1)], dim=1)


class _Head(nn.Module):
    """features (B, F) -> logits (B,) when outputs == 1 else (B, outputs); optional minibatch layer first."""

    def __init__(self, in_features: int, outputs: int, options: Mapping[str, Any], bias: bool) -> None:
        super().__init__()
        self.outputs = outputs
        self.minibatch: MinibatchDiscrimination | None
        if options["minibatch_discrimination"]:
            self.minibatch = MinibatchDiscrimination(
                in_features, options["minibatch_kernels"], options["minibatch_kernel_dims"]
            )
            in_features += options["minibatch_kernels"]
        else:
            self.minibatch = None
        self.linear = nn.Linear(in_features, outputs, bias=bias)

    def forward(self, f: Tensor) -> Tensor:
        if self.minibatch is not None:
            f = self.minibatch(f)
        logits = self.linear(f)
        return logits.squeeze(1) if self.outputs == 1 else logits


class Generator(nn.Module):
    """z (B, latent_dim) -> x (B, *data_shape). With virtual batch norm, a fixed reference batch of z
    (a buffer, drawn from seed VBN_REFERENCE_SEED) runs through the network beside every batch."""

    reference_z: Tensor | None  # a registered buffer

    def __init__(self, net: nn.Module, latent_dim: int, data_shape: DataShape, virtual_batch: bool) -> None:
        super().__init__()
        self.net = net
        self.latent_dim = latent_dim
        self.data_shape = tuple(data_shape)
        if virtual_batch:
            reference = torch.Generator().manual_seed(VBN_REFERENCE_SEED)
            self.register_buffer("reference_z", torch.randn(VBN_REFERENCE_SIZE, latent_dim, generator=reference))
        else:
            self.register_buffer("reference_z", None)

    def forward(self, z: Tensor) -> Tensor:
        if self.reference_z is None:
            return self.net(z)
        size = self.reference_z.shape[0]
        return self.net(torch.cat([self.reference_z.to(z.dtype), z]))[size:]


class Critic(nn.Module):
    """x (B, *data_shape) -> logits; `features(x)` (B, F) and `head(f)` (B,) or (B, critic_outputs)."""

    def __init__(self, trunk: nn.Module, head: _Head) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class PairCritic(nn.Module):
    """T(x, z) for BiGAN-QP: x (B, *data_shape), z (B, latent_dim) -> logits (B,).

    `features(x, z)` (B, F) joins an x branch and a z branch; `head(f)` (B,)."""

    def __init__(self, x_branch: nn.Module, z_branch: nn.Module, joint: nn.Module, head: _Head) -> None:
        super().__init__()
        self.x_branch = x_branch
        self.z_branch = z_branch
        self.joint = joint
        self.head = head

    def features(self, x: Tensor, z: Tensor) -> Tensor:
        return self.joint(torch.cat([self.x_branch(x), self.z_branch(z)], dim=1))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.head(self.features(x, z))


def _apply_spectral_norm(module: nn.Module) -> None:
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            _spectral_norm(layer)


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.LeakyReLU(0.2)


def _generator_norm(kind: str, features: int, dims: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features) if dims == 1 else nn.BatchNorm2d(features)
    if kind == "virtual-batch":
        return VirtualBatchNorm(features, VBN_REFERENCE_SIZE)
    return nn.Identity()


def _critic_norm(options: Mapping[str, Any], features: int, dims: int) -> nn.Module:
    """The critic's normalisation layer; none under spectral norm, as SNGAN."""
    kind = "none" if options["spectral_norm"] else options["critic_norm"]
    if kind == "batch":
        return nn.BatchNorm1d(features) if dims == 1 else nn.BatchNorm2d(features)
    if kind == "layer":
        return nn.LayerNorm(features) if dims == 1 else nn.GroupNorm(1, features)
    return nn.Identity()


def _uses_critic_norm(options: Mapping[str, Any]) -> bool:
    return not options["spectral_norm"] and options["critic_norm"] != "none"


def _finish_critic(critic: nn.Module, options: Mapping[str, Any]) -> nn.Module:
    if options["spectral_norm"]:
        _apply_spectral_norm(critic)
    return critic


# --- architecture entries -----------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    """A registry entry. Builders take (data_shape, width-like int, resolved options)."""

    name: str
    description: str
    options: Mapping[str, Option]
    supports: Callable[[DataShape], str | None]
    latent_dim: Callable[[DataShape], int]
    generator: Callable[[DataShape, int, Mapping[str, Any]], nn.Module]
    critic: Callable[[DataShape, int, Mapping[str, Any]], nn.Module]
    encoder: Callable[[DataShape, int, Mapping[str, Any]], nn.Module]
    pair_critic: Callable[[DataShape, int, Mapping[str, Any]], nn.Module]


ARCHS: Registry[Architecture] = Registry("architecture")


def _common_options(generator_norm: str, critic_norm: str) -> dict[str, Option]:
    return {
        "norm": Option(generator_norm, str, choices=("batch", "virtual-batch", "none"),
                       description="generator normalisation"),
        "critic_norm": Option(critic_norm, str, choices=("batch", "layer", "none"),
                              description="critic normalisation (none under spectral_norm)"),
        "spectral_norm": Option(False, bool, description="spectral norm on every critic conv/linear"),
        "minibatch_discrimination": Option(False, bool,
                                           description="minibatch discrimination before the critic's output layer"),
        "minibatch_kernels": Option(100, int, low=1, description="minibatch discrimination kernels"),
        "minibatch_kernel_dims": Option(5, int, low=1, description="dimensions per minibatch kernel"),
    }


# mlp ----------------------------------------------------------------------------------------------


def _mlp_supports(data_shape: DataShape) -> str | None:
    if len(data_shape) != 1:
        return f"mlp takes flat vectors of shape (D,), e.g. the 2-D mixtures (2,); got {tuple(data_shape)}"
    return None


def _mlp_trunk(
    in_features: int, width: int, depth: int, options: Mapping[str, Any], norm: Callable[[int], nn.Module],
    *, bias: bool = True, maxout_pieces: int | None = None,
) -> nn.Sequential:
    """(B, in_features) -> (B, width): `depth` hidden layers, each Linear -> norm -> activation, or, with
    `maxout_pieces`, a maxout layer of that many pieces -> norm."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        if maxout_pieces is None:
            layers += [nn.Linear(in_features, width, bias=bias), norm(width), _activation(options["activation"])]
        else:
            layers += [Maxout(in_features, width, maxout_pieces), norm(width)]
        in_features = width
    return nn.Sequential(*layers)


def _mlp_critic_trunk(in_features: int, options: Mapping[str, Any]) -> tuple[nn.Sequential, int]:
    """The critic's hidden layers (critic_width, critic_depth, critic_maxout_pieces) and their width."""
    width = options["critic_width"] or options["width"]
    depth = options["critic_depth"] or options["depth"]
    trunk = _mlp_trunk(in_features, width, depth, options, lambda n: _critic_norm(options, n, 1),
                       maxout_pieces=options["critic_maxout_pieces"])
    return trunk, width


def _mlp_init(module: nn.Module, options: Mapping[str, Any]) -> nn.Module:
    """With `init_std`, every linear weight (maxout pieces and output layers included) drawn from
    N(0, init_std^2) and every bias 0 (Blocks' IsotropicGaussian and Constant(0)); otherwise torch's
    default init, untouched."""
    if options["init_std"] is not None:
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, options["init_std"])
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return module


def _mlp_generator(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    trunk = _mlp_trunk(latent_dim, options["width"], options["depth"], options,
                       lambda n: _generator_norm(options["norm"], n, 1), bias=options["generator_hidden_bias"])
    net = nn.Sequential(*trunk, nn.Linear(options["width"], data_shape[0]))
    return _mlp_init(Generator(net, latent_dim, data_shape, options["norm"] == "virtual-batch"), options)


def _mlp_critic(data_shape: DataShape, critic_outputs: int, options: Mapping[str, Any]) -> nn.Module:
    trunk, width = _mlp_critic_trunk(data_shape[0], options)
    critic = _mlp_init(Critic(trunk, _Head(width, critic_outputs, options, bias=True)), options)
    return _finish_critic(critic, options)


def _mlp_encoder(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    trunk = _mlp_trunk(data_shape[0], options["width"], options["depth"], options, lambda n: nn.Identity())
    return _mlp_init(nn.Sequential(*trunk, nn.Linear(options["width"], latent_dim)), options)


def _mlp_pair_critic(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    joint, width = _mlp_critic_trunk(data_shape[0] + latent_dim, options)
    critic = _mlp_init(PairCritic(nn.Identity(), nn.Identity(), joint, _Head(width, 1, options, bias=True)), options)
    return _finish_critic(critic, options)


ARCHS.register(
    "mlp",
    Architecture(
        name="mlp",
        description="toy-GAN multilayer perceptrons for flat (D,) data such as the 2-D mixtures",
        options=MappingProxyType({
            "width": Option(128, int, low=1, description="hidden units per layer"),
            "depth": Option(3, int, low=1, description="hidden layers"),
            "activation": Option("relu", str, choices=("relu", "leaky_relu"),
                                 description="hidden activation (leaky slope 0.2)"),
            "critic_width": Option(None, int, low=1, nullable=True,
                                   description="the critic's hidden units per layer (null: width; PacGAN: 200)"),
            "critic_depth": Option(None, int, low=1, nullable=True,
                                   description="the critic's hidden layers (null: depth; PacGAN: 3)"),
            "critic_maxout_pieces": Option(None, int, low=2, nullable=True, description=(
                "the critic's hidden layers are maxout units of this many pieces in place of linear + activation "
                "(null: linear + activation; PacGAN: 5)")),
            "generator_hidden_bias": Option(True, bool, description=(
                "bias in the generator's hidden linear layers (PacGAN: none, batch norm follows); the output "
                "layer keeps its bias")),
            "init_std": Option(None, float, low=0.0, low_open=True, nullable=True, description=(
                "every linear weight N(0, init_std^2) and every bias 0 (null: torch's default init; "
                "PacGAN: 0.02)")),
            **_common_options(generator_norm="none", critic_norm="none"),
        }),
        supports=_mlp_supports,
        latent_dim=lambda data_shape: 2,
        generator=_mlp_generator,
        critic=_mlp_critic,
        encoder=_mlp_encoder,
        pair_critic=_mlp_pair_critic,
    ),
)


# dcgan --------------------------------------------------------------------------------------------

_DCGAN_RESOLUTIONS = {28: (7, 2), 32: (4, 3), 64: (4, 4)}  # px -> (base size, stride-2 layers)


def _square_image_reason(arch: str, data_shape: DataShape, sizes: Iterable[int], sizes_text: str) -> str | None:
    """None if `data_shape` is a 1- or 3-channel square image of one of `sizes` px, else why not."""
    shape = tuple(data_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        return f"{arch} takes square images (C, H, W); got {shape}"
    if shape[0] not in (1, 3):
        return f"{arch} takes 1 or 3 channels; got {shape[0]} in {shape}"
    if shape[1] not in sizes:
        return f"{arch} takes {sizes_text} px images; got {shape[1]} px in {shape}"
    return None


def _dcgan_supports(data_shape: DataShape) -> str | None:
    return _square_image_reason("dcgan", data_shape, _DCGAN_RESOLUTIONS, "28, 32 or 64")


def _dcgan_init(module: nn.Module) -> None:
    """The tutorial's weights_init: N(0, 0.02) for conv (and, as in the DCGAN paper, linear) weights,
    N(1, 0.02) for normalisation scales."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm, VirtualBatchNorm)):
            nn.init.normal_(layer.weight, 1.0, 0.02)


def _dcgan_conv_trunk(
    data_shape: DataShape, width: int, norm: Callable[[int], nn.Module], bias: bool
) -> tuple[nn.Sequential, int]:
    """Conv(4, 2, 1) layers: C x R x R -> (width * 2^(n-1)) x base x base, flattened; returns (trunk, F)."""
    base, layers = _DCGAN_RESOLUTIONS[data_shape[1]]
    modules: list[nn.Module] = []
    channels_in = data_shape[0]
    for index in range(layers):
        channels_out = width * 2**index
        modules.append(nn.Conv2d(channels_in, channels_out, 4, 2, 1, bias=bias))
        if index > 0:  # the tutorial leaves the first layer unnormalised
            modules.append(norm(channels_out))
        modules.append(nn.LeakyReLU(0.2))
        channels_in = channels_out
    modules.append(nn.Flatten())
    return nn.Sequential(*modules), channels_in * base * base


def _dcgan_generator(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    base, layers = _DCGAN_RESOLUTIONS[data_shape[1]]
    width, norm = options["width"], options["norm"]
    bias = norm == "none"
    channels = width * 2 ** (layers - 1)
    modules: list[nn.Module] = [
        nn.Unflatten(1, (latent_dim, 1, 1)),
        nn.ConvTranspose2d(latent_dim, channels, base, 1, 0, bias=bias),
        _generator_norm(norm, channels, 2),
        nn.ReLU(),
    ]
    for _ in range(layers - 1):
        modules += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=bias),
                    _generator_norm(norm, channels // 2, 2), nn.ReLU()]
        channels //= 2
    modules += [nn.ConvTranspose2d(channels, data_shape[0], 4, 2, 1, bias=False), nn.Tanh()]
    generator = Generator(nn.Sequential(*modules), latent_dim, data_shape, norm == "virtual-batch")
    _dcgan_init(generator)
    return generator


def _dcgan_critic(data_shape: DataShape, critic_outputs: int, options: Mapping[str, Any]) -> nn.Module:
    bias = not _uses_critic_norm(options)
    trunk, features = _dcgan_conv_trunk(data_shape, options["width"], lambda n: _critic_norm(options, n, 2), bias)
    # the tutorial's last Conv(k=base, s=1, p=0) over a base x base map is this linear layer on the flattened map
    critic = Critic(trunk, _Head(features, critic_outputs, options, bias=False))
    _dcgan_init(critic)
    return _finish_critic(critic, options)


def _dcgan_encoder(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    trunk, features = _dcgan_conv_trunk(data_shape, options["width"], nn.BatchNorm2d, bias=False)
    encoder = nn.Sequential(*trunk, nn.Linear(features, latent_dim))
    _dcgan_init(encoder)
    return encoder


def _dcgan_pair_critic(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    bias = not _uses_critic_norm(options)
    x_branch, x_features = _dcgan_conv_trunk(data_shape, options["width"], lambda n: _critic_norm(options, n, 2), bias)
    hidden = 8 * options["width"]
    z_branch = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2))
    joint = nn.Sequential(nn.Linear(x_features + hidden, hidden), nn.LeakyReLU(0.2))
    critic = PairCritic(x_branch, z_branch, joint, _Head(hidden, 1, options, bias=False))
    _dcgan_init(critic)
    return _finish_critic(critic, options)


ARCHS.register(
    "dcgan",
    Architecture(
        name="dcgan",
        description=("DCGAN (the seed tutorial's): ConvTranspose/BN/ReLU generator, Conv/BN/LeakyReLU critic; "
                     "28/32/64 px, 1 or 3 channels"),
        options=MappingProxyType({
            "width": Option(64, int, low=1, description="ngf = ndf, channels of the widest-resolution layer"),
            **_common_options(generator_norm="batch", critic_norm="batch"),
        }),
        supports=_dcgan_supports,
        latent_dim=lambda data_shape: 100,
        generator=_dcgan_generator,
        critic=_dcgan_critic,
        encoder=_dcgan_encoder,
        pair_critic=_dcgan_pair_critic,
    ),
)


# resnet -------------------------------------------------------------------------------------------

# px -> (generator base size, generator up-sampling blocks, critic down-sampling blocks incl. the optimised one)
_RESNET_RESOLUTIONS = {28: (7, 2, 2), 32: (4, 3, 2), 64: (4, 4, 3)}
_RESNET_PLAIN_CRITIC_BLOCKS = 2  # SNGAN's critic ends in two blocks that keep the resolution
_RESIDUAL_GAIN = math.sqrt(2.0)  # SNGAN's Glorot gain for the convs of the residual branches


def _resnet_supports(data_shape: DataShape) -> str | None:
    return _square_image_reason("resnet", data_shape, _RESNET_RESOLUTIONS, "28, 32 (SNGAN's CIFAR-10 setting) or 64")


def _glorot(layer: nn.Conv2d | nn.Linear, gain: float) -> None:
    """SNGAN's init (chainer GlorotUniform(gain)): U(+-gain * sqrt(6 / (fan_in + fan_out))), zero bias."""
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _resnet_conv(channels_in: int, channels_out: int, kernel_size: int, gain: float) -> nn.Conv2d:
    """A stride-1 'same' conv with bias, Glorot-uniform weights: gain sqrt(2) in residual branches, 1 elsewhere."""
    conv = nn.Conv2d(channels_in, channels_out, kernel_size, 1, kernel_size // 2)
    _glorot(conv, gain)
    return conv


class _UpBlock(nn.Module):
    """SNGAN's generator block: (B, C, H, W) -> (B, C, 2H, 2W).

    Residual: norm, ReLU, nearest 2x upsample, conv3x3, norm, ReLU, conv3x3. Shortcut: nearest 2x
    upsample, conv1x1 (learnable because the resolution changes).
    """

    def __init__(self, channels: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            norm(channels), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
            _resnet_conv(channels, channels, 3, _RESIDUAL_GAIN),
            norm(channels), nn.ReLU(),
            _resnet_conv(channels, channels, 3, _RESIDUAL_GAIN),
        )
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                      _resnet_conv(channels, channels, 1, 1.0))

    def forward(self, h: Tensor) -> Tensor:
        return self.residual(h) + self.shortcut(h)


class _DownBlock(nn.Module):
    """SNGAN's critic block: (B, C, H, W) -> (B, C, H/2, W/2) when `downsample`, else (B, C, H, W).

    Residual: norm, ReLU, conv3x3, norm, ReLU, conv3x3, then 2x2 average pooling when down-sampling.
    Shortcut: conv1x1 then average pooling when down-sampling, else the identity. `norm` is the
    identity in SNGAN; batch or layer norm stand in for it when the critic asks for one.
    """

    def __init__(self, channels: int, norm: Callable[[int], nn.Module], downsample: bool) -> None:
        super().__init__()
        pool: list[nn.Module] = [nn.AvgPool2d(2)] if downsample else []
        self.residual = nn.Sequential(
            norm(channels), nn.ReLU(), _resnet_conv(channels, channels, 3, _RESIDUAL_GAIN),
            norm(channels), nn.ReLU(), _resnet_conv(channels, channels, 3, _RESIDUAL_GAIN),
            *pool,
        )
        self.shortcut = nn.Sequential(_resnet_conv(channels, channels, 1, 1.0), *pool) if downsample else nn.Identity()

    def forward(self, h: Tensor) -> Tensor:
        return self.residual(h) + self.shortcut(h)


class _OptimizedBlock(nn.Module):
    """SNGAN's first critic block, on the image itself: (B, C_in, H, W) -> (B, C, H/2, W/2).

    Residual: conv3x3, norm, ReLU, conv3x3, 2x2 average pooling (no activation on the image).
    Shortcut: average pooling, then conv1x1.
    """

    def __init__(self, channels_in: int, channels: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            _resnet_conv(channels_in, channels, 3, _RESIDUAL_GAIN),
            norm(channels), nn.ReLU(), _resnet_conv(channels, channels, 3, _RESIDUAL_GAIN),
            nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), _resnet_conv(channels_in, channels, 1, 1.0))

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class _GlobalPool(nn.Module):
    """(B, C, H, W) -> (B, C): the sum (SNGAN) or the mean (Gulrajani et al. 2017) over the spatial positions."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, h: Tensor) -> Tensor:
        return h.sum(dim=(2, 3)) if self.mode == "sum" else h.mean(dim=(2, 3))


def _resnet_critic_width(options: Mapping[str, Any]) -> int:
    """The critic's channels: half the generator's `width` (SNGAN: 256 and 128)."""
    return options["width"] // 2


def _resnet_critic_trunk(
    data_shape: DataShape, channels: int, norm: Callable[[int], nn.Module], pooling: str
) -> nn.Sequential:
    """x (B, C_in, R, R) -> features (B, channels): optimised block, down-sampling blocks to 8 x 8
    (7 x 7 at 28 px), two resolution-keeping blocks, ReLU, global pooling."""
    _, _, down_blocks = _RESNET_RESOLUTIONS[data_shape[1]]
    blocks: list[nn.Module] = [_OptimizedBlock(data_shape[0], channels, norm)]
    blocks += [_DownBlock(channels, norm, downsample=True) for _ in range(down_blocks - 1)]
    blocks += [_DownBlock(channels, norm, downsample=False) for _ in range(_RESNET_PLAIN_CRITIC_BLOCKS)]
    return nn.Sequential(*blocks, nn.ReLU(), _GlobalPool(pooling))


def _resnet_linear(in_features: int, out_features: int) -> nn.Linear:
    linear = nn.Linear(in_features, out_features)
    _glorot(linear, 1.0)
    return linear


def _resnet_head(in_features: int, outputs: int, options: Mapping[str, Any]) -> _Head:
    head = _Head(in_features, outputs, options, bias=True)
    _glorot(head.linear, 1.0)
    return head


def _resnet_generator(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    base, up_blocks, _ = _RESNET_RESOLUTIONS[data_shape[1]]
    width, norm = options["width"], options["norm"]

    def make_norm(channels: int) -> nn.Module:
        return _generator_norm(norm, channels, 2)

    net = nn.Sequential(
        _resnet_linear(latent_dim, base * base * width),
        nn.Unflatten(1, (width, base, base)),
        *(_UpBlock(width, make_norm) for _ in range(up_blocks)),
        make_norm(width), nn.ReLU(),
        _resnet_conv(width, data_shape[0], 3, 1.0),
        nn.Tanh(),
    )
    return Generator(net, latent_dim, data_shape, norm == "virtual-batch")


def _resnet_critic(data_shape: DataShape, critic_outputs: int, options: Mapping[str, Any]) -> nn.Module:
    channels = _resnet_critic_width(options)
    trunk = _resnet_critic_trunk(data_shape, channels, lambda n: _critic_norm(options, n, 2), options["pooling"])
    return _finish_critic(Critic(trunk, _resnet_head(channels, critic_outputs, options)), options)


def _resnet_encoder(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    channels = _resnet_critic_width(options)
    trunk = _resnet_critic_trunk(data_shape, channels, nn.BatchNorm2d, options["pooling"])
    return nn.Sequential(*trunk, _resnet_linear(channels, latent_dim))


def _resnet_pair_critic(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    channels = _resnet_critic_width(options)
    x_branch = _resnet_critic_trunk(data_shape, channels, lambda n: _critic_norm(options, n, 2), options["pooling"])
    z_branch = nn.Sequential(_resnet_linear(latent_dim, channels), nn.ReLU())
    joint = nn.Sequential(_resnet_linear(2 * channels, channels), nn.ReLU())
    critic = PairCritic(x_branch, z_branch, joint, _resnet_head(channels, 1, options))
    return _finish_critic(critic, options)


ARCHS.register(
    "resnet",
    Architecture(
        name="resnet",
        description=("SNGAN's CIFAR-10 ResNet: up-sampling residual generator, residual critic with global sum "
                     "pooling; 28/32/64 px, 1 or 3 channels"),
        options=MappingProxyType({
            "width": Option(256, int, low=2,
                            description="generator channels (SNGAN: 256); the critic takes width // 2 (SNGAN: 128)"),
            "pooling": Option("sum", str, choices=("sum", "mean"),
                              description="the critic's global pooling: sum (SNGAN) or mean (Gulrajani et al. 2017)"),
            **_common_options(generator_norm="batch", critic_norm="none"),
        }),
        supports=_resnet_supports,
        latent_dim=lambda data_shape: 128,
        generator=_resnet_generator,
        critic=_resnet_critic,
        encoder=_resnet_encoder,
        pair_critic=_resnet_pair_critic,
    ),
)


# standard-cnn -------------------------------------------------------------------------------------

_STANDARD_CNN_BASE = 4  # the generator's first map and the critic's last are 4 x 4 (32 px / 2^3)
_STANDARD_CNN_LEAK = 0.1


def _standard_cnn_supports(data_shape: DataShape) -> str | None:
    return _square_image_reason("standard-cnn", data_shape, (32,), "32 (CIFAR-10's size)")


def _standard_cnn_init(module: nn.Module) -> None:
    """The RGAN code's weights_init: N(0, 0.02) for conv and deconv weights, N(1, 0.02) scales and zero
    shifts for batch norm; linear layers and every bias keep torch's default init."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm, VirtualBatchNorm)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def _standard_cnn_trunk(
    data_shape: DataShape, width: int, norm: Callable[[int], nn.Module]
) -> tuple[nn.Sequential, int]:
    """x (B, C, 32, 32) -> features (B, 8 * width * 4 * 4): conv3 w, conv4 s2 w, conv3 2w, conv4 s2 2w,
    conv3 4w, conv4 s2 4w, conv3 8w, each followed by LeakyReLU(0.1); `norm` after the first six
    (the RGAN code's batch norm when spectral norm is off)."""
    layout = [(width, 3, 1), (width, 4, 2), (2 * width, 3, 1), (2 * width, 4, 2),
              (4 * width, 3, 1), (4 * width, 4, 2), (8 * width, 3, 1)]
    modules: list[nn.Module] = []
    channels_in = data_shape[0]
    for index, (channels_out, kernel_size, stride) in enumerate(layout):
        modules.append(nn.Conv2d(channels_in, channels_out, kernel_size, stride, 1))
        if index < len(layout) - 1:
            modules.append(norm(channels_out))
        modules.append(nn.LeakyReLU(_STANDARD_CNN_LEAK))
        channels_in = channels_out
    modules.append(nn.Flatten())
    return nn.Sequential(*modules), channels_in * _STANDARD_CNN_BASE * _STANDARD_CNN_BASE


def _standard_cnn_spectral_norm(critic: nn.Module, head: nn.Module, options: Mapping[str, Any]) -> nn.Module:
    """Spectral norm on every conv/linear of the critic; on the output layer too unless
    `spectral_norm_head` is off (the RGAN code leaves its output dense layer unnormalised)."""
    if options["spectral_norm"]:
        excluded = set() if options["spectral_norm_head"] else {id(m) for m in head.modules()}
        for layer in list(critic.modules()):
            if isinstance(layer, (nn.Conv2d, nn.Linear)) and id(layer) not in excluded:
                _spectral_norm(layer)
    return critic


def _standard_cnn_generator(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    width, norm = options["width"], options["norm"]
    channels = 8 * width
    modules: list[nn.Module] = [
        nn.Linear(latent_dim, channels * _STANDARD_CNN_BASE * _STANDARD_CNN_BASE),
        nn.Unflatten(1, (channels, _STANDARD_CNN_BASE, _STANDARD_CNN_BASE)),
    ]
    for _ in range(3):
        modules += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1),
                    _generator_norm(norm, channels // 2, 2), nn.ReLU()]
        channels //= 2
    modules += [nn.Conv2d(channels, data_shape[0], 3, 1, 1), nn.Tanh()]
    generator = Generator(nn.Sequential(*modules), latent_dim, data_shape, norm == "virtual-batch")
    _standard_cnn_init(generator)
    return generator


def _standard_cnn_critic(data_shape: DataShape, critic_outputs: int, options: Mapping[str, Any]) -> nn.Module:
    trunk, features = _standard_cnn_trunk(data_shape, options["width"], lambda n: _critic_norm(options, n, 2))
    head = _Head(features, critic_outputs, options, bias=True)
    critic = Critic(trunk, head)
    _standard_cnn_init(critic)
    return _standard_cnn_spectral_norm(critic, head, options)


def _standard_cnn_encoder(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    trunk, features = _standard_cnn_trunk(data_shape, options["width"], nn.BatchNorm2d)
    encoder = nn.Sequential(*trunk, nn.Linear(features, latent_dim))
    _standard_cnn_init(encoder)
    return encoder


def _standard_cnn_pair_critic(data_shape: DataShape, latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    x_branch, x_features = _standard_cnn_trunk(data_shape, options["width"], lambda n: _critic_norm(options, n, 2))
    hidden = 8 * options["width"]
    z_branch = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(_STANDARD_CNN_LEAK))
    joint = nn.Sequential(nn.Linear(x_features + hidden, hidden), nn.LeakyReLU(_STANDARD_CNN_LEAK))
    head = _Head(hidden, 1, options, bias=True)
    critic = PairCritic(x_branch, z_branch, joint, head)
    _standard_cnn_init(critic)
    return _standard_cnn_spectral_norm(critic, head, options)


ARCHS.register(
    "standard-cnn",
    Architecture(
        name="standard-cnn",
        description=("the SNGAN paper's standard CNN for 32 px, as the RGAN code builds it: dense 4x4x8w then "
                     "deconv/BN/ReLU generator, seven-conv LeakyReLU(0.1) critic; 1 or 3 channels"),
        options=MappingProxyType({
            "width": Option(64, int, low=1,
                            description="the critic's first channels (64); the generator starts at 8 * width (512)"),
            "spectral_norm_head": Option(True, bool, description=(
                "with spectral_norm, also normalise the critic's output layer (SNGAN; the RGAN code does not)")),
            **_common_options(generator_norm="batch", critic_norm="batch"),
        }),
        supports=_standard_cnn_supports,
        latent_dim=lambda data_shape: 128,
        generator=_standard_cnn_generator,
        critic=_standard_cnn_critic,
        encoder=_standard_cnn_encoder,
        pair_critic=_standard_cnn_pair_critic,
    ),
)


# --- public API -----------------------------------------------------------------------------------


def _prepare(
    arch: str, data_shape: DataShape, options: Mapping[str, Any] | None, size: str, value: int
) -> tuple[Architecture, dict[str, Any], int]:
    """The entry, its resolved options and the checked `size` (latent_dim or critic_outputs)."""
    entry = ARCHS.get(arch)
    owner = f"architecture {arch!r}"
    resolved = resolve(owner, options, entry.options)
    checked = resolve(owner, {size: value}, {size: _SIZES[size]})[size]
    reason = entry.supports(tuple(data_shape))
    if reason is not None:
        raise ValueError(reason)
    return entry, resolved, checked


def build_generator(
    arch: str, *, data_shape: tuple[int, ...], latent_dim: int, options: Mapping[str, Any]
) -> nn.Module:
    """Generator z (B, latent_dim) -> x (B, *data_shape): tanh output in [-1, 1] for images, linear for flat data.

    Raises UnknownNameError for an unknown arch, ValueError for unknown/bad options or an unsupported shape.
    """
    entry, resolved, latent_dim = _prepare(arch, data_shape, options, "latent_dim", latent_dim)
    return entry.generator(tuple(data_shape), latent_dim, resolved)


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """PacGAN's packing: (B, C, ...) -> (B / pack, pack * C, ...), each row the `pack` consecutive samples
    x[i * pack], ..., x[i * pack + pack - 1] concatenated along the first data axis (the channels of
    images, the features of vectors). `pack` 1 returns `x` itself. B must be a multiple of `pack`."""
    if pack == 1:
        return x
    if x.shape[0] % pack:
        raise ValueError(f"packing {pack} samples per critic input needs a batch that is a multiple of {pack}; "
                         f"got {x.shape[0]}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


def _packed_shape(data_shape: DataShape, pack: int) -> DataShape:
    return (data_shape[0] * pack, *data_shape[1:])


def build_critic(
    arch: str, *, data_shape: tuple[int, ...], critic_outputs: int, options: Mapping[str, Any], pack: int = 1
) -> nn.Module:
    """Critic x (B, *data_shape) -> raw logits (B,) when critic_outputs == 1 else (B, critic_outputs).

    Has `features(x) -> (B, F)` and `head(f)`, with forward(x) == head(features(x)). With `pack` m > 1
    it judges packed inputs (`pack_samples`): (B / m, m * C, ...) -> (B / m,) logits.
    """
    entry, resolved, critic_outputs = _prepare(arch, data_shape, options, "critic_outputs", critic_outputs)
    return entry.critic(_packed_shape(tuple(data_shape), pack), critic_outputs, resolved)


def build_encoder(arch: str, *, data_shape: tuple[int, ...], latent_dim: int, options: Mapping[str, Any]) -> nn.Module:
    """Encoder x (B, *data_shape) -> z (B, latent_dim), linear output (BiGAN-QP's E)."""
    entry, resolved, latent_dim = _prepare(arch, data_shape, options, "latent_dim", latent_dim)
    return entry.encoder(tuple(data_shape), latent_dim, resolved)


def build_pair_critic(
    arch: str, *, data_shape: tuple[int, ...], latent_dim: int, options: Mapping[str, Any], pack: int = 1
) -> nn.Module:
    """Pair critic T(x, z): x (B, *data_shape), z (B, latent_dim) -> raw logits (B,) (BiGAN-QP).

    Has `features(x, z) -> (B, F)` and `head(f) -> (B,)`; critic options (spectral_norm, ...) apply.
    With `pack` m > 1 it judges packed pairs: x and z each packed by `pack_samples`.
    """
    entry, resolved, latent_dim = _prepare(arch, data_shape, options, "latent_dim", latent_dim)
    return entry.pair_critic(_packed_shape(tuple(data_shape), pack), latent_dim * pack, resolved)


@dataclass(frozen=True)
class SampleCoupling:
    """An architecture option whose value makes a critic's output for one sample depend on the other
    samples of its batch: `option` has `value`; `independent` lists values that do not."""

    option: str
    value: Any
    independent: tuple[Any, ...]


def critic_sample_coupling(arch: str, options: Mapping[str, Any] | None) -> list[SampleCoupling]:
    """Every option of `arch`'s critic (with `options` over its defaults) that couples a sample's output
    to its batch-mates: `critic_norm` 'batch' (unless spectral norm drops it) and minibatch
    discrimination. Empty when each sample's output depends on that sample alone."""
    resolved = resolve(f"architecture {arch!r}", options, ARCHS.get(arch).options)
    couplings = []
    if resolved["critic_norm"] == "batch" and not resolved["spectral_norm"]:
        couplings.append(SampleCoupling("critic_norm", "batch", ("layer", "none")))
    if resolved["minibatch_discrimination"]:
        couplings.append(SampleCoupling("minibatch_discrimination", True, (False,)))
    return couplings


def arch_supports(arch: str, data_shape: tuple[int, ...]) -> str | None:
    """None if `arch` can model data of `data_shape`, else a one-line reason. Unknown arch: UnknownNameError."""
    return ARCHS.get(arch).supports(tuple(data_shape))


def arch_option_defaults(arch: str) -> dict[str, Any]:
    """Every option of `arch` with its default."""
    return option_defaults(ARCHS.get(arch).options)


def list_archs() -> list[tuple[str, str]]:
    """(name, description) of every registered architecture, in registration order."""
    return [(name, entry.description) for name, entry in ARCHS.items()]


def default_latent_dim(arch: str, data_shape: tuple[int, ...]) -> int:
    """The latent size `arch` uses unless a suite says otherwise (mlp: 2, dcgan: 100 as the tutorial's nz,
    resnet and standard-cnn: 128 as SNGAN's)."""
    return ARCHS.get(arch).latent_dim(tuple(data_shape))


def parameter_count(module: nn.Module) -> int:
    """Number of trainable scalars in `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

