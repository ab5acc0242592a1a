"""An exponential moving average of G's weights (Karras et al. 2018; Yazici et al. 2019)."""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn


def make_ema(G: nn.Module) -> nn.Module:
    ema = copy.deepcopy(G).eval()
    ema.requires_grad_(False)
    return ema


def ema_decay(decay: float, step: int, start: int = 0, rampup: float = 0.0) -> float:
    """The EMA decay to use after G's optimiser step ``step`` (0-based; ``step + 1`` steps done).

    Before ``start`` it is 0 (the average is a copy of G). With ``rampup`` > 0 the half-life
    ``log(0.5) / log(decay)`` steps is capped at ``rampup x (step + 1)`` steps, as StyleGAN2-ADA
    caps ``ema_kimg`` at ``cur_nimg x ema_rampup`` (Karras et al. 2020, training_loop.py; 0.05
    in its configurations): decay = 0.5 ** (1 / half-life). ``decay`` 0 or 1 is returned as is.
    """
    if step < start:
        return 0.0
    if rampup <= 0 or not 0.0 < decay < 1.0:
        return decay
    half_life = min(math.log(0.5) / math.log(decay), rampup * (step + 1))
    return 0.5 ** (1.0 / half_life)


@torch.no_grad()
def update_ema(ema: nn.Module, G: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * G for parameters; buffers (BN statistics) copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(G.parameters()), 1.0 - decay)  # one launch
    for be, b in zip(ema.buffers(), G.buffers()):
        be.copy_(b)


@torch.no_grad()
def recompute_bn_stats(G: nn.Module, z_dim: int, z_dist: str = "normal", batch_size: int = 128,
                       batches: int = 16, seed: int = 0,
                       condition: Callable[[int, torch.Generator], torch.Tensor | None] | None = None
                       ) -> nn.Module:
    """Re-estimate the batch-norm running statistics of ``G`` (in place) for its own weights.

    An averaged G's weights never ran in train mode, so the running mean/var it copied from
    the live G describe another network's activations; sampling in eval mode then shifts
    every BN layer. This runs ``batches`` batches of ``batch_size`` latents (``labels`` > 0:
    random class labels for a conditional G) through G in train mode with a cumulative
    average (``momentum=None``), the "standing statistics" of Brock et al. 2019 (BigGAN,
    appendix C). ``condition(n, rng)`` gives G's second input for a batch (class labels,
    InfoGAN codes) or None. The random draws use their own generator (``seed``), so the
    global RNG and training are untouched: the same weights always get the same statistics.
    Returns G, in eval mode.
    """
    from gancli.sampling import draw_latents

    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return G.eval()
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches below
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    G.train()
    try:
        for _ in range(batches):
            z = draw_latents(batch_size, z_dim, z_dist, rng).to(device)
            y = condition(batch_size, rng) if condition is not None else None
            G(z, y if y is None else y.to(device))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        G.eval()
    return G
