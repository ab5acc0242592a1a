"""Mode coverage on 2-D Gaussian mixtures, by the PacGAN / VEEGAN protocol.

Each sample goes to its nearest mode; it is *high quality* when it lies within 3
standard deviations of that mode (strict <); a mode is *recovered* when at least one
high-quality sample lands on it. Reverse KL is KL(p || uniform) of the histogram of
high-quality samples over the K modes (= log K - H(p)); see research notes: for a
perfect sampler at N = 2,500 it is about (K - 1) / (2N).
"""

from __future__ import annotations

import math

import torch

from gancli.errors import GancliError


def mode_coverage(points: torch.Tensor, modes: torch.Tensor, sigma: float,
                  threshold: float = 3.0) -> dict[str, float]:
    points = points.detach().double().cpu()
    modes = modes.double().cpu()
    k = len(modes)
    finite = torch.isfinite(points).all(1)
    dist = torch.cdist(points[finite], modes) / sigma  # (N, K) in units of sigma
    nearest_d, nearest = dist.min(1)
    good = nearest_d < threshold
    counts = torch.bincount(nearest[good], minlength=k).double()
    total = counts.sum()
    if total > 0:
        p = counts / total
        nz = p[p > 0]
        reverse_kl = float((nz * (nz * k).log()).sum())
    else:
        reverse_kl = math.inf
    return {"modes": int((counts > 0).sum()), "modes_total": k,
            "high_quality": float(good.sum()) / max(len(points), 1),
            "reverse_kl": reverse_kl, "samples": len(points)}


def modes_score(inp) -> dict:
    """``modes`` for ``gancli evaluate`` (``catalog``): the mixture of ``--real`` when it has
    one, else the one the generated side knows (a model trained on toy data)."""
    real, fake = inp.real, inp.fake
    modes, sigma = (real.modes, real.sigma) if real is not None and real.modes is not None else \
        (fake.modes, fake.sigma)
    if modes is None or sigma is None:
        raise GancliError("modes needs a Gaussian-mixture reference (toy:grid25, toy:ring8)",
                          hint="pass --real toy:grid25 (or the mixture the model was trained on)")
    if fake.sample_kind != "points":
        raise GancliError("modes needs 2-D points", hint=f"{fake.spec} holds {fake.sample_kind}")
    pts, _ = inp.samples(inp.n)
    r = mode_coverage(pts, torch.as_tensor(modes, dtype=torch.float32), float(sigma))
    return {"modes": r["modes"], "modes_total": r["modes_total"], "high_quality": r["high_quality"],
            "reverse_kl": r["reverse_kl"]}
