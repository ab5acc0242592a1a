"""Objectives: what one D step and one G step compute, per kind of GAN.

The loop owns the schedule (how many D steps, optimisers, EMA, cadence); an objective
owns the maths: it draws its own inputs from the run's generator, runs G and D, and
returns the loss to minimise plus the numbers to show. Adding a kind of GAN (conditional,
ACGAN, CycleGAN...) is a new objective here, never an ``if`` in the loop.
"""

from __future__ import annotations

import torch

from gancli.config import Config
from gancli.errors import ConfigError
from gancli.losses import AdversarialLoss
from gancli.regularizers import gradient_penalty, r1_penalty
from gancli.registry import LOSSES, OBJECTIVES
from gancli.sampling import draw_latents
from gancli.training.image_pool import ImagePool

Tensor = torch.Tensor
Stats = dict[str, Tensor]


class UnconditionalObjective:
    """G(z) against real data, for any adversarial loss and regulariser in the config.

    Tricks from the lecture notes are options here: one-sided label smoothing
    (``loss.label_smoothing``), annealed instance noise on D's inputs
    (``loss.instance_noise``), an image history pool (``train.pool_size``).
    """

    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module,
                 gen: torch.Generator, device: torch.device):
        self.G, self.D, self.gen, self.device = G, D, gen, device
        self.loss: AdversarialLoss = LOSSES.get(cfg.loss.name)
        self.z_dim, self.z_dist = cfg.model.z_dim, cfg.model.z_dist
        self.real_target = 1.0 - cfg.loss.label_smoothing
        if cfg.loss.label_smoothing and not self.loss.uses_targets:
            raise ConfigError(f"label smoothing has no meaning for the {self.loss.name} loss",
                              hint="set loss.label_smoothing=0, or use nonsaturating/lsgan")
        self.noise = cfg.loss.instance_noise
        self.gp, self.r1 = cfg.reg.gp, cfg.reg.r1
        self.pool = ImagePool(cfg.train.pool_size, gen)

    def latents(self, n: int) -> Tensor:
        return draw_latents(n, self.z_dim, self.z_dist, self.gen).to(self.device)

    def _noisy(self, x: Tensor, progress: float) -> Tensor:
        sigma = self.noise * (1.0 - progress)  # anneal linearly to 0 (Sønderby et al. 2017)
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, generator=self.gen).to(x.device)

    def _score(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits).mean() if self.loss.probability else logits.mean()

    def d_step(self, real: Tensor, labels: Tensor | None, progress: float) -> tuple[Tensor, Stats]:
        with torch.no_grad():
            fake = self.G(self.latents(len(real)))
        fake = self.pool.query(fake)
        d_real = self.D(self._noisy(real, progress))
        d_fake = self.D(self._noisy(fake, progress))
        loss = self.loss.d(d_real, d_fake, self.real_target)
        stats = {"d_loss": loss.detach(), "d_real": self._score(d_real.detach()),
                 "d_fake": self._score(d_fake.detach())}
        if self.loss.wasserstein:
            stats["wdist"] = (d_real.mean() - d_fake.mean()).detach()
        if self.gp:
            alpha = torch.rand(len(real), generator=self.gen).to(self.device)
            gp = gradient_penalty(self.D, real, fake, alpha)
            loss = loss + self.gp * gp
            stats["gp"] = gp.detach()
        if self.r1:
            r1 = r1_penalty(self.D, real)
            loss = loss + 0.5 * self.r1 * r1
            stats["r1"] = r1.detach()
        return loss, stats

    def g_step(self, batch_size: int, progress: float) -> tuple[Tensor, Stats]:
        fake = self.G(self.latents(batch_size))
        loss = self.loss.g(self.D(self._noisy(fake, progress)))
        return loss, {"g_loss": loss.detach()}

    def state(self) -> dict[str, Tensor]:
        return {f"pool.{k}": v for k, v in self.pool.state().items()}

    def load(self, tensors: dict[str, Tensor]) -> None:
        self.pool.load({k[5:]: v for k, v in tensors.items() if k.startswith("pool.")}, self.device)


OBJECTIVES.register("unconditional", UnconditionalObjective, tasks={"unconditional"})
