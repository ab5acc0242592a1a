"""The Fréchet distance between two Gaussians fitted to feature sets (Heusel et al. 2017).

    d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

FID is this distance on Inception features; the same formula on any fixed network's
features (our digits or shapes classifiers) gives a cheap offline quality number. Statistics
are float64; the trace of the matrix square root comes from symmetric eigendecompositions
(``trace_sqrt_product``), which the tests check against ``scipy.linalg.sqrtm``.
"""

from __future__ import annotations

import numpy as np
import torch


def feature_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, D) features, in float64 (unbiased covariance, N - 1)."""
    f = np.asarray(features.detach().cpu() if torch.is_tensor(features) else features,
                   dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, by symmetric eigendecompositions.

    S1 S2 is similar to S1^(1/2) S2 S1^(1/2), which is symmetric PSD, so the trace is the sum
    of the square roots of that matrix's eigenvalues; with a Cholesky factor S1 = L L^T the
    symmetric L^T S2 L has the same eigenvalues and is cheaper to form; when S1 is singular
    (dead ReLU features, fewer samples than dimensions) its symmetric square root comes from
    ``eigh`` instead. Either way: symmetric eigendecompositions rather than a general ``sqrtm``,
    faster and real-valued; eigenvalues a rounding error below 0 are clipped to 0.
    """
    try:  # positive definite S1 = L L^T: eig(S1 S2) = eig(L^T S2 L), one eigvalsh (about 2x faster)
        root = np.linalg.cholesky(s1)
        m = root.T @ s2 @ root
    except np.linalg.LinAlgError:  # singular S1 (fewer samples than dimensions, dead features)
        w, v = np.linalg.eigh(s1)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        m = root @ s2 @ root
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2))


def frechet_between(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between two (N, D) feature sets."""
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def fid_score(inp) -> dict:
    """``fid`` for ``gancli evaluate`` (``catalog``): the Fréchet distance between the real
    side's Gaussian fit and one of the generated features (Heusel et al. 2017, eq. 6)."""
    mu, sigma = feature_stats(inp.fake_features)
    return {"fid": frechet_distance(inp.real_side["mu"], inp.real_side["sigma"], mu, sigma)}
