"""G(z) against real data: the adversarial objective and the tricks it offers as options.

The conditional objectives (``conditional``, ``acgan``, ``infogan``) subclass it and change
only its hooks (``conditioning``, ``discriminate``, ``aux_*_loss``), never the two phases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gancli.checkpoints import section
from gancli.conditioning import NONE
from gancli.config import Config, config_field, register_section
from gancli.errors import ConfigError
from gancli.losses import AdversarialLoss
from gancli.models.base import DataSpec
from gancli.registry import LOSSES, OBJECTIVES
from gancli.regularizers import (drift_penalty, gradient_penalty, ortho_weights,
                                 orthogonal_penalty, r1_penalty)
from gancli.reporting import Reporter
from gancli.sampling import draw_latents
from gancli.training.ada import make_augment
from gancli.training.augment import parse_policy
from gancli.training.image_pool import ImagePool
from gancli.training.objectives.base import Objective, Stats, Tensor


@register_section("topk")
@dataclass
class TopKConfig:
    """Top-k training of G (section ``topk``; Sinha et al. 2020, "Top-k Training of GANs:
    Improving GAN Performance by Throwing Away Bad Samples", NeurIPS): G's adversarial loss
    uses only the k generated samples D scores highest; k starts at the whole batch and is
    multiplied by ``decay`` every epoch of real data, down to ``min_share`` of the batch."""

    min_share: float = config_field(1.0, "top-k training of G (Sinha et al. 2020): the smallest "
                                    "share of each generated batch, by D's score, that G's "
                                    "adversarial loss uses (paper 0.5); 1 = off (every sample)",
                                    min=0.01, max=1)
    decay: float = config_field(0.99, "top-k: factor on k's share per epoch of real data, from "
                                "1 down to topk.min_share (paper 0.99)", min=0, max=1)


def topk_share(cfg: TopKConfig, epochs: float) -> float:
    """The share of G's batch top-k training keeps after ``epochs`` epochs of real data:
    max(min_share, decay ** epochs) (Sinha et al. 2020, sec. 3)."""
    return max(cfg.min_share, cfg.decay ** max(epochs, 0.0))


def _plus(loss: Tensor, extra: Tensor | None) -> Tensor:
    """``loss + extra``, skipping a missing term. Not ``loss + 0.0``: under torch.compile the
    compiler folds that to ``loss`` itself, and a loss returned next to its own ``detach()``
    (the logged value) then comes back without its gradient (seen with torch 2.15)."""
    return loss if extra is None else loss + extra


def flip_logits(d_real: Tensor, d_fake: Tensor, swap: Tensor | None) -> tuple[Tensor, Tensor]:
    """Swap the real and fake logits where ``swap`` is set (``loss.label_flip``)."""
    if swap is None:
        return d_real, d_fake
    return torch.where(swap, d_fake, d_real), torch.where(swap, d_real, d_fake)


class AdversarialObjective(Objective):
    """G(z) against real data, for any adversarial loss and regulariser in the config.

    Registered as ``unconditional``; the conditional objectives below change only the
    hooks (``conditioning``, ``discriminate``, ``aux_*_loss``), never the two phases.

    Tricks from the lecture notes are options here: one-sided label smoothing
    (``loss.label_smoothing``), flipped labels for D (``loss.label_flip``), annealed
    instance noise on D's inputs (``loss.instance_noise``), DiffAugment on every D input
    (``train.augment``), an image history pool (``train.pool_size``), and MSGAN's
    mode-seeking term for G (``loss.mode_seeking``, see ``_mode_seeking``), and BigGAN's
    orthogonal regularisation of G's weights (``reg.ortho``, see ``orthogonal_penalty``).
    """

    conditioning = NONE

    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module,
                 rng: torch.Generator, device: torch.device, num_classes: int = 0):
        super().__init__(cfg, G, D, rng, device, num_classes)
        self.model_cfg = cfg.model
        self.loss: AdversarialLoss = LOSSES.get(cfg.loss.name)
        self.z_dim, self.z_dist = cfg.model.z_dim, cfg.model.z_dist
        self.real_target = 1.0 - cfg.loss.label_smoothing
        self.flip = cfg.loss.label_flip
        self.pack = cfg.model.pack
        self.noise = cfg.loss.instance_noise
        self.augment = make_augment(cfg, rng, device)
        self.gp, self.r1 = cfg.reg.gp, cfg.reg.r1
        self.drift = cfg.reg.drift
        self.mode_seeking = cfg.loss.mode_seeking
        self.pool = ImagePool(cfg.train.pool_size, rng)
        self.ortho = cfg.reg.ortho  # BigGAN's orthogonal regularisation of G's weights
        self.ortho_weights = ortho_weights(G) if self.ortho else []
        self.topk = cfg.section(TopKConfig)
        # real images D sees per G step, to count top-k's epochs (``train_size`` is the loop's)
        self.images_per_step = cfg.train.batch_size * cfg.train.n_critic
        self.steps = cfg.train.steps

    @classmethod
    def validate(cls, cfg: Config, spec: DataSpec | None) -> None:
        loss: AdversarialLoss = LOSSES.get(cfg.loss.name)
        for key in ("label_smoothing", "label_flip"):
            if getattr(cfg.loss, key) and not loss.uses_targets:
                raise ConfigError(f"{key.replace('_', ' ')} has no meaning for the "
                                  f"{loss.name} loss",
                                  hint=f"set loss.{key}=0, or use nonsaturating/lsgan")
        if cfg.train.augment.strip() != "ada":  # ADA's pipeline, else a DiffAugment policy
            parse_policy(cfg.train.augment)
        if cfg.train.pool_size and (cls.conditioning.conditional or cls.conditioning.d_input):
            raise ConfigError("the image history pool does not keep labels or clusters",
                              hint="set train.pool_size=0 for a conditional or clustered "
                                   "(objective self_conditional) preset")
        if cfg.train.batch_size % cfg.model.pack:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size} does not split into packs "
                              f"of {cfg.model.pack}", hint="use a batch size divisible by model.pack")
        if cfg.train.augment and spec is not None and spec.kind != "images":
            raise ConfigError("DiffAugment works on images, not on 2-D points",
                              hint="set train.augment to an empty string")

    def compile(self, cfg: Config, reporter: Reporter) -> None:
        """The two loss functions whole: G's and D's forward passes, the losses and any
        gradient penalty in one graph each, with their backward (the phases draw their random
        inputs first, outside the graphs)."""
        self.d_loss = torch.compile(self.d_loss)
        self.g_loss = torch.compile(self.g_loss)

    # -- inputs -------------------------------------------------------------------------------

    def latents(self, n: int) -> Tensor:
        return draw_latents(n, self.z_dim, self.z_dist, self.rng).to(self.device)

    def random_labels(self, n: int) -> Tensor | None:
        """G's second input for its own samples (``Conditioning.draw``): labels uniform over
        the classes, InfoGAN codes, or None."""
        y = self.conditioning.draw(n, self.num_classes, self.model_cfg, self.rng)
        return None if y is None else y.to(self.device)

    def fake_labels(self, real_labels: Tensor | None, n: int) -> Tensor | None:
        """Labels for the fakes of D's step: the real batch's, so both halves share one mix."""
        return real_labels

    def real_labels(self, real: Tensor, labels: Tensor | None) -> Tensor | None:
        """The labels D's step pairs with the real batch: the data's (class-conditional
        kinds), or None."""
        return labels if self.conditioning.class_labels else None

    def fake_inputs(self, y_real: Tensor | None, n: int) -> tuple[Tensor, Tensor | None]:
        """G's inputs for the fakes of D's step, drawn in this order: labels
        (``fake_labels``), then latents."""
        y_fake = self.fake_labels(y_real, n)
        return self.latents(n), y_fake

    def _view(self, x: Tensor, progress: float) -> Tensor:
        """What D is shown: the (augmented) input plus annealed instance noise."""
        if self.augment:
            x = self.augment(x)
        if not self.noise:
            return x
        sigma = self.noise * (1.0 - progress)  # anneal linearly to 0 (Sønderby et al. 2017)
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, generator=self.rng).to(x.device)

    def _swaps(self, n: int) -> Tensor | None:
        """Noisy labels (Salimans et al. 2016; "GAN hacks"): each of D's ``n`` outputs has its
        real and fake label swapped with probability ``loss.label_flip``, so D is sometimes
        told the wrong answer. None when flipping is off."""
        if not self.flip:
            return None
        return (torch.rand(n, generator=self.rng) < self.flip).to(self.device)

    # -- D's view, per kind of conditioning ----------------------------------------------------

    def discriminate(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(adversarial logits, class logits or None)."""
        return self.D(x), None

    def aux_d_loss(self, cls_real, y_real, cls_fake, y_fake, stats: Stats) -> Tensor | None:
        return None  # None, not 0.0: see _plus

    def aux_g_loss(self, cls_fake, y_fake, stats: Stats) -> Tensor | None:
        return None

    def _score(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits).mean() if self.loss.probability else logits.mean()

    # -- the two phases ------------------------------------------------------------------------

    # Each phase draws its random inputs first (latents, labels, pool, augmentation, noise,
    # flips, penalty mixes: always in this order, so a seed replays a run exactly), then
    # calls a loss function that draws nothing. ``train.compile`` compiles the two loss
    # functions whole: a random draw from the run's generator would split the graph.

    def d_step(self, real: Tensor, labels: Tensor | None, progress: float) -> tuple[Tensor, Stats]:
        y_real = self.real_labels(real, labels)
        z, y_fake = self.fake_inputs(y_real, len(real))
        with torch.no_grad():
            fake = self.G(z, y_fake)
        fake = self.pool.query(fake)
        real_in, fake_in = self._view(real, progress), self._view(fake, progress)
        swap = self._swaps(len(real) // self.pack)
        alpha = torch.rand(len(real), generator=self.rng).to(self.device) if self.gp else None
        return self._adapt(*self.d_loss(real, fake, real_in, fake_in, y_real, y_fake, swap, alpha))

    def _adapt(self, loss: Tensor, stats: Stats) -> tuple[Tensor, Stats]:
        """ADA (``train.augment=ada``): feed the step's r_t to the controller, show p."""
        if getattr(self.augment, "adaptive", False):
            self.augment.observe(stats["ada_rt"])
            stats["ada_p"] = self.augment.p
        return loss, stats

    def d_loss(self, real: Tensor, fake: Tensor, real_in: Tensor, fake_in: Tensor,
               y_real: Tensor | None, y_fake: Tensor | None, swap: Tensor | None,
               alpha: Tensor | None) -> tuple[Tensor, Stats]:
        """D's loss on drawn inputs: ``*_in`` are what D is shown (augmented, noisy), the
        penalties are taken on the plain ``real`` and ``fake``."""
        d_real, cls_real = self.discriminate(real_in, y_real)
        d_fake, cls_fake = self.discriminate(fake_in, y_fake)
        adaptive = getattr(self.augment, "adaptive", False)
        rt = d_real.detach().sign().mean() if adaptive else None  # ADA's r_t (see _adapt)
        d_real, d_fake = flip_logits(d_real, d_fake, swap)
        loss = self.loss.d(d_real, d_fake, self.real_target)
        stats = {"d_loss": loss.detach(), "d_real": self._score(d_real.detach()),
                 "d_fake": self._score(d_fake.detach())}
        if rt is not None:
            stats["ada_rt"] = rt
        if self.loss.wasserstein:
            stats["wdist"] = (d_real.mean() - d_fake.mean()).detach()
        loss = _plus(loss, self.aux_d_loss(cls_real, y_real, cls_fake, y_fake, stats))
        # penalties are taken on D's un-augmented, noise-free inputs
        if self.gp:
            gp = gradient_penalty(lambda x: self.discriminate(x, y_real)[0], real, fake, alpha)
            loss = loss + self.gp * gp
            stats["gp"] = gp.detach()
        if self.r1:
            r1 = r1_penalty(lambda x: self.discriminate(x, y_real)[0], real)
            loss = loss + 0.5 * self.r1 * r1
            stats["r1"] = r1.detach()
        if self.drift:
            drift = drift_penalty(d_real)
            loss = loss + self.drift * drift
            stats["drift"] = drift.detach()
        return loss, stats

    def g_step(self, batch_size: int, progress: float) -> tuple[Tensor, Stats]:
        y = self.random_labels(batch_size)
        half = batch_size // 2  # with mode seeking, pairs (i, half + i): see _mode_seeking
        if self.mode_seeking and y is not None and half:
            y = torch.cat([y[:half], y[:half], y[2 * half:]])  # a pair shares its label
        z = self.latents(batch_size)
        if self.mode_seeking and self.model_cfg.z_mixture and half:
            # and its mixture component (model.z_mixture: the argmax of the first K values)
            k = self.model_cfg.z_mixture
            z[half:2 * half, :k] = z[:half, :k]
        return self.g_loss(z, y, progress)

    def _mode_seeking(self, z: Tensor, fake: Tensor) -> Tensor | None:
        """MSGAN (Mao et al. 2019, eq. 3): G should not map two latents to one image. With
        the batch's halves as pairs (same label and same ``model.z_mixture`` component:
        ``g_step``; sharing the component is ours), the ratio of the mean absolute
        image difference to the mean absolute latent difference should be large; G adds
        ``loss.mode_seeking`` / (ratio + 1e-5). A collapsed G makes the ratio small."""
        half = len(z) // 2
        if not self.mode_seeking or half == 0:
            return None
        dx = (fake[:half] - fake[half:2 * half]).abs().mean()
        dz = (z[:half] - z[half:2 * half]).abs().mean()
        return self.mode_seeking / (dx / dz + 1e-5)

    def g_loss(self, z: Tensor, y: Tensor | None, progress: float) -> tuple[Tensor, Stats]:
        """G's loss for drawn latents and labels (DiffAugment and instance noise, when on,
        still draw here: they need G's output first)."""
        fake = self.G(z, y)
        d_fake, cls_fake = self.discriminate(self._view(fake, progress), y)
        stats: Stats = {}
        loss = self.loss.g(self._top_k(d_fake, progress, stats))
        stats["g_loss"] = loss.detach()
        loss = _plus(loss, self.aux_g_loss(cls_fake, y, stats))
        ms = self._mode_seeking(z, fake)
        if ms is not None:
            stats["ms"] = ms.detach()
            loss = loss + ms
        if self.ortho:
            ortho = orthogonal_penalty(self.ortho_weights)
            stats["ortho"] = ortho.detach()
            loss = loss + self.ortho * ortho
        return loss, stats

    def _top_k(self, d_fake: Tensor, progress: float, stats: Stats) -> Tensor:
        """D's scores of the generated samples G's loss uses: all of them, or with top-k
        training (``topk.min_share`` < 1) the k highest, k = ceil(share x batch) (the share
        from ``topk_share``; epochs counted from ``train_size``, the real samples)."""
        if self.topk.min_share >= 1.0 or d_fake.dim() == 0 or len(d_fake) < 2:
            return d_fake
        epochs = progress * self.steps * self.images_per_step / max(self.train_size, 1)
        share = topk_share(self.topk, epochs)
        stats["topk"] = torch.tensor(share)
        k = max(1, math.ceil(share * len(d_fake)))
        if k >= len(d_fake):
            return d_fake
        flat = d_fake.reshape(len(d_fake), -1).mean(1)  # one score per sample (patch D: the mean)
        return d_fake[flat.topk(k).indices]

    # -- resume --------------------------------------------------------------------------------

    def state(self) -> dict[str, Tensor]:
        ada = self.augment.state() if getattr(self.augment, "adaptive", False) else {}
        return {**{f"pool.{k}": v for k, v in self.pool.state().items()}, **ada}

    def load(self, tensors: dict[str, Tensor]) -> None:
        self.pool.load(section(tensors, "pool"), self.device)
        if getattr(self.augment, "adaptive", False):
            self.augment.load(tensors)


OBJECTIVES.register("unconditional", AdversarialObjective, tasks={"unconditional"})
