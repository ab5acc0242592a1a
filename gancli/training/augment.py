"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to *every* image D
sees, real and fake, in D's step and in G's step, so D cannot memorise a small dataset
while G still gets gradients through the augmentation.

The three policies follow the paper's defaults: ``color`` (random brightness in
[-0.5, 0.5], saturation x [0, 2], contrast x [0.5, 1.5]), ``translation`` (shift by up to
1/8 of the image, zero padded) and ``cutout`` (a zeroed square of half the image side at a
random position). Each sample draws its own parameters from the run's generator, so a
resumed run draws the same augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gancli.errors import ConfigError, excerpt

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if name == "ada":  # valid alone (gancli.training.ada), not inside a DiffAugment list
            raise ConfigError("train.augment=ada is adaptive augmentation on its own; it does not "
                              "combine with DiffAugment's policies",
                              hint=f"use train.augment=ada, or a comma list of: {', '.join(POLICIES)}")
        if name not in POLICIES:
            raise ConfigError(f"unknown augmentation {excerpt(name)} in train.augment",
                              hint=f"ada, or a comma list of: {', '.join(POLICIES)}")
    return names


class DiffAugment:
    def __init__(self, policy: str, rng: torch.Generator):
        self.names = parse_policy(policy)
        self.rng = rng

    def __bool__(self) -> bool:
        return bool(self.names)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            x = getattr(self, name)(x)
        return x

    def _rand(self, *shape: int, device: torch.device) -> torch.Tensor:
        return torch.rand(shape, generator=self.rng).to(device)

    def color(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        x = x + (self._rand(b, 1, 1, 1, device=x.device) - 0.5)  # brightness
        mean = x.mean(1, keepdim=True)
        x = (x - mean) * (self._rand(b, 1, 1, 1, device=x.device) * 2) + mean  # saturation
        mean = x.mean((1, 2, 3), keepdim=True)
        return (x - mean) * (self._rand(b, 1, 1, 1, device=x.device) + 0.5) + mean  # contrast

    def translation(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        sh, sw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
        if not (sh or sw):
            return x
        # integer shifts in [-s, s] per sample; out[i, j] = in[i - dy, j - dx], zeros outside
        dy = torch.randint(-sh, sh + 1, (b,), generator=self.rng).to(x.device)
        dx = torch.randint(-sw, sw + 1, (b,), generator=self.rng).to(x.device)
        padded = F.pad(x, (sw, sw, sh, sh))
        rows = torch.arange(h, device=x.device)[None, :] + sh - dy[:, None]  # (B, H)
        cols = torch.arange(w, device=x.device)[None, :] + sw - dx[:, None]  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B,H,W,C)
        return out.permute(0, 3, 1, 2)

    def cutout(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
        # the square's top-left corner; it may hang over the edge, as in the paper
        top = torch.randint(0, h + (1 - ch % 2), (b,), generator=self.rng).to(x.device) - ch // 2
        left = torch.randint(0, w + (1 - cw % 2), (b,), generator=self.rng).to(x.device) - cw // 2
        r = torch.arange(h, device=x.device)[None, :]
        c = torch.arange(w, device=x.device)[None, :]
        inside_r = (r >= top[:, None]) & (r < top[:, None] + ch)  # (B, H)
        inside_c = (c >= left[:, None]) & (c < left[:, None] + cw)  # (B, W)
        keep = ~(inside_r[:, :, None] & inside_c[:, None, :])  # (B, H, W)
        return x * keep[:, None].to(x.dtype)
