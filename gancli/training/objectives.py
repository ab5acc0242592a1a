"""Objectives: what one D step and one G step compute, per kind of GAN.

The loop owns the schedule (how many D steps, optimisers, EMA, cadence); an objective
owns the maths: it draws its own inputs from the run's generator, runs G and D, and
returns the loss to minimise plus the numbers to show. Adding a kind of GAN (conditional,
ACGAN, CycleGAN...) is a new objective here, never an ``if`` in the loop.

``conditioning`` tells the model builder how labels enter the networks (see
``gancli.models.base.CONDITIONINGS``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gancli.config import Config
from gancli.errors import ConfigError
from gancli.losses import AdversarialLoss
from gancli.regularizers import drift_penalty, gradient_penalty, r1_penalty
from gancli.registry import LOSSES, OBJECTIVES
from gancli.sampling import draw_codes, draw_latents
from gancli.training.ada import make_augment
from gancli.training.image_pool import ImagePool

Tensor = torch.Tensor
Stats = dict[str, Tensor]


def _plus(loss: Tensor, extra: Tensor | None) -> Tensor:
    """``loss + extra``, skipping a missing term. Not ``loss + 0.0``: under torch.compile the
    compiler folds that to ``loss`` itself, and a loss returned next to its own ``detach()``
    (the logged value) then comes back without its gradient (seen with torch 2.15)."""
    return loss if extra is None else loss + extra


def _flip(d_real: Tensor, d_fake: Tensor, swap: Tensor | None) -> tuple[Tensor, Tensor]:
    """Swap the real and fake logits where ``swap`` is set (``loss.label_flip``)."""
    if swap is None:
        return d_real, d_fake
    return torch.where(swap, d_fake, d_real), torch.where(swap, d_real, d_fake)


class AdversarialObjective:
    """G(z) against real data, for any adversarial loss and regulariser in the config.

    Registered as ``unconditional``; the conditional objectives below change only the
    hooks (``conditioning``, ``discriminate``, ``aux_*_loss``), never the two phases.

    Tricks from the lecture notes are options here: one-sided label smoothing
    (``loss.label_smoothing``), flipped labels for D (``loss.label_flip``), annealed
    instance noise on D's inputs (``loss.instance_noise``), DiffAugment on every D input
    (``train.augment``), an image history pool (``train.pool_size``), and MSGAN's
    mode-seeking term for G (``loss.mode_seeking``, see ``_mode_seeking``).
    """

    conditioning = "none"

    def __init__(self, cfg: Config, G: torch.nn.Module, D: torch.nn.Module,
                 gen: torch.Generator, device: torch.device, num_classes: int = 0):
        self.G, self.D, self.gen, self.device = G, D, gen, device
        self.num_classes = num_classes
        self.loss: AdversarialLoss = LOSSES.get(cfg.loss.name)
        self.z_dim, self.z_dist = cfg.model.z_dim, cfg.model.z_dist
        self.real_target = 1.0 - cfg.loss.label_smoothing
        for key in ("label_smoothing", "label_flip"):
            if getattr(cfg.loss, key) and not self.loss.uses_targets:
                raise ConfigError(f"{key.replace('_', ' ')} has no meaning for the "
                                  f"{self.loss.name} loss",
                                  hint=f"set loss.{key}=0, or use nonsaturating/lsgan")
        self.flip = cfg.loss.label_flip
        self.pack = cfg.model.pack
        self.noise = cfg.loss.instance_noise
        self.augment = make_augment(cfg, gen, device)
        self.gp, self.r1 = cfg.reg.gp, cfg.reg.r1
        self.drift = cfg.reg.drift
        self.mode_seeking = cfg.loss.mode_seeking
        if cfg.train.pool_size and self.conditioning != "none":
            raise ConfigError("the image history pool does not keep labels",
                              hint="set train.pool_size=0 for a conditional preset")
        self.pool = ImagePool(cfg.train.pool_size, gen)
        if cfg.train.batch_size % cfg.model.pack:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size} does not split into packs "
                              f"of {cfg.model.pack}", hint="use a batch size divisible by model.pack")

    # -- inputs -------------------------------------------------------------------------------

    def latents(self, n: int) -> Tensor:
        return draw_latents(n, self.z_dim, self.z_dist, self.gen).to(self.device)

    def random_labels(self, n: int) -> Tensor | None:
        """Labels for G's own samples: uniform over classes (None when unconditional)."""
        if self.conditioning == "none":
            return None
        return torch.randint(self.num_classes, (n,), generator=self.gen).to(self.device)

    def fake_labels(self, real_labels: Tensor | None, n: int) -> Tensor | None:
        """Labels for the fakes of D's step: the real batch's, so both halves share one mix."""
        return real_labels

    def _view(self, x: Tensor, progress: float) -> Tensor:
        """What D is shown: the (augmented) input plus annealed instance noise."""
        if self.augment:
            x = self.augment(x)
        if not self.noise:
            return x
        sigma = self.noise * (1.0 - progress)  # anneal linearly to 0 (Sønderby et al. 2017)
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, generator=self.gen).to(x.device)

    def _swaps(self, n: int) -> Tensor | None:
        """Noisy labels (Salimans et al. 2016; "GAN hacks"): each of D's ``n`` outputs has its
        real and fake label swapped with probability ``loss.label_flip``, so D is sometimes
        told the wrong answer. None when flipping is off."""
        if not self.flip:
            return None
        return (torch.rand(n, generator=self.gen) < self.flip).to(self.device)

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
        y_real = labels if self.conditioning in ("concat", "classifier") else None
        y_fake = self.fake_labels(y_real, len(real))
        with torch.no_grad():
            fake = self.G(self.latents(len(real)), y_fake)
        fake = self.pool.query(fake)
        real_in, fake_in = self._view(real, progress), self._view(fake, progress)
        swap = self._swaps(len(real) // self.pack)
        alpha = torch.rand(len(real), generator=self.gen).to(self.device) if self.gp else None
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
        d_real, d_fake = _flip(d_real, d_fake, swap)
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
        if self.mode_seeking and y is not None and batch_size >= 2:
            half = batch_size // 2  # pairs (i, half + i) share a label: see _mode_seeking
            y = torch.cat([y[:half], y[:half], y[2 * half:]])
        return self.g_loss(self.latents(batch_size), y, progress)

    def _mode_seeking(self, z: Tensor, fake: Tensor) -> Tensor | None:
        """MSGAN (Mao et al. 2019, eq. 3): G should not map two latents to one image. With
        the batch's halves as pairs (same label: ``g_step``), the ratio of the mean absolute
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
        loss = self.loss.g(d_fake)
        stats["g_loss"] = loss.detach()
        loss = _plus(loss, self.aux_g_loss(cls_fake, y, stats))
        ms = self._mode_seeking(z, fake)
        if ms is not None:
            stats["ms"] = ms.detach()
            loss = loss + ms
        return loss, stats

    # -- resume --------------------------------------------------------------------------------

    def state(self) -> dict[str, Tensor]:
        ada = self.augment.state() if getattr(self.augment, "adaptive", False) else {}
        return {**{f"pool.{k}": v for k, v in self.pool.state().items()}, **ada}

    def load(self, tensors: dict[str, Tensor]) -> None:
        self.pool.load({k[5:]: v for k, v in tensors.items() if k.startswith("pool.")}, self.device)
        if getattr(self.augment, "adaptive", False):
            self.augment.load(tensors)


class ConditionalObjective(AdversarialObjective):
    """Mirza & Osindero 2014: G(z, y) and D(x, y), the label given to both."""

    conditioning = "concat"

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
      classifier learns from real data only: ``loss.cls_fake=0``.
    - ``adc`` (ADC-GAN, Hou et al. 2022): one classifier over 2K classes, "real k" and
      "generated k". D: cls_weight * (CE(real, k) + CE(fake, K + k)); G: cls_weight *
      (CE(fake, k) - CE(fake, K + k)), so the head also tells real from generated within a
      class. ``loss.cls_fake`` has no meaning here.
    """

    conditioning = "classifier"

    def __init__(self, cfg, G, D, gen, device, num_classes=0):
        super().__init__(cfg, G, D, gen, device, num_classes)
        self.cls_weight, self.cls_fake = cfg.loss.cls_weight, cfg.loss.cls_fake
        self.mode = cfg.model.aux_classifier
        if self.mode == "adc" and self.cls_fake != 1:
            raise ConfigError("loss.cls_fake has no meaning for ADC-GAN's classifier, which "
                              "learns generated samples as classes of their own",
                              hint="drop loss.cls_fake, or use model.aux_classifier=ac or tac")

    def discriminate(self, x, y):
        return self.D.forward_with_classes(x)

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


class InfoGANObjective(AdversarialObjective):
    """Chen et al. 2016: G(z, c) with latent codes c, and a head Q(c | x) sharing D's body.

    Both G and Q minimise the information loss L_I, a variational bound: I(c; G(z, c)) >=
    H(c) - L_I. For the categorical code L_I is Q's cross-entropy; for each continuous code
    it is the negative log-likelihood of a unit-variance Gaussian centred on Q's prediction
    (up to a constant: half the squared error). Q (with D's body) learns from the fakes of
    D's step, G from its own step's fakes; both scaled by ``loss.info_weight``.

    The live column ``mi`` is the categorical bound log K - CE in nats: 0 for an ignored
    code, log K (2.30 for 10 values) when Q reads the code back perfectly.
    """

    conditioning = "info"

    def __init__(self, cfg, G, D, gen, device, num_classes=0):
        super().__init__(cfg, G, D, gen, device, num_classes)
        self.cat, self.cont = cfg.model.info_cat, cfg.model.info_cont
        self.info_weight = cfg.loss.info_weight

    def random_labels(self, n):
        return draw_codes(n, self.cat, self.cont, self.gen).to(self.device)

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


OBJECTIVES.register("unconditional", AdversarialObjective, tasks={"unconditional"})
OBJECTIVES.register("conditional", ConditionalObjective, tasks={"conditional"})
OBJECTIVES.register("acgan", ACGANObjective, tasks={"conditional"})
OBJECTIVES.register("infogan", InfoGANObjective, tasks={"unconditional"})

# translation objectives register themselves on import (cycle, stargan)
from gancli.training import translation as _translation  # noqa: E402, F401
from gancli.training import progressive as _progressive  # noqa: E402, F401  (progan's growth)
from gancli.training import stylegan2_objective as _stylegan2  # noqa: E402, F401  (stylegan2)
