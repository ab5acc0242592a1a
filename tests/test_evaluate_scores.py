"""KID, IS, precision/recall and density/coverage against hand and closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gancli.metrics.scores import inception_score, kid, prdc


def _mmd_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """MMD-GAN's unbiased MMD^2 with the cubic polynomial kernel, written out by hand."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m = len(x)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.sum() / m**2)


def test_kid_on_whole_sets_is_the_unbiased_mmd():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.normal(0.5, 1.0, size=(40, 5))
    # one subset of all 40 samples: the random subset is a permutation, and MMD ignores order
    r = kid(x, y, subsets=1, subset_size=40)
    assert r["kid"] == pytest.approx(_mmd_unbiased(y, x), rel=1e-12)
    assert r["subset_size"] == 40 and not r["subset_size_reduced"]


def test_kid_subset_size_drops_to_the_smaller_set():
    rng = np.random.default_rng(1)
    r = kid(rng.normal(size=(60, 4)), rng.normal(size=(30, 4)), subsets=5)
    assert r["subset_size"] == 30 and r["subset_size_reduced"] and r["subsets"] == 5


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same = kid(a, b, subsets=20, subset_size=200)
    diff = kid(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-3
    assert diff["kid"] > 10 * max(abs(same["kid"]), 1e-3)


def test_inception_score_limits():
    k, n = 10, 5000
    confident = 30.0 * np.eye(k)[np.arange(n) % k]  # balanced, near one-hot predictions
    # the seeded shuffle leaves each split of 500 only nearly balanced: IS = exp(H(split histogram))
    assert inception_score(confident)["is"] == pytest.approx(k, rel=2e-2)
    assert inception_score(confident, splits=1)["is"] == pytest.approx(k, rel=1e-9)
    flat = np.zeros((n, k))
    r = inception_score(flat)
    assert r["is"] == pytest.approx(1.0) and r["is_std"] == pytest.approx(0.0) and r["splits"] == 10
    with pytest.raises(ValueError):
        inception_score(flat[:5])


def _prdc_bruteforce(real, fake, pr_k=3, dc_k=5):
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=2)
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=2)
    r3, r5 = np.sort(d_rr, 1)[:, pr_k], np.sort(d_rr, 1)[:, dc_k]
    f3 = np.sort(d_ff, 1)[:, pr_k]
    return {"precision": (d_fr <= r3[None]).any(1).mean(),
            "recall": (d_fr.T <= f3[None]).any(1).mean(),
            "density": (d_fr < r5[None]).sum() / (dc_k * len(fake)),
            "coverage": (d_fr.min(0) < r5).mean()}


def test_prdc_matches_a_brute_force_reference_in_small_blocks():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(57, 6)), rng.normal(0.3, 1.2, size=(43, 6))
    ours = prdc(real, fake, batch=7)
    for key, value in _prdc_bruteforce(real, fake).items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_prdc_identical_sets_and_mode_collapse():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 16))
    same = prdc(x, x)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    # torch-fidelity's mode-collapse smoke test: a tight fake cloud inside a wide real one
    real, fake = 3 * rng.normal(size=(200, 16)), 0.1 * rng.normal(size=(200, 16))
    collapsed = prdc(real, fake)
    assert collapsed["precision"] > 0.8 and collapsed["recall"] < 0.3


def test_prdc_needs_enough_samples():
    with pytest.raises(ValueError):
        prdc(np.zeros((5, 2)), np.zeros((5, 2)))


def test_digits_features_separate_real_from_noise():
    from gancli.data.digits import load_digits
    from gancli.metrics import frechet
    from gancli.metrics.features import load_extractor

    ex = load_extractor("digits", torch.device("cpu"))
    x = load_digits(16).x
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    a, _ = ex.run(x[perm[:800]])
    b, _ = ex.run(x[perm[800:1600]])
    noise, _ = ex.run(torch.randint(0, 256, (800, 1, 16, 16), dtype=torch.uint8, generator=g))
    real_vs_real = frechet.frechet_between(a, b)
    real_vs_noise = frechet.frechet_between(a, noise)
    assert a.shape == (800, 128) and ex.sha256 and len(ex.sha256) == 64
    assert real_vs_real < 0.05 * real_vs_noise
