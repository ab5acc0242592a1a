"""Datasets read from a prepared store: a store given as ``--data``, or an image folder
prepared into the cache first (``cache_dir()/datasets/store-*``), with a progress bar."""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

from gancli.config import DataConfig
from gancli.data.base import Dataset
from gancli.errors import DataError


def prepared_side(cfg: DataConfig) -> int:
    """Side of the squares a store holds for this config: resolution x crop_scale, rounded."""
    return int(round(cfg.resolution * cfg.crop_scale))


def store_dataset(root: Path, cfg: DataConfig, origin: str | None = None) -> Dataset:
    """A ``Dataset`` whose ``x`` reads the store at ``root`` on demand.

    Raises:
        DataError: a damaged store, or one whose resolution, channels or labels do not fit
            ``cfg``.
    """
    from gancli.data.store import open_store

    opened = open_store(root)
    store, side = opened.store, prepared_side(cfg)
    hint_side = (f"prepare it again with --resolution {side}, or set data.resolution="
                 f"{store.resolution}" + (" and data.crop_scale=1" if cfg.crop_scale != 1 else ""))
    if store.resolution != side:
        wanted = f"data.resolution={cfg.resolution}" + (
            f" x data.crop_scale={cfg.crop_scale:g}" if cfg.crop_scale != 1 else "")
        raise DataError(f"dataset store {root} holds {store.resolution} px images; this run needs "
                        f"{side} px ({wanted})", hint=hint_side)
    if cfg.channels is not None and cfg.channels != store.channels:
        raise DataError(f"dataset store {root} holds {store.channels}-channel images, data.channels="
                        f"{cfg.channels} was asked for",
                        hint=f"set data.channels={store.channels}, or prepare it again with "
                             f"--channels {cfg.channels}")
    if cfg.labels and store.classes is None:
        raise DataError(f"dataset store {root} holds no labels", hint="prepare it again with --labels")
    m = store.meta
    info = {"files": store.n, "skipped": m["skipped"],
            "skipped_examples": [rel for rel, _ in m["skipped_examples"]][:5],
            "cache": origin or "store", "store": str(root)}
    reasons: dict[str, int] = {}
    for why, n in (m.get("reasons") or {}).items():  # grouped as the in-memory loader does
        reasons[why.split(":", 1)[0]] = reasons.get(why.split(":", 1)[0], 0) + n
    if reasons:
        info["skipped_reasons"] = reasons
    notes = _skip_notes(m)
    if notes:
        info["notes"] = notes
    if cfg.labels and isinstance(m.get("class_folders"), list):
        from gancli.data.images import check_classes

        # a class folder without a usable image is refused (or left out by name), exactly as
        # the in-memory loader does: otherwise every later class index would silently shift
        info = check_classes(Path(m.get("source") or root), m["class_folders"], store.classes,
                              info, cfg.allow_empty_classes)
    return Dataset(name=str(origin and m["source"] or root), kind="images", x=opened.x,
                   y=opened.y if cfg.labels else None, classes=store.classes if cfg.labels else None,
                   info=info, crop_to=cfg.resolution if side != cfg.resolution else None,
                   crop=cfg.crop)


def folder_dataset(root: Path, cfg: DataConfig, progress=None) -> Dataset:
    """Prepare the image folder ``root`` into a store (once; resumed if interrupted), then read
    it as ``store_dataset`` does. ``data.cache=false`` prepares into a temporary folder removed
    when the process exits."""
    from gancli.data import cache_dir
    from gancli.data import images
    from gancli.data.prepare import prepare, store_key

    root = Path(root).expanduser()
    side = prepared_side(cfg)
    images.check_source_args(root, side, cfg.channels)
    scan = images.list_image_files(root)
    if cfg.cache:
        slot = hashlib.sha256(f"{root.resolve()}|{side}|{cfg.channels}|{cfg.labels}".encode()
                              ).hexdigest()[:12]
        key = store_key(scan[0], scan[1], side, cfg.channels, cfg.labels)
        base = cache_dir() / "datasets"
        out = base / f"store-{slot}-{key[:24]}"
    else:
        tmp = Path(tempfile.mkdtemp(prefix="gancli-store-"))
        atexit.register(shutil.rmtree, tmp, True)
        out = tmp / "store"
    summary = prepare(root, out, side, cfg.channels, cfg.labels, progress=progress, scan=scan)
    if cfg.cache:
        prune_older_stores(out, slot)
    ds = store_dataset(out, cfg, origin="hit" if summary["status"] == "exists" else
                       ("miss" if cfg.cache else "off"))
    ds.name = str(root)
    return ds


def prune_older_stores(keep: Path, slot: str) -> None:
    """Remove older stores (and the whole-tensor caches of earlier versions) of the same
    folder and settings: adding images must not pile up copies (best effort)."""
    for old in keep.parent.glob(f"store-{slot}-*"):
        if old != keep and not old.name.endswith(".lock"):
            shutil.rmtree(old, ignore_errors=True)
    for old in keep.parent.glob(f".store-{slot}-*.lock"):
        if old.name != f".{keep.name}.lock":
            old.unlink(missing_ok=True)
    for old in keep.parent.glob(f"images-{slot}-*.safetensors"):
        old.unlink(missing_ok=True)


def _skip_notes(meta: dict) -> list[str]:
    """The loader's notes for skips a user can act on (images over the pixel limit, files that
    are not regular files), rebuilt from a store's recorded reasons and examples."""
    from gancli.data.images import SKIP_NOT_REGULAR, SKIP_TOO_LARGE

    reasons, examples = meta.get("reasons") or {}, meta.get("skipped_examples") or []
    notes = []
    n_big = sum(n for r, n in reasons.items() if r.startswith(SKIP_TOO_LARGE))
    big = [(rel, why) for rel, why in examples if why.startswith(SKIP_TOO_LARGE)]
    if n_big and big:
        more = f" (and {n_big - 1} more)" if n_big > 1 else ""
        notes.append(f"skipped {n_big} image(s) over the pixel limit: {big[0][0]}: {big[0][1]}{more}")
    n_special = reasons.get(SKIP_NOT_REGULAR, 0)
    special = [rel for rel, why in examples if why == SKIP_NOT_REGULAR]
    if n_special and special:
        more = f" (and {n_special - 1} more)" if n_special > 1 else ""
        notes.append(f"skipped {n_special} file(s) that are not regular files (FIFOs, sockets, "
                     f"devices): {special[0]}{more}")
    return notes
