"""Class-conditional objectives: the label given to both nets (cGAN), or predicted by D (ACGAN
and its TAC / ADC corrections)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from gancli.conditioning import CLASSIFIER, CONCAT, CONCAT_CLASSIFIER
from gancli.config import Config, config_field, register_section
from gancli.errors import ConfigError
from gancli.models.base import DataSpec
from gancli.registry import OBJECTIVES
from gancli.training.objectives.adversarial import AdversarialObjective


@register_section("acgan")
@dataclass
class ACGANConfig:
    """The acgan objective's own knobs (section ``acgan``); the class-loss weight is the
    shared ``loss.cls_weight`` (StarGAN has one too), the head ``model.aux_classifier``."""

    cls_fake: float = config_field(1.0, "weight of D's class loss on generated samples relative "
                                   "to real ones; 0 = D's classifier learns from real data only "
                                   "(TAC-GAN's choice)", min=0)


class ConditionalObjective(AdversarialObjective):
    """Mirza & Osindero 2014: G(z, y) and D(x, y), the label given to both."""

    conditioning = CONCAT

    def discriminate(self, x, y):
        return self.D(x, y), None


class ACGANObjective(AdversarialObjective):
    """Odena et al. 2017: D also predicts the class; both nets maximise its log-likelihood.

    D: adversarial loss + cls_weight * (CE on real + cls_fake * CE on fake);
    G: adversarial loss + cls_weight * CE on fake (G wants its samples classified as asked).

    G is then drawn to samples that are easy to classify, which narrows each class.
    ``model.aux_classifier`` offers two published corrections; both make D's class head
    twice as wide (``head_outputs``):

    - ``tac`` (TAC-GAN, Gong et al. 2019): the second half is a twin classifier that learns
      the labels of generated samples only, and G *maximises* its cross-entropy: D adds
      cls_weight * CE_twin on fake, G adds -cls_weight * CE_twin on fake. The paper's
      classifier learns from real data only: ``acgan.cls_fake=0``.
    - ``adc`` (ADC-GAN, Hou et al. 2022): one classifier over 2K classes, "real k" and
      "generated k". D: cls_weight * (CE(real, k) + CE(fake, K + k)); G: cls_weight *
      (CE(fake, k) - CE(fake, K + k)), so the head also tells real from generated within a
      class. ``acgan.cls_fake`` has no meaning here.
    """

    conditioning = CLASSIFIER

    def __init__(self, cfg, G, D, rng, device, num_classes=0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.cls_weight, self.cls_fake = cfg.loss.cls_weight, cfg.section(ACGANConfig).cls_fake
        self.mode = cfg.model.aux_classifier

    @classmethod
    def validate(cls, cfg: Config, spec: DataSpec | None) -> None:
        super().validate(cfg, spec)
        if cfg.model.aux_classifier == "adc" and cfg.section(ACGANConfig).cls_fake != 1:
            raise ConfigError("acgan.cls_fake has no meaning for ADC-GAN's classifier, which "
                              "learns generated samples as classes of their own",
                              hint="drop acgan.cls_fake, or use model.aux_classifier=ac or tac")

    def discriminate(self, x, y):
        # the labels reach D only where its conditioning takes them (concat_classifier)
        return self.D.forward_with_classes(x, y)

    def aux_d_loss(self, cls_real, y_real, cls_fake, y_fake, stats):
        k = self.num_classes
        if self.mode == "adc":
            ce_real = F.cross_entropy(cls_real, y_real)
            ce_fake = F.cross_entropy(cls_fake, y_fake + k)
            stats["cls_d"] = (ce_real + ce_fake).detach()
            stats["acc_real"] = (cls_real[:, :k].argmax(1) == y_real).float().mean().detach()
            return self.cls_weight * (ce_real + ce_fake)
        ce_real = F.cross_entropy(cls_real[:, :k], y_real)
        ce_fake = F.cross_entropy(cls_fake[:, :k], y_fake)
        stats["cls_d"] = (ce_real + ce_fake).detach()
        stats["acc_real"] = (cls_real[:, :k].argmax(1) == y_real).float().mean().detach()
        loss = ce_real + self.cls_fake * ce_fake
        if self.mode == "tac":
            ce_twin = F.cross_entropy(cls_fake[:, k:], y_fake)
            stats["twin_d"] = ce_twin.detach()
            loss = loss + ce_twin
        return self.cls_weight * loss

    def aux_g_loss(self, cls_fake, y_fake, stats):
        k = self.num_classes
        if self.mode == "adc":
            ce, ce_fake = F.cross_entropy(cls_fake, y_fake), F.cross_entropy(cls_fake, y_fake + k)
            stats["cls_g"] = ce.detach()
            return self.cls_weight * (ce - ce_fake)
        ce = F.cross_entropy(cls_fake[:, :k], y_fake)
        stats["cls_g"] = ce.detach()
        if self.mode == "tac":
            ce_twin = F.cross_entropy(cls_fake[:, k:], y_fake)
            stats["twin_g"] = ce_twin.detach()
            ce = ce - ce_twin
        return self.cls_weight * ce


class ConcatClassifierObjective(ACGANObjective):
    """A D that is given the label (a projection D in the resnet and biggan families, Miyato &
    Koyama 2018; label planes in dcgan) *and* has ACGAN's class head, with its losses as in
    ``ACGANObjective`` (``model.aux_classifier``). With ``adc``, ADC-GAN's discriminative
    classifier (Hou et al. 2022) sits next to the projection: the head tells real from
    generated within each class, a second per-class signal beside the projection's. Putting
    the two together in one D is ours (the ``adcgan`` preset's D has the head alone)."""

    conditioning = CONCAT_CLASSIFIER


OBJECTIVES.register("conditional", ConditionalObjective, tasks={"conditional"})
OBJECTIVES.register("concat_classifier", ConcatClassifierObjective, tasks={"conditional"})
OBJECTIVES.register("acgan", ACGANObjective, tasks={"conditional"})
