"""An exponential moving average of G's weights (Karras et al. 2018; Yazici et al. 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(G: nn.Module) -> nn.Module:
    ema = copy.deepcopy(G).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, G: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * G for parameters; buffers (BN statistics) copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(G.parameters()), 1.0 - decay)  # one launch
    for be, b in zip(ema.buffers(), G.buffers()):
        be.copy_(b)
