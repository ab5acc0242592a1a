"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks", appendix 6.1): a U-Net generator and a PatchGAN on the (input, output) pair.

Generator: an encoder of 4x4 stride-2 convolutions C64-C128-C256-C512-C512-C512-C512-C512
(LeakyReLU 0.2, normalisation on all but the first and the innermost), down to 1x1 at 256 px,
and a mirrored decoder of 4x4 stride-2 transposed convolutions (ReLU, normalisation) whose
first three layers apply dropout 0.5: the model's only noise source (no z, see the paper's
sec. 2.2), kept on when translating. Decoder layer i takes its input concatenated with the
encoder's map of the same size (the skips); the last layer maps to the image channels, tanh.
Channel widths are ``model.g_width`` x (1, 2, 4, 8, 8, ...). Depth comes from the
resolution: the number of 2x downsamplings that divide the sides, at most 8 (1x1 at 256 px).

Discriminator: the 70x70 PatchGAN of ``gancli.models.translation`` on the input and the
(real or generated) output concatenated along channels, so it judges the pair, as the
conditional GAN does.
"""

from __future__ import annotations

import torch
from torch import nn

from gancli.conditioning import PAIRED, Conditioning
from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.models.base import DataSpec, Nets, norm_2d, register_family
from gancli.models.translation import PatchDiscriminator, check_translation_size

MAX_DEPTH = 8  # 256 px -> 1x1, as the paper's U-Net
DROPOUT_LAYERS = 3  # the paper's CD512 x 3 at the top of the decoder


def unet_depth(h: int, w: int) -> int:
    """Number of 2x downsamplings the U-Net takes at (h, w): how often both sides halve
    evenly, at most ``MAX_DEPTH`` (so 256 -> 8, 32 -> 5, 48 -> 4)."""
    depth = 0
    while depth < MAX_DEPTH and h % (2 ** (depth + 1)) == 0 and w % (2 ** (depth + 1)) == 0:
        depth += 1
    return depth


class UNetGenerator(nn.Module):
    """(B, in, H, W) -> (B, out, H, W) in [-1, 1]; H and W multiples of ``multiple`` (2^depth).

    ``forward(x, gen)`` draws the dropout masks from ``gen`` (a CPU ``torch.Generator``;
    None: torch's global generator), so training replays exactly from a checkpoint's saved
    generator state. Dropout is applied in training and, while ``test_dropout`` is set, in
    eval mode too (the paper's test-time noise).
    """

    def __init__(self, in_ch: int, out_ch: int, width: int, depth: int, norm: str,
                 dropout: float = 0.5, test_dropout: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError(f"a U-Net needs at least 2 levels, got {depth}")
        self.depth, self.multiple = depth, 2 ** depth
        self.p, self.test_dropout = float(dropout), bool(test_dropout)
        widths = [width * min(2 ** i, 8) for i in range(depth)]
        bias = norm != "batch"
        downs: list[nn.Module] = [nn.Conv2d(in_ch, widths[0], 4, 2, 1)]
        for i in range(1, depth):
            inner = i == depth - 1  # the 1x1 bottleneck: no normalisation (nothing to normalise)
            downs.append(nn.Sequential(
                nn.LeakyReLU(0.2), nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=bias or inner),
                nn.Identity() if inner else norm_2d(norm, widths[i])))
        ups: list[nn.Module] = []
        for i in range(depth - 1, 0, -1):  # decoder layer output i-1, input i (+ skip i)
            cin = widths[i] if i == depth - 1 else 2 * widths[i]
            ups.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(cin, widths[i - 1], 4, 2, 1, bias=bias),
                                     norm_2d(norm, widths[i - 1])))
        self.downs, self.ups = nn.ModuleList(downs), nn.ModuleList(ups)
        self.final = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * widths[0], out_ch, 4, 2, 1),
                                   nn.Tanh())

    def _dropout(self, h: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        if not self.p or not (self.training or self.test_dropout):
            return h
        if gen is None:
            keep = torch.rand(h.shape, device=h.device) >= self.p
        else:
            keep = (torch.rand(h.shape, generator=gen) >= self.p).to(h.device)
        return h * keep.to(h.dtype) / (1.0 - self.p)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"this U-Net needs sides divisible by {self.multiple}, got "
                             f"{tuple(x.shape[-2:])}")
        skips = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)
        h = skips.pop()  # the bottleneck
        for j, up in enumerate(self.ups):
            h = up(h)
            if j < DROPOUT_LAYERS:
                h = self._dropout(h, gen)
            h = torch.cat([h, skips.pop()], 1)  # the skip from the encoder map of this size
        return self.final(h)


class PairDiscriminator(nn.Module):
    """D(x, y): the PatchGAN on the input x and an output y, concatenated along channels;
    (B, C, H, W) twice -> (B, 1, h, w) logits, one per overlapping patch."""

    def __init__(self, channels: int, width: int, layers: int, norm: str):
        super().__init__()
        self.net = PatchDiscriminator(2 * channels, width, layers, norm)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, y], 1))


@register_family("pix2pix", kinds={"pairs"},
                 summary="U-Net generator with skips and dropout; 70x70 PatchGAN on (input, output)")
def build_pix2pix(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = PAIRED) -> Nets:
    if not conditioning.paired:
        raise ConfigError("family 'pix2pix' is a paired translation model",
                          hint="train it with objective 'pix2pix' (preset pix2pix)")
    channels, h, w = spec.shape[1], spec.shape[2], spec.shape[3]
    check_translation_size(h, w, cfg.d_depth, "pix2pix")
    depth = unet_depth(h, w)
    if depth < 3:
        raise ConfigError(f"family 'pix2pix' needs sides divisible by 8 (a U-Net of at least 3 "
                          f"levels), got {h}x{w}", hint="--set data.resolution=32 (or 64, 128, 256)")
    G = UNetGenerator(channels, channels, cfg.g_width, depth, cfg.g_norm, cfg.dropout,
                      cfg.test_dropout)
    return Nets(G=G, D=PairDiscriminator(channels, cfg.d_width, cfg.d_depth, cfg.d_norm))
