"""Where ``gancli evaluate`` gets samples: one SPEC string -> one ``Source``.

A SPEC is, checked in this order:

- a run folder or ``.safetensors`` checkpoint: samples are generated on the fly, by seed, in
  batches (only features are kept); conditional models get balanced labels ``i % classes``;
- an ``.npz`` file: ``samples`` (as ``gancli sample --out x.npz`` writes: uint8 NHWC images or
  float (N, 2) points, optional ``labels``), or statistics ``mu`` and ``sigma`` (optional
  ``features`` and a JSON ``meta``; pytorch-fid's ``--save-stats`` files work for FID);
- an image folder (read through ``gancli.data``), at a working resolution chosen from every
  image's size (read from the headers only): the smallest short side, capped at the feature
  network's input size, never above any image (``--resolution`` overrides; it is required when
  some images are much smaller than the rest);
- a built-in dataset: ``digits``, ``shapes``, ``toy:grid25``, ``toy:ring8``, ...

Every source has an ``identity``: a string that changes when its content can change, used in
the statistics cache key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from gancli.errors import DataError, GancliError, UsageError
from gancli.fileio import sha256_file

# generation seed s draws sample seeds s * SEED_STRIDE + i, i = 0..n-1: seed 0 gives the same
# samples as ``gancli sample --n N``, and different generation seeds never share a sample
SEED_STRIDE = 1_000_000
# a folder whose smallest short side is below this fraction of the median one needs --resolution:
# scoring it at its smallest image would throw away most images' detail
SPREAD_LIMIT = 0.5


@dataclass
class Source:
    spec: str
    kind: str  # "images" | "points" | "stats" | "generator"
    identity: str
    x: torch.Tensor | None = None  # images uint8 NCHW (or a store's StoredImages) or points (N, 2)
    y: torch.Tensor | None = None
    model: object | None = None  # gancli.inference.LoadedModel
    stats: dict | None = None  # mu, sigma, features (optional), meta
    modes: torch.Tensor | None = None
    sigma: float | None = None
    info: dict = field(default_factory=dict)
    work_res: int | None = None  # images are downsampled to this side before scoring

    def set_working_resolution(self, res: int) -> None:
        """Score this source's images at ``res`` px (square), downsampling larger ones
        (antialiased bilinear); never upsamples. Changes ``identity`` (the stats cache key)."""
        size = self.image_size()
        if size is None or size[0] <= res:
            return
        self.work_res = int(res)
        self.identity += f":at{self.work_res}"

    @property
    def available(self) -> int | None:
        """How many samples the source holds (None: a generator makes as many as asked)."""
        if self.x is not None:
            return len(self.x)
        if self.stats is not None:
            return int(self.stats.get("count", 0)) or None
        return None

    @property
    def sample_kind(self) -> str:
        """``images`` or ``points`` (what its samples are), or ``stats``."""
        if self.kind == "generator":
            return "points" if self.model.spec.kind == "points" else "images"
        return self.kind

    @property
    def conditional(self) -> bool:
        return self.kind == "generator" and self.model.conditional

    def image_size(self) -> tuple[int, int] | None:
        """(resolution, channels) of its images, when known."""
        if self.kind == "images":
            return int(self.x.shape[-1]), int(self.x.shape[1])
        if self.kind == "generator" and self.model.spec.kind != "points":
            c, h, _ = self.model.spec.shape
            return int(h), int(c)
        return None

    def describe(self) -> dict:
        out = {"spec": self.spec, "kind": self.kind, **self.info}
        if self.kind == "generator":
            out.update(checkpoint=str(self.model.path), step=self.model.step)
        return out

    def seeds_for(self, n: int, gen_seed: int) -> list[int]:
        return [gen_seed * SEED_STRIDE + i for i in range(n)]

    def batches(self, n: int, batch_size: int, gen_seed: int = 0,
                truncation: float = 1.0, threshold: float | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """``n`` samples in batches: uint8 NCHW images or float points, and labels (or None).

        A generator draws seeds ``gen_seed * 1e6 + i``; held data gives its first ``n`` samples
        for generation seed 0 and a random subset (drawn from ``gen_seed``) otherwise.
        """
        if self.kind == "stats":
            raise GancliError(f"{self.spec} holds statistics, not samples",
                              hint="only fid can use a statistics file")
        if self.kind == "generator":
            yield from self._generate(n, batch_size, gen_seed, truncation, threshold)
            return
        if n > len(self.x):
            raise DataError(f"{self.spec} holds {len(self.x)} samples, {n} were asked for",
                            hint=f"use --n {len(self.x)} (or --n-real) or fewer")
        if gen_seed == 0 or n == len(self.x):
            idx = torch.arange(n)
        else:
            idx = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(gen_seed))[:n].sort()[0]
        for i in range(0, n, batch_size):
            j = idx[i:i + batch_size]
            yield self._fit(self.x[j]), (self.y[j] if self.y is not None else None)

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW images downsampled to ``work_res`` (unchanged when it is None or points)."""
        if self.work_res is None or x.dim() != 4 or max(x.shape[-2:]) <= self.work_res:
            return x
        y = torch.nn.functional.interpolate(x.float(), size=(self.work_res, self.work_res),
                                            mode="bilinear", antialias=True, align_corners=False)
        return y.round().clamp(0, 255).to(torch.uint8)

    def _generate(self, n, batch_size, gen_seed, truncation, threshold=None):
        from gancli import imaging
        from gancli.inference import generate

        m = self.model
        seeds = self.seeds_for(n, gen_seed)
        k = len(m.classes) if m.conditional else 0
        for i in range(0, n, batch_size):
            chunk = seeds[i:i + batch_size]
            labels = torch.arange(i, i + len(chunk)) % k if k else None
            out = generate(m, chunk, truncation, batch_size=batch_size, labels=labels,
                           threshold=threshold)
            yield (out if m.spec.kind == "points" else self._fit(imaging.to_uint8(out))), labels


def resolve_source(spec: str, device: torch.device, like: tuple[int, int] | None = None,
                   resolution: int | None = None, cap: int | None = None,
                   prepare_progress=None) -> Source:
    """SPEC -> Source. ``like`` = (resolution, channels) used to load a built-in image dataset
    (the other side's size, so a model trained at 32 px is compared with 32 px digits) and, as
    an upper bound, an image folder. ``resolution``: the working resolution a folder is read at
    (``--resolution``); ``cap``: the feature network's input side, the most a folder is read at
    without ``resolution``; ``prepare_progress``: told how preparing an image folder into a
    dataset store goes (``gancli.data.progress.PrepareProgress``)."""
    spec = spec.strip()
    if not spec:
        raise DataError("an empty SPEC", hint="give a run folder, checkpoint, .npz, image folder or "
                                               "built-in dataset such as digits")
    p = Path(spec).expanduser()
    from gancli.data import is_store_path

    if is_store_path(p):
        return _folder_source(spec, p, like)
    if p.is_file() and p.suffix.lower() == ".safetensors" or (p.is_dir() and _is_run(p)):
        return _generator_source(spec, p, device)
    if p.is_file() and p.suffix.lower() == ".npz":
        return _npz_source(spec, p)
    if p.is_file():
        raise DataError(f"cannot evaluate {p}: not a .safetensors checkpoint or an .npz file",
                        hint="give a run folder, checkpoint, .npz, image folder or built-in dataset")
    if p.is_dir():
        return _folder_source(spec, p, like, resolution, cap, prepare_progress)
    return _builtin_source(spec, like)


def _is_run(p: Path) -> bool:
    return (p / "checkpoints").is_dir() or any(p.glob("*.safetensors")) or (p / "latest").is_file()


def _generator_source(spec: str, p: Path, device: torch.device) -> Source:
    from gancli import checkpoints
    from gancli.inference import load_generator

    model = load_generator(p, device)
    ident = f"checkpoint:{sha256_file(checkpoints.resolve(p))}"
    src = Source(spec, "generator", ident, model=model)
    modes = model.data.get("modes")
    if modes:
        src.modes, src.sigma = torch.tensor(modes, dtype=torch.float32), model.data.get("sigma")
    return src


def _npz_source(spec: str, p: Path) -> Source:
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # not a zip, pickled object arrays, truncated file...
        raise DataError(f"cannot read {p} ({type(e).__name__}: {e})",
                        hint="an .npz from `gancli sample --out x.npz` or a statistics file") from None
    ident = f"npz:{sha256_file(p)}"
    if "mu" in arrays and "sigma" in arrays:
        stats = stats_from_arrays(arrays, p)
        return Source(spec, "stats", ident, stats=stats, info={"statistics": True})
    if "samples" not in arrays:
        raise DataError(f"{p} has neither `samples` nor `mu`/`sigma` arrays (it has: "
                        f"{', '.join(arrays) or 'nothing'})",
                        hint="write samples with `gancli sample RUN --n N --out x.npz`")
    s = arrays["samples"]
    labels = None
    if "labels" in arrays:
        y = arrays["labels"]
        if y.dtype.kind not in "iu" or y.shape != (len(s),) or (y.size and y.min() < 0):
            raise DataError(f"{p}: `labels` must be {len(s)} class indices >= 0, not "
                            f"{y.dtype} {y.shape}", hint="as `gancli sample --out x.npz` writes them")
        labels = torch.from_numpy(y.astype(np.int64))
    if s.ndim == 2 and s.shape[1] == 2 and s.dtype.kind in "iuf":
        if not np.isfinite(s).all():
            raise DataError(f"{p}: `samples` holds NaN or inf points",
                            hint="as `gancli sample --out x.npz` writes them")
        return Source(spec, "points", ident, x=torch.from_numpy(s.astype(np.float32)), y=labels)
    if s.ndim == 4 and s.shape[-1] in (1, 3) and s.dtype == np.uint8:
        x = torch.from_numpy(np.ascontiguousarray(s.transpose(0, 3, 1, 2)))
        return Source(spec, "images", ident, x=x, y=labels)
    raise DataError(f"{p}: `samples` must be uint8 (N, H, W, 1|3) images or (N, 2) points, "
                    f"not {s.dtype} {s.shape}", hint="as `gancli sample --out x.npz` writes them")


def stats_from_arrays(arrays: dict, p) -> dict:
    """Feature statistics from an ``.npz``'s arrays, checked: ``mu`` (D,) and ``sigma`` (D, D)
    real and finite, optional ``features`` (N, D) finite, optional ``meta`` a JSON object
    (``count`` an integer >= 0, ``extractor`` a mapping of text). A ``DataError`` otherwise."""
    hint = "a statistics file as gancli or pytorch-fid write it"
    meta: dict = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            meta = {}  # pytorch-fid and others write no JSON here: no meta, not an error
        if not isinstance(meta, dict):
            raise DataError(f"{p}: `meta` must be a JSON object, not {type(meta).__name__}", hint=hint)
    for key in ("mu", "sigma", "features"):
        if key in arrays and arrays[key].dtype.kind not in "iuf":
            raise DataError(f"{p}: `{key}` must hold real numbers, not {arrays[key].dtype}",
                            hint=hint)
    mu, sigma = np.asarray(arrays["mu"], np.float64), np.asarray(arrays["sigma"], np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise DataError(f"{p}: mu must be (D,) and sigma (D, D), not {mu.shape} and {sigma.shape}",
                        hint=hint)
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{p}: mu or sigma holds NaN or inf", hint=hint)
    count = meta.get("count", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise DataError(f"{p}: meta count must be an integer >= 0, not {count!r}", hint=hint)
    ex = meta.get("extractor")
    if ex is not None and (not isinstance(ex, dict)
                           or not all(isinstance(ex.get(k, ""), str) for k in ("name", "sha256"))):
        raise DataError(f"{p}: meta extractor must name the feature extractor and its weights",
                        hint=hint)
    stats = {"mu": mu, "sigma": sigma, "meta": meta, "count": count}
    if "features" in arrays:
        f = np.asarray(arrays["features"], np.float32)
        if f.ndim != 2 or f.shape[1] != len(mu) or not np.isfinite(f).all():
            raise DataError(f"{p}: features must be finite (N, {len(mu)}), not {f.shape}", hint=hint)
        stats["features"] = f
        stats["count"] = len(f)
    return stats


def folder_short_sides(p: Path, entries: list[tuple[str, int, int]]) -> list[int]:
    """The short side in pixels of every readable image of ``entries`` (relative to ``p``),
    from the file headers only: nothing is decoded, so this costs well under a millisecond per
    file. Unreadable and oversized files are left out (loading skips and names them)."""
    from gancli.data.images import max_image_pixels, open_image

    limit = max_image_pixels()
    sides = []
    for rel, _, _ in entries:
        try:
            with open_image(p / rel, limit=limit) as im:
                sides.append(min(im.size))
        except Exception:  # noqa: BLE001 - any bad file is skipped (and counted) when loading
            continue
    return sides


def choose_folder_resolution(sides: list[int], spec: str, like: int | None, cap: int | None,
                             explicit: int | None) -> tuple[int, dict]:
    """The side at which a folder of images with short sides ``sides`` is scored.

    Without ``explicit``: the smallest short side (no image is ever upsampled), at most ``like``
    (the other side's resolution) and ``cap`` (the feature network's input side). When the
    smallest short side is below ``SPREAD_LIMIT`` times the median one, a few small images would
    decide the resolution of all: then ``explicit`` (``--resolution``) is required.

    Returns:
        (resolution, info) with info = {"resolution", "short_sides": [min, median, max],
        "chosen_by": "--resolution" | "smallest image" | "other side" | "feature network",
        "upsampled": images smaller than the resolution (only with ``explicit``)}.

    Raises:
        UsageError (exit 2): sizes differ too much and no ``explicit`` resolution was given.
    """
    lo, hi = min(sides), max(sides)
    median = sorted(sides)[len(sides) // 2]
    info: dict = {"short_sides": [lo, median, hi]}
    if explicit is not None:
        res = int(explicit)
        info.update(resolution=res, chosen_by="--resolution",
                    upsampled=sum(1 for v in sides if v < res))
        return res, info
    if lo < SPREAD_LIMIT * median:
        small = sum(1 for v in sides if v < SPREAD_LIMIT * median)
        raise UsageError(f"the images in {spec} differ too much in size to pick a resolution: "
                         f"short sides from {lo} to {hi} px (median {median}; {small} image(s) "
                         f"under half of it)",
                         hint=f"choose one with --resolution N, e.g. --resolution "
                              f"{min(median, cap or median, like or median)} (smaller images "
                              "are upsampled), or remove the small images")
    res, by = lo, "smallest image"
    if like is not None and like < res:
        res, by = like, "other side"
    if cap is not None and cap < res:
        res, by = cap, "feature network"
    info.update(resolution=res, chosen_by=by, upsampled=0)
    return res, info


def _folder_source(spec: str, p: Path, like: tuple[int, int] | None,
                   resolution: int | None = None, cap: int | None = None,
                   progress=None) -> Source:
    """An image folder (prepared into a store in the cache, read per batch) or a prepared store."""
    from gancli.config import DataConfig
    from gancli.data import is_store_path
    from gancli.data.images import load_image_folder, scan_folder
    from gancli.data.stored import folder_dataset, store_dataset

    if is_store_path(p):
        from gancli.data.store import Store

        store = Store(p)
        res, ch = like if like is not None else (store.resolution, None)
        ds = store_dataset(p, DataConfig(source=str(p), resolution=res, channels=ch))
        ident = f"store:{store.meta['files']['pixels.u8']['sha256']}"
        return Source(spec, "images", ident, x=ds.x, info={"files": len(ds), "resolution": res,
                                                            "chosen_by": "dataset store",
                                                            "store": str(p)})
    entries = scan_folder(p).entries
    if not entries:
        raise DataError(f"no images in {p}", hint="png, jpg, webp, bmp, gif or tiff files")
    sides = folder_short_sides(p, entries)
    if not sides:  # nothing readable: the loader names the reason (too large, unreadable...)
        load_image_folder(p, resolution or 32, None, None)
        raise DataError(f"no image header in {p} could be read", hint="are the files complete?")
    res, info = choose_folder_resolution(sides, spec, like[0] if like else None, cap, resolution)
    ch = like[1] if like is not None else None
    ds = folder_dataset(p, DataConfig(source=str(p), resolution=res, channels=ch), progress)
    listing = hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    ident = f"folder:{p.resolve()}:{listing}:{res}x{ch}"
    return Source(spec, "images", ident, x=ds.x,
                  info={"files": len(ds), **info, **({"skipped": ds.info["skipped"]}
                                                     if ds.info.get("skipped") else {}),
                        **({"notes": ds.info["notes"]} if ds.info.get("notes") else {})})


def _builtin_source(spec: str, like: tuple[int, int] | None) -> Source:
    from gancli.config import DataConfig
    from gancli.data import load_dataset

    res, ch = like if like is not None else (32, None)
    ds = load_dataset(DataConfig(source=spec, resolution=res, channels=ch))
    if ds.kind == "points":
        return Source(spec, "points", f"builtin:{ds.name}:{len(ds)}", x=ds.x, modes=ds.modes,
                      sigma=ds.sigma)
    ident = f"builtin:{ds.name}:{len(ds)}:{tuple(ds.x.shape[1:])}"
    return Source(spec, "images", ident, x=ds.x, y=ds.y, info={"resolution": int(ds.x.shape[-1])})
