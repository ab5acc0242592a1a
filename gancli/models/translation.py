"""Image-to-image networks: CycleGAN (Zhu et al. 2017) and StarGAN (Choi et al. 2018).

Both generators are the ResNet encoder-decoder of Johnson et al. 2016: a 7x7 stem, two
stride-2 downsamplings, residual blocks at 1/4 resolution, two upsamplings, a 7x7 tanh
output. They are fully convolutional, so they run at any size divisible by 4.

CycleGAN (appendix 7.2): c7s1-64, d128, d256, R256 x 6 (9 above 128 px), u128, u64,
c7s1-3; reflection padding, instance norm. Its D is the 70x70 PatchGAN: C64-C128-C256-C512
(4x4 convolutions, stride 2, 2, 2, 1; no norm on the first), then a 1-channel 4x4
convolution: one real/fake logit per overlapping patch. ``model.d_depth`` is the number of
stride-2 layers (3 gives the 70x70 receptive field).

StarGAN (appendix, table 4-5): the target domain enters G as constant planes next to the
image channels; 4x4 stride-2 down / transposed up convolutions. D is six (at 128 px) 4x4
stride-2 convolutions with LeakyReLU(0.01) and no norm, then two heads: a 3x3 source head
(patch logits, the WGAN-GP critic) and a domain head whose kernel covers the last map.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gancli.conditioning import DOMAIN, TRANSLATION, Conditioning
from gancli.config import ModelConfig
from gancli.errors import ConfigError
from gancli.models.base import DataSpec, Nets, condition, norm_2d, register_family


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str, reflect: bool):
        super().__init__()
        pad = (lambda: nn.ReflectionPad2d(1)) if reflect else (lambda: nn.ZeroPad2d(1))
        bias = norm != "batch"
        self.body = nn.Sequential(
            pad(), nn.Conv2d(channels, channels, 3, bias=bias), norm_2d(norm, channels), nn.ReLU(True),
            pad(), nn.Conv2d(channels, channels, 3, bias=bias), norm_2d(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(B, in, H, W) -> (B, out, H, W) in [-1, 1]; H and W multiples of 4."""

    def __init__(self, in_ch: int, out_ch: int, width: int, blocks: int, norm: str,
                 style: str = "cyclegan"):
        super().__init__()
        reflect = style == "cyclegan"
        bias = norm != "batch"
        # CycleGAN: 3x3 stride-2 convolutions; StarGAN: 4x4 ones
        k, up_pad = (3, dict(padding=1, output_padding=1)) if reflect else (4, dict(padding=1))
        stem_pad = nn.ReflectionPad2d(3) if reflect else nn.ZeroPad2d(3)
        layers: list[nn.Module] = [stem_pad, nn.Conv2d(in_ch, width, 7, bias=bias),
                                   norm_2d(norm, width), nn.ReLU(True)]
        ch = width
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, k, 2, 1, bias=bias), norm_2d(norm, ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResidualBlock(ch, norm, reflect) for _ in range(blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, k, 2, bias=bias, **up_pad),
                       norm_2d(norm, ch // 2), nn.ReLU(True)]
            ch //= 2
        out_pad = nn.ReflectionPad2d(3) if reflect else nn.ZeroPad2d(3)
        layers += [out_pad, nn.Conv2d(ch, out_ch, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"a translation generator needs sides divisible by 4, got "
                             f"{tuple(x.shape[-2:])}")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): (B, C, H, W) -> (B, 1, h, w) logits, one per patch."""

    def __init__(self, in_ch: int, width: int, layers: int, norm: str):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(in_ch, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for i in range(1, layers + 1):
            out = width * min(2 ** i, 8)
            stride = 2 if i < layers else 1
            seq += [nn.Conv2d(ch, out, 4, stride, 1, bias=norm == "none"), norm_2d(norm, out),
                    nn.LeakyReLU(0.2, True)]
            ch = out
        seq += [nn.Conv2d(ch, 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def patch_receptive_field(layers: int) -> int:
    """Receptive field of a PatchGAN with ``layers`` stride-2 layers (3 -> 70)."""
    field, jump = 1, 1
    strides = [2] * layers + [1, 1]
    for s in strides:
        field += 3 * jump
        jump *= s
    return field


class CycleGenerators(nn.Module):
    """G: A -> B (``a2b``) and F: B -> A (``b2a``); ``forward(x, "a2b")`` picks one."""

    def __init__(self, a2b: nn.Module, b2a: nn.Module):
        super().__init__()
        self.a2b, self.b2a = a2b, b2a

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction must be a2b or b2a, not {direction!r}")
        return self.a2b(x) if direction == "a2b" else self.b2a(x)


class CycleDiscriminators(nn.Module):
    """D_A judges domain A images (real A vs F(b)), D_B domain B (real B vs G(a))."""

    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor, domain: str = "b") -> torch.Tensor:
        return self.a(x) if domain == "a" else self.b(x)


@register_family("cyclegan", kinds={"pairs"},
                 summary="two ResNet generators and two 70x70 PatchGAN discriminators")
def build_cyclegan(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = TRANSLATION
                   ) -> Nets:
    if not conditioning.two_way:
        raise ConfigError("family 'cyclegan' is a translation model",
                          hint="train it with objective 'cycle' (preset cyclegan)")
    channels, h, w = spec.shape[1], spec.shape[2], spec.shape[3]
    check_translation_size(h, w, cfg.d_depth, "cyclegan")
    blocks = res_blocks(cfg, max(h, w))

    def gen() -> nn.Module:
        return ResnetGenerator(channels, channels, cfg.g_width, blocks, cfg.g_norm, "cyclegan")

    def disc() -> nn.Module:
        return PatchDiscriminator(channels, cfg.d_width, cfg.d_depth, cfg.d_norm)

    return Nets(G=CycleGenerators(gen(), gen()), D=CycleDiscriminators(disc(), disc()))


class StarGenerator(nn.Module):
    """G(x, c): the target domain c (labels, or a vector for attributes) as constant planes."""

    def __init__(self, channels: int, domains: int, cfg: ModelConfig):
        super().__init__()
        self.domains = domains
        self.net = ResnetGenerator(channels + domains, channels, cfg.g_width,
                                   cfg.res_blocks or 6, cfg.g_norm, "stargan")

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        planes = condition(c, self.domains).to(x.dtype)[:, :, None, None]
        return self.net(torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], 1))


class StarDiscriminator(nn.Module):
    """D(x) -> (patch logits (B, 1, h, w), domain logits (B, domains))."""

    def __init__(self, channels: int, domains: int, resolution: int, cfg: ModelConfig):
        super().__init__()
        repeat = int(math.log2(resolution)) - 1  # down to 2x2, as 6 layers do at 128 px
        layers: list[nn.Module] = [nn.Conv2d(channels, cfg.d_width, 4, 2, 1), nn.LeakyReLU(0.01)]
        ch = cfg.d_width
        for _ in range(repeat - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.src = nn.Conv2d(ch, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(ch, domains, resolution // 2 ** repeat, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.src(self.body(x))

    def forward_with_classes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.src(h), self.cls(h).flatten(1)


@register_family("stargan", kinds={"images"},
                 summary="one ResNet generator for every domain; D with source and domain heads")
def build_stargan(cfg: ModelConfig, spec: DataSpec, conditioning: Conditioning = DOMAIN) -> Nets:
    if not conditioning.target_domain:
        raise ConfigError("family 'stargan' is a multi-domain translation model",
                          hint="train it with objective 'stargan' (preset stargan)")
    channels, h, w = spec.shape
    if h != w or h < 8 or not math.log2(h).is_integer():
        raise ConfigError(f"family 'stargan' needs a square power-of-two resolution >= 8, got "
                          f"{h}x{w}", hint="--set data.resolution=32 (or 64, 128)")
    if spec.num_classes < 2:
        raise ConfigError("StarGAN needs at least two domains",
                          hint="give a folder with one sub-folder per domain, or "
                               "--data domains:shapes-colours")
    return Nets(G=StarGenerator(channels, spec.num_classes, cfg),
                D=StarDiscriminator(channels, spec.num_classes, h, cfg))


def res_blocks(cfg: ModelConfig, side: int) -> int:
    """``model.res_blocks``, or CycleGAN's rule when 0: 6 blocks up to 128 px, 9 above."""
    return cfg.res_blocks or (6 if side <= 128 else 9)


def check_translation_size(h: int, w: int, d_layers: int, family: str) -> None:
    if h % 4 or w % 4:
        raise ConfigError(f"family '{family}' needs image sides divisible by 4, got {h}x{w}",
                          hint="--set data.resolution=32 (or 64, 128, 256)")
    smallest = 3 * 2 ** d_layers  # the PatchGAN's map must keep at least one patch
    if min(h, w) < smallest:
        raise ConfigError(f"a {d_layers}-layer PatchGAN needs images of at least {smallest} px, "
                          f"got {min(h, w)}", hint=f"--set model.d_depth={max(1, d_layers - 1)} "
                                                   "or a larger data.resolution")
