"""The Fréchet distance against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from gancli.metrics.frechet import (feature_stats, frechet_between, frechet_distance,
                                    trace_sqrt_product)


def test_identical_sets_are_at_distance_zero():
    f = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_between(f, f) == pytest.approx(0.0, abs=1e-6)


def test_closed_form_for_diagonal_gaussians():
    # d^2 = |mu1 - mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2)) = |dmu|^2 + sum (sqrt s1 - sqrt s2)^2
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(5.0 + 1.0 + 1.0 + 0.0)


def test_sample_estimate_matches_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal(3.0, 2.0, size=(20000, 2))
    # |dmu|^2 = 18, covariance term 2 * (1 - 2)^2 = 2
    assert frechet_between(a, b) == pytest.approx(20.0, rel=0.03)


def test_stats_need_two_rows():
    with pytest.raises(ValueError):
        feature_stats(np.zeros((1, 4)))


def test_eigh_route_matches_scipy_sqrtm():
    from scipy import linalg

    rng = np.random.default_rng(2)
    for d in (3, 64):
        a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
        s1, s2 = a @ a.T / d, b @ b.T / d
        reference = float(np.trace(linalg.sqrtm(s1 @ s2)).real)
        assert trace_sqrt_product(s1, s2) == pytest.approx(reference, rel=1e-9)


def test_singular_covariances_are_fine():
    rng = np.random.default_rng(3)
    f = np.maximum(rng.normal(size=(300, 6)), 0)
    f[:, :2] = 0  # dead features: a singular covariance
    g = f + 0.1
    assert frechet_between(f, g) == pytest.approx(6 * 0.01, rel=1e-6)  # |dmu|^2, same covariance
