"""Objectives for image-to-image translation: CycleGAN and StarGAN.

Both implement ``Objective`` (see ``base.py``). Translation needs real images in G's step too: G's input is a real
image, not a latent. The generator step therefore uses the real batch of the last D step,
as both papers' reference loops do (StarGAN updates G every ``n_critic``-th iteration on
that iteration's batch; CycleGAN trains G and D on the same batch).

CycleGAN's D step judges the fakes G made in the previous G step (kept detached, then
passed through the 50-image history pool), instead of translating the batch a second
time: the pool already shows D fakes from many earlier steps, and this saves two
generator passes per step. The very first D step, with no earlier fakes, makes its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gancli.checkpoints import section
from gancli.conditioning import DOMAIN, TRANSLATION
from gancli.config import Config, config_field, register_section
from gancli.errors import ConfigError
from gancli.losses import AdversarialLoss
from gancli.models.base import DataSpec
from gancli.registry import LOSSES, OBJECTIVES
from gancli.regularizers import gradient_penalty
from gancli.training.image_pool import ImagePool
from gancli.training.objectives.adversarial import TopKConfig
from gancli.training.objectives.base import Objective, Stats, Tensor


@register_section("cycle")
@dataclass
class CycleConfig:
    """The cycle objective's own knobs (section ``cycle``, the ``cyclegan`` preset)."""

    cycle_weight: float = config_field(10.0, "weight lambda of the cycle-consistency L1 loss "
                                       "(Zhu et al. 2017, eq. 3; paper 10)", min=0)
    identity_weight: float = config_field(0.5, "identity loss weight, as a fraction of "
                                          "cycle_weight (sec. 5.2; paper 0.5)", min=0)


@register_section("stargan")
@dataclass
class StarGANConfig:
    """The stargan objective's own knobs (section ``stargan``); its classification weight is
    the shared ``loss.cls_weight``."""

    rec_weight: float = config_field(10.0, "weight lambda_rec of the reconstruction loss (Choi "
                                     "et al. 2018, eq. 7; paper 10)", min=0)


class TranslationObjective(Objective):
    """Shared by both objectives: remember the last real batch for the G step; no latents."""

    _real: Tensor | None = None
    _labels: Tensor | None = None
    name = ""  # the preset that trains it, named in errors

    @classmethod
    def validate(cls, cfg: Config, spec: DataSpec | None) -> None:
        if cfg.loss.mode_seeking:
            raise ConfigError(f"loss.mode_seeking compares samples of different latents, and "
                              f"{cls.name} translates with none", hint="set loss.mode_seeking=0")
        if cfg.reg.ortho:
            raise ConfigError(f"reg.ortho (BigGAN's orthogonal regularisation of G) is not "
                              f"supported by {cls.name}", hint="set reg.ortho=0")
        if cfg.section(TopKConfig).min_share < 1:
            raise ConfigError(f"top-k training ranks samples of one latent batch, and {cls.name} "
                              f"translates images", hint="set topk.min_share=1")

    def _last_batch(self) -> tuple[Tensor, Tensor | None]:
        if self._real is None:
            raise RuntimeError("the generator step came before any discriminator step")
        return self._real, self._labels


class CycleObjective(TranslationObjective):
    """Zhu et al. 2017. G: A -> B, F: B -> A, D_A and D_B.

    D_X: the adversarial loss on real X vs pooled fakes of X, halved (the paper's
    "divide the objective by 2 while optimizing D").
    G and F together: L_GAN(G, D_B) + L_GAN(F, D_A)
        + lambda (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)                 cycle consistency
        + lambda * identity_weight (|G(b) - b|_1 + |F(a) - a|_1)       identity (sec. 5.2)
    with lambda = ``cycle.cycle_weight``, identity_weight = ``cycle.identity_weight`` and the
    least-squares loss by default.
    """

    conditioning = TRANSLATION
    name = "cyclegan"

    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module,
                 rng: torch.Generator, device: torch.device, num_classes: int = 0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.loss: AdversarialLoss = LOSSES.get(cfg.loss.name)
        own = cfg.section(CycleConfig)
        self.lam = own.cycle_weight
        self.idt = own.identity_weight * own.cycle_weight
        self.pool_a = ImagePool(cfg.train.pool_size, rng)
        self.pool_b = ImagePool(cfg.train.pool_size, rng)
        self._fakes: tuple[Tensor, Tensor] | None = None  # (F(b), G(a)) of the last G step

    @classmethod
    def validate(cls, cfg: Config, spec: DataSpec | None) -> None:
        super().validate(cfg, spec)
        for key in ("gp", "r1"):
            if getattr(cfg.reg, key):
                raise ConfigError(f"reg.{key} is not supported by the cycle objective",
                                  hint=f"set reg.{key}=0")
        if cfg.train.augment or cfg.loss.instance_noise or cfg.loss.label_flip:
            raise ConfigError("DiffAugment, instance noise and label flips are not supported by "
                              "the cycle objective", hint="switch them off for cyclegan")

    def d_step(self, real: Tensor, labels: Tensor | None, progress: float) -> tuple[Tensor, Stats]:
        a, b = real[:, 0], real[:, 1]
        self._real = real
        if self._fakes is None:
            with torch.no_grad():
                self._fakes = (self.G.b2a(b), self.G.a2b(a))
        fake_a = self.pool_a.query(self._fakes[0])
        fake_b = self.pool_b.query(self._fakes[1])
        d_a = 0.5 * self.loss.d(self.D.a(a), self.D.a(fake_a), 1.0)
        d_b = 0.5 * self.loss.d(self.D.b(b), self.D.b(fake_b), 1.0)
        return d_a + d_b, {"d_a": d_a.detach(), "d_b": d_b.detach()}

    def g_step(self, batch_size: int, progress: float) -> tuple[Tensor, Stats]:
        real, _ = self._last_batch()
        a, b = real[:, 0], real[:, 1]
        fake_b = self.G.a2b(a)
        fake_a = self.G.b2a(b)
        g_a = self.loss.g(self.D.b(fake_b))  # G_A in the paper's code: G fools D_B
        g_b = self.loss.g(self.D.a(fake_a))
        cycle_a = F.l1_loss(self.G.b2a(fake_b), a)
        cycle_b = F.l1_loss(self.G.a2b(fake_a), b)
        loss = g_a + g_b + self.lam * (cycle_a + cycle_b)
        stats = {"g_a": g_a.detach(), "g_b": g_b.detach(), "cycle_a": cycle_a.detach(),
                 "cycle_b": cycle_b.detach()}
        if self.idt:
            idt = F.l1_loss(self.G.a2b(b), b) + F.l1_loss(self.G.b2a(a), a)
            loss = loss + self.idt * idt
            stats["idt"] = idt.detach()
        self._fakes = (fake_a.detach(), fake_b.detach())
        return loss, stats

    def state(self) -> dict[str, Tensor]:
        out = {f"pool_a.{k}": v for k, v in self.pool_a.state().items()}
        out.update({f"pool_b.{k}": v for k, v in self.pool_b.state().items()})
        if self._fakes is not None:
            out["cycle.fake_a"], out["cycle.fake_b"] = self._fakes
        return out

    def load(self, tensors: dict[str, Tensor]) -> None:
        for name, pool in (("pool_a", self.pool_a), ("pool_b", self.pool_b)):
            pool.load(section(tensors, name), self.device)
        if "cycle.fake_a" in tensors:
            self._fakes = (tensors["cycle.fake_a"].to(self.device),
                           tensors["cycle.fake_b"].to(self.device))


class StarGANObjective(TranslationObjective):
    """Choi et al. 2018, eq. 1-7 (Wasserstein form with gradient penalty, sec. 4.2).

    Targets: each real image gets the domain of another image of its batch (a random
    permutation of the batch's labels, as in the authors' code), so every domain is a
    target as often as it is a source.
    D: -D_src(x) + D_src(G(x, c')) + lambda_cls CE(D_cls(x), c) + lambda_gp GP
    G: -D_src(G(x, c')) + lambda_cls CE(D_cls(G(x, c')), c') + lambda_rec |x - G(G(x, c'), c)|_1
    Labels are domain indices (one domain per image: cross-entropy) or 0/1 attribute
    vectors (several at once: binary cross-entropy, as for CelebA).
    """

    conditioning = DOMAIN
    name = "stargan"

    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module,
                 rng: torch.Generator, device: torch.device, num_classes: int = 0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.loss: AdversarialLoss = LOSSES.get(cfg.loss.name)
        self.cls_weight, self.gp = cfg.loss.cls_weight, cfg.reg.gp
        self.rec_weight = cfg.section(StarGANConfig).rec_weight
        self._targets: Tensor | None = None

    def _cls_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        if labels.is_floating_point():
            return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / len(logits)
        return F.cross_entropy(logits, labels)

    def _accuracy(self, logits: Tensor, labels: Tensor) -> Tensor:
        if labels.is_floating_point():
            return ((logits > 0).float() == labels).float().mean()
        return (logits.argmax(1) == labels).float().mean()

    def d_step(self, real: Tensor, labels: Tensor | None, progress: float) -> tuple[Tensor, Stats]:
        if labels is None:
            raise ConfigError("StarGAN needs domain labels",
                              hint="use one sub-folder per domain, or --data domains:shapes-colours")
        perm = torch.randperm(len(real), generator=self.rng).to(real.device)
        targets = labels[perm]
        self._real, self._labels, self._targets = real, labels, targets
        src_real, cls_real = self.D.forward_with_classes(real)
        with torch.no_grad():
            fake = self.G(real, targets)
        src_fake = self.D(fake)
        adv = self.loss.d(src_real, src_fake, 1.0)
        cls = self._cls_loss(cls_real, labels)
        loss = adv + self.cls_weight * cls
        stats = {"d_loss": adv.detach(), "cls_d": cls.detach(),
                 "acc_real": self._accuracy(cls_real.detach(), labels)}
        if self.loss.wasserstein:
            stats["wdist"] = (src_real.mean() - src_fake.mean()).detach()
        if self.gp:
            alpha = torch.rand(len(real), generator=self.rng).to(self.device)
            gp = gradient_penalty(self.D, real, fake, alpha)
            loss = loss + self.gp * gp
            stats["gp"] = gp.detach()
        return loss, stats

    def g_step(self, batch_size: int, progress: float) -> tuple[Tensor, Stats]:
        real, labels = self._last_batch()
        assert labels is not None and self._targets is not None
        fake = self.G(real, self._targets)
        src, cls = self.D.forward_with_classes(fake)
        adv = self.loss.g(src)
        cls_loss = self._cls_loss(cls, self._targets)
        rec = F.l1_loss(self.G(fake, labels), real)
        loss = adv + self.cls_weight * cls_loss + self.rec_weight * rec
        return loss, {"g_loss": adv.detach(), "cls_g": cls_loss.detach(), "rec": rec.detach(),
                      "acc_fake": self._accuracy(cls.detach(), self._targets)}


OBJECTIVES.register("cycle", CycleObjective, tasks={"translation"})
OBJECTIVES.register("stargan", StarGANObjective, tasks={"multi-domain"})
