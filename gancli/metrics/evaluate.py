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
from gancli.metrics.catalog import Metric, MetricInputs, check_metrics, metrics as all_metrics
from gancli.metrics.sources import Source

CACHE_FORMAT = "gancli-eval-stats/1"


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


def held_samples(fake: Source, n: int, settings: Settings, gen_seed: int,
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
    """Compute ``metrics`` (names) of ``fake`` against ``real`` for every seed of
    ``settings.seeds``: {"metrics", "values": {key: {mean, std, per_seed}}, "samples", "seeds",
    "features", "settings", "fake", "real", "notes"}. What each metric needs and how it is
    computed comes from its registration (``gancli.metrics.catalog``). Errors: ``GancliError``
    (a metric this input cannot give), ``ValueError`` (too few samples for a metric)."""
    asked = check_metrics(metrics)
    names = [m.name for m in asked]
    run = [m for m in all_metrics() if m in asked]  # evaluation order: the registry's
    on_features = [m for m in run if m.uses_features]
    n = settings.n or max(m.default_n for m in run)
    check_inputs(run, real, fake, settings, n)
    if fake.kind in ("images", "points") and settings.n is None:
        n = min(n, len(fake.x))

    extractor, real_side = None, None
    if on_features:
        from gancli.metrics.features import load_extractor

        extractor = load_extractor(settings.features, device, settings.weights, settings.download)
        if fake.kind == "stats":
            check_stats(fake, extractor)
        if any(m.real == "required" for m in on_features):
            n_real = settings.n_real or (n if real.kind == "generator" else None)
            real_side = real_features(real, n_real, extractor, settings, progress)

    per_seed = [score_seed(run, real, fake, settings, n, s, extractor, real_side, progress)
                for s in settings.seeds]
    return {
        "metrics": names,
        "values": summarise(per_seed),
        "samples": {"fake": fake.available if fake.kind == "stats" else n,
                    "real": (real_side or {}).get("count")},
        "seeds": settings.seeds,
        "features": extractor.info() if extractor is not None else None,
        "settings": {"kid_subsets": scores.KID_SUBSETS,
                     "kid_subset_size": kid_subset_size(names, n, real_side),
                     "is_splits": scores.IS_SPLITS, "pr_k": scores.PR_K,
                     "dc_k": scores.DC_K, "rng_seed": scores.RNG_SEED, "truncation": settings.truncation,
                     "truncation_threshold": settings.threshold},
        "fake": fake.describe(),
        "real": {**real.describe(), "cache": (real_side or {}).get("cache"),
                 "cache_file": (real_side or {}).get("cache_file")} if real is not None else None,
        "notes": notes(names, fake, settings, n, real_side),
    }


def check_inputs(run: list[Metric], real: Source | None, fake: Source, settings: Settings,
                 n: int) -> None:
    """Refuse, before any work, what the requested metrics cannot get from these sources."""
    needs = {m.needs for m in run}
    on_features = [m for m in run if m.uses_features]
    if fake.kind == "stats":
        if not needs <= {"moments", "features"} or (
                needs != {"moments"} and fake.stats.get("features") is None):
            raise GancliError(f"--fake {fake.spec} holds statistics: only fid (and kid/prdc when it "
                              "stores features) can use it", hint="give samples, a folder or a model")
        if len(settings.seeds) > 1:
            raise GancliError("--seeds needs generated samples, not a statistics file", hint="drop --seeds")
    if fake.kind in ("images", "points") and len(settings.seeds) > 1 and \
            (n if settings.n is not None else min(n, len(fake.x))) >= len(fake.x):
        raise GancliError(f"--seeds on {fake.spec} would pick the same {len(fake.x)} samples every time",
                          hint="use --n smaller than the data, or a model as --fake")
    if not on_features:
        return
    if fake.sample_kind == "points":
        raise GancliError(f"{', '.join(m.name for m in on_features)} need images; {fake.spec} holds "
                          "2-D points", hint="for 2-D data use: gancli evaluate modes ...")
    need_real = [m for m in on_features if m.real == "required"]
    if need_real:
        if real is None:
            raise GancliError(f"{', '.join(m.name for m in need_real)} need --real",
                              hint="for example --real digits")
        if real.kind == "stats" and real.stats.get("features") is None and \
                any(m.needs == "features" for m in need_real):
            raise GancliError(f"{real.spec} holds only mu/sigma: kid and prdc need features",
                              hint="use the real data itself (its features are cached after one run)")
        if real.sample_kind == "points":
            raise GancliError(f"{real.spec} holds 2-D points, not images", hint="use --real with images")
    if "logits" in needs and fake.kind == "stats":
        raise GancliError("is needs generated samples", hint="give samples, a folder or a model")


def score_seed(run: list[Metric], real: Source | None, fake: Source, settings: Settings, n: int,
               seed: int, extractor, real_side: dict | None, progress) -> dict:
    """Every requested metric for one generation seed: {key: number}."""
    inp = MetricInputs(fake, real, n, seed, settings, real_side=real_side, progress=progress)
    if any(m.uses_features for m in run):
        if fake.kind != "stats":
            _log(progress, f"fake: {fake.spec}: features of {n} samples (seed {seed})")
            inp.fake_features, inp.fake_logits = extract(
                fake, n, extractor, settings, seed, logits=any(m.needs == "logits" for m in run))
        elif [m.name for m in run] == ["fid"]:  # the file's own mean and covariance
            return {"fid": frechet.frechet_distance(real_side["mu"], real_side["sigma"],
                                                    fake.stats["mu"], fake.stats["sigma"])}
        else:
            inp.fake_features = fake.stats.get("features")
    held: dict = {}  # this seed's samples, generated once for the metrics that hold samples

    def samples(k: int):
        return held_samples(fake, k, settings, seed, held)

    inp.samples = samples
    row: dict = {}
    for metric in run:
        row.update(metric.function()(inp))
    if extractor is not None and extractor.name == "digits":
        renamed = {k: v for m in run for k, v in m.digits_keys.items()}
        row = {renamed.get(k, k): v for k, v in row.items()}
    return row


def kid_subset_size(names: list[str], n: int, real_side: dict | None) -> int:
    """The subset size KID used (smaller than 1000 with fewer samples), for the report."""
    size = min(scores.KID_SUBSET_SIZE, n, (real_side or {}).get("count") or n)
    return size if "kid" in names else scores.KID_SUBSET_SIZE


def notes(names: list[str], fake: Source, settings: Settings, n: int,
          real_side: dict | None) -> list[str]:
    """What a reader of the numbers should know: held-out data, small KID subsets, FID bias."""
    out: list[str] = []
    if "tstr" in names and fake.kind == "generator":
        from gancli.metrics.tstr import held_out_note

        out += filter(None, [held_out_note(fake.model.cfg.data.source)])
    kid_size = min(scores.KID_SUBSET_SIZE, n, (real_side or {}).get("count") or n)
    if "kid" in names and kid_size < scores.KID_SUBSET_SIZE:
        out.append(f"KID subsets hold {kid_size} samples (fewer than 1000 available)")
    smallest = min(n, (real_side or {}).get("count") or n)
    if "fid" in names and smallest < 2048 and settings.features == "inception":
        out.append("fewer than 2048 samples on a side: the 2048-d covariance is singular and FID is "
                   "biased upward; papers use 50,000")
    return out
