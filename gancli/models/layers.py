"""Layers shared by model families: equalised learning rate and pixel norm (Karras et al.).

Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs for Improved Quality,
Stability, and Variation" (ProGAN, arXiv:1710.10196), sec. 4.1 and 4.2; StyleGAN and
StyleGAN2 reuse both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)  # He et al. 2015's gain, the one ProGAN uses before every LeakyReLU


class EqualizedLinear(nn.Module):
    """A dense layer with an equalised learning rate (ProGAN, sec. 4.1).

    The stored weight is drawn from N(0, 1) and multiplied at every forward pass by the
    per-layer constant c = gain / sqrt(fan_in) (He et al. 2015's scale), so every weight gets
    the same dynamic range and an adaptive optimiser (Adam) moves all layers at one speed.
    The bias is added after the scaling and starts at ``bias_init`` (0 unless asked).

    ``lr_mul`` (StyleGAN, Karras et al. 2019, sec. C: 0.01 in the mapping network) slows the
    layer down by that factor: the weight is drawn from N(0, 1 / lr_mul^2) and used times
    lr_mul * c, the bias used times lr_mul, so the function at init is the same while Adam's
    steps (in stored units) move it lr_mul times as far. 1 leaves the layer as ProGAN's.

    Input (B, in_features) float; output (B, out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 gain: float = LRELU_GAIN, lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = (nn.Parameter(torch.full((out_features,), bias_init / lr_mul))
                     if bias else None)
        self.scale = gain * lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias
        if bias is not None and self.lr_mul != 1.0:
            bias = bias * self.lr_mul
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, scale={self.scale:.4g}"


class EqualizedConv2d(nn.Module):
    """A 2-D convolution with an equalised learning rate (ProGAN, sec. 4.1).

    Weight (out, in, k, k) drawn from N(0, 1), used as weight * gain / sqrt(in * k * k);
    bias (out,) from 0. Input (B, in, H, W); output (B, out, H', W') as ``F.conv2d`` with
    stride 1 and the given ``padding``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, gain: float = LRELU_GAIN):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding = kernel_size, padding
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, scale={self.scale:.4g}")


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalisation (ProGAN, sec. 4.2): every pixel's feature vector
    is divided by its root mean square over channels, b = a / sqrt(mean_c(a^2) + eps) with
    eps = 1e-8. Works on (B, C, H, W) maps and on (B, C) vectors (ProGAN normalises the latent
    the same way); dim 1 is the channel dimension."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps)
