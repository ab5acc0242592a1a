"""Paired metrics: a translation model's outputs against the true targets of a paired test set.

- ``l1``: mean absolute difference per pixel and channel, images in [0, 1] (0 = identical).
- ``psnr``: peak signal-to-noise ratio in dB, 10 log10(1 / MSE) over the whole set at data
  range 1 (torchmetrics' ``peak_signal_noise_ratio`` with its default reduction: one MSE over
  every pixel of every image); +inf when outputs and targets are identical (JSON: null).
- ``ssim``: structural similarity (Wang et al. 2004, eq. 13) with the paper's constants
  K1 = 0.01, K2 = 0.03, an 11x11 Gaussian window of sigma 1.5, data range 1, averaged over
  the images (torchmetrics' ``structural_similarity_index_measure``); images smaller than the
  window use the largest odd window that fits, with sigma = (window - 1) / 7.
- ``fid`` / ``kid`` of the outputs against the real targets, in the feature space
  ``--features`` picks (computed by ``gancli.metrics.frechet`` / ``scores``).

SSIM and PSNR come from torchmetrics (Lightning AI; >= 1.0): it computes them batched on
torch tensors on the model's device, is tested against scikit-image's reference
implementation, and costs one small pure-Python package next to torch (scikit-image would
bring its own compiled stack). It is an optional extra: ``pip install 'gancli[paired]'``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gancli.errors import GancliError

SSIM_WINDOW = 11  # Wang et al. 2004: an 11x11 circular-symmetric Gaussian, sigma 1.5
SSIM_SIGMA = 1.5
PAIRED_METRICS = ("l1", "psnr", "ssim")


def _torchmetrics():
    try:
        from torchmetrics.functional.image import (peak_signal_noise_ratio,
                                                   structural_similarity_index_measure)
    except ImportError:
        raise GancliError("psnr and ssim need torchmetrics, which is not installed",
                          hint="pip install 'gancli[paired]' (or pip install torchmetrics); l1, fid "
                               "and kid work without it") from None
    return peak_signal_noise_ratio, structural_similarity_index_measure


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images as float64 in [0, 1]: uint8 0..255, or float in [-1, 1] (a generator's range)."""
    if x.dtype == torch.uint8:
        return x.double() / 255.0
    return ((x.double().clamp(-1, 1)) + 1.0) / 2.0


def ssim_window(h: int, w: int) -> int:
    """The SSIM window: 11, or the largest odd size that fits an image smaller than that."""
    side = min(h, w, SSIM_WINDOW)
    return side if side % 2 else side - 1


def paired_scores(outputs: torch.Tensor, targets: torch.Tensor,
                  metrics: tuple[str, ...] = PAIRED_METRICS) -> dict[str, float]:
    """``metrics`` of ``outputs`` against ``targets``, both (N, C, H, W), uint8 or float in [-1, 1].

    Returns {"l1": float in [0, 1], "psnr": dB (inf when identical), "ssim": in [-1, 1]},
    only the names asked for. Raises ValueError when the shapes differ or N is 0."""
    if outputs.shape != targets.shape or outputs.ndim != 4 or len(outputs) == 0:
        raise ValueError(f"outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} must be "
                         "the same (N, C, H, W), N >= 1")
    p, t = to_unit(outputs), to_unit(targets)
    out: dict[str, float] = {}
    if "l1" in metrics:
        out["l1"] = float((p - t).abs().mean())
    if "psnr" in metrics or "ssim" in metrics:
        psnr_fn, ssim_fn = _torchmetrics()
        if "psnr" in metrics:
            mse = float(((p - t) ** 2).mean())
            out["psnr"] = math.inf if mse == 0 else float(psnr_fn(p, t, data_range=1.0))
        if "ssim" in metrics:
            k = ssim_window(*p.shape[-2:])
            if k < 3:
                raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {tuple(p.shape[-2:])}")
            # torchmetrics sizes a Gaussian window from sigma (2 int(3.5 sigma + 0.5) + 1 = 11
            # at 1.5): a smaller window needs the sigma that gives it
            sigma = SSIM_SIGMA if k == SSIM_WINDOW else (k - 1) / 2 / 3.5
            out["ssim"] = float(ssim_fn(p, t, data_range=1.0, kernel_size=k, sigma=sigma,
                                        k1=0.01, k2=0.03))
    return out


def is_paired_model(spec: str) -> bool:
    """Whether ``spec`` names a run folder or checkpoint of a paired (pix2pix) model; False for
    anything else (which the ordinary evaluation then reads or refuses)."""
    from gancli import checkpoints
    from gancli.registry import OBJECTIVES

    try:
        meta = checkpoints.load(checkpoints.resolve(spec), tensors=False).meta
        objective = (meta.get("config") or {}).get("objective")
        return (isinstance(objective, str) and objective in OBJECTIVES
                and OBJECTIVES.get(objective).conditioning.paired)
    except Exception:  # noqa: BLE001 - not a readable checkpoint: not ours to judge here
        return False


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def evaluate_paired(metrics: list[str], fake_spec: str, real_spec: str | None, settings,
                    device: torch.device, progress=None) -> dict:
    """``gancli evaluate l1 psnr ssim fid kid --fake PIX2PIX_RUN [--real PAIRED_DATA]``.

    The paired test set is ``--real`` (a paired folder or built-in), else the model's training
    data; its held-out pairs (``test/``, ``testA/``+``testB/``, the built-in's held-out digits)
    when it has them, else all its pairs (said in a note). Inputs are translated by the model
    at its training resolution (dropout as the model says, masks seeded per generation seed and
    batch); fid/kid compare the outputs' features with the targets' (``settings.features``).
    Returns the same result layout as ``gancli.metrics.evaluate.evaluate``.
    """
    from gancli.imaging import from_uint8
    from gancli.metrics import scores
    from gancli.metrics.evaluate import summarise

    tr = _load_paired_model(metrics, fake_spec, device)
    pairs, source, split, notes = _paired_test_set(tr, real_spec, settings.n, progress)
    n = len(pairs)
    x = from_uint8(pairs[:, 0])
    y = pairs[:, 1]
    names = [m for m in metrics if m in PAIRED_METRICS]
    feature_metrics = [m for m in metrics if m in ("fid", "kid")]
    extractor = real_feats = None
    if feature_metrics:
        from gancli.metrics.features import load_extractor

        extractor = load_extractor(settings.features, device, settings.weights, settings.download)
        real_feats = np.concatenate([extractor.run(b)[0] for b in y.split(settings.batch_size)])
    per_seed = []
    for s in settings.seeds:
        if progress:
            progress(f"translating {n} held-out inputs (seed {s})")
        outs = torch.cat([tr(b, seed=s * 1_000_003 + i)
                          for i, b in enumerate(x.split(settings.batch_size))])
        row: dict = paired_scores(outs, y, tuple(names)) if names else {}
        if extractor is not None:
            row.update(_feature_scores(extractor, real_feats, outs, feature_metrics,
                                       settings.batch_size))
        per_seed.append(row)
    if "kid" in feature_metrics and n < scores.KID_SUBSET_SIZE:
        notes.append(f"KID subsets hold {n} samples (fewer than 1000 available)")
    dropout = tr.model.G.test_dropout
    return {
        "metrics": metrics,
        "values": summarise(per_seed),
        "samples": {"fake": n, "real": n},
        "seeds": settings.seeds,
        "features": extractor.info() if extractor is not None else None,
        "settings": {"ssim_window": ssim_window(*y.shape[-2:]), "data_range": 1.0,
                     "dropout": dropout},
        "fake": {"spec": fake_spec, "kind": "paired model", "direction": tr.direction,
                 "checkpoint": str(tr.model.path), "step": tr.model.step},
        "real": {"spec": source, "pairs": n, "split": split},
        "notes": notes,
    }


def _load_paired_model(metrics: list[str], fake_spec: str, device: torch.device):
    """The ``Translator`` of a paired (pix2pix) run or checkpoint; GancliError for a metric
    that cannot score one, or for a model that is not paired."""
    from gancli.inference import load_translator

    allowed = PAIRED_METRICS + ("fid", "kid")
    other = [m for m in metrics if m not in allowed]
    if other:
        raise GancliError(f"{', '.join(other)} cannot score a paired translation model",
                          hint=f"for pix2pix use: {', '.join(allowed)}")
    tr = load_translator(fake_spec, device)
    if tr.kind != "paired":
        raise GancliError(f"{', '.join(m for m in metrics if m in PAIRED_METRICS)} compare a paired "
                          f"(pix2pix) model's outputs with their targets; {fake_spec} is a "
                          f"{tr.model.cfg.name} model", hint="translate with it: gancli translate")
    return tr


def _paired_test_set(tr, real_spec: str | None, limit: int | None,
                     progress=None) -> tuple[torch.Tensor, str, str, list[str]]:
    """The pairs a paired model is scored on: uint8 ``(N, 2, C, H, W)`` at the model's
    training resolution and channels, at most ``limit`` (None or 0 = all), from ``real_spec``
    or else the model's training data; its held-out pairs where it has them. Returns (pairs,
    source, "held-out" | "all", notes). Raises GancliError when the data set is not paired."""
    from dataclasses import replace

    from gancli.data import load_dataset

    data_cfg = replace(tr.model.cfg.data, channels=tr.channels,
                       **({"source": real_spec} if real_spec else {}))
    if progress:
        progress(f"paired test set: {data_cfg.source}")
    ds = load_dataset(data_cfg, 0, "translation")
    if ds.kind != "pairs" or not ds.info.get("paired"):
        raise GancliError(f"{data_cfg.source} is not a paired data set",
                          hint="give --real a folder with train/ (A|B) or A/ and B/, or a paired built-in")
    notes: list[str] = []
    pairs, split = (ds.test, "held-out") if ds.test is not None else (ds.x, "all")
    if ds.test is None:
        notes.append(f"{data_cfg.source} has no held-out pairs: scored on all {len(ds.x)} of its pairs")
    n = min(limit or len(pairs), len(pairs))
    # a folder's training pairs are read from its store on demand: read the n scored, then crop
    return ds.fit(pairs[:n]), data_cfg.source, split, notes


def _feature_scores(extractor, real_feats: np.ndarray, outs: torch.Tensor,
                    feature_metrics: list[str], batch_size: int) -> dict:
    """FID and/or KID of translations ``outs`` (float in [-1, 1]) against the targets'
    features ``real_feats``; keys renamed as the catalog says for the digits features."""
    from gancli.metrics import frechet, scores
    from gancli.metrics.catalog import METRICS

    fake_feats = np.concatenate([extractor.run(_to_uint8(b))[0] for b in outs.split(batch_size)])
    row: dict = {}
    if "fid" in feature_metrics:
        row["fid"] = frechet.frechet_between(real_feats, fake_feats)
    if "kid" in feature_metrics:
        k = scores.kid(real_feats, fake_feats)
        row.update(kid=k["kid"], kid_std=k["kid_std"])
    if extractor.name == "digits":
        renamed = {k: v for name in feature_metrics
                   for k, v in METRICS.get(name).digits_keys.items()}
        row = {renamed.get(k, k): v for k, v in row.items()}
    return row
