"""The pix2pix objective (Isola et al. 2017, eq. 4): a conditional GAN plus L1.

    G* = arg min_G max_D  L_cGAN(G, D) + lambda L_L1(G)
    L_cGAN = E[log D(x, y)] + E[log(1 - D(x, G(x, z)))]      (z: G's dropout)
    L_L1   = E[|y - G(x, z)|_1]

D judges pairs: the input x next to the real target y, or next to G's output. As in the
paper D's loss is halved ("we divide the objective by 2 while optimizing D") and G uses
the non-saturating form (maximise log D(x, G(x, z))). lambda = ``pix2pix.l1_weight`` (100 in
the paper); ``pix2pix.gan_weight`` = 0 trains the same U-Net with L1 alone (the paper's
"L1" row of table 1), D still trained alongside so both runs take the same steps.

The data is ``"pairs"`` (N, 2, C, H, W) whose two halves correspond pixel for pixel: half 0
is the input, half 1 the target (``data.direction=b2a`` swaps them when loading). Each
iteration translates the batch once: D's step sees the output detached, G's step (right
after, on the same batch, as the reference loop does) reuses it with its graph, since G's
weights have not moved in between. G's dropout masks come from the run's generator, so a
resumed run replays the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gancli.conditioning import PAIRED
from gancli.config import Config, config_field, register_section
from gancli.errors import ConfigError
from gancli.losses import AdversarialLoss
from gancli.models.base import DataSpec
from gancli.registry import LOSSES, OBJECTIVES
from gancli.training.objectives.adversarial import TopKConfig
from gancli.training.objectives.base import Objective, Stats, Tensor


@register_section("pix2pix")
@dataclass
class Pix2PixConfig:
    """The pix2pix objective's own knobs (section ``pix2pix``)."""

    l1_weight: float = config_field(100.0, "weight lambda of the L1 distance to the target "
                                    "(Isola et al. 2017, eq. 4; paper 100)", min=0)
    gan_weight: float = config_field(1.0, "weight of the conditional GAN term in G's loss; 0 = "
                                     "the same U-Net trained with L1 alone", min=0)


class Pix2PixObjective(Objective):
    """Isola et al. 2017: G(x) -> y with a U-Net, D(x, y) a PatchGAN on the pair."""

    conditioning = PAIRED

    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module,
                 rng: torch.Generator, device: torch.device, num_classes: int = 0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.loss: AdversarialLoss = LOSSES.get(cfg.loss.name)
        own = cfg.section(Pix2PixConfig)
        self.l1_weight, self.gan_weight = own.l1_weight, own.gan_weight
        self._pair: tuple[Tensor, Tensor, Tensor] | None = None  # (x, y, G(x)) of the D step

    @classmethod
    def validate(cls, cfg: Config, spec: DataSpec | None) -> None:
        for key in ("gp", "r1"):
            if getattr(cfg.reg, key):
                raise ConfigError(f"reg.{key} is not supported by the pix2pix objective",
                                  hint=f"set reg.{key}=0")
        if (cfg.train.augment or cfg.loss.instance_noise or cfg.loss.label_flip
                or cfg.loss.mode_seeking or cfg.train.pool_size
                or cfg.section(TopKConfig).min_share < 1):
            raise ConfigError("DiffAugment, instance noise, label flips, mode seeking, the image "
                              "pool and top-k training are not supported by the pix2pix objective",
                              hint="switch them off for pix2pix")
        own = cfg.section(Pix2PixConfig)
        if not (own.l1_weight or own.gan_weight):
            raise ConfigError("pix2pix.l1_weight and pix2pix.gan_weight are both 0: G would learn "
                              "nothing", hint="pix2pix uses pix2pix.l1_weight=100 pix2pix.gan_weight=1")

    @classmethod
    def check_data(cls, data) -> None:
        """Refuse data whose halves are not pairs (CycleGAN's unpaired trainA/ trainB/)."""
        if data.kind != "pairs" or not data.info.get("paired"):
            raise ConfigError(f"pix2pix learns from paired images, and {data.name} is not paired"
                              + (" (trainA/ and trainB/ are CycleGAN's unpaired layout)"
                                 if data.kind == "pairs" else ""),
                              hint="give a folder with train/ (A|B side by side) or A/ and B/ "
                                   "matched by name, or --data paired:digits-outline")

    def d_step(self, real: Tensor, labels: Tensor | None, progress: float) -> tuple[Tensor, Stats]:
        if real.dim() != 5 or real.shape[1] != 2:
            raise ValueError("pix2pix trains on paired data (N, 2, C, H, W)")
        x, y = real[:, 0], real[:, 1]
        fake = self.G(x, self.rng)  # with its graph: G's step reuses it
        self._pair = (x, y, fake)
        d_real, d_fake = self.D(x, y), self.D(x, fake.detach())
        loss = 0.5 * self.loss.d(d_real, d_fake, 1.0)
        score = (lambda t: torch.sigmoid(t).mean()) if self.loss.probability else (lambda t: t.mean())
        return loss, {"d_loss": loss.detach(), "d_real": score(d_real.detach()),
                      "d_fake": score(d_fake.detach())}

    def g_step(self, batch_size: int, progress: float) -> tuple[Tensor, Stats]:
        if self._pair is None:
            raise RuntimeError("the generator step came before any discriminator step")
        x, y, fake = self._pair
        self._pair = None
        l1 = F.l1_loss(fake, y)
        stats: Stats = {"l1": l1.detach()}
        loss = self.l1_weight * l1
        if self.gan_weight:
            g_gan = self.loss.g(self.D(x, fake))
            stats["g_gan"] = g_gan.detach()
            loss = loss + self.gan_weight * g_gan
        stats["g_loss"] = loss.detach()
        return loss, stats

    # no state of its own: the dropout masks come from the run's generator, which the loop saves


OBJECTIVES.register("pix2pix", Pix2PixObjective, tasks={"translation"})
