"""ResNet generator and discriminator of SNGAN (Miyato et al. 2018, appendix B.4) with
optional spectral norm in either network and self-attention (Zhang et al. 2019).

G: dense z -> 4x4, one up-sampling residual block per octave to the image resolution, then
norm, ReLU, 3x3 conv, tanh. D: a first "optimised" down block, more down blocks to 8x8, two
blocks at 8x8, ReLU, global sum pooling, one dense output. Widths are constant per network
(``g_width`` in G, ``d_width`` in D: the paper's CIFAR nets are 256 and 128).

Labels: G takes one-hot labels next to z; D conditions by projection (Miyato & Koyama 2018,
D(x, y) = psi(phi(x)) + embed(y) . phi(x)) for cGAN, or grows a class head for ACGAN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancli.conditioning import NONE, Conditioning
from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.models import base
from gancli.models.base import (DataSpec, Nets, SelfAttention, check_power_of_two, condition,
                                mbstd_for, norm_2d, register_family,
                                spectral)


class GBlock(nn.Module):
    """norm-ReLU-up-conv3-norm-ReLU-conv3, plus an up-sampled 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, norm: str, sn: bool):
        super().__init__()
        self.norm1, self.norm2 = norm_2d(norm, c_in), norm_2d(norm, c_out)
        self.conv1 = spectral(nn.Conv2d(c_in, c_out, 3, 1, 1), sn)
        self.conv2 = spectral(nn.Conv2d(c_out, c_out, 3, 1, 1), sn)
        self.skip = spectral(nn.Conv2d(c_in, c_out, 1), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DBlock(nn.Module):
    """(norm)-ReLU-conv3-(norm)-ReLU-conv3-(avgpool), plus a 1x1-conv-(avgpool) shortcut.

    ``first`` is the paper's optimised input block: no activation before the first conv
    (the input is an image) and a pool-then-conv shortcut.
    """

    def __init__(self, c_in: int, c_out: int, down: bool, norm: str, sn: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.norm1 = nn.Identity() if first else norm_2d(norm, c_in)
        self.norm2 = norm_2d(norm, c_out)
        self.conv1 = spectral(nn.Conv2d(c_in, c_out, 3, 1, 1), sn)
        self.conv2 = spectral(nn.Conv2d(c_out, c_out, 3, 1, 1), sn)
        self.skip = (spectral(nn.Conv2d(c_in, c_out, 1), sn)
                     if c_in != c_out or down else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(self.norm1(x))
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:
            s = self.skip(F.avg_pool2d(s, 2))
        else:
            if self.skip is not None:
                s = self.skip(s)
            if self.down:
                s = F.avg_pool2d(s, 2)
        return h + s


def check_attention(cfg: ModelConfig, resolutions: list[int]) -> None:
    if cfg.attention and cfg.attention not in resolutions:
        raise ConfigError(f"no block works at {cfg.attention}x{cfg.attention} for self-attention",
                          hint=f"model.attention: one of {', '.join(map(str, resolutions))}, or 0")


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE):
        super().__init__()
        channels, resolution = spec.shape[0], spec.shape[1]
        stages = check_power_of_two(resolution, "resnet")
        self.cond_width = conditioning.g_input_width(spec, cfg)
        self.latent = base.latent_input(cfg)  # z itself, or a mixture component (model.z_mixture)
        width, sn = cfg.g_width, cfg.sn_g
        self.width = width
        self.dense = spectral(nn.Linear(cfg.z_dim + self.cond_width, 4 * 4 * width), sn)
        blocks: list[nn.Module] = []
        res = 4
        check_attention(cfg, [4 * 2**i for i in range(1, stages + 1)])
        for _ in range(stages):
            blocks.append(GBlock(width, width, cfg.g_norm, sn))
            res *= 2
            if res == cfg.attention:
                blocks.append(SelfAttention(width, sn))
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Sequential(norm_2d(cfg.g_norm, width), nn.ReLU(),
                                 spectral(nn.Conv2d(width, channels, 3, 1, 1), sn), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = self.latent(z)
        if self.cond_width:
            z = torch.cat([z, condition(y, self.cond_width)], 1)
        h = self.dense(z).view(-1, self.width, 4, 4)
        return self.out(self.blocks(h))


class Discriminator(base.Discriminator):
    def __init__(self, cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE):
        super().__init__(cfg.pack)
        channels, resolution = spec.shape[0] * cfg.pack, spec.shape[1]
        check_power_of_two(resolution, "resnet")
        width, sn, norm = cfg.d_width, cfg.sn_d, cfg.d_norm
        blocks: list[nn.Module] = [DBlock(channels, width, True, norm, sn, first=True)]
        res, seen = resolution // 2, [resolution // 2]
        if res == cfg.attention:
            blocks.append(SelfAttention(width, sn))
        while res > 8:  # down to 8x8, then two blocks at 8x8 (the paper's 32 px layout)
            blocks.append(DBlock(width, width, True, norm, sn))
            res //= 2
            seen.append(res)
            if res == cfg.attention:
                blocks.append(SelfAttention(width, sn))
        blocks += [DBlock(width, width, False, norm, sn), DBlock(width, width, False, norm, sn)]
        check_attention(cfg, seen)
        self.body = nn.Sequential(*blocks)
        self.mbstd, extra = mbstd_for(cfg)
        features = width + extra
        self.head = spectral(nn.Linear(features, 1), sn)
        outputs = conditioning.aux_head_width(spec, cfg)
        self.classes = spectral(nn.Linear(features, outputs), sn) if outputs else None
        # cGAN by projection: an inner product of a class embedding with the features
        self.embed = (spectral(nn.Embedding(spec.num_classes, features), sn)
                      if conditioning.d_input else None)

    def _features(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return F.relu(self.body(x)).sum((2, 3))  # global sum pooling

    def projection(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        return None if self.embed is None else (self.embed(y) * h).sum(1)


@register_family("resnet", kinds={"images"},
                 summary="SNGAN ResNet G and D; spectral norm and self-attention by config")
def build(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE) -> Nets:
    if cfg.d_act == "maxout":
        raise ConfigError("family 'resnet' has no maxout units", hint="--set model.d_act=relu")
    return Nets(G=Generator(cfg, spec, conditioning), D=Discriminator(cfg, spec, conditioning))
