"""Adaptive discriminator augmentation (ADA): Karras, Aittala, Hellsten, Laine, Lehtinen & Aila
2020, "Training Generative Adversarial Networks with Limited Data" (arXiv:2006.06676).

``train.augment=ada`` shows D every image, real and fake, in D's step and in G's step, through
one augmentation pipeline whose strength p adapts: every ``ADA_INTERVAL`` (4) D steps the
controller reads r_t = E[sign D(x_real)] over those steps (the overfitting heuristic of sec.
3) and moves p by sign(r_t - ``ada.target``) * (batch x 4) / (``ada.kimg`` x 1000), clamped to
[0, 1]: p can go from 0 to 1 in 500k real images with the paper's speed, and starts at 0.

The pipeline is the paper's "bgc" (appendix B, fig. 2 and the official code's order): x-flip,
90-degree rotation, integer translation (up to 1/8 of the side), then isotropic scaling
(log-normal, std 0.2 ln 2), rotation (uniform, applied with probability 1 - sqrt(1 - p) twice
so that p of the images are rotated), anisotropic scaling (log-normal, std 0.2 ln 2) and
fractional translation (normal, std 1/8 of the side); then colour: brightness (+N(0, 0.2)),
contrast (x log-normal, std 0.5 ln 2), luma flip, hue rotation (uniform about the luma axis)
and saturation (x log-normal, std ln 2 off the luma axis). Each transform is applied to each
image independently with probability p. The geometric ones compose into one affine map per
image, resampled once (bilinear, reflected at the border: the official code pads by
reflection too, and uses a wider filter); the colour ones into one 4x4 matrix per image.

Written on PyTorch rather than kornia: every random draw must come from the run's generator
(kornia draws from torch's global one), so a resumed run draws the same augmentations, and
each transform's probability is a tensor that the controller moves on the device.

Colour results are clamped to the data range [-1, 1] (the official code does not clamp;
values outside the range would tell D an image was augmented). Images a draw leaves
unaugmented are returned bit for bit, so at p = 0 the pipeline is the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gancli.config import config_field, register_section
from gancli.errors import CheckpointError
from gancli.training.augment import DiffAugment

Tensor = torch.Tensor

ADA_INTERVAL = 4  # D steps between controller updates (paper, sec. 3)
# the pipeline's transforms, in the order they are applied
OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
       "brightness", "contrast", "lumaflip", "hue", "saturation")


@register_section("ada")
@dataclass
class ADAConfig:
    """The ADA controller's knobs (section ``ada``), read by any objective whose
    ``train.augment`` is ``ada``."""

    target: float = config_field(0.6, "target of r_t = E[sign D(real)]; p rises while r_t is "
                                 "above it (Karras et al. 2020, sec. 3: 0.6)", min=0, max=1)
    kimg: float = config_field(500.0, "thousands of real images over which p can go from 0 to 1 "
                               "(paper 500)", min=0.001)
LUMA = (1.0, 1.0, 1.0)  # the official code's luma axis (normalised below)


def _rot2d(theta: Tensor) -> Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    o, z = torch.ones_like(theta), torch.zeros_like(theta)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1),
                        torch.stack([z, z, o], -1)], -2)


def _scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    o, z = torch.ones_like(sx), torch.zeros_like(sx)
    return torch.stack([torch.stack([sx, z, z], -1), torch.stack([z, sy, z], -1),
                        torch.stack([z, z, o], -1)], -2)


def _translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    o, z = torch.ones_like(tx), torch.zeros_like(tx)
    return torch.stack([torch.stack([o, z, tx], -1), torch.stack([z, o, ty], -1),
                        torch.stack([z, z, o], -1)], -2)


class AdaptiveAugment:
    """The ADA pipeline and its controller. Callable on images (B, C, H, W) in [-1, 1]
    (C = 1 is augmented as grey RGB); returns the same shape and dtype, within [-1, 1] where
    the input is. State (``state``/``load``): p (float32 scalar), the running sum of sign
    D(real) means and how many D steps it holds."""

    adaptive = True

    def __init__(self, gen: torch.Generator, device: torch.device, batch_size: int,
                 target: float = 0.6, kimg: float = 500.0):
        self.gen, self.device = gen, device
        self.target = target
        self.speed = batch_size * ADA_INTERVAL / (kimg * 1000.0)
        self.p = torch.zeros((), device=device)
        self.acc = torch.zeros((), device=device)
        self.n = 0

    def __bool__(self) -> bool:
        return True

    # -- controller ---------------------------------------------------------------------------

    def observe(self, rt: Tensor) -> None:
        """One D step's mean sign of D(real) (a 0-d tensor); every ``ADA_INTERVAL`` steps,
        p <- clamp(p + sign(mean r_t - target) * speed, 0, 1). Stays on the device."""
        self.acc = self.acc + rt.detach().float()
        self.n += 1
        if self.n >= ADA_INTERVAL:
            adjust = torch.sign(self.acc / self.n - self.target) * self.speed
            self.p = (self.p + adjust).clamp(0.0, 1.0)
            self.acc = torch.zeros_like(self.acc)
            self.n = 0

    def state(self) -> dict[str, Tensor]:
        return {"ada.p": self.p.detach().cpu().reshape(1), "ada.acc": self.acc.detach().cpu().reshape(1),
                "ada.n": torch.tensor([self.n], dtype=torch.int64)}

    def load(self, tensors: dict[str, Tensor]) -> None:
        """Restore p and the controller from a checkpoint; refuse missing or bad values."""
        missing = [k for k in ("ada.p", "ada.acc", "ada.n") if k not in tensors]
        if missing:
            raise CheckpointError(f"the checkpoint has no ADA state ({', '.join(missing)})",
                                  hint="it was trained without train.augment=ada; resume with "
                                       "the augmentation it was trained with")
        p, acc, n = (tensors[k].reshape(-1) for k in ("ada.p", "ada.acc", "ada.n"))
        if (p.numel() != 1 or acc.numel() != 1 or n.numel() != 1 or not torch.isfinite(p).all()
                or not 0 <= float(p) <= 1 or not torch.isfinite(acc).all()
                or not 0 <= int(n) < ADA_INTERVAL):
            raise CheckpointError("the checkpoint's ADA state is damaged (p outside [0, 1], or a "
                                  "bad controller count)", hint="resume from another checkpoint")
        self.p = p.reshape(()).float().to(self.device)
        self.acc = acc.reshape(()).float().to(self.device)
        self.n = int(n)

    # -- pipeline -----------------------------------------------------------------------------

    def _u(self, b: int, device) -> Tensor:
        return torch.rand(b, generator=self.gen).to(device)

    def _n(self, b: int, device) -> Tensor:
        return torch.randn(b, generator=self.gen).to(device)

    def _gate(self, b: int, device, prob: Tensor, op: str, only) -> Tensor:
        """(B,) bool: which images transform ``op`` touches (each with probability ``prob``;
        none when ``only`` names other transforms). The draw is made either way, so the
        generator advances the same."""
        on = self._u(b, device) < prob
        return on if only is None or op in only else torch.zeros_like(on)

    # eager under train.compile: its draws from the run's generator split the graph anyway,
    # and inductor's CPU code for this pipeline failed to build (C++ compile error, torch 2.14)
    @torch.compiler.disable
    def __call__(self, x: Tensor) -> Tensor:
        return self.augment(x, self.p.to(x.device))

    def augment(self, x: Tensor, p: Tensor | float, only: set[str] | None = None) -> Tensor:
        """Augment ``x`` (B, C, H, W) with every transform (or those in ``only``, names from
        ``OPS``) at probability ``p``: one geometric warp, then one colour transform, each
        composed per image from the transforms its draws switched on."""
        b = x.shape[0]
        dev = x.device
        p = torch.as_tensor(p, dtype=torch.float32, device=dev)
        G, geo = self._geometric(b, x.shape[-2], x.shape[-1], dev, p, only)
        C, col = self._colour_matrix(b, dev, p, only)
        out = self._warp(x, G, geo)
        return self._colour(out, C, col)

    def _geometric(self, b: int, h: int, w: int, dev: torch.device, p: Tensor,
                   only: set[str] | None) -> tuple[Tensor, Tensor]:
        """(B, 3, 3) matrices mapping output to input coordinates (normalised [-1, 1]) and a
        (B,) bool of the images any geometric transform touched; draws in the paper's order."""
        eye = torch.eye(3, device=dev).expand(b, 3, 3)
        G = eye
        touched = torch.zeros(b, dtype=torch.bool, device=dev)

        def compose(mat: Tensor, on: Tensor) -> None:
            nonlocal G, touched
            G = G @ torch.where(on[:, None, None], mat, eye)
            touched = touched | on

        # geometric: matrices map output coordinates to input ones (normalised [-1, 1])
        on = self._gate(b, dev, p, "xflip", only)  # x-flip
        compose(_scale2d(1 - 2 * (self._u(b, dev) < 0.5).float(), torch.ones(b, device=dev)), on)
        on = self._gate(b, dev, p, "rotate90", only)  # 90-degree rotation
        compose(_rot2d(-0.5 * math.pi * torch.floor(self._u(b, dev) * 4)), on)
        on = self._gate(b, dev, p, "xint", only)  # integer translation, whole pixels
        tx = torch.round((self._u(b, dev) * 2 - 1) * 0.125 * w) * 2 / w
        ty = torch.round((self._u(b, dev) * 2 - 1) * 0.125 * h) * 2 / h
        compose(_translate2d(-tx, -ty), on)
        on = self._gate(b, dev, p, "scale", only)  # isotropic scaling
        s = torch.exp2(self._n(b, dev) * 0.2)
        compose(_scale2d(1 / s, 1 / s), on)
        p_rot = 1 - torch.sqrt((1 - p).clamp_min(0))
        on = self._gate(b, dev, p_rot, "rotate", only)  # pre-rotation
        compose(_rot2d(-(self._u(b, dev) * 2 - 1) * math.pi), on)
        on = self._gate(b, dev, p, "aniso", only)  # anisotropic scaling
        s = torch.exp2(self._n(b, dev) * 0.2)
        compose(_scale2d(1 / s, s), on)
        on = self._gate(b, dev, p_rot, "rotate", only)  # post-rotation
        compose(_rot2d(-(self._u(b, dev) * 2 - 1) * math.pi), on)
        on = self._gate(b, dev, p, "xfrac", only)  # fractional translation
        tx, ty = self._n(b, dev) * 0.125 * 2, self._n(b, dev) * 0.125 * 2
        compose(_translate2d(-tx, -ty), on)
        return G, touched

    def _colour_matrix(self, b: int, dev: torch.device, p: Tensor,
                       only: set[str] | None) -> tuple[Tensor, Tensor]:
        """(B, 4, 4) matrices on homogeneous RGB and a (B,) bool of the images any colour
        transform touched; draws after the geometric ones, in the paper's order."""
        # colour: a 4x4 matrix on homogeneous RGB
        v = torch.tensor([*LUMA, 0.0], device=dev) / math.sqrt(3)
        e4 = torch.eye(4, device=dev).expand(b, 4, 4)
        vv = torch.outer(v, v)
        C = e4
        touched = torch.zeros(b, dtype=torch.bool, device=dev)

        def ccompose(mat: Tensor, on: Tensor) -> None:
            nonlocal C, touched
            C = torch.where(on[:, None, None], mat, e4) @ C
            touched = touched | on

        on = self._gate(b, dev, p, "brightness", only)  # brightness
        m = e4.clone()
        m[:, :3, 3] = (self._n(b, dev) * 0.2)[:, None]
        ccompose(m, on)
        on = self._gate(b, dev, p, "contrast", only)  # contrast
        s = torch.exp2(self._n(b, dev) * 0.5)
        m = e4.clone()
        m[:, :3, :3] = m[:, :3, :3] * s[:, None, None]
        ccompose(m, on)
        on = self._gate(b, dev, p, "lumaflip", only)  # luma flip
        i = torch.floor(self._u(b, dev) * 2)
        ccompose(e4 - 2 * vv * i[:, None, None], on)
        on = self._gate(b, dev, p, "hue", only)  # hue rotation about the luma axis (Rodrigues)
        theta = (self._u(b, dev) * 2 - 1) * math.pi
        k = torch.zeros(4, 4, device=dev)
        a = v[:3]
        k[0, 1], k[0, 2], k[1, 0], k[1, 2], k[2, 0], k[2, 1] = -a[2], a[1], a[2], -a[0], -a[1], a[0]
        r3 = (vv + (e4 - vv) * torch.cos(theta)[:, None, None] + k * torch.sin(theta)[:, None, None])
        r3[:, 3, :] = torch.tensor([0.0, 0.0, 0.0, 1.0], device=dev)
        ccompose(r3, on)
        on = self._gate(b, dev, p, "saturation", only)  # saturation
        s = torch.exp2(self._n(b, dev) * 1.0)
        m = vv + (e4 - vv) * s[:, None, None]
        m[:, 3, 3] = 1.0
        ccompose(m, on)
        return C, touched

    @staticmethod
    def _warp(x: Tensor, G: Tensor, on: Tensor) -> Tensor:
        b, c, h, w = x.shape
        grid = F.affine_grid(G[:, :2, :].to(x.dtype), [b, c, h, w], align_corners=False)
        warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                               align_corners=False)
        return torch.where(on[:, None, None, None], warped, x)

    @staticmethod
    def _colour(x: Tensor, C: Tensor, on: Tensor) -> Tensor:
        b, c, h, w = x.shape
        rgb = x.expand(-1, 3, -1, -1) if c == 1 else x[:, :3]
        flat = rgb.reshape(b, 3, h * w)
        C = C.to(x.dtype)
        out = (C[:, :3, :3] @ flat + C[:, :3, 3:]).reshape(b, 3, h, w).clamp(-1, 1)
        if c == 1:
            out = out.mean(1, keepdim=True)
        elif c > 3:
            out = torch.cat([out, x[:, 3:]], 1)
        return torch.where(on[:, None, None, None], out, x)


def make_augment(cfg, gen: torch.Generator, device: torch.device) -> DiffAugment | AdaptiveAugment:
    """``train.augment``: ``ada`` gives the adaptive pipeline, anything else a DiffAugment
    policy (empty = off, a falsy object)."""
    if cfg.train.augment.strip() == "ada":
        own = cfg.section(ADAConfig)
        return AdaptiveAugment(gen, device, cfg.train.batch_size, own.target, own.kimg)
    return DiffAugment(cfg.train.augment, gen)
