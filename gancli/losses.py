"""Adversarial losses as pure functions of D's logits.

Each loss gives ``d(real, fake, real_target)`` and ``g(fake)``, both means over the
batch. ``real_target`` < 1 is one-sided label smoothing (only the real label moves;
losses without targets ignore it). ``log D = -softplus(-l)`` and
``log(1 - D) = -softplus(l)`` keep the BCE forms stable for any logit ``l``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from gancli.registry import LOSSES

Tensor = torch.Tensor


@dataclass(frozen=True)
class AdversarialLoss:
    name: str
    d: Callable[[Tensor, Tensor, float], Tensor]
    g: Callable[[Tensor], Tensor]
    wasserstein: bool = False  # D is a critic: its score gap estimates a distance
    uses_targets: bool = False  # label smoothing applies
    probability: bool = False  # D's logit is a log-odds: show sigmoid(D) as D(x), D(G(z))

    def __post_init__(self) -> None:
        LOSSES.register(self.name, self)


def _bce_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    # -[t log D(x) + (1-t) log(1-D(x))] - log(1 - D(G(z)))
    loss_real = real_target * F.softplus(-real) + (1 - real_target) * F.softplus(real)
    return loss_real.mean() + F.softplus(fake).mean()


MINIMAX = AdversarialLoss(
    "minimax",
    d=_bce_d,
    g=lambda fake: -F.softplus(fake).mean(),  # minimise log(1 - D(G(z))): the saturating form
    uses_targets=True,
    probability=True,
)

NONSATURATING = AdversarialLoss(
    "nonsaturating",
    d=_bce_d,
    g=lambda fake: F.softplus(-fake).mean(),  # maximise log D(G(z)) (Goodfellow 2014, sec. 3)
    uses_targets=True,
    probability=True,
)

LSGAN = AdversarialLoss(
    "lsgan",  # 0-1 coding: a = 0, b = c = 1 (Mao et al. 2017, eq. 9)
    d=lambda real, fake, t=1.0: 0.5 * ((real - t) ** 2).mean() + 0.5 * (fake**2).mean(),
    g=lambda fake: 0.5 * ((fake - 1) ** 2).mean(),
    uses_targets=True,
)

WASSERSTEIN = AdversarialLoss(
    "wasserstein",  # critic maximises E[D(x)] - E[D(G(z))]
    d=lambda real, fake, t=1.0: fake.mean() - real.mean(),
    g=lambda fake: -fake.mean(),
    wasserstein=True,
)

HINGE = AdversarialLoss(
    "hinge",  # Lim & Ye 2017; Miyato et al. 2018
    d=lambda real, fake, t=1.0: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
    g=lambda fake: -fake.mean(),
    wasserstein=True,
)
