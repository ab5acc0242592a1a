"""StyleGAN2's training step (Karras et al. 2020, arXiv:1912.04958, sec. 3.1, 4 and appendix B).

- Non-saturating logistic loss (``loss.name``; any registered loss works).
- Lazy R1 (sec. 3.1): R1 = |grad D(x_real)|^2 only on every ``stylegan2.r1_every``-th D step (16
  in the paper), weighted gamma / 2 * interval so its average strength is unchanged;
  gamma = ``reg.r1``. Taken with respect to the real images D was shown (augmented, with
  ADA); the official code differentiates through the augmentation back to the un-augmented
  reals instead (the same penalty where p = 0). The paper also rescales Adam's lr and
  betas by 16/17 for lazy steps; we do not (a few per cent of lr, see docs/presets.md).
- Path-length regularisation (sec. 3.2, ``stylegan2.pl_weight``, every 4 G steps, weighted by 4): for
  y ~ N(0, I) / sqrt(H W), the length of J_w^T y per sample should match its running mean a
  (decay 0.01); penalty (|J_w^T y| - a)^2 on half a batch, as the official code.
- Style mixing (``stylegan2.style_mixing``, paper 0.9): that share of G's batches map two latents
  and switch from the first w to the second at one random layer.
- Per-pixel noise drawn from the run's generator for every layer in training.
- The tracked mean w (truncation's centre) follows the w of every D step's latents.

Every random draw (latents, mixing, noise, augmentation) comes from the run's generator in a
fixed order before the loss functions run, and the lazy-regularisation cadence and the
path-length mean are a function of the step and of saved state, so ``--resume`` continues
bit-identically (``state``/``load``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gancli.config import config_field, register_section
from gancli.errors import CheckpointError, ConfigError
from gancli.regularizers import r1_penalty
from gancli.registry import OBJECTIVES
from gancli.training.objectives.adversarial import AdversarialObjective
from gancli.training.objectives.base import Stats

Tensor = torch.Tensor
PL_EVERY = 4  # G steps between path-length penalties (paper, sec. 3.2)
PL_DECAY = 0.01  # running mean of path lengths
PL_BATCH_SHRINK = 2  # the penalty runs on half of G's batch


@register_section("stylegan2")
@dataclass
class StyleGAN2Config:
    """The stylegan2 objective's own knobs (section ``stylegan2``); R1's weight is the shared
    ``reg.r1``."""

    r1_every: int = config_field(1, "lazy regularisation: R1 only every this many D steps, "
                                 "scaled by it (Karras et al. 2020, sec. 3.1: 16)", min=1, max=1000)
    pl_weight: float = config_field(0.0, "path-length regularisation weight (sec. 3.2; paper 2), "
                                    "every 4 G steps; 0 = off", min=0)
    style_mixing: float = config_field(0.0, "share of G batches with mixed styles (two latents, "
                                       "one crossover layer; paper 0.9)", min=0, max=1)


class StyleGAN2Objective(AdversarialObjective):
    """Unconditional StyleGAN2 training on a ``stylegan2``-family G (``mapping`` + ``synthesis``).

    Stats: d_loss, d_real, d_fake, g_loss, r1 (the latest lazy R1 value), pl (the latest
    path-length penalty, when ``stylegan2.pl_weight`` > 0), and ada_p / ada_rt with ``train.augment=ada``.
    """

    families = ("stylegan2",)
    families_need = "a style-based generator (mapping and synthesis networks)"

    def __init__(self, cfg, G, D, rng, device, num_classes=0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.gamma, self.r1 = cfg.reg.r1, 0.0  # the base class's every-step R1 stays off
        own = cfg.section(StyleGAN2Config)
        self.r1_every = own.r1_every
        self.pl_weight = own.pl_weight
        self.mixing = own.style_mixing
        self.n_critic = cfg.train.n_critic
        self.d_count = 0  # D steps so far (set from the step by on_step)
        self.g_count = 0
        self.last_r1 = torch.zeros((), device=device)
        self.last_pl = torch.zeros((), device=device)
        self.pl_mean = torch.zeros((), device=device)

    @classmethod
    def validate(cls, cfg, spec) -> None:
        super().validate(cfg, spec)
        if cfg.reg.gp or cfg.loss.label_flip or cfg.train.pool_size or cfg.loss.mode_seeking:
            raise ConfigError("objective 'stylegan2' takes R1 (reg.r1), path length (stylegan2.pl_weight) "
                              "and augmentation, not gp, label flips, a pool or mode seeking",
                              hint="drop those keys, or use objective=unconditional")

    def compile(self, cfg, reporter) -> None:
        """``train.compile``: the two loss functions whole (every random draw is made before
        them, in ``d_step`` / ``g_step``)."""
        self.lazy_d_loss = torch.compile(self.lazy_d_loss)
        self.style_g_loss = torch.compile(self.style_g_loss)

    def on_step(self, step: int) -> bool:
        """The lazy-regularisation counters follow the step (nothing else to schedule)."""
        self.d_count, self.g_count = step * self.n_critic, step
        return False

    # -- inputs -------------------------------------------------------------------------------

    def _styles(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """(z, z2, mask): latents, the mixing latents and a (num_ws,) bool mask of the layers
        that take z2's w (all False unless this batch mixes)."""
        num_ws = self.G.num_ws
        z, z2 = self.latents(n), self.latents(n)
        mix = float(torch.rand((), generator=self.rng)) < self.mixing
        cutoff = int(torch.randint(1, num_ws, (), generator=self.rng))
        mask = torch.arange(num_ws) >= (cutoff if mix else num_ws)
        return z, z2, mask.to(self.device)

    def _noise(self, n: int) -> list[Tensor]:
        return [torch.randn(n, 1, h, w, generator=self.rng).to(self.device)
                for h, w in self.G.synthesis.noise_shapes()]

    def _ws(self, z: Tensor, z2: Tensor, mask: Tensor) -> Tensor:
        """(B, num_ws, w_dim): w(z) on every layer, w(z2) where ``mask`` is set."""
        G = self.G
        w = G.broadcast(G.mapping(z))
        if not self.mixing:
            return w
        return torch.where(mask[None, :, None], G.broadcast(G.mapping(z2)), w)

    # -- D ------------------------------------------------------------------------------------

    def d_step(self, real, labels, progress):
        n = len(real)
        z, z2, mask = self._styles(n)
        noise = self._noise(n)
        with torch.no_grad():
            ws = self._ws(z, z2, mask)
            self.G.mapping.track(ws[:, 0])
            fake = self.G.synthesis(ws, noise)
        real_in, fake_in = self._view(real, progress), self._view(fake, progress)
        reg = bool(self.gamma) and self.d_count % self.r1_every == 0
        self.d_count += 1
        return self._adapt(*self.lazy_d_loss(real, fake, real_in, fake_in, reg))

    def lazy_d_loss(self, real, fake, real_in, fake_in, reg: bool) -> tuple[Tensor, Stats]:
        loss, stats = self.d_loss(real, fake, real_in, fake_in, None, None, None, None)
        if reg:
            r1 = r1_penalty(self.D, real_in)
            loss = loss + 0.5 * self.gamma * self.r1_every * r1
            self.last_r1 = r1.detach()
        stats["r1"] = self.last_r1
        return loss, stats

    # -- G ------------------------------------------------------------------------------------

    def g_step(self, batch_size, progress):
        z, z2, mask = self._styles(batch_size)
        noise = self._noise(batch_size)
        pl_noise = None
        if self.pl_weight and self.g_count % PL_EVERY == 0:
            c, h, w = self._image_shape()
            m = max(1, batch_size // PL_BATCH_SHRINK)
            pl_noise = torch.randn(m, c, h, w, generator=self.rng).to(self.device) / math.sqrt(h * w)
        self.g_count += 1
        return self.style_g_loss(z, z2, mask, noise, pl_noise, progress)

    def _image_shape(self) -> tuple[int, int, int]:
        rgb = self.G.synthesis.to_rgb[-1].bias.numel()
        side = self.G.synthesis.noise_shapes()[-1][0]
        return rgb, side, side

    def style_g_loss(self, z, z2, mask, noise, pl_noise, progress) -> tuple[Tensor, Stats]:
        fake = self.G.synthesis(self._ws(z, z2, mask), noise)
        d_fake, _ = self.discriminate(self._view(fake, progress), None)
        stats: Stats = {}
        loss = self.loss.g(self._top_k(d_fake, progress, stats))
        stats["g_loss"] = loss.detach()
        if pl_noise is not None:
            m = len(pl_noise)
            ws = self._ws(z[:m], z2[:m], mask)
            if not ws.requires_grad:  # G frozen (never in training): nothing to regularise
                ws = ws.detach().requires_grad_(True)
            img = self.G.synthesis(ws, [n[:m] for n in noise])
            (grad,) = torch.autograd.grad((img.float() * pl_noise).sum(), ws, create_graph=True)
            lengths = grad.float().square().sum(2).mean(1).sqrt()  # (m,)
            self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), PL_DECAY)
            pl = (lengths - self.pl_mean).square().mean()
            loss = loss + self.pl_weight * PL_EVERY * pl
            self.last_pl = pl.detach()
        if self.pl_weight:
            stats["pl"] = self.last_pl
        return loss, stats

    # -- resume --------------------------------------------------------------------------------

    def state(self) -> dict[str, Tensor]:
        return {**super().state(), "sg2.last_r1": self.last_r1.detach().cpu().reshape(1),
                "sg2.last_pl": self.last_pl.detach().cpu().reshape(1),
                "sg2.pl_mean": self.pl_mean.detach().cpu().reshape(1)}

    def load(self, tensors: dict[str, Tensor]) -> None:
        super().load(tensors)
        keys = ("sg2.last_r1", "sg2.last_pl", "sg2.pl_mean")
        bad = [k for k in keys if k not in tensors or tensors[k].numel() != 1
               or not torch.isfinite(tensors[k].float()).all()]
        if bad:
            raise CheckpointError(f"the checkpoint lacks StyleGAN2 state ({', '.join(bad)})",
                                  hint="resume a stylegan2 run from a checkpoint it wrote")
        self.last_r1, self.last_pl, self.pl_mean = (
            tensors[k].float().reshape(()).to(self.device) for k in keys)


OBJECTIVES.register("stylegan2", StyleGAN2Objective, tasks={"unconditional"})
