"""Multi-layer perceptrons (Goodfellow et al. 2014): for 2-D toy data and small images."""

from __future__ import annotations

import math

import torch
from torch import nn

from gancli.conditioning import NONE, Conditioning
from gancli.config import ModelConfig
from gancli.models import base
from gancli.models.base import (DataSpec, Nets, condition, mbstd_for,
                                norm_1d, one_hot, register_family)


class Maxout(nn.Module):
    """Goodfellow et al. 2013: the max over ``pieces`` linear maps."""

    def __init__(self, d_in: int, d_out: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(d_in, d_out * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(1, (-1, self.pieces)).amax(2)


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE):
        super().__init__()
        self.shape = spec.shape
        self.cond_width = conditioning.g_input_width(spec, cfg)
        self.latent = base.latent_input(cfg)  # z itself, or a mixture component (model.z_mixture)
        layers: list[nn.Module] = []
        width_in = cfg.z_dim + self.cond_width
        for _ in range(cfg.g_depth):
            # a bias before batch norm is cancelled by it
            layers += [nn.Linear(width_in, cfg.g_width, bias=cfg.g_norm == "none"),
                       norm_1d(cfg.g_norm, cfg.g_width), nn.ReLU()]
            width_in = cfg.g_width
        layers.append(nn.Linear(width_in, math.prod(spec.shape)))
        if spec.kind == "images":
            layers.append(nn.Tanh())  # images live in [-1, 1]; 2-D points are unbounded
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = self.latent(z)
        if self.cond_width:
            z = torch.cat([z, condition(y, self.cond_width)], 1)
        return self.net(z).view(-1, *self.shape)


class Discriminator(base.Discriminator):
    def __init__(self, cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE):
        super().__init__(cfg.pack)
        self.label_width = spec.num_classes if conditioning.d_input else 0
        layers: list[nn.Module] = []
        width_in = math.prod(spec.shape) * cfg.pack + self.label_width
        for _ in range(cfg.d_depth):
            if cfg.d_act == "maxout":
                layers.append(Maxout(width_in, cfg.d_width, cfg.maxout_pieces))
            else:
                act = nn.ReLU() if cfg.d_act == "relu" else nn.LeakyReLU(0.2)
                layers += [nn.Linear(width_in, cfg.d_width), norm_1d(cfg.d_norm, cfg.d_width), act]
            width_in = cfg.d_width
        self.body = nn.Sequential(*layers)
        self.mbstd, extra = mbstd_for(cfg)
        self.head = nn.Linear(width_in + extra, 1)
        # ACGAN's class head / InfoGAN's Q head on the same features
        outputs = conditioning.aux_head_width(spec, cfg)
        self.classes = nn.Linear(width_in + extra, outputs) if outputs else None

    def _features(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        x = x.flatten(1)
        if self.label_width:
            x = torch.cat([x, one_hot(y, self.label_width)], 1)
        return self.body(x)


@register_family("mlp", kinds={"images", "points"},
                 summary="MLP G and D (ReLU / LeakyReLU / maxout); any data, flattened")
def build(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE) -> Nets:
    return Nets(G=Generator(cfg, spec, conditioning), D=Discriminator(cfg, spec, conditioning))
