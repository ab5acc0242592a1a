"""StyleGAN2 (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila 2020, "Analyzing and Improving
the Image Quality of StyleGAN", arXiv:1912.04958), in plain PyTorch: no custom CUDA kernels,
so it runs on a CPU, under ``torch.compile`` and in bf16.

Generator (sec. 2, fig. 2d and 7b of the paper):
  z (B, z_dim) -> mapping network (``model.map_depth`` equalised-lr dense layers, lr x 0.01)
  -> w (B, w_dim = z_dim); w is broadcast to one style per layer (``num_ws``). Synthesis starts
  from a learned constant 4x4 map; every 3x3 convolution is *modulated* by an affine map of w
  (per input channel scale s) and *demodulated* (each output channel divided by the norm of
  its modulated weights, eq. 1-3), then per-pixel noise times a learned strength (init 0), a
  bias and leaky ReLU (slope 0.2, gain sqrt 2). Skip-connection output: every resolution adds
  a 1x1 modulated, non-demodulated "tRGB" to the upsampled image so far.

Discriminator (fig. 7c): 1x1 "fRGB" at full resolution, then per octave a residual block
(two 3x3 convolutions and a 2x downsampling, plus a 1x1 skip; their sum times 1/sqrt 2), then
at 4x4 minibatch stddev (``model.mbstd``), a 3x3 convolution and two dense layers.

Every layer has an equalised learning rate (``gancli.models.layers``). Where the official
code uses a [1, 3, 3, 1] FIR filter to resample, we use bilinear 2x upsampling (the same
separable [1, 3, 3, 1] / 4 kernel, edge-replicated instead of zero-padded) and 2x2 average
pooling.

The truncation trick (sec. C of StyleGAN, Karras et al. 2019) happens in w: in eval mode
w <- w_avg + psi (w - w_avg), with w_avg the running mean of w tracked in training
(``Mapping.track``, decay 0.995 as the official code) and psi = ``G.psi`` (1 = off).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gancli.conditioning import NONE, Conditioning
from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.models import base
from gancli.models.base import DataSpec, Nets, register_family
from gancli.models.layers import EqualizedConv2d, EqualizedLinear

ACT_GAIN = math.sqrt(2.0)  # leaky ReLU's output is multiplied by sqrt 2 (StyleGAN2's bias_act)
MAPPING_LR_MUL = 0.01  # StyleGAN (Karras et al. 2019), sec. C: the mapping learns 100x slower
W_AVG_BETA = 0.995  # decay of the tracked mean w (official code's w_avg_beta)
DEMOD_EPS = 1e-8  # eq. 3's epsilon


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * ACT_GAIN


class Mapping(nn.Module):
    """z (B, z_dim) -> w (B, w_dim): z normalised to unit second moment (pixel norm), then
    ``depth`` dense layers with leaky ReLU at lr x 0.01. ``w_avg`` (w_dim,) is a buffer,
    saved with the weights, that ``track`` moves towards the batch's mean w."""

    def __init__(self, z_dim: int, w_dim: int, depth: int):
        super().__init__()
        self.layers = nn.ModuleList([EqualizedLinear(z_dim if i == 0 else w_dim, w_dim, gain=1.0,
                                                     lr_mul=MAPPING_LR_MUL) for i in range(depth)])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = lrelu(layer(x))
        return x

    @torch.no_grad()
    def track(self, w: torch.Tensor) -> None:
        """w_avg <- beta * w_avg + (1 - beta) * mean(w) over the batch (beta = 0.995)."""
        self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, W_AVG_BETA))


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution (sec. 2.2, eq. 1-3).

    Weights w (out, in, k, k) with equalised lr; style s = A(w_latent) (B, in), A dense with
    bias initialised to 1. Modulation: w'_oik = s_i w_oik; demodulation: w''_oik = w'_oik /
    sqrt(sum_ik w'_oik^2 + eps). Computed without a per-sample weight (the official code's
    non-fused path, exactly the same maths): x * s, one shared convolution, then each output
    channel times its 1 / sigma_o, with sigma_o^2 = sum_i s_i^2 sum_k w_oik^2. For an input
    of i.i.d. unit-variance values the output then has unit variance per channel.

    Input x (B, in, H, W), w_latent (B, w_dim); ``up``: x is first upsampled 2x (bilinear).
    Output (B, out, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, up: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.affine = EqualizedLinear(w_dim, in_channels, gain=1.0, bias_init=1.0)
        self.demodulate, self.up, self.padding = demodulate, up, kernel_size // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)  # (B, in)
        weight = self.weight * self.scale
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x * s[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            sigma2 = s.float().square() @ weight.float().square().sum((2, 3)).t()  # (B, out)
            x = x * torch.rsqrt(sigma2 + DEMOD_EPS)[:, :, None, None].to(x.dtype)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution + per-pixel noise x learned strength + bias + leaky ReLU.

    ``noise`` (B, 1, H, W) from the caller (training draws it from the run's generator);
    None uses the layer's fixed noise buffer (the official "const" noise mode), so G is
    deterministic in eval mode."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.resolution = resolution

    def forward(self, x, w, noise=None):
        x = self.conv(x, w)
        n = self.noise_const if noise is None else noise
        x = x + n.to(x.dtype) * self.noise_strength.to(x.dtype)
        return lrelu(x + self.bias[None, :, None, None].to(x.dtype))


class ToRGB(nn.Module):
    """1x1 modulated convolution without demodulation, plus a bias (no activation)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[None, :, None, None].to(x.dtype)


class Synthesis(nn.Module):
    """ws (B, num_ws, w_dim) [+ noise, a list of (B, 1, r, r) per layer] -> images.

    Style indices: the 4x4 convolution uses ws[:, 0] and its tRGB ws[:, 1]; the block at each
    later octave k (1-based) uses ws[:, 2k - 1] for its upsampling convolution, ws[:, 2k] for
    the second one and ws[:, 2k + 1] for its tRGB (shared with the next block's first
    convolution, as in the official code): num_ws = 2 log2(resolution) - 2."""

    def __init__(self, w_dim: int, channels: int, img_channels: int, stages: int):
        super().__init__()
        self.const = nn.Parameter(torch.randn(channels, 4, 4))
        self.layers = nn.ModuleList([SynthesisLayer(channels, channels, w_dim, 4)])
        self.to_rgb = nn.ModuleList([ToRGB(channels, img_channels, w_dim)])
        for k in range(1, stages + 1):
            r = 4 * 2 ** k
            self.layers.append(SynthesisLayer(channels, channels, w_dim, r, up=True))
            self.layers.append(SynthesisLayer(channels, channels, w_dim, r))
            self.to_rgb.append(ToRGB(channels, img_channels, w_dim))
        self.num_ws = 2 * stages + 2

    def noise_shapes(self) -> list[tuple[int, int]]:
        """(H, W) of every layer's noise input, in the order ``forward`` takes them."""
        return [(m.resolution, m.resolution) for m in self.layers]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        b = ws.shape[0]
        noise = noise if noise is not None else [None] * len(self.layers)
        x = self.const[None].expand(b, -1, -1, -1).to(ws.dtype)
        x = self.layers[0](x, ws[:, 0], noise[0])
        img = self.to_rgb[0](x, ws[:, 1])
        for k in range(1, len(self.to_rgb)):
            x = self.layers[2 * k - 1](x, ws[:, 2 * k - 1], noise[2 * k - 1])
            x = self.layers[2 * k](x, ws[:, 2 * k], noise[2 * k])
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            img = img + self.to_rgb[k](x, ws[:, 2 * k + 1])
        return img


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, C, H, W), unbounded (about [-1, 1] once trained; the
    official generator has no output nonlinearity either).

    ``forward(z)`` maps, truncates in eval mode (``psi``), broadcasts w to every layer and
    synthesises with each layer's fixed noise; the training objective calls ``mapping`` and
    ``synthesis`` itself (style mixing, random noise)."""

    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__()
        stages = base.check_power_of_two(spec.shape[-1], "stylegan2")
        self.mapping = Mapping(cfg.z_dim, cfg.z_dim, cfg.map_depth)
        self.synthesis = Synthesis(cfg.z_dim, cfg.g_width, spec.shape[0], stages)
        self.num_ws = self.synthesis.num_ws
        self.psi = 1.0  # truncation in w, applied in eval mode only (set by sampling)

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """w_avg + psi (w - w_avg): psi 1 leaves w, 0 gives the mean w."""
        return w if psi == 1.0 else self.mapping.w_avg.to(w.dtype).lerp(w, psi)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        return w[:, None].expand(-1, self.num_ws, -1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mapping(z)
        if not self.training:
            w = self.truncate(w, self.psi)
        return self.synthesis(self.broadcast(w))


class ResBlock(nn.Module):
    """D's residual block (fig. 7c): (conv3x3 -> lrelu -> conv3x3 -> lrelu -> pool2) plus
    (pool2 -> conv1x1, no bias), summed and scaled by 1/sqrt 2. (B, C, H, W) -> (B, C', H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, padding=1, gain=1.0)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, padding=1, gain=1.0)
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, gain=1.0)

    def forward(self, x):
        y = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(lrelu(self.conv1(lrelu(self.conv0(x)))), 2)
        return (x + y) * math.sqrt(0.5)


class Discriminator(base.Discriminator):
    """images (B, C, H, W) -> one logit per sample (per pack with ``model.pack``)."""

    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__(cfg.pack)
        stages = base.check_power_of_two(spec.shape[-1], "stylegan2")
        c = cfg.d_width
        self.from_rgb = EqualizedConv2d(spec.shape[0] * cfg.pack, c, 1, gain=1.0)
        self.blocks = nn.Sequential(*[ResBlock(c, c) for _ in range(stages)])
        self.mbstd, extra = base.mbstd_for(cfg)
        self.head = nn.Sequential(
            EqualizedConv2d(c + extra, c, 3, padding=1, gain=1.0), _LReLU(), nn.Flatten(),
            EqualizedLinear(c * 16, c, gain=1.0), _LReLU(), EqualizedLinear(c, 1, gain=1.0))
        self.classes = None

    def _features(self, x, y):
        return self.blocks(lrelu(self.from_rgb(x)))


class _LReLU(nn.Module):
    def forward(self, x):
        return lrelu(x)


@register_family("stylegan2", kinds={"images"},
                 summary="StyleGAN2: mapping net, modulated/demodulated convs, noise, skip G, "
                         "residual D (unconditional)")
def build(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = NONE) -> Nets:
    if conditioning.conditional:
        raise ConfigError(f"the stylegan2 family is unconditional; this objective asks for "
                          f"'{conditioning.name}' conditioning",
                          hint="use objective=stylegan2 (or unconditional)")
    return Nets(G=Generator(cfg, spec), D=Discriminator(cfg, spec))
