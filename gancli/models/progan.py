"""ProGAN (Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs for Improved
Quality, Stability, and Variation", arXiv:1710.10196, Table 2 and sec. 2-4).

G and D grow from 4x4 to the data's resolution, one octave per stage. Each stage of G is
upsample (nearest) -> 3x3 conv -> LeakyReLU(0.2) -> pixel norm, twice, and has its own 1x1
"toRGB" layer (linear output, as in the paper); D mirrors it with a 1x1 "fromRGB" per stage
and 3x3 conv, 3x3 conv, 2x average pooling. Every layer has an equalised learning rate, G
pixel-normalises the latent and every feature map, D ends with minibatch stddev at 4x4.

The stage being trained and the fade-in weight ``alpha`` are buffers of both networks, set
by the ``progressive`` objective's step hook (``gancli/training/objectives/progressive.py``) and saved
with the weights. During the fade-in of stage s, G's image is
``lerp(upsample(toRGB_{s-1}(h_{s-1})), toRGB_s(block_s(h_{s-1})), alpha)`` and D's features
``lerp(fromRGB_{s-1}(pool(x)), block_s(fromRGB_s(x)), alpha)`` (paper, Fig. 2). Both networks
always speak the data's resolution: G upsamples its image (nearest) to it and D average-pools
its input down to the stage's, as the paper's official code does, so the loop, the data and
every consumer of samples see one shape.

Widths: the paper's 512 channels up to 32 px, halved per octave above, become ``g_width``
(``d_width``) channels up to ``model.full_width_res`` px (default 32), halved per octave above.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancli.conditioning import NONE, Conditioning
from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.models import base
from gancli.models.base import DataSpec, Nets, check_power_of_two, mbstd_for, register_family
from gancli.models.layers import EqualizedConv2d, EqualizedLinear, PixelNorm

SLOPE = 0.2  # LeakyReLU slope in G and D


def stage_width(base_width: int, resolution: int, full_width_res: int = 32) -> int:
    """Channels at ``resolution``: ``base_width`` up to ``full_width_res`` px, halved per
    octave above (at least 1). The paper's networks have 512 channels up to 32 px and halve
    them per octave above (Table 2); ``model.full_width_res`` moves that point."""
    if resolution <= full_width_res:
        return base_width
    return max(1, base_width * full_width_res // resolution)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) square images to (B, C, size, size) by a power of two: average pooling
    down (ProGAN's downscale), nearest-neighbour repetition up (its upscale)."""
    side = x.shape[-1]
    if size < side:
        return F.avg_pool2d(x, side // size)
    if size > side:
        return upscale(x, size // side)
    return x


def upscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling of (B, C, H, W) by an integer ``factor``: every pixel
    repeated factor x factor times (equal to ``F.interpolate(mode="nearest")``; written as
    repeats so that ONNX / TorchScript export traces it)."""
    return x.repeat_interleave(factor, 2).repeat_interleave(factor, 3)


class Upscale2d(nn.Module):
    """``upscale`` by 2 as a layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upscale(x, 2)


class Growing:
    """What G and D share (a mix-in of ``nn.Module``s): ``stages`` octaves above 4x4 and the
    buffers ``stage`` (int64, 0 = 4x4 ... stages = the data's resolution) and ``alpha``
    (float32 fade-in weight in [0, 1]; 1 = the newest stage alone). Built at the last stage
    with alpha 1: a network that never grows (another objective) is the full-resolution one."""

    stage: torch.Tensor
    alpha: torch.Tensor

    def _init_growth(self, resolution: int, family: str = "progan") -> None:
        self.resolution = resolution
        self.stages = check_power_of_two(resolution, family, lowest=4)
        self.register_buffer("stage", torch.tensor(self.stages, dtype=torch.int64))
        self.register_buffer("alpha", torch.tensor(1.0))

    @torch.no_grad()
    def grow(self, stage: int, alpha: float) -> None:
        """Train (or sample) at ``stage`` with fade-in weight ``alpha``."""
        if not 0 <= stage <= self.stages or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"stage {stage} / alpha {alpha} outside 0..{self.stages} / [0, 1]")
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)

    def growth(self) -> dict:
        """{"stage", "alpha", "resolution"} as plain numbers: what the networks draw at now."""
        stage = int(self.stage)
        return {"stage": stage, "alpha": float(self.alpha), "resolution": 4 * 2 ** stage}

    def _current(self) -> tuple[int, float]:
        stage, alpha = int(self.stage), float(self.alpha)
        return stage, (1.0 if stage == 0 else alpha)


class Generator(Growing, nn.Module):
    """z (B, z_dim) float -> images (B, C, R, R): linear output in training mode, clamped to
    [-1, 1] in eval mode."""

    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__()
        self._init_growth(spec.shape[1])
        channels = spec.shape[0]
        self.pixel_norm = PixelNorm()
        full = cfg.full_width_res
        w4 = stage_width(cfg.g_width, 4, full)
        # the paper's first layer: a 4x4 "convolution" of the 1x1 latent, i.e. a dense layer
        # to 4 * 4 * w4 values; its gain is sqrt(2) / 4 (official code) since each output
        # pixel is one of 16 pieces of the same fan-in
        self.dense = EqualizedLinear(cfg.z_dim, 16 * w4, gain=2 ** 0.5 / 4)
        self.blocks = nn.ModuleList([nn.Sequential(*self._conv(w4, w4))])
        self.to_rgb = nn.ModuleList([EqualizedConv2d(w4, channels, 1, gain=1.0)])
        for s in range(1, self.stages + 1):
            w_in = stage_width(cfg.g_width, 2 ** (s + 1), full)
            w_out = stage_width(cfg.g_width, 2 ** (s + 2), full)
            self.blocks.append(nn.Sequential(Upscale2d(),
                                             *self._conv(w_in, w_out), *self._conv(w_out, w_out)))
            self.to_rgb.append(EqualizedConv2d(w_out, channels, 1, gain=1.0))
        self.w4 = w4

    def _conv(self, w_in: int, w_out: int) -> list[nn.Module]:
        return [EqualizedConv2d(w_in, w_out, 3, padding=1), nn.LeakyReLU(SLOPE), self.pixel_norm]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        stage, alpha = self._current()
        h = F.leaky_relu(self.dense(self.pixel_norm(z)), SLOPE).view(-1, self.w4, 4, 4)
        h = self.blocks[0](self.pixel_norm(h))
        for s in range(1, stage):
            h = self.blocks[s](h)
        if stage == 0:
            out = self.to_rgb[0](h)
        else:
            out = self.to_rgb[stage](self.blocks[stage](h))
            if alpha < 1.0:  # fade-in: the previous stage's image, upsampled, blended out
                out = torch.lerp(resize(self.to_rgb[stage - 1](h), out.shape[-1]), out, alpha)
        out = resize(out, self.resolution)
        # linear output while training (the paper's); outside training clamped to the [-1, 1]
        # every consumer of images expects (the official code clips when it saves images)
        return out if self.training else out.clamp(-1.0, 1.0)


class Discriminator(Growing, base.Discriminator):
    """images (B, C, R, R) -> one logit (WGAN critic value) per image (per pack)."""

    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__(cfg.pack)
        self._init_growth(spec.shape[1])
        channels = spec.shape[0] * cfg.pack
        act = nn.LeakyReLU(SLOPE)
        self.from_rgb = nn.ModuleList()
        self.blocks = nn.ModuleList([nn.Identity()])  # stage 0 has no block: the head is its
        full = cfg.full_width_res
        for s in range(self.stages + 1):
            width = stage_width(cfg.d_width, 2 ** (s + 2), full)
            self.from_rgb.append(nn.Sequential(EqualizedConv2d(channels, width, 1), act))
            if s:
                w_out = stage_width(cfg.d_width, 2 ** (s + 1), full)
                self.blocks.append(nn.Sequential(
                    EqualizedConv2d(width, width, 3, padding=1), act,
                    EqualizedConv2d(width, w_out, 3, padding=1), act, nn.AvgPool2d(2)))
        w4 = stage_width(cfg.d_width, 4, full)
        self.mbstd, extra = mbstd_for(cfg)  # (B, w4 + 1, 4, 4) when on
        # 3x3 conv, then the paper's 4x4 conv without padding (a dense layer over the map),
        # then a linear output (gain 1)
        self.head = nn.Sequential(EqualizedConv2d(w4 + extra, w4, 3, padding=1), act,
                                  EqualizedConv2d(w4, w4, 4), act, nn.Flatten(),
                                  EqualizedLinear(w4, 1, gain=1.0))
        self.classes = None

    def _features(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        stage, alpha = self._current()
        x = resize(x, 4 * 2 ** stage)
        h = self.from_rgb[stage](x)
        if stage:
            h = self.blocks[stage](h)
            if alpha < 1.0:  # fade-in: the previous stage's input layer on the pooled image
                h = torch.lerp(self.from_rgb[stage - 1](F.avg_pool2d(x, 2)), h, alpha)
        for s in range(stage - 1, 0, -1):
            h = self.blocks[s](h)
        return h  # (B, w4, 4, 4)


def fade_reals(x: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
    """Real images as D sees them at ``stage`` (ProGAN, sec. 2): downscaled to the stage's
    resolution and, during a fade-in, blended with their version at the previous stage's
    resolution, ``lerp(upsample(pool(x_s)), x_s, alpha)``, "similarly to how the generator
    output combines two resolutions". (B, C, R, R) in, (B, C, R, R) out (nearest-upsampled
    back to R, which D pools away again)."""
    size = 4 * 2 ** stage
    low = resize(x, size)
    if stage and alpha < 1.0:
        low = torch.lerp(resize(resize(low, size // 2), size), low, alpha)
    return resize(low, x.shape[-1])


@register_family("progan", kinds={"images"},
                 summary="progressive growing 4x4 -> data resolution, equalised lr, pixel norm "
                         "(unconditional; 4..1024 px)")
def build(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE) -> Nets:
    if conditioning.conditional:
        raise ConfigError("family 'progan' is unconditional", hint="use objective progressive or "
                          "unconditional, or a conditional family such as dcgan or resnet")
    if cfg.init != "torch":
        raise ConfigError(f"family 'progan' draws its equalised-learning-rate weights from "
                          f"N(0, 1) itself; model.init={cfg.init} would not apply",
                          hint="--set model.init=torch")
    if cfg.d_act != "leaky_relu":
        raise ConfigError(f"family 'progan' uses LeakyReLU(0.2) in D, not {cfg.d_act}",
                          hint="--set model.d_act=leaky_relu")
    return Nets(G=Generator(cfg, spec), D=Discriminator(cfg, spec))
