"""Latents from seeds, interpolation and arithmetic: inference only.

Seed ``s`` always gives the same latent: it is drawn on the CPU from a generator
seeded with ``s`` and only then moved to the device, so the same seed gives the same
image on any machine (up to the device's floating-point rounding).
"""

from __future__ import annotations

import re

import torch

from gancli.errors import GancliError


def draw_latents(n: int, z_dim: int, dist: str, gen: torch.Generator) -> torch.Tensor:
    """``n`` latents from ``dist`` (normal, uniform in [-1, 1], or sphere of radius sqrt(z_dim))."""
    if dist == "uniform":
        return torch.rand(n, z_dim, generator=gen) * 2 - 1
    z = torch.randn(n, z_dim, generator=gen)
    if dist == "sphere":  # GAN hacks: spherical latents, where slerp is the natural walk
        z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12) * z_dim**0.5
    return z


def latents_for_seeds(seeds: list[int], z_dim: int, dist: str = "normal") -> torch.Tensor:
    """One latent per seed, each from its own generator: (len(seeds), z_dim), on the CPU."""
    rows = [draw_latents(1, z_dim, dist, torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.cat(rows) if rows else torch.empty(0, z_dim)


def truncate(z: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick for a zero-mean prior: pull latents toward the mean by ``psi``."""
    return z * psi


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents).

    Interpolates direction along the great circle and magnitude linearly, so that
    intermediate latents keep a typical norm for a Gaussian prior.
    """
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    dot = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(dot)
    so = torch.sin(omega)
    # nearly parallel directions: slerp degenerates to lerp
    small = so.abs() < 1e-6
    wa = torch.where(small, 1 - t, torch.sin((1 - t) * omega) / so.where(~small, torch.ones_like(so)))
    wb = torch.where(small, t, torch.sin(t * omega) / so.where(~small, torch.ones_like(so)))
    direction = wa * ua + wb * ub
    return direction * lerp(na, nb, t)


def path_through(latents: torch.Tensor, steps: int, method: str) -> torch.Tensor:
    """Walk through ``latents`` in order with ``steps`` points per leg (ends included once)."""
    fn = {"slerp": slerp, "lerp": lerp}[method]
    t = torch.linspace(0, 1, steps)[:-1, None]
    legs = [fn(latents[i][None], latents[i + 1][None], t) for i in range(len(latents) - 1)]
    return torch.cat(legs + [latents[-1:]])


_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_seeds(text: str, limit: int = 100_000) -> list[int]:
    """``"0-7,12,20-22"`` -> [0, 1, ..., 7, 12, 20, 21, 22]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise GancliError(f"bad seed range '{part}'", hint="ranges go low-high, e.g. 0-63")
            seeds += range(lo, hi + 1)
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise GancliError(f"bad seed '{part}'", hint="seeds are non-negative integers: 0-63 or 3,7,11")
        if len(seeds) > limit:
            raise GancliError(f"too many seeds (> {limit})", hint="ask for fewer samples")
    if not seeds:
        raise GancliError("no seeds given", hint="for example --seeds 0-63")
    return seeds


def parse_arithmetic(text: str) -> list[tuple[int, list[int]]]:
    """``"1,2,3 - 4,5 + 6-8"`` -> [(+1, [1, 2, 3]), (-1, [4, 5]), (+1, [6, 7, 8])].

    Operators need spaces around them, so ``6-8`` inside a group stays a seed range.
    """
    tokens = re.split(r"\s+([+-])\s+", f" {text.strip()} ")
    terms = [(1, parse_seeds(tokens[0]))]
    for op, group in zip(tokens[1::2], tokens[2::2]):
        terms.append((1 if op == "+" else -1, parse_seeds(group)))
    if len(terms) < 2:
        raise GancliError(f"bad --arith '{text}'",
                          hint="groups of seeds joined by ' + ' and ' - ', e.g. '1,2,3 - 4,5,6 + 7,8,9'")
    return terms


def draw_codes(n: int, cat: int, cont: int, gen: torch.Generator) -> torch.Tensor:
    """InfoGAN codes: a uniform one-hot categorical code of ``cat`` values (none if 0) then
    ``cont`` continuous codes uniform in [-1, 1] (Chen et al. 2016). (n, cat + cont)."""
    parts = []
    if cat:
        idx = torch.randint(cat, (n,), generator=gen)
        parts.append(torch.nn.functional.one_hot(idx, cat).float())
    if cont:
        parts.append(torch.rand(n, cont, generator=gen) * 2 - 1)
    return torch.cat(parts, 1) if parts else torch.empty(n, 0)


def codes_for_seeds(seeds: list[int], z_dim: int, dist: str, cat: int, cont: int) -> torch.Tensor:
    """One code row per seed, drawn from the seed's generator right after its latent, so a
    seed fixes both z and c."""
    rows = []
    for s in seeds:
        gen = torch.Generator().manual_seed(int(s))
        draw_latents(1, z_dim, dist, gen)  # the same stream latents_for_seeds uses, then codes
        rows.append(draw_codes(1, cat, cont, gen))
    return torch.cat(rows) if rows else torch.empty(0, cat + cont)
