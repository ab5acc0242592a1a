"""BigGAN's generator (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis", arXiv 1809.11096, sec. 3 and appendix B, fig. 15) and its discriminator.

G: z is split into one chunk per block plus one for the input (the paper's hierarchical
latent space, "skip-z"): the first chunk goes through a dense layer to a 4x4 map, then each
up-sampling residual block (fig. 15b: CBN-ReLU-up-conv3-CBN-ReLU-conv3, plus an up-sampled
1x1 conv shortcut) gets its own chunk. Every batch norm in the blocks is *conditional*: its
per-channel gain and bias are linear functions of [shared class embedding, z chunk], where one
class embedding is shared by every block (instead of one embedding per layer). Then BN, ReLU,
3x3 conv, tanh. Self-attention (Zhang et al. 2019) after the block at ``model.attention``.

D: the residual down-sampling blocks of fig. 15c with projection conditioning (Miyato & Koyama
2018), global sum pooling and spectral norm: the layout ``resnet`` already builds (its
first-block-optimised SNGAN D, which is also BigGAN's D at 32 px: down, down, then two blocks
at 8x8), so it is reused as it is.

Widths are constant per network (``g_width``, ``d_width``), as in BigGAN's 32 px nets (4 x 64
channels in every block); the 128 px nets widen toward the input instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancli.conditioning import NONE, Conditioning
from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.models import resnet
from gancli.models.base import (DataSpec, Nets, SelfAttention, check_power_of_two, condition,
                                norm_2d, register_family, spectral)


class SharedEmbedding(nn.Linear):
    """The class embedding every conditional BN reads (BigGAN's "shared embedding"), as a
    bias-free linear map of one-hot labels: the same as a lookup table for integer labels,
    and defined for blends of labels (a walk between classes) and InfoGAN codes too.
    (B, classes) -> (B, shared_dim). Left out of orthogonal regularisation, as in the paper.

    The output is scaled by sqrt(shared_dim), so a class vector has the norm of a vector of
    N(0, 1) entries (sqrt(shared_dim), like the z chunk it is joined with: sqrt(chunk)) under
    any ``model.init``: orthogonal init alone gives one-hot rows of norm 1, and through the
    spectrally normalised gain/bias maps the class then moved G's pixels ~5x less than the
    z chunk did, and G never learned it (issue 18, docs/presets.md)."""

    ortho_exempt = True

    def __init__(self, classes: int, dim: int):
        super().__init__(classes, dim, bias=False)
        self.scale = dim ** 0.5

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return super().forward(y) * self.scale


def _normaliser(kind: str, channels: int) -> nn.Module:
    """The normalisation under a conditional gain and bias: no affine parameters of its own."""
    return {"batch": lambda: nn.BatchNorm2d(channels, affine=False),
            "layer": lambda: nn.GroupNorm(1, channels, affine=False),
            "instance": lambda: nn.InstanceNorm2d(channels, affine=False),
            "none": nn.Identity}[kind]()


class ConditionalBatchNorm2d(nn.Module):
    """Conditional batch norm (de Vries et al. 2017; Dumoulin et al. 2017) as BigGAN uses it:
    ``BN(x) * (1 + gain(c)) + bias(c)``, with ``gain`` and ``bias`` linear maps without a bias
    (spectrally normalised in G when ``sn``) of the conditioning vector c = [shared embedding,
    z chunk].

    x: (B, C, H, W); c: (B, cond_dim) -> (B, C, H, W). The 1 + gain form starts every layer
    near a plain batch norm.
    """

    def __init__(self, channels: int, cond_dim: int, norm: str = "batch", sn: bool = True):
        super().__init__()
        self.norm = _normaliser(norm, channels)
        self.gain = spectral(nn.Linear(cond_dim, channels, bias=False), sn)
        self.bias = spectral(nn.Linear(cond_dim, channels, bias=False), sn)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(c)[:, :, None, None]  # (B, C, 1, 1)
        return self.norm(x) * gain + self.bias(c)[:, :, None, None]


class GBlock(nn.Module):
    """Fig. 15b: CBN-ReLU-up-conv3-CBN-ReLU-conv3, plus an up-sampled 1x1-conv shortcut.
    (B, c_in, H, W), (B, cond_dim) -> (B, c_out, 2H, 2W)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, norm: str, sn: bool):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, cond_dim, norm, sn)
        self.bn2 = ConditionalBatchNorm2d(c_out, cond_dim, norm, sn)
        self.conv1 = spectral(nn.Conv2d(c_in, c_out, 3, 1, 1), sn)
        self.conv2 = spectral(nn.Conv2d(c_out, c_out, 3, 1, 1), sn)
        self.skip = spectral(nn.Conv2d(c_in, c_out, 1), sn)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def latent_chunks(z_dim: int, blocks: int) -> int:
    """Size of each of the ``blocks + 1`` chunks z is split into (the input's and one per
    block); z_dim must split evenly (the paper: 120 = 6 x 20 at 128 px)."""
    slots = blocks + 1
    if z_dim % slots:
        near = max(slots, round(z_dim / slots) * slots)
        raise ConfigError(f"family 'biggan' splits z into {slots} equal chunks (one for the input, "
                          f"one per block), and model.z_dim={z_dim} does not split into {slots}",
                          hint=f"--set model.z_dim={near} (120 splits into 2, 3, 4, 5 or 6)")
    return z_dim // slots


class Generator(nn.Module):
    """z (B, z_dim) [+ labels y: (B,) int64 or (B, classes) float] -> images (B, C, H, W) in
    [-1, 1]. Without labels (unconditional use) each CBN reads its z chunk alone."""

    def __init__(self, cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE):
        super().__init__()
        channels, resolution = spec.shape[0], spec.shape[1]
        stages = check_power_of_two(resolution, "biggan")
        self.chunk = latent_chunks(cfg.z_dim, stages)
        self.extra = conditioning.g_input_width(spec, cfg)
        width, sn = cfg.g_width, cfg.sn_g
        self.width = width
        self.shared = SharedEmbedding(self.extra, cfg.shared_dim) if self.extra else None
        cond_dim = self.chunk + (cfg.shared_dim if self.extra else 0)
        self.dense = spectral(nn.Linear(self.chunk, 4 * 4 * width), sn)
        resolutions = [4 * 2**i for i in range(1, stages + 1)]
        resnet.check_attention(cfg, resolutions)
        self.blocks = nn.ModuleList(GBlock(width, width, cond_dim, cfg.g_norm, sn)
                                    for _ in range(stages))
        self.attention = nn.ModuleList(SelfAttention(width, sn) if r == cfg.attention
                                       else nn.Identity() for r in resolutions)
        self.out = nn.Sequential(norm_2d(cfg.g_norm, width), nn.ReLU(),
                                 spectral(nn.Conv2d(width, channels, 3, 1, 1), sn), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        chunks = z.split(self.chunk, 1)  # (B, chunk) each: the input's, then one per block
        conds = list(chunks[1:])
        if self.shared is not None:
            e = self.shared(condition(y, self.extra))  # (B, shared_dim), one for every block
            conds = [torch.cat([e, c], 1) for c in conds]
        h = self.dense(chunks[0]).view(-1, self.width, 4, 4)
        for block, attention, c in zip(self.blocks, self.attention, conds):
            h = attention(block(h, c))
        return self.out(h)


@register_family("biggan", kinds={"images"},
                 summary="BigGAN: hierarchical z, shared-embedding conditional BN, projection D")
def build(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE) -> Nets:
    if conditioning.translates:
        raise ConfigError("family 'biggan' generates from latents; it does not translate images",
                          hint="use the cyclegan or stargan preset")
    if cfg.d_act == "maxout":
        raise ConfigError("family 'biggan' has no maxout units", hint="--set model.d_act=relu")
    return Nets(G=Generator(cfg, spec, conditioning),
                D=resnet.Discriminator(cfg, spec, conditioning))
