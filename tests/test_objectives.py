"""Every objective against its formula in shared objectives.md, computed here with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from bench.objectives import (
    OBJECTIVES,
    Objective,
    TrainingDefaults,
    bigan_qp_reconstruction,
    get_objective,
    realness_anchors,
)
from bench.registry import UnknownNameError

# hand-made critic outputs: (batch,) = 3; chosen so every gradient sign below is determined
C_REAL = np.array([0.5, -1.0, 0.9])
C_FAKE = np.array([-0.3, 0.8, 0.0])
X_REAL = np.array([[0.0, 1.0], [0.5, -0.5], [-1.0, 0.25]])
X_FAKE = np.array([[0.5, 0.0], [0.5, 0.5], [1.0, -0.75]])
Z_REAL = np.array([[0.2, -0.4, 1.0], [0.0, 0.0, 0.3], [-0.6, 0.1, 0.1]])
Z_FAKE = np.array([[0.0, 0.4, 1.0], [1.0, 0.0, -0.3], [-0.6, 0.5, 0.1]])

LOG2 = math.log(2.0)


def sp(t: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, t)


def relu(t: np.ndarray) -> np.ndarray:
    return np.maximum(t, 0.0)


def l1_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).mean(axis=1)


def l2_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a - b) ** 2).mean(axis=1))


# f-GAN: g_f and f* exactly as the table in objectives.md writes them
F_TABLE = {
    "kl": (lambda v: v, lambda t: np.exp(t - 1)),
    "reverse-kl": (lambda v: -np.exp(-v), lambda t: -1 - np.log(-t)),
    "pearson": (lambda v: v, lambda t: t**2 / 4 + t),
    "neyman": (lambda v: 1 - np.exp(v), lambda t: 2 - 2 * np.sqrt(1 - t)),
    "hellinger": (lambda v: 1 - np.exp(-v), lambda t: t / (1 - t)),
    "js": (lambda v: LOG2 - sp(-v), lambda t: -np.log(2 - np.exp(t))),
    "tv": (lambda v: 0.5 * np.tanh(v), lambda t: t),
}


def _fgan_expected(short: str, form: str):
    g, conj = F_TABLE[short]
    d = -(g(C_REAL).mean() - conj(g(C_FAKE)).mean())
    gen = -g(C_FAKE).mean() if form == "practical" else -conj(g(C_FAKE)).mean()
    return d, gen


def _qp_expected(d_rows: np.ndarray, lam: float = 10.0):
    delta = C_REAL - C_FAKE
    return (-delta + delta**2 / (2 * lam * d_rows)).mean(), delta.mean()


mr, mf = C_REAL.mean(), C_FAKE.mean()
EXPECTED = {
    "sgan": (sp(-C_REAL).mean() + sp(C_FAKE).mean(), -sp(C_FAKE).mean()),
    "nsgan": (sp(-C_REAL).mean() + sp(C_FAKE).mean(), sp(-C_FAKE).mean()),
    "mlgan": (sp(-C_REAL).mean() + sp(C_FAKE).mean(), -0.5 * np.exp(C_FAKE).mean()),
    "rsgan": (sp(-(C_REAL - C_FAKE)).mean(), sp(-(C_FAKE - C_REAL)).mean()),
    "r3gan": (sp(-(C_REAL - C_FAKE)).mean(), sp(-(C_FAKE - C_REAL)).mean()),
    "rasgan": (
        (sp(-(C_REAL - mf)).mean() + sp(C_FAKE - mr).mean()) / 2,
        (sp(-(C_FAKE - mr)).mean() + sp(C_REAL - mf).mean()) / 2,
    ),
    "ralsgan": (
        (((C_REAL - mf - 1) ** 2).mean() + ((C_FAKE - mr + 1) ** 2).mean()) / 2,
        (((C_FAKE - mr - 1) ** 2).mean() + ((C_REAL - mf + 1) ** 2).mean()) / 2,
    ),
    "rahinge": (
        (relu(1 - (C_REAL - mf)).mean() + relu(1 + (C_FAKE - mr)).mean()) / 2,
        (relu(1 - (C_FAKE - mr)).mean() + relu(1 + (C_REAL - mf)).mean()) / 2,
    ),
    "lsgan": ((0.5 * (C_REAL - 1) ** 2).mean() + (0.5 * C_FAKE**2).mean(), (0.5 * (C_FAKE - 1) ** 2).mean()),
    "hinge": (relu(1 - C_REAL).mean() + relu(1 + C_FAKE).mean(), -C_FAKE.mean()),
    "sngan": (relu(1 - C_REAL).mean() + relu(1 + C_FAKE).mean(), -C_FAKE.mean()),
    "wgan": (C_FAKE.mean() - C_REAL.mean(), -C_FAKE.mean()),
    "wgan-gp": (C_FAKE.mean() - C_REAL.mean(), -C_FAKE.mean()),
    **{f"fgan-{short}": _fgan_expected(short, "practical") for short in F_TABLE},
    "gan-qp": _qp_expected(l1_rows(X_REAL, X_FAKE)),
    "bigan-qp": _qp_expected(l1_rows(X_REAL, X_FAKE) + l1_rows(Z_REAL, Z_FAKE)),
}

# stored reference anchors (1000 draws from REALNESS_ANCHOR_SEED; every value a multiple of 1/1000)
ANCHOR_REAL_10 = [0.095, 0.097, 0.091, 0.112, 0.099, 0.102, 0.095, 0.099, 0.095, 0.115]
ANCHOR_FAKE_10 = [0.011, 0.021, 0.067, 0.158, 0.259, 0.231, 0.165, 0.061, 0.021, 0.006]
ANCHOR_REAL_4 = [0.231, 0.263, 0.246, 0.26]
ANCHOR_FAKE_4 = [0.055, 0.461, 0.44, 0.044]

REALNESS_LOGITS_REAL = np.array([[1.0, 0.0, -1.0, 2.0], [0.5, 0.5, 0.0, -0.5], [-2.0, 1.0, 0.0, 0.3]])
REALNESS_LOGITS_FAKE = np.array([[0.0, 2.0, 1.0, -1.0], [1.5, -0.5, 0.2, 0.0], [0.1, 0.1, 0.1, 3.0]])

ALL_NAMES = sorted([*EXPECTED, "realness"])


def _t(array: np.ndarray, *, grad: bool = False, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(array, dtype=dtype, requires_grad=grad)


def _extras(objective: Objective, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    arrays = {"x_real": X_REAL, "x_fake": X_FAKE, "z_real": Z_REAL, "z_fake": Z_FAKE}
    return {key: _t(arrays[key], dtype=dtype) for key in objective.extra_inputs}


def test_every_objective_of_the_catalogue_is_registered() -> None:
    assert sorted(OBJECTIVES.names()) == ALL_NAMES


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_losses_equal_the_formula(name: str) -> None:
    objective = get_objective(name)
    extra = _extras(objective)
    expected_d, expected_g = EXPECTED[name]
    assert_close(objective.d_loss(_t(C_REAL), _t(C_FAKE), **extra), torch.tensor(expected_d, dtype=torch.float64))
    assert_close(objective.g_loss(_t(C_REAL), _t(C_FAKE), **extra), torch.tensor(expected_g, dtype=torch.float64))


@pytest.mark.parametrize("short", sorted(F_TABLE))
def test_fgan_saturating_generator_equals_the_formula(short: str) -> None:
    objective = get_objective(f"fgan-{short}", generator_form="saturating")
    expected_d, expected_g = _fgan_expected(short, "saturating")
    assert_close(objective.d_loss(_t(C_REAL), _t(C_FAKE)), torch.tensor(expected_d, dtype=torch.float64))
    assert_close(objective.g_loss(_t(C_REAL), _t(C_FAKE)), torch.tensor(expected_g, dtype=torch.float64))


def test_gan_qp_l2_distance_and_lambda() -> None:
    objective = get_objective("gan-qp", distance="l2", lam=2.5)
    expected_d, expected_g = _qp_expected(l2_rows(X_REAL, X_FAKE), lam=2.5)
    extra = _extras(objective)
    assert_close(objective.d_loss(_t(C_REAL), _t(C_FAKE), **extra), torch.tensor(expected_d, dtype=torch.float64))
    assert_close(objective.g_loss(_t(C_REAL), _t(C_FAKE), **extra), torch.tensor(expected_g, dtype=torch.float64))


def test_gan_qp_distance_carries_no_gradient_to_the_samples() -> None:
    objective = get_objective("gan-qp")
    x_fake = _t(X_FAKE, grad=True)
    objective.d_loss(_t(C_REAL), _t(C_FAKE, grad=True), x_real=_t(X_REAL), x_fake=x_fake).backward()
    assert x_fake.grad is None


def test_bigan_qp_reconstruction_equals_the_formula() -> None:
    z_rec = Z_REAL * 0.5
    x_rec = X_REAL[::-1].copy()
    expected = 2.0 * ((Z_FAKE - z_rec) ** 2).mean() + 3.0 * ((X_REAL - x_rec) ** 2).mean()
    value = bigan_qp_reconstruction(_t(Z_FAKE), _t(z_rec), _t(X_REAL), _t(x_rec), beta1=2.0, beta2=3.0)
    assert_close(value, torch.tensor(expected, dtype=torch.float64))
    objective = get_objective("bigan-qp")
    assert (objective.options["beta1"], objective.options["beta2"]) == (2.0, 3.0)
    assert objective.extra_inputs == ("x_real", "x_fake", "z_real", "z_fake")


def _np_kl_anchor(anchor: list[float], logits: np.ndarray) -> np.ndarray:
    a = np.array(anchor)
    log_q = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return (a * (np.log(a) - log_q)).sum(axis=1)


def _np_kl_pairs(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    p = np.exp(p_logits) / np.exp(p_logits).sum(axis=1, keepdims=True)
    q = np.exp(q_logits) / np.exp(q_logits).sum(axis=1, keepdims=True)
    return (p * np.log(p / q)).sum(axis=1)


@pytest.mark.parametrize("generator_objective", [1, 2, 3])
def test_realness_losses_equal_the_formula(generator_objective: int) -> None:
    objective = get_objective("realness", num_outcomes=4, generator_objective=generator_objective)
    c_real, c_fake = REALNESS_LOGITS_REAL, REALNESS_LOGITS_FAKE
    expected_d = _np_kl_anchor(ANCHOR_REAL_4, c_real).mean() + _np_kl_anchor(ANCHOR_FAKE_4, c_fake).mean()
    away = -_np_kl_anchor(ANCHOR_FAKE_4, c_fake).mean()
    expected_g = {
        1: away,
        2: _np_kl_pairs(c_real, c_fake).mean() + away,
        3: _np_kl_anchor(ANCHOR_REAL_4, c_fake).mean() + away,
    }[generator_objective]
    assert_close(objective.d_loss(_t(c_real), _t(c_fake)), torch.tensor(expected_d, dtype=torch.float64))
    assert_close(objective.g_loss(_t(c_real), _t(c_fake)), torch.tensor(expected_g, dtype=torch.float64))
    assert objective.critic_outputs == 4
    assert objective.generator_needs_real == (generator_objective == 2)


def test_realness_anchors_are_fixed() -> None:
    first, second = realness_anchors(10), realness_anchors(10)
    assert_close(first.real, second.real, rtol=0, atol=0)
    assert_close(first.fake, second.fake, rtol=0, atol=0)
    assert_close(first.real, torch.tensor(ANCHOR_REAL_10, dtype=torch.float64), rtol=0, atol=1e-12)
    assert_close(first.fake, torch.tensor(ANCHOR_FAKE_10, dtype=torch.float64), rtol=0, atol=1e-12)
    four = realness_anchors(4)
    assert_close(four.real, torch.tensor(ANCHOR_REAL_4, dtype=torch.float64), rtol=0, atol=1e-12)
    assert_close(four.fake, torch.tensor(ANCHOR_FAKE_4, dtype=torch.float64), rtol=0, atol=1e-12)


def test_realness_anchors_cannot_be_changed_through_a_returned_copy() -> None:
    realness_anchors(10).real.zero_()
    assert_close(realness_anchors(10).real, torch.tensor(ANCHOR_REAL_10, dtype=torch.float64), rtol=0, atol=1e-12)


def test_realness_rejects_outputs_of_the_wrong_width() -> None:
    objective = get_objective("realness", num_outcomes=4)
    with pytest.raises(ValueError, match=r"realness: c_real must have shape \(batch, 4\), got \(3, 5\)"):
        objective.d_loss(torch.zeros(3, 5), torch.zeros(3, 4))


# raising C_f lowers L_G and raising C_r lowers L_D, except for Neyman chi^2, whose output
# activation g_f(v) = 1 - exp(v) decreases: there the critic's "real" direction is lower v
SIGN_OF_REAL_IN_D = {name: -1.0 for name in EXPECTED}
SIGN_OF_FAKE_IN_G = {name: -1.0 for name in EXPECTED}
SIGN_OF_REAL_IN_D["fgan-neyman"] = SIGN_OF_FAKE_IN_G["fgan-neyman"] = 1.0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gradient_directions(name: str) -> None:
    objective = get_objective(name)
    extra = _extras(objective)
    c_real, c_fake = _t(C_REAL, grad=True), _t(C_FAKE, grad=True)
    objective.d_loss(c_real, _t(C_FAKE), **extra).backward()
    objective.g_loss(_t(C_REAL), c_fake, **extra).backward()
    assert torch.all(torch.sign(c_real.grad) == SIGN_OF_REAL_IN_D[name]), c_real.grad
    assert torch.all(torch.sign(c_fake.grad) == SIGN_OF_FAKE_IN_G[name]), c_fake.grad


@pytest.mark.parametrize("name", ALL_NAMES)
def test_losses_and_gradients_are_finite_at_logits_50_in_float32(name: str) -> None:
    objective = get_objective(name)
    pattern = torch.tensor([50.0, -50.0, 50.0, -50.0])
    if objective.critic_outputs > 1:
        c_real = (pattern[:, None] * torch.tensor([1.0, -1.0]).repeat(5)[None, :]).requires_grad_(True)
        c_fake = (-c_real.detach()).requires_grad_(True)
    else:
        c_real = pattern.clone().requires_grad_(True)
        c_fake = torch.tensor([-50.0, 50.0, 50.0, -50.0], requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    extra = {
        key: torch.rand(4, 3, generator=generator) * 2 - 1 for key in objective.extra_inputs
    }
    for loss_fn in (objective.d_loss, objective.g_loss):
        c_real.grad = c_fake.grad = None
        loss = loss_fn(c_real, c_fake, **extra)
        assert loss.dtype == torch.float32 and loss.dim() == 0
        assert torch.isfinite(loss), (name, loss)
        loss.backward()
        for grad in (c_real.grad, c_fake.grad):
            assert grad is None or torch.all(torch.isfinite(grad)), (name, grad)


def test_mlgan_clamp_value_and_zero_gradient_beyond() -> None:
    c_fake = torch.tensor([30.0, 0.0], requires_grad=True)
    loss = get_objective("mlgan").g_loss(torch.zeros(2), c_fake)
    assert_close(loss, torch.tensor(-0.5 * (math.exp(20.0) + 1.0) / 2))
    loss.backward()
    assert_close(c_fake.grad, torch.tensor([0.0, -0.25]))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_column_outputs_give_the_same_loss(name: str) -> None:
    objective = get_objective(name)
    extra = _extras(objective)
    flat = objective.d_loss(_t(C_REAL), _t(C_FAKE), **extra)
    column = objective.d_loss(_t(C_REAL[:, None]), _t(C_FAKE[:, None]), **extra)
    assert_close(column, flat)


def test_wide_outputs_are_refused_by_single_output_objectives() -> None:
    message = r"c_real: expected critic outputs of shape \(batch,\) or \(batch, 1\), got \(3, 2\)"
    with pytest.raises(ValueError, match=message):
        get_objective("nsgan").d_loss(torch.zeros(3, 2), torch.zeros(3))


def test_published_recipes() -> None:
    assert get_objective("wgan").defaults == TrainingDefaults(
        optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, critic_steps=5, tricks=(("weight-clipping", {"clip": 0.01}),)
    )
    assert get_objective("wgan-gp").defaults == TrainingDefaults(
        optimizer="adam", lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9), critic_steps=5,
        tricks=(("gradient-penalty", {"weight": 10.0}),),
    )
    r3gan = get_objective("r3gan").defaults
    assert r3gan.tricks == (("r1", {"gamma": 0.05}), ("r2", {"gamma": 0.05}))
    assert get_objective("realness").defaults.tricks == (("spectral-norm", {}),)
    # plain hinge has no constraint; SNGAN is hinge + spectral norm with chainer-gan-lib's standard-CNN optimiser
    assert get_objective("hinge").defaults == TrainingDefaults()
    assert get_objective("sngan").defaults == TrainingDefaults(
        optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), critic_steps=1, tricks=(("spectral-norm", {}),)
    )
    assert get_objective("nsgan").defaults == TrainingDefaults()
    assert get_objective("gan-qp").defaults.critic_steps == 2


def test_relativistic_objectives_need_a_real_batch_for_the_generator() -> None:
    needs_real = {name for name in OBJECTIVES.names() if get_objective(name).generator_needs_real}
    assert needs_real == {"rsgan", "rasgan", "ralsgan", "rahinge", "r3gan", "gan-qp", "bigan-qp", "realness"}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_objective_has_description_and_paper(name: str) -> None:
    objective = get_objective(name)
    assert objective.name == name
    assert objective.description.strip()
    assert objective.paper.strip()


def test_unknown_objective_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown objective 'gan'; valid: sgan, nsgan, mlgan, rsgan"):
        get_objective("gan")


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(ValueError, match=r"^objective 'gan-qp' has no option 'lambda'; valid: distance, lam$"):
        get_objective("gan-qp", **{"lambda": 10.0})
    with pytest.raises(ValueError, match=r"^objective 'nsgan' has no option 'smooth'; valid: none$"):
        get_objective("nsgan", smooth=0.1)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("fgan-kl", {"generator_form": "minimax"},
         r"objective 'fgan-kl' option generator_form='minimax' is invalid; must be one of practical, saturating$"),
        ("gan-qp", {"distance": "l3"}, r"objective 'gan-qp' option distance='l3' is invalid; must be one of l1, l2$"),
        ("gan-qp", {"lam": 0}, r"objective 'gan-qp' option lam=0 is invalid; must be a number > 0$"),
        ("realness", {"generator_objective": 4},
         r"objective 'realness' option generator_objective=4 is invalid; must be one of 1, 2, 3$"),
        ("realness", {"num_outcomes": 1},
         r"objective 'realness' option num_outcomes=1 is invalid; must be an integer >= 2$"),
        ("bigan-qp", {"beta1": -1.0}, r"objective 'bigan-qp' option beta1=-1.0 is invalid; must be a number >= 0$"),
    ],
)
def test_bad_option_values_name_key_value_and_choices(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_objective(name, **options)
