"""DCGAN (Radford et al. 2015): strided (transposed) convolutions, no pooling, no dense
hidden layers; batch norm except at G's output and D's input; ReLU in G, LeakyReLU(0.2)
in D, tanh output. One 2x stage per octave between 4x4 and the image resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.models.base import DataSpec, Nets, check_power_of_two, norm_2d, register_family


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__()
        channels, resolution = spec.shape[0], spec.shape[1]
        stages = check_power_of_two(resolution, "dcgan")
        width = cfg.g_width * 2 ** (stages - 1)  # 64 px: 8 * g_width at 4x4, as in the paper
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.z_dim, width, 4, 1, 0, bias=False),  # (B, width, 4, 4)
            norm_2d(cfg.g_norm, width), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       norm_2d(cfg.g_norm, width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__()
        channels, resolution = spec.shape[0], spec.shape[1]
        stages = check_power_of_two(resolution, "dcgan")
        width = cfg.d_width
        act = nn.LeakyReLU(0.2, True) if cfg.d_act != "relu" else nn.ReLU(True)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), act]  # no norm at input
        for _ in range(stages - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=cfg.d_norm == "none"),
                       norm_2d(cfg.d_norm, width * 2), act]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0))  # (B, 1, 1, 1): one logit per image
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


@register_family("dcgan", kinds={"images"},
                 summary="all-convolutional G and D, depth from resolution (8..1024 px)")
def build(cfg: ModelConfig, spec: DataSpec) -> Nets:
    if cfg.d_act == "maxout":
        raise ConfigError("family 'dcgan' has no maxout units", hint="--set model.d_act=leaky_relu")
    return Nets(G=Generator(cfg, spec), D=Discriminator(cfg, spec))
