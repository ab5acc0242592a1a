"""DCGAN (Radford et al. 2015): strided (transposed) convolutions, no pooling, no dense
hidden layers; batch norm except at G's output and D's input; ReLU in G, LeakyReLU(0.2)
in D, tanh output. One 2x stage per octave between 4x4 and the image resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancli.conditioning import NONE, Conditioning
from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.models import base
from gancli.models.base import (DataSpec, Nets, check_power_of_two, condition,
                                mbstd_for, norm_2d, register_family)


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE):
        super().__init__()
        channels, resolution = spec.shape[0], spec.shape[1]
        stages = check_power_of_two(resolution, "dcgan")
        self.cond_width = conditioning.g_input_width(spec, cfg)
        # z itself, a mixture component (model.z_mixture), or z ++ onehot(cluster) (z_clusters)
        self.latent = base.latent_input(cfg, spec)
        self.clustered = isinstance(self.latent, base.ClusterLatent)  # y: a cluster to draw
        width = cfg.g_width * 2 ** (stages - 1)  # 64 px: 8 * g_width at 4x4, as in the paper
        layers: list[nn.Module] = [  # (B, z + cond_width, 1, 1) -> (B, width, 4, 4)
            nn.ConvTranspose2d(base.latent_width(cfg) + self.cond_width, width, 4, 1, 0, bias=False),
            norm_2d(cfg.g_norm, width), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       norm_2d(cfg.g_norm, width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, z_dim) float, y (B,) int64 labels, codes, or with ``model.z_clusters`` the
        clusters to draw (None: read from z) -> (B, C, H, W) images in [-1, 1]."""
        z = self.latent(z, y) if self.clustered else self.latent(z)
        if self.cond_width:
            z = torch.cat([z, condition(y, self.cond_width)], 1)
        return self.net(z[:, :, None, None])


class Discriminator(base.Discriminator):
    def __init__(self, cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE):
        super().__init__(cfg.pack)
        channels, resolution = spec.shape[0] * cfg.pack, spec.shape[1]
        stages = check_power_of_two(resolution, "dcgan")
        # cGAN: the label (or cluster) enters as constant one-hot planes next to the image channels
        self.label_width = conditioning.d_label_width(spec, cfg)
        width = cfg.d_width
        act = nn.LeakyReLU(0.2, True) if cfg.d_act != "relu" else nn.ReLU(True)
        layers: list[nn.Module] = [nn.Conv2d(channels + self.label_width, width, 4, 2, 1),
                                   act]  # no norm at the input
        for _ in range(stages - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=cfg.d_norm == "none"),
                       norm_2d(cfg.d_norm, width * 2), act]
            width *= 2
        self.body = nn.Sequential(*layers)  # (B, width, 4, 4)
        self.mbstd, extra = mbstd_for(cfg)  # (B, width + 1, 4, 4) when on
        self.head = nn.Conv2d(width + extra, 1, 4, 1, 0)  # (B, 1, 1, 1): one logit per image
        # ACGAN's class head / InfoGAN's Q head on the same features
        outputs = conditioning.aux_head_width(spec, cfg)
        self.classes = nn.Conv2d(width + extra, outputs, 4, 1, 0) if outputs else None

    def _features(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.label_width:
            return self.body(x)
        # D(x ++ one-hot planes of y) without building the planes: the first convolution is
        # linear, so conv([x, planes]) = conv_image(x) + conv_label(planes), and conv_label of
        # constant planes depends on the label alone: a (K, width, h, w) table per call,
        # gathered by y. Equal to the concatenation up to float rounding (tested); the planes
        # cost the first layer K + C input channels per image, the table K per batch.
        if y is None:  # table[None] would broadcast into a wrong shape, not fail clearly
            raise ValueError("this discriminator is told each image's label or cluster: pass y, "
                             "(B,) int64")
        first: nn.Conv2d = self.body[0]
        weight = first.weight  # read once: a spectrally normalised weight steps its iteration
        c = x.shape[1]
        h = F.conv2d(x, weight[:, :c], first.bias, first.stride, first.padding)
        label = weight[:, c:]  # (width, K, kh, kw) -> one output map per (label, channel)
        width, k = label.shape[:2]
        ones = x.new_ones(1, 1, *x.shape[2:])
        table = F.conv2d(ones, label.transpose(0, 1).reshape(k * width, 1, *label.shape[2:]),
                         None, first.stride, first.padding).view(k, width, *h.shape[2:])
        return self.body[1:](h + table[y])


@register_family("dcgan", kinds={"images"},
                 summary="all-convolutional G and D, depth from resolution (8..1024 px)")
def build(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE) -> Nets:
    if cfg.d_act == "maxout":
        raise ConfigError("family 'dcgan' has no maxout units", hint="--set model.d_act=leaky_relu")
    return Nets(G=Generator(cfg, spec, conditioning), D=Discriminator(cfg, spec, conditioning))
