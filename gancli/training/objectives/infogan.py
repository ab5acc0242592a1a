"""InfoGAN: latent codes G must make readable, and D's head Q that reads them back."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F

from gancli.conditioning import INFO
from gancli.config import config_field, register_section
from gancli.registry import OBJECTIVES
from gancli.training.objectives.adversarial import AdversarialObjective
from gancli.training.objectives.base import Stats, Tensor


@register_section("infogan")
@dataclass
class InfoGANConfig:
    """The infogan objective's own knobs (section ``infogan``); the codes themselves are
    ``model.info_cat`` and ``model.info_cont`` (they shape the networks)."""

    info_weight: float = config_field(1.0, "weight lambda of the mutual-information term L_I "
                                      "(Chen et al. 2016, eq. 5; paper 1)", min=0)


class InfoGANObjective(AdversarialObjective):
    """Chen et al. 2016: G(z, c) with latent codes c, and a head Q(c | x) sharing D's body.

    Both G and Q minimise the information loss L_I, a variational bound: I(c; G(z, c)) >=
    H(c) - L_I. For the categorical code L_I is Q's cross-entropy; for each continuous code
    it is the negative log-likelihood of a unit-variance Gaussian centred on Q's prediction
    (up to a constant: half the squared error). Q (with D's body) learns from the fakes of
    D's step, G from its own step's fakes; both scaled by ``infogan.info_weight``.

    The live column ``mi`` is the categorical bound log K - CE in nats: 0 for an ignored
    code, log K (2.30 for 10 values) when Q reads the code back perfectly.
    """

    conditioning = INFO

    def __init__(self, cfg, G, D, rng, device, num_classes=0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.cat, self.cont = cfg.model.info_cat, cfg.model.info_cont
        self.info_weight = cfg.section(InfoGANConfig).info_weight

    def fake_labels(self, real_labels, n):
        return self.random_labels(n)

    def discriminate(self, x, y):
        return self.D.forward_with_classes(x)

    def info_loss(self, q: Tensor, codes: Tensor, stats: Stats, prefix: str) -> Tensor:
        loss = q.new_zeros(())
        if self.cat:
            ce = F.cross_entropy(q[:, :self.cat], codes[:, :self.cat].argmax(1))
            stats[f"mi{prefix}"] = (math.log(self.cat) - ce).detach()
            loss = loss + ce
        if self.cont:
            nll = 0.5 * ((q[:, self.cat:] - codes[:, self.cat:]) ** 2).sum(1).mean()
            stats[f"q_cont{prefix}"] = nll.detach()
            loss = loss + nll
        return self.info_weight * loss

    def aux_d_loss(self, cls_real, y_real, cls_fake, y_fake, stats):
        return self.info_loss(cls_fake, y_fake, stats, "_d")

    def aux_g_loss(self, cls_fake, y_fake, stats):
        return self.info_loss(cls_fake, y_fake, stats, "")


OBJECTIVES.register("infogan", InfoGANObjective, tasks={"unconditional"})
