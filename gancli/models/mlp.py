"""Multi-layer perceptrons (Goodfellow et al. 2014): for 2-D toy data and small images."""

from __future__ import annotations

import math

import torch
from torch import nn

from gancli.config import ModelConfig
from gancli.models.base import DataSpec, Nets, norm_1d, register_family


class Maxout(nn.Module):
    """Goodfellow et al. 2013: the max over ``pieces`` linear maps."""

    def __init__(self, d_in: int, d_out: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(d_in, d_out * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(1, (-1, self.pieces)).amax(2)


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__()
        self.shape = spec.shape
        layers: list[nn.Module] = []
        width_in = cfg.z_dim
        for _ in range(cfg.g_depth):
            # a bias before batch norm is cancelled by it
            layers += [nn.Linear(width_in, cfg.g_width, bias=cfg.g_norm == "none"),
                       norm_1d(cfg.g_norm, cfg.g_width), nn.ReLU()]
            width_in = cfg.g_width
        layers.append(nn.Linear(width_in, math.prod(spec.shape)))
        if spec.kind == "images":
            layers.append(nn.Tanh())  # images live in [-1, 1]; 2-D points are unbounded
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = math.prod(spec.shape)
        for _ in range(cfg.d_depth):
            if cfg.d_act == "maxout":
                layers.append(Maxout(width_in, cfg.d_width, cfg.maxout_pieces))
            else:
                act = nn.ReLU() if cfg.d_act == "relu" else nn.LeakyReLU(0.2)
                layers += [nn.Linear(width_in, cfg.d_width), norm_1d(cfg.d_norm, cfg.d_width), act]
            width_in = cfg.d_width
        layers.append(nn.Linear(width_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


@register_family("mlp", kinds={"images", "points"},
                 summary="MLP G and D (ReLU / LeakyReLU / maxout); any data, flattened")
def build(cfg: ModelConfig, spec: DataSpec) -> Nets:
    return Nets(G=Generator(cfg, spec), D=Discriminator(cfg, spec))
