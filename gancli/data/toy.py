"""2-D Gaussian mixtures: the standard probes of mode collapse.

``ring8`` and ``grid25`` follow the PacGAN protocol (Lin et al. 2018, after VEEGAN):
a fixed training sample of 100,000 points drawn once per run, equal-weight components.
``spiral`` is a continuous (one-mode) curve for visual checks.
"""

from __future__ import annotations

import math

import torch

from gancli.data.base import Dataset
from gancli.errors import DataError, excerpt

DEFAULT_SIZE = 100_000


def mixture_modes(name: str) -> tuple[torch.Tensor, float]:
    """Component means (K, 2) and the common standard deviation."""
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
        return torch.stack([angles.cos(), angles.sin()], 1).float(), 0.01
    if name == "grid25":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        return torch.cartesian_prod(axis, axis), 0.05
    raise DataError(f"unknown toy mixture {excerpt(name)}", hint="use toy:ring8, toy:grid25 or toy:spiral")


def load_toy(name: str, size: int = 0, seed: int = 0) -> Dataset:
    """Draw the fixed training sample for ``toy:NAME``."""
    n = size or DEFAULT_SIZE
    g = torch.Generator().manual_seed(seed)
    if name == "spiral":
        t = torch.rand(n, generator=g) * 3 * math.pi + 0.5
        pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 3
        pts += 0.05 * torch.randn(n, 2, generator=g)
        return Dataset(name="toy:spiral", kind="points", x=pts.float())
    modes, sigma = mixture_modes(name)
    component = torch.randint(len(modes), (n,), generator=g)
    pts = modes[component] + sigma * torch.randn(n, 2, generator=g)
    return Dataset(name=f"toy:{name}", kind="points", x=pts.float(), modes=modes, sigma=sigma,
                   info={"samples": n, "modes": len(modes), "sigma": sigma})
