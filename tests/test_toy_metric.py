"""Mode coverage by the PacGAN protocol, against the anchors in research/toy-anchors.md."""

from __future__ import annotations

import math

import pytest
import torch

from gancli.data.toy import load_toy, mixture_modes
from gancli.metrics.toy import mode_coverage


@pytest.mark.parametrize("name, k", [("grid25", 25), ("ring8", 8)])
def test_a_perfect_sampler_scores_the_derived_anchor(name, k):
    modes, sigma = mixture_modes(name)
    pts = load_toy(name, size=2500, seed=123).x
    m = mode_coverage(pts, modes, sigma)
    assert m["modes"] == k
    # expected high-quality share 1 - exp(-4.5) = 0.98889 for 2-D isotropic Gaussians
    assert m["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    # finite-sample bias of the reverse KL ~ (K - 1) / (2N)
    assert m["reverse_kl"] == pytest.approx((k - 1) / 5000, abs=0.004)


def test_collapse_onto_one_mode():
    modes, sigma = mixture_modes("grid25")
    pts = modes[7] + sigma * 0.5 * torch.randn(2500, 2)
    m = mode_coverage(pts, modes, sigma)
    assert m["modes"] == 1 and m["high_quality"] == 1.0
    assert m["reverse_kl"] == pytest.approx(math.log(25), rel=1e-6)


def test_samples_between_modes_are_low_quality_and_nan_is_not_counted():
    modes, sigma = mixture_modes("grid25")
    pts = torch.tensor([[1.0, 1.0], [0.0, 0.0], [float("nan"), 0.0]])
    m = mode_coverage(pts, modes, sigma)
    assert m["modes"] == 1 and m["high_quality"] == pytest.approx(1 / 3)


def test_grid_and_ring_geometry():
    modes, sigma = mixture_modes("grid25")
    assert modes.shape == (25, 2) and sigma == 0.05 and modes.abs().max() == 4
    ring, s = mixture_modes("ring8")
    assert torch.allclose(ring.norm(dim=1), torch.ones(8)) and s == 0.01
