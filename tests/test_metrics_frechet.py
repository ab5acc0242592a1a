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


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_equal_covariances_give_the_squared_mean_distance():
    # pytorch-fid's own test case (there at d = 2048): mu1 = 0, mu2 = 1, sigma = I -> d
    d = 512
    assert frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d)) == pytest.approx(d, abs=1e-8)
    rng = np.random.default_rng(5)
    a = rng.normal(size=(64, 64))
    s = a @ a.T / 64
    mu1, mu2 = rng.normal(size=64), rng.normal(size=64)
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(float((mu1 - mu2) @ (mu1 - mu2)), abs=1e-9)
    assert frechet_distance(mu1, s, mu1, s) == pytest.approx(0.0, abs=1e-9 * np.trace(s))


def test_commuting_covariances_closed_form():
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T: d^2 = |dmu|^2 + sum (sqrt a_i - sqrt b_i)^2
    d = 256
    rng = np.random.default_rng(6)
    q = _rotation(d, 7)
    a, b = 10 ** rng.uniform(-6, 1, d), 10 ** rng.uniform(-6, 1, d)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    exact = float((mu1 - mu2) @ (mu1 - mu2) + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(exact, abs=1e-8)
    assert trace_sqrt_product(s1, s2) == pytest.approx(float(np.sqrt(a * b).sum()), abs=1e-9)
    # S2 = c^2 S1 -> (1 - c)^2 Tr S1; and the 1-D case (mu1 - mu2)^2 + (sigma1 - sigma2)^2
    assert frechet_distance(mu1, s1, mu1, 9 * s1) == pytest.approx(4 * np.trace(s1), rel=1e-10)
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == \
        pytest.approx(4.0 + 1.0)


def test_float32_inputs_are_promoted_to_float64():
    d = 128
    q = _rotation(d, 8)
    rng = np.random.default_rng(9)
    a, b = 10 ** rng.uniform(-3, 1, d), 10 ** rng.uniform(-3, 1, d)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    exact = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    mu = np.zeros(d, np.float32)
    # the float32 copies are rounded once; the maths on them must still be float64
    got = frechet_distance(mu, s1.astype(np.float32), mu, s2.astype(np.float32))
    ref = frechet_distance(mu, s1.astype(np.float32).astype(np.float64), mu,
                           s2.astype(np.float32).astype(np.float64))
    assert got == ref and got == pytest.approx(exact, rel=1e-5)
    m, s = feature_stats(rng.normal(size=(50, 4)).astype(np.float32))
    assert m.dtype == s.dtype == np.float64


def test_float64_route_matches_scipy_sqrtm_on_realistic_statistics():
    """ReLU features, fewer samples than dimensions (singular covariances) and more."""
    from scipy import linalg

    rng = np.random.default_rng(10)
    for n, d in ((300, 128), (100, 256)):
        w = rng.normal(size=(d, d)) / np.sqrt(d)
        f = np.maximum(rng.normal(size=(n, d)) @ w, 0)
        g = np.maximum(rng.normal(0.2, 1.0, size=(n, d)) @ w, 0)
        (m1, s1), (m2, s2) = feature_stats(f), feature_stats(g)
        root = linalg.sqrtm(s1 @ s2)
        reference = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real)
        assert frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-6, abs=1e-8)


def test_symmetric_and_invariant_to_a_shared_rotation_and_shift():
    rng = np.random.default_rng(11)
    f, g = rng.normal(size=(400, 16)), rng.gamma(2.0, size=(400, 16))
    q, t = _rotation(16, 12), rng.normal(size=16)
    base = frechet_between(f, g)
    assert frechet_between(g, f) == pytest.approx(base, rel=1e-10)
    assert frechet_between(f @ q + t, g @ q + t) == pytest.approx(base, rel=1e-9)


def test_against_pytorch_fid_on_the_same_statistics():
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    import warnings

    rng = np.random.default_rng(13)
    f = np.maximum(rng.normal(size=(600, 64)), 0)
    g = np.maximum(rng.normal(0.3, 1.1, size=(600, 64)), 0)
    (m1, s1), (m2, s2) = feature_stats(f), feature_stats(g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference = float(fid_score.calculate_frechet_distance(m1, s1, m2, s2))
        except TypeError:  # scipy >= 1.18 removed sqrtm(disp=...), which pytorch-fid 0.3.0 passes
            pytest.skip("pytorch-fid does not run with this scipy")
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-6)
