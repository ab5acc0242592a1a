"""The Fréchet distance against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from gancli.metrics.frechet import feature_stats, frechet_between, frechet_distance


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
