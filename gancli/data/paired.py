"""Paired data for pix2pix: each sample is an input and the target it should become.

Like CycleGAN's data the result is a ``"pairs"`` dataset, x uint8 (N, 2, C, H, W), but here
half 0 and half 1 of a sample correspond pixel for pixel, and ``info["paired"]`` is True
(the pix2pix objective refuses data without it). ``Batches`` crops and flips a pair as one
(N, 2C, H, W) block, so both halves always get the same random crop and the same flip.

Layouts (``--data``):

- aligned (pix2pix's reference tool): ``train/``, optional ``val/`` and ``test/``, each image
  holding A on its left half and B on its right half (``A|B``), split at the middle; an
  image whose width is odd is refused, named. ``test/`` (else ``val/``) is held out.
- named: ``A/`` and ``B/``, files matched by their path without extension (``A/x/001.jpg``
  with ``B/x/001.png``); files with no partner are listed in a note (and not used), a pair
  whose two images differ in pixel size is refused, named. ``testA/``, ``testB/`` (matched
  the same way) are held out when present.
- ``paired:digits-outline`` (built in, no download): A is the outline of a digit, B the
  digit itself; the model must fill closed loops and restore the strokes' soft profile.
  The 500 digits ``digits_split`` holds out (never seen by the digits classifier) are the
  held-out pairs; the other 1,297 train.

Each half is scaled (shorter side to the resolution) and center-cropped like any folder
image (``gancli.data.images.fit_image``), at full size (no JPEG draft). A folder is prepared once
into dataset stores in the cache, like any image folder (``gancli.data.prepare``: decoded by
worker processes, with progress, atomic and resumable; each pair is two rows, A then B), and
read per batch: the training pairs are never one tensor in RAM (the held-out ones are).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gancli.data.base import Dataset
from gancli.errors import DataError, excerpt

PAIRED_BUILTINS = ("digits-outline",)
_SHOWN = 5  # names listed in a message before "and N more"


def _names(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def orient(ds: Dataset, direction: str) -> Dataset:
    """``data.direction``: b2a swaps the halves of every pair (and the domain names), so the
    input is always half 0 downstream; a folder's pairs stay on disk (``PairedImages.swapped``)."""
    if direction != "b2a" or ds.kind != "pairs":
        return ds
    from gancli.data.translation import PairedImages

    ds.x = ds.x.swapped() if isinstance(ds.x, PairedImages) else ds.x[:, [1, 0]].contiguous()
    if ds.test is not None:
        ds.test = ds.test[:, [1, 0]].contiguous()
    if ds.domains:
        ds.domains = list(ds.domains)[::-1]
    ds.info = {**ds.info, "direction": "b2a"}
    return ds


# --- the built-in set ------------------------------------------------------------------------------

def outline(x: torch.Tensor) -> torch.Tensor:
    """The outline of grey images (N, 1, H, W) uint8: the pixels within one pixel of the
    boundary of the shape ``x >= 128`` (3x3 dilation minus 3x3 erosion), 255 on 0, uint8."""
    mask = (x >= 128).float()
    dilated = F.max_pool2d(mask, 3, 1, 1)
    eroded = -F.max_pool2d(-mask, 3, 1, 1)
    return ((dilated - eroded) * 255).to(torch.uint8)


def load_paired_builtin(name: str, resolution: int, channels: int | None) -> Dataset:
    """``paired:digits-outline`` at ``resolution`` (>= 8) with 1 or 3 channels."""
    if name not in PAIRED_BUILTINS:
        raise DataError(f"no built-in paired set {excerpt(name)}",
                        hint=f"built-in paired sets: {', '.join('paired:' + p for p in PAIRED_BUILTINS)}")
    from gancli.data.digits import digits_split, load_digits

    digits = load_digits(resolution, 1)
    b = digits.x
    a = outline(b)
    pairs = torch.stack([a, b], 1)
    if channels == 3:
        pairs = pairs.repeat(1, 1, 3, 1, 1)
    train_idx, test_idx = digits_split()
    info = {"paired": True, "samples": len(train_idx), "test": len(test_idx),
            "source": "digit outlines (A) and the digits (B); digits_split's 500 held out"}
    return Dataset(name=f"paired:{name}", kind="pairs", x=pairs[train_idx].contiguous(),
                   test=pairs[test_idx].contiguous(), domains=["outline", "digit"], info=info)


# --- folders ---------------------------------------------------------------------------------------

def paired_layout(root: Path) -> str | None:
    """``"aligned"`` (train/ of A|B images), ``"named"`` (A/ and B/), or None (e.g. CycleGAN's
    trainA/ and trainB/, which takes precedence)."""
    if (root / "trainA").is_dir() or (root / "trainB").is_dir():
        return None
    if (root / "A").is_dir() and (root / "B").is_dir():
        return "named"
    if (root / "train").is_dir():
        return "aligned"
    return None


def _fit(img, resolution: int, channels: int | None) -> np.ndarray:
    from gancli.data.images import fit_image

    return fit_image(img, resolution, channels)


def split_aligned(img, resolution: int, channels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One ``A|B`` image -> (A, B), each fitted to ``resolution``. Raises ValueError when the
    width is odd (the halves would differ by a column)."""
    w, h = img.size
    if w % 2:
        raise ValueError(f"{w}x{h}: odd width")
    half = w // 2
    return (_fit(img.crop((0, 0, half, h)), resolution, channels),
            _fit(img.crop((half, 0, w, h)), resolution, channels))


def _match(root_a: Path, root_b: Path) -> tuple[list[tuple[tuple, tuple]], list[str], list[str]]:
    """(matched (A entry, B entry) pairs, each entry (relative path, size, mtime_ns) as
    ``images.list_image_files`` lists them, sorted by name; A files without a partner, B files
    without one), matched by relative path without extension."""
    from gancli.data.images import scan_folder

    def by_stem(folder: Path) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        dup = []
        for entry in scan_folder(folder).entries:
            rel = entry[0]
            key = str(Path(rel).with_suffix(""))
            if key in out:
                dup.append(f"{out[key][0]} and {rel}")
            out[key] = tuple(entry)
        if dup:
            raise DataError(f"{folder} has files that differ only in their extension: {_names(dup)}",
                            hint="pairs are matched by name without extension; keep one of each")
        return out

    a, b = by_stem(root_a), by_stem(root_b)
    matched = [(a[k], b[k]) for k in sorted(a.keys() & b.keys())]
    return (matched, sorted(f"{root_a.name}/{a[k][0]}" for k in a.keys() - b.keys()),
            sorted(f"{root_b.name}/{b[k][0]}" for k in b.keys() - a.keys()))


def _pair_store(src: Path, layout: str, scan: tuple, items: list | None, resolution: int,
                channels: int | None, cache: bool, progress, part: str) -> tuple[Path, dict]:
    """Prepare pairs into a dataset store (in the cache, once; resumed if interrupted; in a
    temporary folder removed at exit when ``cache`` is off): (store folder, prepare summary).
    Each pair is 2 rows, A then B (``prepare(pairs=...)``)."""
    import atexit
    import hashlib
    import shutil
    import tempfile

    from gancli.data import cache_dir
    from gancli.data.prepare import prepare, store_key
    from gancli.data.stored import prune_older_stores

    if cache:
        slot = hashlib.sha256(f"{src.resolve()}|{resolution}|{channels}|pairs:{layout}".encode()
                              ).hexdigest()[:12]
        key = store_key(scan[0], scan[1], resolution, channels, False, layout)
        out = cache_dir() / "datasets" / f"store-{slot}-{key[:24]}"
    else:
        tmp = Path(tempfile.mkdtemp(prefix="gancli-store-"))
        atexit.register(shutil.rmtree, tmp, True)
        out = tmp / "store"
    tell = None if progress is None else (lambda p: progress({**p, "part": part}))
    summary = prepare(src, out, resolution, channels, progress=tell, scan=scan, pairs=layout,
                      items=items)
    if cache:
        prune_older_stores(out, slot)
    return out, summary


def _pairs_of(store: Path):
    """The store's rows as matched pairs (row 2i is A, 2i + 1 is B), read on demand."""
    from gancli.data.store import RowImages, open_store
    from gancli.data.translation import PairedImages

    x = open_store(store).x
    return PairedImages(RowImages(x, torch.arange(0, len(x), 2)),
                        RowImages(x, torch.arange(1, len(x), 2)), matched=True)


def _aligned_split(folder: Path, resolution: int, channels: int | None, cache: bool, progress,
                   part: str):
    from gancli.data.images import list_image_files

    scan = list_image_files(folder)
    if not scan[0]:
        raise DataError(f"{folder} holds no image file",
                        hint="each image holds A and B side by side (A|B), as pix2pix's datasets")
    return _pair_store(folder, "aligned", scan, None, resolution, channels, cache, progress, part)


def _named_split(root: Path, a_dir: str, b_dir: str, resolution: int, channels: int | None,
                 cache: bool, progress, part: str):
    matched, only_a, only_b = _match(root / a_dir, root / b_dir)
    if not matched:
        raise DataError(f"no file in {root / a_dir} has a partner of the same name in {root / b_dir}",
                        hint=f"pairs are matched by name: {a_dir}/001.jpg goes with {b_dir}/001.png")
    items = [[f"{a_dir}/{a[0]}", f"{b_dir}/{b[0]}"] for a, b in matched]
    entries = [[f"{a_dir}/{a[0]}", *a[1:], f"{b_dir}/{b[0]}", *b[1:]] for a, b in matched]
    store, summary = _pair_store(root, "named", (entries, [], 0), items, resolution, channels,
                                 cache, progress, part)
    return store, summary, only_a + only_b


def load_paired_folder(root: Path, resolution: int, channels: int | None, cache: bool = True,
                       progress=None) -> Dataset:
    """An aligned (``train/`` of A|B images) or named (``A/``, ``B/``) paired folder.

    The training pairs are prepared into a dataset store (``gancli.data.prepare``: in the
    cache, once, multi-process, with progress; ``cache=False``: a temporary one) and read
    per batch: ``x`` is a ``translation.PairedImages`` (uint8 (N, 2, C, H, W), matched rows),
    never one tensor of the whole folder. The held-out pairs (``test/`` else ``val/``, or
    ``testA/`` + ``testB/``) are prepared the same way and read whole into ``test`` (uint8,
    (M, 2, C, H, W): they are few, and evaluation crops them as a tensor).

    Raises:
        DataError: not a paired folder, no image or no matched pair, odd-width aligned images
            or named pairs of two sizes (named), or what preparing a folder raises.
    """
    layout = paired_layout(root)
    notes: list[str] = []
    skipped: list[str] = []
    n_skipped = 0
    test_store = None

    def skips(summary: dict) -> None:
        nonlocal n_skipped
        n_skipped += summary["skipped"]
        skipped.extend(f"{rel} ({why.split(':', 1)[0]})" for rel, why in summary["skipped_examples"])

    if layout == "aligned":
        store, summary = _aligned_split(root / "train", resolution, channels, cache, progress,
                                        "train")
        skips(summary)
        c = summary["channels"]
        held = next((d for d in ("test", "val") if (root / d).is_dir()), None)
        if held:
            test_store, more = _aligned_split(root / held, resolution, c, cache, progress, held)
            skips(more)
    elif layout == "named":
        store, summary, unmatched = _named_split(root, "A", "B", resolution, channels, cache,
                                                 progress, "A+B")
        skips(summary)
        c = summary["channels"]
        if unmatched:
            notes.append(f"{len(unmatched)} file(s) without a partner of the same name, not used: "
                         f"{_names(unmatched)}")
        if (root / "testA").is_dir() and (root / "testB").is_dir():
            test_store, more, unmatched = _named_split(root, "testA", "testB", resolution, c,
                                                       cache, progress, "testA+testB")
            skips(more)
            if unmatched:
                notes.append(f"{len(unmatched)} held-out file(s) without a partner, not used: "
                             f"{_names(unmatched)}")
    else:
        raise DataError(f"{root} is not a paired folder",
                        hint="use train/ (A|B side by side) or A/ and B/ matched by name")
    if n_skipped:
        shown = skipped[:_SHOWN]
        more = f" and {n_skipped - len(shown)} more" if n_skipped > len(shown) else ""
        notes.append(f"skipped {n_skipped} unreadable pair(s): {', '.join(shown)}{more}")
    x = _pairs_of(store)
    test = _pairs_of(test_store).read_all() if test_store is not None else None
    info = {"paired": True, "layout": layout, "samples": len(x),
            "test": 0 if test is None else len(test), "skipped": n_skipped,
            "cache": ("hit" if summary["status"] == "exists" else "miss") if cache else "off",
            "store": [str(p) for p in (store, test_store) if p is not None]}
    if notes:
        info["notes"] = notes
    return Dataset(name=str(root), kind="pairs", x=x, test=test, domains=["A", "B"], info=info)
