"""Each trick's term against an independent computation on tiny critics with known gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from bench.penalties import TRICKS, TrickInputs, get_trick
from bench.registry import UnknownNameError

X_REAL = np.array([[1.0, 2.0, 0.0], [-0.5, 0.5, 1.0]])
X_FAKE = np.array([[0.0, -1.0, 3.0], [2.0, 0.0, -2.0]])
W = np.array([0.5, -1.0, 2.0])


class LinearCritic(nn.Module):
    """C(x) = w . x, so grad_x C = w for every x; features(x) = x, head(f) = w . f."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def features(self, x: Tensor) -> Tensor:
        return x

    def head(self, features: Tensor) -> Tensor:
        return features @ self.w

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class QuadraticCritic(nn.Module):
    """C(x) = a * ||x||^2, so grad_x C = 2 a x and ||grad||^2 = 4 a^2 ||x||^2."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return self.a * x.pow(2).sum(dim=1)


class TanhFeatureCritic(nn.Module):
    """features(x) = tanh(x @ M^T), a (batch, 2) feature; head sums them."""

    def __init__(self) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]], dtype=torch.float64))

    def features(self, x: Tensor) -> Tensor:
        return torch.tanh(x @ self.m.T)

    def head(self, features: Tensor) -> Tensor:
        return features.sum(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _inputs(critic: nn.Module, *, fake_grad: bool = False) -> TrickInputs:
    x_real = torch.tensor(X_REAL)
    x_fake = torch.tensor(X_FAKE, requires_grad=fake_grad)
    return TrickInputs(critic=critic, x_real=x_real, x_fake=x_fake, c_real=critic(x_real), c_fake=critic(x_fake))


def test_registered_tricks() -> None:
    assert TRICKS.names() == [
        "gradient-penalty", "r1", "r2", "weight-clipping", "spectral-norm", "label-smoothing",
        "feature-matching", "minibatch-discrimination", "virtual-batch-norm", "packing",
    ]
    for name in TRICKS.names():
        trick = get_trick(name)
        assert trick.name == name and trick.description.strip()


def test_r1_on_a_linear_critic_is_gamma_half_squared_weight_norm() -> None:
    critic = LinearCritic(W)
    term = get_trick("r1", gamma=4.0).critic_term(_inputs(critic))
    assert_close(term, torch.tensor(4.0 / 2 * (W**2).sum(), dtype=torch.float64))  # 2 * 5.25 = 10.5


@pytest.mark.parametrize(("name", "samples"), [("r1", X_REAL), ("r2", X_FAKE)])
def test_r1_r2_on_a_quadratic_critic_and_their_gradient_to_the_critic(name: str, samples: np.ndarray) -> None:
    a, gamma = 0.5, 3.0
    critic = QuadraticCritic(a)
    term = get_trick(name, gamma=gamma).critic_term(_inputs(critic))
    norms = (samples**2).sum(axis=1)
    assert_close(term, torch.tensor(gamma / 2 * (4 * a**2 * norms).mean(), dtype=torch.float64))
    # the penalty must train the critic: d/da gamma/2 * mean(4 a^2 ||x||^2) = gamma/2 * mean(8 a ||x||^2)
    (grad_a,) = torch.autograd.grad(term, critic.a)
    assert_close(grad_a, torch.tensor(gamma / 2 * (8 * a * norms).mean(), dtype=torch.float64))


def test_r1_default_gamma() -> None:
    assert get_trick("r1").gamma == 10.0 and get_trick("r2").gamma == 10.0


def test_gradient_penalty_on_a_linear_critic() -> None:
    # grad C(x_hat) = w wherever x_hat lies, so the random mix does not matter
    term = get_trick("gradient-penalty", weight=10.0).critic_term(_inputs(LinearCritic(W)))
    assert_close(term, torch.tensor(10.0 * (np.sqrt((W**2).sum()) - 1) ** 2, dtype=torch.float64))


def test_weight_clipping_bounds_every_parameter() -> None:
    critic = nn.Linear(3, 2)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.5, -0.02, 0.005], [-3.0, 0.01, -0.01]]))
        critic.bias.copy_(torch.tensor([0.02, -0.003]))
    get_trick("weight-clipping").after_critic_step(critic)
    assert_close(critic.weight.data, torch.tensor([[0.01, -0.01, 0.005], [-0.01, 0.01, -0.01]]), rtol=0, atol=0)
    assert_close(critic.bias.data, torch.tensor([0.01, -0.003]), rtol=0, atol=0)
    get_trick("weight-clipping", clip=0.004).after_critic_step(critic)
    assert_close(critic.weight.data, torch.tensor([[0.004, -0.004, 0.004], [-0.004, 0.004, -0.004]]), rtol=0, atol=0)
    assert_close(critic.bias.data, torch.tensor([0.004, -0.003]), rtol=0, atol=0)


def test_label_smoothing_term_turns_the_bce_loss_into_target_0_9() -> None:
    c_real = np.array([2.0, -1.0, 0.3])
    inputs = TrickInputs(
        critic=nn.Identity(), x_real=torch.zeros(3), x_fake=torch.zeros(3),
        c_real=torch.tensor(c_real), c_fake=torch.zeros(3),
    )
    term = get_trick("label-smoothing").critic_term(inputs)
    sp = lambda t: np.logaddexp(0.0, t)  # noqa: E731
    smoothed_minus_plain = (0.9 * sp(-c_real) + 0.1 * sp(c_real)).mean() - sp(-c_real).mean()
    assert_close(term, torch.tensor(smoothed_minus_plain, dtype=torch.float64))
    smoothed = get_trick("label-smoothing", smooth=0.2).critic_term(inputs)
    assert_close(smoothed, torch.tensor(0.2 * c_real.mean(), dtype=torch.float64))


def test_feature_matching_term_and_its_gradient_reaches_only_the_fakes() -> None:
    critic = TanhFeatureCritic()
    inputs = _inputs(critic, fake_grad=True)
    term = get_trick("feature-matching", weight=2.0).generator_term(inputs)
    m = critic.m.detach().numpy()
    difference = np.tanh(X_REAL @ m.T).mean(axis=0) - np.tanh(X_FAKE @ m.T).mean(axis=0)
    assert_close(term, torch.tensor(2.0 * (difference**2).sum(), dtype=torch.float64))
    (grad_fake,) = torch.autograd.grad(term, inputs.x_fake)
    assert torch.any(grad_fake != 0)


def test_feature_matching_needs_a_critic_with_features() -> None:
    message = r"trick 'feature-matching' needs a critic with features\(x\) -> \(batch, F\); QuadraticCritic has none"
    with pytest.raises(TypeError, match=message):
        get_trick("feature-matching").generator_term(_inputs(QuadraticCritic(1.0)))


def test_architecture_options() -> None:
    assert dict(get_trick("spectral-norm").critic_options()) == {"spectral_norm": True}
    assert dict(get_trick("minibatch-discrimination").critic_options()) == {"minibatch_discrimination": True}
    assert dict(get_trick("virtual-batch-norm").generator_options()) == {"norm": "virtual-batch"}
    assert dict(get_trick("spectral-norm").generator_options()) == {}
    assert get_trick("spectral-norm").critic_term(_inputs(LinearCritic(W))) is None


def test_unknown_trick_and_option_errors() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown trick 'r3'; valid: gradient-penalty, r1, r2, weight-clipping"):
        get_trick("r3")
    with pytest.raises(ValueError, match=r"^trick 'r1' has no option 'weight'; valid: gamma$"):
        get_trick("r1", weight=1.0)
    with pytest.raises(ValueError, match=r"^trick 'spectral-norm' has no option 'power_iterations'; valid: none$"):
        get_trick("spectral-norm", power_iterations=1)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("weight-clipping", {"clip": 0.0},
         r"trick 'weight-clipping' option clip=0.0 is invalid; must be a number > 0$"),
        ("r2", {"gamma": -1}, r"trick 'r2' option gamma=-1 is invalid; must be a number >= 0$"),
        ("label-smoothing", {"smooth": 1.0},
         r"trick 'label-smoothing' option smooth=1.0 is invalid; must be a number in \[0, 1\)$"),
        ("feature-matching", {"weight": "1"},
         r"trick 'feature-matching' option weight='1' is invalid; must be a number >= 0$"),
        ("r1", {"gamma": "1e-3"},
         (r"trick 'r1' option gamma='1e-3' is invalid; must be a number >= 0 \(YAML reads 1e-3 as a string; write it "
          r"with a dot, e.g. 0.001\)$")),
    ],
)
def test_bad_option_values(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_trick(name, **options)


def test_the_penalties_on_per_sample_gradients_declare_it() -> None:
    declared = {name for name, entry in TRICKS.items() if entry.needs_per_sample_gradients}
    assert declared == {"gradient-penalty", "r1", "r2"}

