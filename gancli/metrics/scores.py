"""Sample-quality scores as pure functions of features: KID, IS, precision/recall, density/coverage.

FID is ``gancli.metrics.frechet`` (float64 statistics, symmetric eigendecompositions).
KID and IS call torch-fidelity's own functions (the MMD-GAN polynomial-kernel estimator and
the improved-gan split protocol), so their maths is the reference's, not a re-write:

- KID: kernel ``(x.y / d + 1)^3``, unbiased MMD^2, ``subsets`` random subsets of
  ``subset_size`` per side (100 x 1000; with fewer samples the subset size drops to the smaller
  set's size, and the result says so), ``numpy.random.RandomState(seed)``, seed 2020 as in
  torch-fidelity. Features go in as float64.
- IS: ``exp(E KL(p(y|x) || p(y)))`` per split, 10 splits of a seeded shuffle (torch-fidelity's
  default, seed 2020), mean and population std over splits, softmax in float64.

Precision/recall (Kynkäänniemi et al. 2019, k = 3, ``<=``) and density/coverage (Naeem et al.
2020, k = 5, strict ``<`` as in clovaai's prdc) are ours: torch-fidelity has no density/coverage
and computes precision/recall on VGG-16 features; here all four share the FID features.
"""

from __future__ import annotations

import numpy as np
import torch

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10
RNG_SEED = 2020  # torch-fidelity's default for KID subsets and the IS shuffle
PR_K = 3
DC_K = 5


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = RNG_SEED) -> dict:
    """Kernel Inception Distance (Bińkowski et al. 2018): mean and std over subsets."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError("KID needs at least 2 samples per side")
    # torch-fidelity's order: features_1 = generated, features_2 = real
    out = kid_features_to_metric(torch.from_numpy(np.asarray(fake, np.float64)),
                                 torch.from_numpy(np.asarray(real, np.float64)),
                                 kid_subsets=subsets, kid_subset_size=size, rng_seed=seed,
                                 verbose=False)
    return {"kid": out["kernel_inception_distance_mean"], "kid_std": out["kernel_inception_distance_std"],
            "subsets": subsets, "subset_size": size, "subset_size_reduced": size < subset_size}


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS, seed: int = RNG_SEED) -> dict:
    """Inception Score from (N, K) logits (Inception: pool_3 . W without the bias)."""
    from torch_fidelity.metric_isc import isc_features_to_metric

    if len(logits) < splits:
        raise ValueError(f"IS with {splits} splits needs at least {splits} samples")
    out = isc_features_to_metric(torch.from_numpy(np.asarray(logits, np.float64)), splits=splits,
                                 shuffle=True, rng_seed=seed)
    return {"is": out["inception_score_mean"], "is_std": out["inception_score_std"], "splits": splits}


def _kth_self_distance(x: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself, at 0, is skipped)."""
    out = [torch.cdist(x[i:i + batch], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), batch)]
    return torch.cat(out)


def prdc(real: np.ndarray, fake: np.ndarray, pr_k: int = PR_K, dc_k: int = DC_K,
         batch: int = 1024) -> dict:
    """Precision, recall (k = ``pr_k``, ``<=``), density and coverage (k = ``dc_k``, ``<``).

    Precision: share of fakes inside some real sample's k-NN ball; recall: share of reals inside
    some fake's k-NN ball; density: (1/k) x mean count of real balls containing a fake (about 1
    when the distributions match); coverage: share of real balls holding at least one fake.
    Euclidean distances in float64, computed in blocks of ``batch`` rows.
    """
    r = torch.from_numpy(np.asarray(real, np.float64))
    f = torch.from_numpy(np.asarray(fake, np.float64))
    need = max(pr_k, dc_k) + 1
    if len(r) < need or len(f) < need:
        raise ValueError(f"precision/recall/density/coverage need at least {need} samples per side")
    r_pr, r_dc = _kth_self_distance(r, pr_k, batch), _kth_self_distance(r, dc_k, batch)
    f_pr = _kth_self_distance(f, pr_k, batch)
    precise = dense = 0.0
    recalled = torch.zeros(len(r), dtype=torch.bool)
    nearest_fake = torch.full((len(r),), float("inf"), dtype=torch.float64)
    for i in range(0, len(f), batch):
        d = torch.cdist(f[i:i + batch], r)  # (b, n_real)
        precise += float((d <= r_pr).any(1).sum())
        dense += float((d < r_dc).sum())
        recalled |= (d <= f_pr[i:i + batch, None]).any(0)
        nearest_fake = torch.minimum(nearest_fake, d.min(0).values)
    return {"precision": precise / len(f), "recall": float(recalled.double().mean()),
            "density": dense / (dc_k * len(f)), "coverage": float((nearest_fake < r_dc).double().mean()),
            "pr_k": pr_k, "dc_k": dc_k}


# -- as ``gancli evaluate`` calls them (``catalog``): MetricInputs in, named numbers out --------


def kid_score(inp) -> dict:
    k = kid(inp.real_side["features"], inp.fake_features)
    return {"kid": k["kid"], "kid_std": k["kid_std"]}


def is_score(inp) -> dict:
    s = inception_score(inp.fake_logits)
    return {"is": s["is"], "is_std": s["is_std"]}


def prdc_score(inp) -> dict:
    p = prdc(inp.real_side["features"], inp.fake_features)
    return {k: p[k] for k in ("precision", "recall", "density", "coverage")}
