"""Architectures: shapes for every arch x supported data shape, the tutorial's DCGAN, SNGAN's ResNet,
options, layers."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.testing import assert_close

from bench.nets import (
    ARCHS,
    Maxout,
    MinibatchDiscrimination,
    VirtualBatchNorm,
    arch_option_defaults,
    arch_supports,
    build_critic,
    build_encoder,
    build_generator,
    build_pair_critic,
    critic_sample_coupling,
    default_latent_dim,
    list_archs,
    parameter_count,
)
from bench.registry import UnknownNameError

SMALL = {"mlp": {"width": 16, "depth": 2}, "dcgan": {"width": 4}, "resnet": {"width": 8}, "standard-cnn": {"width": 4}}
CASES = [
    ("mlp", (2,)),
    ("dcgan", (1, 28, 28)),
    ("dcgan", (1, 32, 32)),
    ("dcgan", (3, 32, 32)),
    ("dcgan", (3, 64, 64)),
    ("resnet", (1, 28, 28)),
    ("resnet", (1, 32, 32)),
    ("resnet", (3, 32, 32)),
    ("resnet", (3, 64, 64)),
    ("standard-cnn", (1, 32, 32)),
    ("standard-cnn", (3, 32, 32)),
]
RESNET_32 = CASES[7]
STANDARD_CNN_32 = CASES[10]
VARIANTS = [
    {},
    {"spectral_norm": True, "minibatch_discrimination": True, "minibatch_kernels": 4, "norm": "virtual-batch"},
    {"critic_norm": "layer", "norm": "none"},
]


def test_registry_lists_every_arch() -> None:
    assert [name for name, _ in list_archs()] == ["mlp", "dcgan", "resnet", "standard-cnn"]
    assert all(description for _, description in list_archs())


@pytest.mark.parametrize("arch,shape", CASES)
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_forward_shapes(arch: str, shape: tuple[int, ...], variant: int) -> None:
    torch.manual_seed(0)
    options = {**SMALL[arch], **VARIANTS[variant]}
    assert arch_supports(arch, shape) is None
    latent_dim, batch = 6, 5
    z = torch.randn(batch, latent_dim)
    generator = build_generator(arch, data_shape=shape, latent_dim=latent_dim, options=options)
    x = generator(z)
    assert x.shape == (batch, *shape)
    if len(shape) == 3:  # images end in tanh
        assert x.min() >= -1 and x.max() <= 1
    for outputs, expected in ((1, (batch,)), (3, (batch, 3))):
        critic = build_critic(arch, data_shape=shape, critic_outputs=outputs, options=options)
        assert critic(x).shape == expected
        assert critic.features(x).dim() == 2 and critic.features(x).shape[0] == batch
    encoder = build_encoder(arch, data_shape=shape, latent_dim=latent_dim, options=options)
    assert encoder(x).shape == (batch, latent_dim)
    pair = build_pair_critic(arch, data_shape=shape, latent_dim=latent_dim, options=options)
    assert pair(x, z).shape == (batch,)
    assert pair.features(x, z).shape[0] == batch


@pytest.mark.parametrize("arch,shape", [CASES[0], CASES[2], RESNET_32, STANDARD_CNN_32])
@pytest.mark.parametrize("options", [{}, {"spectral_norm": True, "minibatch_discrimination": True}])
def test_features_then_head_is_forward(arch: str, shape: tuple[int, ...], options: dict) -> None:
    torch.manual_seed(0)
    options = {**SMALL[arch], **options}
    x = torch.rand(4, *shape) * 2 - 1
    z = torch.randn(4, 3)
    critic = build_critic(arch, data_shape=shape, critic_outputs=1, options=options).eval()
    assert_close(critic.head(critic.features(x)), critic(x))
    pair = build_pair_critic(arch, data_shape=shape, latent_dim=3, options=options).eval()
    assert_close(pair.head(pair.features(x, z)), pair(x, z))


@pytest.mark.parametrize("arch,shape", [CASES[0], CASES[1], RESNET_32, STANDARD_CNN_32])
def test_spectral_norm_parametrises_every_critic_layer_and_drops_batch_norm(arch: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    options = {**SMALL[arch], "spectral_norm": True, "critic_norm": "batch"}
    for critic in (
        build_critic(arch, data_shape=shape, critic_outputs=1, options=options),
        build_pair_critic(arch, data_shape=shape, latent_dim=3, options=options),
    ):
        layers = [m for m in critic.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    plain = build_critic(arch, data_shape=shape, critic_outputs=1, options={**SMALL[arch], "critic_norm": "batch"})
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())


def test_spectral_norm_brings_largest_singular_value_to_one() -> None:
    torch.manual_seed(0)
    critic = build_critic("mlp", data_shape=(2,), critic_outputs=1,
                          options={"width": 8, "depth": 2, "spectral_norm": True})
    x = torch.randn(16, 2)
    for _ in range(50):  # each training-mode forward runs one power iteration
        critic(x)
    for layer in (m for m in critic.modules() if isinstance(m, nn.Linear)):
        assert_close(torch.linalg.matrix_norm(layer.weight.detach(), ord=2), torch.tensor(1.0), atol=1e-3, rtol=0)


def _tutorial_dcgan(nz: int, ngf: int, nc: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The seed tutorial's 64 px netg and netd (WGAN version: no sigmoid), written out as there."""
    ndf = ngf
    netg = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
    )
    netd = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
    )
    return netg, netd


def test_dcgan_64px_computes_exactly_the_tutorials_networks() -> None:
    torch.manual_seed(0)
    nz, width, nc = 10, 4, 1
    generator = build_generator("dcgan", data_shape=(nc, 64, 64), latent_dim=nz, options={"width": width})
    critic = build_critic("dcgan", data_shape=(nc, 64, 64), critic_outputs=1, options={"width": width})
    netg, netd = _tutorial_dcgan(nz, width, nc)
    ours_g = [p for p in generator.state_dict().values()]
    assert [t.shape for t in ours_g] == [t.shape for t in netg.state_dict().values()]
    netg.load_state_dict(dict(zip(netg.state_dict(), ours_g)))
    ours_d = list(critic.state_dict().values())
    tutorial_d = netd.state_dict()
    # the tutorial's last 4x4 valid conv is our head's linear layer on the flattened 4x4 map
    ours_d[-1] = ours_d[-1].view(tutorial_d[list(tutorial_d)[-1]].shape)
    netd.load_state_dict(dict(zip(tutorial_d, ours_d)))
    generator.eval(), critic.eval(), netg.eval(), netd.eval()
    z = torch.randn(3, nz)
    x = generator(z)
    assert_close(x, netg(z.view(3, nz, 1, 1)))
    assert_close(critic(x), netd(x).view(3))


def test_dcgan_weights_follow_the_tutorials_init() -> None:
    torch.manual_seed(0)
    generator = build_generator("dcgan", data_shape=(3, 64, 64), latent_dim=100, options={"width": 16})
    first = generator.net[1].weight  # ConvTranspose2d(100, 128, 4): 204,800 draws
    assert_close(first.mean(), torch.tensor(0.0), atol=2e-4, rtol=0)
    assert_close(first.std(), torch.tensor(0.02), atol=2e-4, rtol=0)
    norm = generator.net[2].weight.detach()  # BatchNorm2d(128): N(1, 0.02)
    assert float((norm - 1).abs().max()) < 0.1 and float(norm.std()) > 0.005


@pytest.mark.parametrize("arch", ["dcgan", "resnet", "standard-cnn"])
def test_same_seed_gives_identical_networks_and_another_seed_does_not(arch: str) -> None:
    def build(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        options = {"width": 4, "spectral_norm": True, "minibatch_discrimination": True, "minibatch_kernels": 3}
        g = build_generator(arch, data_shape=(1, 32, 32), latent_dim=8, options=options)
        d = build_critic(arch, data_shape=(1, 32, 32), critic_outputs=1, options=options)
        return list(g.state_dict().values()) + list(d.state_dict().values())

    first, again, other = build(3), build(3), build(4)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True)
                   if a.is_floating_point() and a.numel() > 1)


def test_minibatch_discrimination_hand_computed() -> None:
    layer = MinibatchDiscrimination(in_features=1, kernels=1, kernel_dims=1)
    with torch.no_grad():
        layer.T.fill_(1.0)
    f = torch.tensor([[0.0], [1.0], [3.0]])
    e = math.exp
    expected_similarity = torch.tensor([[e(-1) + e(-3)], [e(-1) + e(-2)], [e(-3) + e(-2)]])
    assert_close(layer(f), torch.cat([f, expected_similarity], dim=1))


def test_virtual_batch_norm_hand_computed() -> None:
    layer = VirtualBatchNorm(num_features=1, reference_size=2, eps=0.0)
    h = torch.tensor([[0.0], [2.0], [5.0]])  # rows 0-1: reference batch (mean 1, var 1); row 2: an example
    # example: mean = 2/3 * 1 + 1/3 * 5 = 7/3, E[x^2] = 2/3 * 2 + 1/3 * 25 = 29/3, var = 29/3 - 49/9 = 38/9
    expected = torch.tensor([[-1.0], [1.0], [(5 - 7 / 3) / math.sqrt(38 / 9)]])
    assert_close(layer(h), expected)


@pytest.mark.parametrize("arch,shape", [CASES[0], CASES[2], RESNET_32])
def test_virtual_batch_norm_makes_each_sample_independent_of_its_batch(arch: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    z = torch.randn(6, 5)
    vbn = build_generator(arch, data_shape=shape, latent_dim=5,
                          options={**SMALL[arch], "norm": "virtual-batch"}).train()
    assert_close(vbn(z)[:2], vbn(z[:2]))
    bn = build_generator(arch, data_shape=shape, latent_dim=5, options={**SMALL[arch], "norm": "batch"}).train()
    assert not torch.allclose(bn(z)[:2], bn(z[:2]))


def test_virtual_batch_reference_is_fixed_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(1)
    first = build_generator("mlp", data_shape=(2,), latent_dim=4, options={"norm": "virtual-batch"})
    after_vbn = torch.rand(1)
    torch.manual_seed(2)
    second = build_generator("mlp", data_shape=(2,), latent_dim=4, options={"norm": "virtual-batch"})
    assert torch.equal(first.reference_z, second.reference_z)
    assert "reference_z" in first.state_dict()
    torch.manual_seed(1)
    build_generator("mlp", data_shape=(2,), latent_dim=4, options={"norm": "batch"})  # same parameter draws
    assert torch.equal(torch.rand(1), after_vbn)


def _conv_parameters(channels_in: int, channels_out: int, kernel_size: int) -> int:
    return channels_in * channels_out * kernel_size**2 + channels_out  # weights + bias


def test_resnet_32px_default_parameter_counts_and_init() -> None:
    """SNGAN's CIFAR-10 ResNet (appendix table): z 128 -> dense 4x4x256 -> 3 up blocks of 256 ->
    BN, ReLU, conv3x3 to 3 channels; critic: optimised block, one down block, two plain blocks of 128,
    linear head."""
    torch.manual_seed(0)
    generator = build_generator("resnet", data_shape=(3, 32, 32), latent_dim=128, options={})
    critic = build_critic("resnet", data_shape=(3, 32, 32), critic_outputs=1, options={})
    batch_norm = 2 * 256  # scale and shift
    dense = 128 * 4 * 4 * 256 + 4 * 4 * 256
    up_block = (batch_norm + _conv_parameters(256, 256, 3) + batch_norm + _conv_parameters(256, 256, 3)
                + _conv_parameters(256, 256, 1))
    output = batch_norm + _conv_parameters(256, 3, 3)
    assert parameter_count(generator) == dense + 3 * up_block + output == 4_276_739
    optimised = _conv_parameters(3, 128, 3) + _conv_parameters(128, 128, 3) + _conv_parameters(3, 128, 1)
    down = 2 * _conv_parameters(128, 128, 3) + _conv_parameters(128, 128, 1)
    plain = 2 * _conv_parameters(128, 128, 3)
    head = 128 + 1
    assert parameter_count(critic) == optimised + down + 2 * plain + head == 1_053_825
    # SNGAN's init: Glorot uniform, gain sqrt(2) in the residual branches and 1 on the shortcuts, zero biases
    first_block = generator.net[2]
    for conv, gain in ((first_block.residual[3], math.sqrt(2)), (first_block.shortcut[1], 1.0)):
        fan_in = fan_out = 256 * conv.kernel_size[0] * conv.kernel_size[1]
        bound = gain * math.sqrt(6 / (fan_in + fan_out))
        weight = conv.weight.detach()
        assert float(weight.abs().max()) <= bound and float(weight.abs().max()) > 0.99 * bound
        assert_close(weight.std(), torch.tensor(bound / math.sqrt(3)), rtol=0.02, atol=0)
    biases = [m.bias for m in (*generator.modules(), *critic.modules()) if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(torch.equal(b, torch.zeros_like(b)) for b in biases)


def _identity_kernels(module: nn.Module) -> None:
    """Every conv passes channel i to channel i (centre tap 1), every linear bias 0."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                layer.weight.zero_()
                centre = layer.kernel_size[0] // 2
                for channel in range(min(layer.in_channels, layer.out_channels)):
                    layer.weight[channel, channel, centre, centre] = 1.0
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                layer.bias.zero_()


def _residual_identity(h: torch.Tensor) -> torch.Tensor:
    """A block whose convs are identities: residual ReLU(h) (its two ReLUs in a row) plus shortcut h."""
    return torch.relu(h) + h


@pytest.mark.parametrize("resolution", [28, 32])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_resnet_critic_hand_computed_with_identity_kernels(resolution: int, pooling: str) -> None:
    torch.manual_seed(0)
    options = {"width": 2, "pooling": pooling}
    critic = build_critic("resnet", data_shape=(1, resolution, resolution), critic_outputs=1, options=options)
    _identity_kernels(critic)
    with torch.no_grad():
        critic.head.linear.weight.fill_(1.0)
    x = torch.randn(2, 1, resolution, resolution)
    pool = torch.nn.functional.avg_pool2d
    # optimised block: conv, ReLU, conv, pool beside pool, conv1x1; a down block pools both branches
    h = pool(_residual_identity(x), 2)
    h = pool(_residual_identity(h), 2)
    h = _residual_identity(_residual_identity(h))  # two resolution-keeping blocks, identity shortcuts
    positions = (resolution // 4) ** 2
    features = torch.relu(h).sum(dim=(2, 3)) / (1 if pooling == "sum" else positions)  # final ReLU, global pooling
    assert_close(critic.features(x), features)
    assert_close(critic(x), features.squeeze(1))
    # for x >= 0 every block doubles and every pooling quarters the sum: 2^4 / 4^2 = 1
    positive = x.abs()
    assert_close(critic(positive), positive.sum(dim=(1, 2, 3)) / (1 if pooling == "sum" else positions))


def test_resnet_generator_hand_computed_with_identity_kernels() -> None:
    torch.manual_seed(0)
    generator = build_generator("resnet", data_shape=(1, 32, 32), latent_dim=1, options={"width": 2, "norm": "none"})
    _identity_kernels(generator)
    dense, output_conv = generator.net[0], generator.net[-2]
    start = torch.linspace(-0.1, 0.1, 2 * 4 * 4)  # the 2 x 4 x 4 map for z = 1
    with torch.no_grad():
        dense.weight.copy_(start.view(-1, 1))
        output_conv.weight[0, :, 1, 1] = 1.0  # the output pixel is the sum of the two channels
    z = torch.tensor([[1.0], [0.5]])
    h = z.view(2, 1, 1, 1) * start.view(1, 2, 4, 4)
    for _ in range(3):  # each up block: nearest 2x upsampling of both branches (it commutes with ReLU)
        h = _residual_identity(h).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    expected = torch.tanh(torch.relu(h).sum(dim=1, keepdim=True))
    assert_close(generator(z), expected)


def test_resnet_critic_takes_half_the_generator_width() -> None:
    critic = build_critic("resnet", data_shape=(3, 32, 32), critic_outputs=1, options={"width": 6})
    assert critic.features(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert {m.out_channels for m in convs} == {3} and len(convs) == 3 + 3 + 2 + 2
    generator = build_generator("resnet", data_shape=(3, 32, 32), latent_dim=4, options={"width": 6})
    assert sum(isinstance(m, nn.Upsample) and m.mode == "nearest" for m in generator.modules()) == 2 * 3


def test_mlp_layout_and_activation() -> None:
    generator = build_generator("mlp", data_shape=(2,), latent_dim=2,
                                options={"width": 7, "depth": 3, "activation": "leaky_relu"})
    linears = [m for m in generator.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 7), (7, 7), (7, 7), (7, 2)]
    assert sum(isinstance(m, nn.LeakyReLU) for m in generator.modules()) == 3
    critic = build_critic("mlp", data_shape=(2,), critic_outputs=1, options={"width": 7, "depth": 3})
    assert critic.features(torch.zeros(4, 2)).shape == (4, 7)
    assert sum(isinstance(m, nn.ReLU) for m in critic.modules()) == 3


def test_maxout_takes_the_largest_of_each_units_pieces() -> None:
    maxout = Maxout(in_features=2, units=2, pieces=3)
    with torch.no_grad():
        # outputs 0-2 are unit 0's pieces, 3-5 unit 1's (Blocks' LinearMaxout layout)
        maxout.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0],
                                                 [1.0, 1.0], [0.0, -1.0], [0.0, 0.0]]))
        maxout.linear.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.5]))
    x = torch.tensor([[2.0, -3.0], [-1.0, 4.0]])
    # row 0: unit 0 max(2, -3, -2) = 2, unit 1 max(-1, 3, 0.5) = 3; row 1: max(-1, 4, 1) = 4, max(3, -4, 0.5) = 3
    assert_close(maxout(x), torch.tensor([[2.0, 3.0], [4.0, 3.0]]))


PACGAN_MLP = {"width": 400, "depth": 4, "norm": "batch", "generator_hidden_bias": False, "critic_width": 200,
              "critic_depth": 3, "critic_maxout_pieces": 5, "init_std": 0.02}


def test_mlp_builds_pacgans_mixture_networks() -> None:
    """fjxmlzn/PacGAN synthetic_data_experiments/2DRing_GAN&PacGAN/pacgan_task.py L43-90."""
    torch.manual_seed(0)
    generator = build_generator("mlp", data_shape=(2,), latent_dim=2, options=PACGAN_MLP)
    linears = [m for m in generator.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in linears] == [
        (2, 400, False), (400, 400, False), (400, 400, False), (400, 400, False), (400, 2, True)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in generator.modules()) == 4
    critic = build_critic("mlp", data_shape=(2,), critic_outputs=1, options=PACGAN_MLP)
    maxouts = [m for m in critic.modules() if isinstance(m, Maxout)]
    assert [(m.linear.in_features, m.units, m.pieces) for m in maxouts] == [(2, 200, 5), (200, 200, 5), (200, 200, 5)]
    assert not any(isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.BatchNorm1d)) for m in critic.modules())
    assert critic.features(torch.zeros(4, 2)).shape == (4, 200) and critic(torch.zeros(4, 2)).shape == (4,)
    # 2*400 + 3*400*400 + (400*2 + 2) + 4 BN layers of 2*400; (2*1000 + 1000) + 2*(200*1000 + 1000) + (200 + 1)
    assert (parameter_count(generator), parameter_count(critic)) == (484_802, 405_201)
    for network in (generator, critic):
        for layer in (m for m in network.modules() if isinstance(m, nn.Linear)):
            if layer.bias is not None:
                assert torch.count_nonzero(layer.bias) == 0
        weights = torch.cat([m.weight.flatten() for m in network.modules() if isinstance(m, nn.Linear)])
        assert abs(weights.mean().item()) < 0.001 and abs(weights.std().item() - 0.02) < 0.0005


def test_mlp_critic_sizes_default_to_the_generators() -> None:
    critic = build_critic("mlp", data_shape=(2,), critic_outputs=1, options={"width": 7, "depth": 2})
    assert [m.out_features for m in critic.modules() if isinstance(m, nn.Linear)] == [7, 7, 1]
    pair = build_pair_critic("mlp", data_shape=(2,), latent_dim=3,
                             options={"width": 7, "critic_width": 5, "critic_depth": 1, "critic_maxout_pieces": 2})
    assert [(m.linear.in_features, m.units) for m in pair.modules() if isinstance(m, Maxout)] == [(5, 5)]
    default_biases = [m.bias for m in critic.modules() if isinstance(m, nn.Linear)]
    assert all(torch.count_nonzero(bias) > 0 for bias in default_biases)  # torch's init, untouched


def test_option_defaults_and_latent_dims() -> None:
    assert arch_option_defaults("mlp") == {
        "width": 128, "depth": 3, "activation": "relu", "critic_width": None, "critic_depth": None,
        "critic_maxout_pieces": None, "generator_hidden_bias": True, "init_std": None, "norm": "none",
        "critic_norm": "none", "spectral_norm": False, "minibatch_discrimination": False, "minibatch_kernels": 100,
        "minibatch_kernel_dims": 5,
    }
    assert arch_option_defaults("dcgan")["width"] == 64
    assert arch_option_defaults("dcgan")["norm"] == "batch"
    assert default_latent_dim("mlp", (2,)) == 2
    assert default_latent_dim("dcgan", (1, 28, 28)) == 100
    assert arch_option_defaults("resnet") == {
        "width": 256, "pooling": "sum", "norm": "batch", "critic_norm": "none", "spectral_norm": False,
        "minibatch_discrimination": False, "minibatch_kernels": 100, "minibatch_kernel_dims": 5,
    }
    assert default_latent_dim("resnet", (3, 32, 32)) == 128
    assert arch_option_defaults("standard-cnn") == {
        "width": 64, "spectral_norm_head": True, "norm": "batch", "critic_norm": "batch", "spectral_norm": False,
        "minibatch_discrimination": False, "minibatch_kernels": 100, "minibatch_kernel_dims": 5,
    }


def test_unknown_option_names_it_and_lists_valid_ones() -> None:
    with pytest.raises(ValueError,
                       match=r"^architecture 'mlp' has no option 'widht'; valid: activation, critic_depth, "
                             r"critic_maxout_pieces, critic_norm, critic_width, depth, "):
        build_generator("mlp", data_shape=(2,), latent_dim=2, options={"widht": 3})


@pytest.mark.parametrize(
    "options,message",
    [
        ({"activation": "tanh"}, r"option activation='tanh' is invalid; must be one of relu, leaky_relu$"),
        ({"norm": "layer"}, r"option norm='layer' is invalid; must be one of batch, virtual-batch, none$"),
        ({"spectral_norm": 1}, r"option spectral_norm=1 is invalid; must be true or false$"),
        ({"width": 0}, r"option width=0 is invalid; must be an integer >= 1$"),
    ],
)
def test_bad_option_values(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_critic("mlp", data_shape=(2,), critic_outputs=1, options=options)


def test_resnet_option_errors() -> None:
    with pytest.raises(ValueError, match=r"^architecture 'resnet' option width=1 is invalid; must be an integer >= 2$"):
        build_critic("resnet", data_shape=(1, 32, 32), critic_outputs=1, options={"width": 1})  # critic: 1 // 2 = 0
    with pytest.raises(ValueError,
                       match=r"^architecture 'resnet' option pooling='max' is invalid; must be one of sum, mean$"):
        build_critic("resnet", data_shape=(1, 32, 32), critic_outputs=1, options={"pooling": "max"})


def test_unknown_arch_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown architecture 'resnet9'; valid: mlp, dcgan, resnet"):
        build_generator("resnet9", data_shape=(2,), latent_dim=2, options={})
    with pytest.raises(UnknownNameError, match="valid: mlp, dcgan, resnet"):
        arch_supports("nope", (2,))


@pytest.mark.parametrize(
    "arch,shape,reason",
    [
        ("mlp", (1, 28, 28),
         r"mlp takes flat vectors of shape \(D,\), e.g. the 2-D mixtures \(2,\); got \(1, 28, 28\)"),
        ("dcgan", (2,), r"dcgan takes square images \(C, H, W\); got \(2,\)"),
        ("dcgan", (3, 32, 16), r"dcgan takes square images \(C, H, W\); got \(3, 32, 16\)"),
        ("dcgan", (4, 32, 32), r"dcgan takes 1 or 3 channels; got 4 in \(4, 32, 32\)"),
        ("dcgan", (3, 48, 48), r"dcgan takes 28, 32 or 64 px images; got 48 px in \(3, 48, 48\)"),
        ("resnet", (2,), r"resnet takes square images \(C, H, W\); got \(2,\)"),
        ("resnet", (3, 32, 16), r"resnet takes square images \(C, H, W\); got \(3, 32, 16\)"),
        ("resnet", (2, 32, 32), r"resnet takes 1 or 3 channels; got 2 in \(2, 32, 32\)"),
        ("resnet", (3, 48, 48),
         r"resnet takes 28, 32 \(SNGAN's CIFAR-10 setting\) or 64 px images; got 48 px in \(3, 48, 48\)"),
        ("standard-cnn", (3, 28, 28),
         r"standard-cnn takes 32 \(CIFAR-10's size\) px images; got 28 px in \(3, 28, 28\)"),
        ("standard-cnn", (2, 32, 32), r"standard-cnn takes 1 or 3 channels; got 2 in \(2, 32, 32\)"),
    ],
)
def test_arch_supports_reasons(arch: str, shape: tuple[int, ...], reason: str) -> None:
    message = arch_supports(arch, shape)
    assert message is not None and "\n" not in message
    assert re.fullmatch(reason, message)
    with pytest.raises(ValueError, match=reason):
        build_critic(arch, data_shape=shape, critic_outputs=1, options={})


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError,
                       match=r"^architecture 'mlp' option critic_outputs=0 is invalid; must be an integer >= 1$"):
        build_critic("mlp", data_shape=(2,), critic_outputs=0, options={})
    with pytest.raises(ValueError,
                       match=r"^architecture 'mlp' option latent_dim=0 is invalid; must be an integer >= 1$"):
        build_generator("mlp", data_shape=(2,), latent_dim=0, options={})


def test_registry_refuses_a_duplicate_arch() -> None:
    with pytest.raises(ValueError, match="architecture 'mlp' is already registered"):
        ARCHS.register("mlp", ARCHS.get("mlp"))


def test_standard_cnn_parameter_counts_and_shapes() -> None:
    """The SNGAN paper's standard CNN as the RGAN code (`--arch 1`) builds it, at its sizes: G z 128 -> dense
    4x4x512 -> deconv4 s2 256, 128, 64 (each BN, ReLU) -> conv3 3 -> tanh; D conv3 64, conv4 s2 64, conv3 128,
    conv4 s2 128, conv3 256, conv4 s2 256, conv3 512 -> dense 1. Every layer has a bias."""
    torch.manual_seed(0)
    generator = build_generator("standard-cnn", data_shape=(3, 32, 32), latent_dim=128, options={})
    dense = 128 * 4 * 4 * 512 + 4 * 4 * 512
    deconvs = (512 * 256 + 256 * 128 + 128 * 64) * 4 * 4 + 256 + 128 + 64
    batch_norms = 2 * (256 + 128 + 64)
    output = _conv_parameters(64, 3, 3)
    assert dense + deconvs + batch_norms + output == 3_812_355
    assert parameter_count(generator) == 3_812_355
    convs = (_conv_parameters(3, 64, 3) + _conv_parameters(64, 64, 4) + _conv_parameters(64, 128, 3)
             + _conv_parameters(128, 128, 4) + _conv_parameters(128, 256, 3) + _conv_parameters(256, 256, 4)
             + _conv_parameters(256, 512, 3))
    head = 512 * 4 * 4 + 1
    critic_norms = 2 * (64 + 64 + 128 + 128 + 256 + 256)  # batch norm after the first six convs, without spectral norm
    assert convs + head == 2_935_873
    spectral = build_critic("standard-cnn", data_shape=(3, 32, 32), critic_outputs=1, options={"spectral_norm": True})
    plain = build_critic("standard-cnn", data_shape=(3, 32, 32), critic_outputs=1, options={})
    assert parameter_count(spectral) == 2_935_873
    assert parameter_count(plain) == 2_935_873 + critic_norms == 2_937_665
    z = torch.randn(2, 128)
    x = generator(z).detach()
    assert x.shape == (2, 3, 32, 32) and float(x.abs().max()) <= 1
    # the critic's maps: 32 (conv3), 16 (conv4 s2), 16, 8, 8, 4, 4 px
    sizes, h = [], x
    for layer in spectral.trunk:
        h = layer(h)
        if isinstance(layer, nn.Conv2d):
            sizes.append((layer.out_channels, h.shape[-1], layer.kernel_size[0], layer.stride[0]))
    assert sizes == [(64, 32, 3, 1), (64, 16, 4, 2), (128, 16, 3, 1), (128, 8, 4, 2), (256, 8, 3, 1), (256, 4, 4, 2),
                     (512, 4, 3, 1)]
    assert spectral(x).shape == (2,)
    assert {m.negative_slope for m in spectral.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    norms = [m for m in plain.trunk if isinstance(m, nn.BatchNorm2d)]
    assert [m.num_features for m in norms] == [64, 64, 128, 128, 256, 256]
    assert default_latent_dim("standard-cnn", (3, 32, 32)) == 128


def test_standard_cnn_output_layer_spectral_norm_is_an_option() -> None:
    options = {"width": 4, "spectral_norm": True}
    with_head = build_critic("standard-cnn", data_shape=(3, 32, 32), critic_outputs=1, options=options)
    without_head = build_critic("standard-cnn", data_shape=(3, 32, 32), critic_outputs=1,
                                options={**options, "spectral_norm_head": False})
    assert parametrize.is_parametrized(with_head.head.linear, "weight")
    assert not parametrize.is_parametrized(without_head.head.linear, "weight")
    assert all(parametrize.is_parametrized(m, "weight") for m in without_head.trunk if isinstance(m, nn.Conv2d))


def test_standard_cnn_follows_the_rgan_codes_init() -> None:
    torch.manual_seed(0)
    generator = build_generator("standard-cnn", data_shape=(3, 32, 32), latent_dim=128, options={})
    deconv = generator.net[2].weight.detach()  # ConvTranspose2d(512, 256, 4): 2,097,152 draws of N(0, 0.02)
    assert_close(deconv.mean(), torch.tensor(0.0), atol=1e-4, rtol=0)
    assert_close(deconv.std(), torch.tensor(0.02), atol=1e-4, rtol=0)
    norm = generator.net[3]
    assert float((norm.weight.detach() - 1).abs().max()) < 0.1 and torch.equal(norm.bias, torch.zeros(256))
    dense = generator.net[0].weight.detach()  # torch's default Linear init: U(+-1/sqrt(128))
    assert float(dense.abs().max()) <= 1 / math.sqrt(128)


def _gradient_of_first_sample(critic: nn.Module, state: dict, first: torch.Tensor, mates: torch.Tensor) -> torch.Tensor:
    """grad_x of the critic's summed outputs at the first sample of the batch (first, *mates), in training mode,
    from the same weights and spectral-norm vectors each time."""
    critic.load_state_dict(state)
    batch = torch.cat([first, mates]).requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(batch).sum(), batch)
    return gradient[0]


@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet", "standard-cnn"])
@pytest.mark.parametrize("options", [
    {"critic_norm": "batch"}, {"critic_norm": "layer"}, {"critic_norm": "none"},
    {"critic_norm": "batch", "spectral_norm": True},
    {"critic_norm": "none", "minibatch_discrimination": True, "minibatch_kernels": 8},
], ids=["batch", "layer", "none", "batch+spectral", "minibatch"])
def test_per_sample_gradient_depends_on_batch_mates_exactly_when_coupling_says_so(arch: str, options: dict) -> None:
    shape = {"mlp": (2,), "dcgan": (1, 32, 32), "resnet": (1, 32, 32), "standard-cnn": (3, 32, 32)}[arch]
    options = {**SMALL[arch], **options}
    torch.manual_seed(0)
    critic = build_critic(arch, data_shape=shape, critic_outputs=1, options=options).double().train()
    state = copy.deepcopy(critic.state_dict())
    first = torch.rand(1, *shape, dtype=torch.float64) * 2 - 1
    mates_a = torch.rand(3, *shape, dtype=torch.float64) * 2 - 1
    mates_b = torch.rand(3, *shape, dtype=torch.float64) * 0.5
    with_a = _gradient_of_first_sample(critic, state, first, mates_a)
    with_b = _gradient_of_first_sample(critic, state, first, mates_b)
    couplings = critic_sample_coupling(arch, options)
    if couplings:
        assert float((with_a - with_b).norm() / with_a.norm()) > 0.1  # batch norm: 1.2 to 2.2, minibatch: 0.5 to 0.7
    else:
        assert_close(with_a, with_b)


def test_critic_sample_coupling_names_the_option_and_its_independent_values() -> None:
    (batch,) = critic_sample_coupling("dcgan", {})
    assert (batch.option, batch.value, batch.independent) == ("critic_norm", "batch", ("layer", "none"))
    assert critic_sample_coupling("dcgan", {"spectral_norm": True}) == []
    assert critic_sample_coupling("mlp", {}) == []
    (minibatch,) = critic_sample_coupling("mlp", {"minibatch_discrimination": True})
    assert (minibatch.option, minibatch.value, minibatch.independent) == ("minibatch_discrimination", True, (False,))
