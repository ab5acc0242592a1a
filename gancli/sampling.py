"""Latents from seeds, interpolation and arithmetic: inference only.

Seed ``s`` always gives the same latent: it is drawn on the CPU from a generator
seeded with ``s`` and only then moved to the device, so the same seed gives the same
image on any machine (up to the device's floating-point rounding).
"""

from __future__ import annotations

import math
import re

import torch

from gancli.errors import UsageError, excerpt


def draw_latents(n: int, z_dim: int, dist: str, gen: torch.Generator) -> torch.Tensor:
    """``n`` latents from ``dist`` (normal, uniform in [-1, 1], or sphere of radius sqrt(z_dim))."""
    if dist == "uniform":
        return torch.rand(n, z_dim, generator=gen) * 2 - 1
    z = torch.randn(n, z_dim, generator=gen)
    if dist == "sphere":  # GAN hacks: spherical latents, where slerp is the natural walk
        z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12) * z_dim**0.5
    return z


def latents_for_seeds(seeds: list[int], z_dim: int, dist: str = "normal",
                      threshold: float | None = None) -> torch.Tensor:
    """One latent per seed, each from its own generator: (len(seeds), z_dim) float32, on the
    CPU. With ``threshold``, BigGAN's truncation (``resample_beyond``) from the same generator:
    a value already inside [-threshold, threshold] is the one the seed gives untruncated."""
    rows = []
    for s in seeds:
        gen = torch.Generator().manual_seed(int(s))
        z = draw_latents(1, z_dim, dist, gen)
        rows.append(z if threshold is None else resample_beyond(z, threshold, dist, gen))
    return torch.cat(rows) if rows else torch.empty(0, z_dim)


def truncate(z: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick for a zero-mean prior: pull latents toward the mean by ``psi``."""
    return z * psi


# The smallest resampling threshold: a normal value lands in [-T, T] with probability ~0.8 T for
# small T, so at 0.01 a 120-d latent needs ~700 rounds; BigGAN's smallest was 0.04.
MIN_THRESHOLD = 0.01


def check_threshold(threshold: float | None, dist: str) -> None:
    """Refuse a resampling threshold that cannot work (exit 2): below ``MIN_THRESHOLD``, or
    on the sphere, whose latents have a fixed norm rather than independent values."""
    if threshold is None:
        return
    if not math.isfinite(threshold):
        raise UsageError(f"truncation threshold {threshold}: not a finite number",
                         hint="BigGAN used thresholds from 2 down to 0.04; try 0.5")
    if threshold < MIN_THRESHOLD:
        raise UsageError(f"truncation threshold {threshold:g} is below {MIN_THRESHOLD}",
                         hint="BigGAN used thresholds from 2 down to 0.04; try 0.5")
    if dist == "sphere":
        raise UsageError("a truncation threshold resamples independent latent values; this "
                         "model's latents lie on a sphere", hint="use --truncation PSI instead")


def resample_beyond(z: torch.Tensor, threshold: float, dist: str, gen: torch.Generator
                    ) -> torch.Tensor:
    """The truncation trick as BigGAN defines it (Brock et al. 2019, sec. 3.1): every value of
    ``z`` whose magnitude exceeds ``threshold`` is drawn again from the prior (``dist``,
    normal or uniform, from ``gen``) until all lie in [-threshold, threshold]: a truncated
    normal. Smaller thresholds trade variety for fidelity. z: any shape; returns a new tensor.

    Raises:
        UsageError: a threshold below ``MIN_THRESHOLD``, or a spherical prior.
    """
    check_threshold(threshold, dist)
    z = z.clone()
    outside = z.abs() > threshold
    while bool(outside.any()):
        z[outside] = draw_latents(1, int(outside.sum()), dist, gen).view(-1)
        outside = z.abs() > threshold
    return z


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

# The most seeds one command line may ask for: sample's --n has the same bound.
MAX_SEEDS = 100_000
MAX_SEED = 2**63 - 1  # the largest seed: int64, as torch.Generator.manual_seed and tensors hold it


def parse_seed_ranges(text: str) -> list[tuple[int, int]]:
    """``"0-7,12"`` -> [(0, 8), (12, 13)]: half-open (start, stop) ranges, nothing expanded.

    Raises:
        UsageError (exit 2): a part that is not ``N`` or ``LOW-HIGH`` with LOW <= HIGH, or no
        seed at all. Messages quote at most 80 characters of the text.
    """
    if not text.strip():
        raise UsageError("no seeds given", hint="for example --seeds 0-63")
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UsageError(f"bad seeds {excerpt(text)}: an empty part",
                             hint="seeds are non-negative integers: 0-63 or 3,7,11")
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise UsageError(f"bad seed range {excerpt(part)}", hint="ranges go low-high, e.g. 0-63")
        elif part.isdigit():
            lo = hi = int(part)
        else:
            raise UsageError(f"bad seed {excerpt(part)}",
                             hint="seeds are non-negative integers: 0-63 or 3,7,11")
        if hi > MAX_SEED:  # a torch.Generator takes a 64-bit seed; int64 tensors need < 2^63
            raise UsageError(f"seed {excerpt(str(hi))} is too large: seeds go up to 2^63 - 1",
                             hint="seeds are non-negative integers below 9223372036854775808")
        ranges.append((lo, hi + 1))
    if not ranges:
        raise UsageError("no seeds given", hint="for example --seeds 0-63")
    return ranges


def check_count(what: str, count: int, limit: int, hint: str) -> None:
    """Refuse ``count`` items of ``what`` above ``limit`` (exit 2), before anything is built."""
    if count > limit:
        raise UsageError(f"{what}: {count:,} asked for, at most {limit:,} allowed", hint=hint)


def parse_seeds(text: str, limit: int = MAX_SEEDS) -> list[int]:
    """``"0-7,12,20-22"`` -> [0, 1, ..., 7, 12, 20, 21, 22].

    The count is checked against ``limit`` from the ranges' bounds before any list is built,
    so ``--seeds 0-99999999`` is a one-line error (exit 2) in microseconds.

    Raises:
        UsageError: a malformed part, no seed, or more than ``limit`` seeds.
    """
    ranges = parse_seed_ranges(text)
    check_count("too many seeds", sum(stop - start for start, stop in ranges), limit,
                hint=f"ask for at most {limit:,} seeds, e.g. 0-{min(limit, 64) - 1}")
    return [s for start, stop in ranges for s in range(start, stop)]


def parse_arithmetic(text: str) -> list[tuple[int, list[int]]]:
    """``"1,2,3 - 4,5 + 6-8"`` -> [(+1, [1, 2, 3]), (-1, [4, 5]), (+1, [6, 7, 8])].

    Operators need spaces around them, so ``6-8`` inside a group stays a seed range.
    """
    tokens = re.split(r"\s+([+-])\s+", f" {text.strip()} ")
    groups = [tokens[0], *tokens[2::2]]
    ranges = [parse_seed_ranges(g) for g in groups]
    check_count("too many seeds in --arith", sum(b - a for r in ranges for a, b in r), MAX_SEEDS,
                hint="each group's mean needs only a few seeds, e.g. '1,2,3 - 4,5,6 + 7,8,9'")
    terms = [(1, parse_seeds(tokens[0]))]
    for op, group in zip(tokens[1::2], tokens[2::2]):
        terms.append((1 if op == "+" else -1, parse_seeds(group)))
    if len(terms) < 2:
        raise UsageError(f"bad --arith {excerpt(text)}",
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
