"""The evaluator behind ``gancli evaluate``: sources in, numbers out.

Feature metrics (fid, kid, is, prdc) share one pass of the feature extractor per side; the
real side's features and statistics are cached under ``$GANCLI_CACHE/eval-stats`` (keyed by
the data's identity, the sample count, the extractor and the SHA-256 of its weights), so a
second evaluation against the same real data skips it. Sample metrics (modes, tstr, digits)
work on the generated samples themselves. ``seeds`` repeats everything on the generated side
per generation seed; the result holds each number per seed, and their mean and std.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from gancli.errors import GancliError
from gancli.fileio import atomic_write_bytes
from gancli.metrics import frechet, scores
from gancli.metrics.sources import Source
from gancli.registry import METRICS

CACHE_FORMAT = "gancli-eval-stats/1"
FEATURE_METRICS = ("fid", "kid", "is", "prdc")
SAMPLE_METRICS = ("modes", "tstr", "digits")
ALL_METRICS = FEATURE_METRICS + SAMPLE_METRICS
DEFAULT_N = 10_000
MODES_N = 2_500  # the PacGAN protocol
TSTR_MAX = 1_297  # tstr_digits trains on at most as many fakes as there are real training digits
# with the digits extractor the numbers are not "Inception" ones: they get their own names
DIGITS_NAMES = {"fid": "fd_digits", "kid": "kd_digits", "kid_std": "kd_digits_std",
                "is": "cs_digits", "is_std": "cs_digits_std"}

# registered so `METRICS.names()` lists everything evaluate can compute
METRICS.register("fid", frechet.frechet_between, kind="features",
                 summary="Fréchet distance of Gaussian fits to features (FID on Inception pool_3)")
METRICS.register("kid", scores.kid, kind="features",
                 summary="kernel distance: unbiased polynomial MMD^2, 100 subsets x 1000")
METRICS.register("is", scores.inception_score, kind="features",
                 summary="Inception Score, 10 splits, logits without bias")
METRICS.register("prdc", scores.prdc, kind="features",
                 summary="precision/recall (k=3) and density/coverage (k=5) on the same features")


def _tstr(*args, **kwargs):
    from gancli.metrics.tstr import tstr_digits

    return tstr_digits(*args, **kwargs)


METRICS.register("tstr", _tstr, kind="conditional",
                 summary="train on synthetic, test on real held-out digits, next to TRTR")


@dataclass
class Settings:
    n: int | None = None
    n_real: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    batch_size: int = 64
    features: str = "inception"
    weights: str | None = None
    download: bool = False
    truncation: float = 1.0
    threshold: float | None = None  # BigGAN's truncation: latent values beyond it redrawn
    tstr_epochs: int = 30
    cache: bool = True


def check_metrics(names: list[str]) -> list[str]:
    out = []
    for name in names:
        for part in name.replace(",", " ").split():
            part = part.strip().lower()
            METRICS.get(part)  # an unknown name: error listing the known ones
            if part not in out:
                out.append(part)
    if not out:
        raise GancliError("no metric given", hint=f"metrics: {', '.join(ALL_METRICS)}")
    return out


def _log(progress: Callable[[str], None] | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


def cache_dir():
    from gancli.data import cache_dir as root

    return root() / "eval-stats"


def cache_key(source: Source, n: int, extractor) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, "data": source.identity, "n": n,
                       "extractor": extractor.name, "weights_sha256": extractor.sha256})
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def write_stats(path, features: np.ndarray, meta: dict) -> None:
    """An ``.npz``: ``features`` (float32), ``mu``/``sigma`` (float64), ``meta`` (JSON text); no pickle."""
    mu, sigma = frechet.feature_stats(features)
    buf = io.BytesIO()
    np.savez(buf, features=features.astype(np.float32), mu=mu, sigma=sigma,
             meta=np.array(json.dumps(meta)))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def read_stats(path) -> dict | None:
    """A cached statistics file, checked like a user's (``stats_from_arrays``); None when it is
    absent, damaged or of another format: a miss, and it gets rewritten."""
    from gancli.metrics.sources import stats_from_arrays

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        stats = stats_from_arrays(arrays, path)
    except Exception:  # noqa: BLE001 - not a zip, truncated, wrong arrays: decode again
        return None
    if stats["meta"].get("format") != CACHE_FORMAT or "features" not in stats:
        return None
    return {k: stats[k] for k in ("features", "mu", "sigma", "meta")}


def extract(source: Source, n: int, extractor, settings: Settings, gen_seed: int = 0,
            logits: bool = False):
    """(features, logits or None) of ``n`` samples of ``source``, batch by batch."""
    feats, logs = [], []
    for x, _ in source.batches(n, settings.batch_size, gen_seed, settings.truncation,
                                settings.threshold):
        f, lg = extractor.run(x)
        feats.append(f)
        if logits:
            logs.append(lg)
    return np.concatenate(feats), (np.concatenate(logs) if logits else None)


def check_stats(src: Source, extractor) -> None:
    """A statistics file must come from the same extractor and weights (when it says which)."""
    ex = (src.stats.get("meta") or {}).get("extractor")
    if ex and (ex.get("name") != extractor.name or ex.get("sha256") != extractor.sha256):
        raise GancliError(f"{src.spec} was computed with {ex.get('name')} (weights "
                          f"{str(ex.get('sha256'))[:12]}...), not {extractor.name} "
                          f"({extractor.sha256[:12]}...)",
                          hint="use the same --features/--weights, or recompute the statistics")
    if len(src.stats["mu"]) != extractor.dim:
        raise GancliError(f"{src.spec} holds {len(src.stats['mu'])}-d statistics, {extractor.name} "
                          f"features are {extractor.dim}-d", hint="use matching --features")


def real_features(real: Source, n_real: int | None, extractor, settings: Settings, progress=None):
    """Real-side features (and stats) from a stats file, the cache, or a fresh pass (then cached)."""
    if real.kind == "stats":
        check_stats(real, extractor)
        return {**real.stats, "cache": "file", "count": real.available}
    n = n_real or real.available
    if n is None:
        raise GancliError(f"how many real samples to draw from {real.spec}?", hint="pass --n-real N")
    path = cache_dir() / f"{cache_key(real, n, extractor)}.npz"
    if settings.cache and path.is_file():
        hit = read_stats(path)
        if hit is not None:
            _log(progress, f"real: {real.spec}, {n} samples: cached statistics {path}")
            return {**hit, "cache": "hit", "cache_file": str(path), "count": n}
    _log(progress, f"real: {real.spec}: features of {n} samples ({extractor.name})")
    feats, _ = extract(real, n, extractor, settings)
    mu, sigma = frechet.feature_stats(feats)
    out = {"features": feats, "mu": mu, "sigma": sigma, "count": n, "cache": "off"}
    if settings.cache:
        meta = {"format": CACHE_FORMAT, "data": real.identity, "spec": real.spec, "count": n,
                "extractor": extractor.info()}
        try:
            write_stats(path, feats, meta)
            out.update(cache="miss", cache_file=str(path))
        except OSError as e:  # a read-only cache is not fatal
            out.update(cache="error", cache_error=str(e))
    return out


def feature_scores(metrics: list[str], real: dict | None, fake_feats: np.ndarray,
                   fake_logits: np.ndarray | None) -> dict:
    out: dict = {}
    if "fid" in metrics:
        mu, sigma = frechet.feature_stats(fake_feats)
        out["fid"] = frechet.frechet_distance(real["mu"], real["sigma"], mu, sigma)
    if "kid" in metrics:
        k = scores.kid(real["features"], fake_feats)
        out.update(kid=k["kid"], kid_std=k["kid_std"])
    if "is" in metrics:
        s = scores.inception_score(fake_logits)
        out.update({"is": s["is"], "is_std": s["is_std"]})
    if "prdc" in metrics:
        p = scores.prdc(real["features"], fake_feats)
        out.update({k: p[k] for k in ("precision", "recall", "density", "coverage")})
    return out


def _fake_images_and_labels(fake: Source, n: int, settings: Settings, gen_seed: int,
                            held: dict | None = None):
    """``n`` samples (and labels) held in memory. A model's sample i is the same whatever ``n``
    (seed ``gen_seed * 1e6 + i``, label ``i mod classes``), so with ``held`` (one dict per
    generation seed, filled at the largest count first) the metrics that hold samples share
    one generation pass instead of each generating its own."""
    if held is not None and fake.kind == "generator" and held.get("n", 0) >= n:
        x, y = held["x"][:n], held["y"]
        return x, (y[:n] if y is not None else None)
    xs, ys = [], []
    for x, y in fake.batches(n, settings.batch_size, gen_seed, settings.truncation,
                              settings.threshold):
        xs.append(x)
        if y is not None:
            ys.append(y)
    x, y = torch.cat(xs), (torch.cat(ys) if ys else None)
    if held is not None and fake.kind == "generator":
        held.update(n=n, x=x, y=y)
    return x, y


def modes_score(fake: Source, real: Source | None, n: int, settings: Settings, gen_seed: int,
                held: dict | None = None) -> dict:
    from gancli.metrics.toy import mode_coverage

    modes, sigma = (real.modes, real.sigma) if real is not None and real.modes is not None else \
        (fake.modes, fake.sigma)
    if modes is None or sigma is None:
        raise GancliError("modes needs a Gaussian-mixture reference (toy:grid25, toy:ring8)",
                          hint="pass --real toy:grid25 (or the mixture the model was trained on)")
    if fake.sample_kind != "points":
        raise GancliError("modes needs 2-D points", hint=f"{fake.spec} holds {fake.sample_kind}")
    pts, _ = _fake_images_and_labels(fake, n, settings, gen_seed, held)
    r = mode_coverage(pts, torch.as_tensor(modes, dtype=torch.float32), float(sigma))
    return {"modes": r["modes"], "modes_total": r["modes_total"], "high_quality": r["high_quality"],
            "reverse_kl": r["reverse_kl"]}


def tstr_score(fake: Source, n: int, settings: Settings, gen_seed: int,
               held: dict | None = None) -> dict:
    from gancli.metrics.tstr import tstr_digits

    if fake.kind == "generator":
        m = fake.model
        if not m.conditional:
            raise GancliError("tstr needs a class-conditional model (cgan, acgan, adcgan)",
                              hint=f"{fake.spec} is {m.cfg.name} ({m.cfg.objective})")
        if m.data.get("name") != "digits" or len(m.classes) != 10:
            raise GancliError("tstr tests on the held-out real digits: the model must be trained on digits",
                              hint=f"{fake.spec} was trained on {m.data.get('name')}")
    elif fake.y is None:
        raise GancliError(f"tstr needs labelled samples; {fake.spec} has no labels",
                          hint="sample a conditional model to an .npz (it stores `labels`)")
    x, y = _fake_images_and_labels(fake, min(n, TSTR_MAX), settings, gen_seed, held)
    r = tstr_digits(x, y, seed=gen_seed, epochs=settings.tstr_epochs)
    return {"tstr": r["tstr"], "trtr": r["trtr"], "tstr_gap": r["gap"],
            "tstr_train_samples": r["train_samples"], "tstr_test_samples": r["test_samples"]}


def digits_score(fake: Source, n: int, settings: Settings, gen_seed: int,
                 held: dict | None = None) -> dict:
    from gancli.metrics.digits import digit_scores

    if fake.sample_kind != "images":
        raise GancliError("the digits score needs images", hint=f"{fake.spec} holds {fake.sample_kind}")
    x, _ = _fake_images_and_labels(fake, n, settings, gen_seed, held)
    r = digit_scores(x)
    return {"digits_confident": r["confident"], "digits_evenness": r["class_evenness"],
            "digits_classes_present": r["classes_present"]}


def summarise(per_seed: list[dict]) -> dict:
    """{name: {mean, std (sample std over seeds, None for one seed), per_seed}}."""
    out = {}
    for key in per_seed[0]:
        vals = [float(r[key]) for r in per_seed]
        finite = [v for v in vals if math.isfinite(v)]
        mean = float(np.mean(vals)) if len(finite) == len(vals) else float("inf")
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 and len(finite) == len(vals) else None
        out[key] = {"mean": mean, "std": std, "per_seed": vals}
    return out


def evaluate(metrics: list[str], real: Source | None, fake: Source, settings: Settings,
             device: torch.device, progress: Callable[[str], None] | None = None) -> dict:
    metrics = check_metrics(metrics)
    feature_metrics = [m for m in metrics if m in FEATURE_METRICS]
    only_points = all(m == "modes" for m in metrics)
    n = settings.n or (MODES_N if only_points else DEFAULT_N)
    notes: list[str] = []
    if fake.kind == "stats":
        if metrics != ["fid"] and not (fake.stats.get("features") is not None
                                       and set(metrics) <= {"fid", "kid", "prdc"}):
            raise GancliError(f"--fake {fake.spec} holds statistics: only fid (and kid/prdc when it "
                              "stores features) can use it", hint="give samples, a folder or a model")
        if len(settings.seeds) > 1:
            raise GancliError("--seeds needs generated samples, not a statistics file", hint="drop --seeds")
    if fake.kind in ("images", "points") and settings.n is None:
        n = min(n, len(fake.x))
    if fake.kind in ("images", "points") and len(settings.seeds) > 1 and n >= len(fake.x):
        raise GancliError(f"--seeds on {fake.spec} would pick the same {len(fake.x)} samples every time",
                          hint="use --n smaller than the data, or a model as --fake")

    extractor = None
    real_side = None
    if feature_metrics:
        from gancli.metrics.features import load_extractor

        if fake.sample_kind == "points":
            raise GancliError(f"{', '.join(feature_metrics)} need images; {fake.spec} holds 2-D points",
                              hint="for 2-D data use: gancli evaluate modes ...")
        extractor = load_extractor(settings.features, device, settings.weights, settings.download)
        if fake.kind == "stats":
            check_stats(fake, extractor)
        needs_real = [m for m in feature_metrics if m != "is"]
        if needs_real:
            if real is None:
                raise GancliError(f"{', '.join(needs_real)} need --real", hint="for example --real digits")
            if real.kind == "stats" and real.stats.get("features") is None and \
                    any(m in ("kid", "prdc") for m in needs_real):
                raise GancliError(f"{real.spec} holds only mu/sigma: kid and prdc need features",
                                  hint="use the real data itself (its features are cached after one run)")
            if real.sample_kind == "points":
                raise GancliError(f"{real.spec} holds 2-D points, not images", hint="use --real with images")
            n_real = settings.n_real or (n if real.kind == "generator" else None)
            real_side = real_features(real, n_real, extractor, settings, progress)
        if "is" in metrics and fake.kind == "stats":
            raise GancliError("is needs generated samples", hint="give samples, a folder or a model")

    per_seed = []
    for s in settings.seeds:
        row: dict = {}
        if feature_metrics:
            if fake.kind == "stats":
                fake_feats, fake_logits = fake.stats.get("features"), None
                if metrics == ["fid"]:
                    row["fid"] = frechet.frechet_distance(real_side["mu"], real_side["sigma"],
                                                          fake.stats["mu"], fake.stats["sigma"])
                    per_seed.append(row)
                    continue
            else:
                _log(progress, f"fake: {fake.spec}: features of {n} samples (seed {s})")
                fake_feats, fake_logits = extract(fake, n, extractor, settings, s, logits="is" in metrics)
            row.update(feature_scores(feature_metrics, real_side, fake_feats, fake_logits))
        held: dict = {}  # this seed's samples, generated once for modes / digits / tstr
        if "modes" in metrics:
            row.update(modes_score(fake, real, n, settings, s, held))
        if "digits" in metrics:  # before tstr: it holds the larger count, tstr reuses a prefix
            row.update(digits_score(fake, n, settings, s, held))
        if "tstr" in metrics:
            _log(progress, f"tstr: training a classifier on generated digits (seed {s})")
            row.update(tstr_score(fake, n, settings, s, held))
        if extractor is not None and extractor.name == "digits":
            row = {DIGITS_NAMES.get(k, k): v for k, v in row.items()}
        per_seed.append(row)

    if "tstr" in metrics and fake.kind == "generator":
        from gancli.metrics.tstr import held_out_note

        notes += filter(None, [held_out_note(fake.model.cfg.data.source)])
    kid_size = min(scores.KID_SUBSET_SIZE, n, (real_side or {}).get("count") or n)
    if "kid" in metrics and kid_size < scores.KID_SUBSET_SIZE:
        notes.append(f"KID subsets hold {kid_size} samples (fewer than 1000 available)")
    smallest = min(n, (real_side or {}).get("count") or n)
    if "fid" in metrics and smallest < 2048 and settings.features == "inception":
        notes.append("fewer than 2048 samples on a side: the 2048-d covariance is singular and FID is "
                     "biased upward; papers use 50,000")
    fake_count = fake.available if fake.kind == "stats" else n
    result = {
        "metrics": metrics,
        "values": summarise(per_seed),
        "samples": {"fake": fake_count, "real": (real_side or {}).get("count")},
        "seeds": settings.seeds,
        "features": extractor.info() if extractor is not None else None,
        "settings": {"kid_subsets": scores.KID_SUBSETS, "kid_subset_size": kid_size if "kid" in metrics
                     else scores.KID_SUBSET_SIZE, "is_splits": scores.IS_SPLITS, "pr_k": scores.PR_K,
                     "dc_k": scores.DC_K, "rng_seed": scores.RNG_SEED, "truncation": settings.truncation,
                     "truncation_threshold": settings.threshold},
        "fake": fake.describe(),
        "real": {**real.describe(), "cache": (real_side or {}).get("cache"),
                 "cache_file": (real_side or {}).get("cache_file")} if real is not None else None,
        "notes": notes,
    }
    return result
