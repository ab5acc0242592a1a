"""The Fréchet distance between two Gaussians fitted to feature sets (Heusel et al. 2017).

    d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

FID is this distance on Inception features; the same formula on any fixed network's
features (our digits or shapes classifiers) gives a cheap offline quality number. Statistics
are computed in float64 and the matrix square root with ``scipy.linalg.sqrtm``; a tiny
imaginary part from rounding is dropped, and a singular product is nudged with eps * I, as
the reference implementations do.
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


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray,
                     eps: float = 1e-6) -> float:
    from scipy import linalg

    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def frechet_between(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between two (N, D) feature sets."""
    return frechet_distance(*feature_stats(a), *feature_stats(b))
