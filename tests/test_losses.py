"""Losses and penalties against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gancli.losses import HINGE, LSGAN, MINIMAX, NONSATURATING, WASSERSTEIN
from gancli.regularizers import clip_weights, gradient_penalty, r1_penalty

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def sp(x: float) -> float:  # softplus
    return math.log1p(math.exp(x))


def test_bce_discriminator_loss():
    # -log sigmoid(r) = softplus(-r); -log(1 - sigmoid(f)) = softplus(f)
    want = (sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2
    assert MINIMAX.d(REAL, FAKE, 1.0).item() == pytest.approx(want, rel=1e-6)
    assert NONSATURATING.d(REAL, FAKE, 1.0).item() == pytest.approx(want, rel=1e-6)


def test_one_sided_label_smoothing_moves_only_the_real_target():
    t = 0.9
    want = (t * sp(-2) + (1 - t) * sp(2) + t * sp(1) + (1 - t) * sp(-1)) / 2 + (sp(0.5) + sp(-3)) / 2
    assert NONSATURATING.d(REAL, FAKE, t).item() == pytest.approx(want, rel=1e-6)


def test_generator_losses():
    # minimax: mean log(1 - sigmoid(f)) = -mean softplus(f)   (saturating)
    assert MINIMAX.g(FAKE).item() == pytest.approx(-(sp(0.5) + sp(-3)) / 2, rel=1e-6)
    # non-saturating: -mean log sigmoid(f) = mean softplus(-f)
    assert NONSATURATING.g(FAKE).item() == pytest.approx((sp(-0.5) + sp(3)) / 2, rel=1e-6)
    assert LSGAN.g(FAKE).item() == pytest.approx(0.5 * ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2)
    assert WASSERSTEIN.g(FAKE).item() == pytest.approx(1.25)
    assert HINGE.g(FAKE).item() == pytest.approx(1.25)


def test_saturation_is_what_the_names_say():
    """At a confident D (f very negative) the minimax G gradient vanishes; NS does not."""
    f = torch.tensor([-10.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(MINIMAX.g(f), f)
    (g_ns,) = torch.autograd.grad(NONSATURATING.g(f), f)
    assert abs(g_mm.item()) < 1e-4 < abs(g_ns.item())


def test_other_discriminator_losses():
    assert LSGAN.d(REAL, FAKE, 1.0).item() == pytest.approx(
        0.5 * ((2 - 1) ** 2 + (-1 - 1) ** 2) / 2 + 0.5 * (0.5**2 + 3**2) / 2)
    assert WASSERSTEIN.d(REAL, FAKE, 1.0).item() == pytest.approx(-1.25 - 0.5)
    assert HINGE.d(REAL, FAKE, 1.0).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)


class Linear(nn.Module):
    """D(x) = w . x: its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return x.flatten(1) @ self.w


def test_gradient_penalty_on_a_linear_critic():
    D = Linear([3.0, 4.0])  # |grad| = 5 everywhere
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    gp = gradient_penalty(D, real, fake, torch.rand(6))
    assert gp.item() == pytest.approx((5 - 1) ** 2, rel=1e-5)
    gp.backward()  # differentiable w.r.t. D's weights: d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    assert D.w.grad.tolist() == pytest.approx([2 * 4 * 3 / 5, 2 * 4 * 4 / 5], rel=1e-5)


def test_gradient_penalty_uses_interpolates():
    """A critic |x|^2 has gradient 2x: the penalty depends on where x_hat lies."""
    D = lambda x: (x**2).sum(1)  # noqa: E731
    real, fake = torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    gp = gradient_penalty(D, real, fake, torch.tensor([0.5]))  # x_hat = (2, 0), grad = (4, 0)
    assert gp.item() == pytest.approx(9.0, rel=1e-5)


def test_r1_and_clip():
    D = Linear([3.0, 4.0])
    assert r1_penalty(D, torch.randn(4, 2)).item() == pytest.approx(25.0, rel=1e-5)
    net = nn.Linear(3, 3)
    with torch.no_grad():
        net.weight.fill_(0.5)
    clip_weights(net, 0.01)
    assert net.weight.abs().max().item() == pytest.approx(0.01)
    assert net.bias.abs().max().item() <= 0.01
