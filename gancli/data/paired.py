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
image (``gancli.data.images.fit_image``). Folders are decoded on every run (no cache).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
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
    input is always half 0 downstream."""
    if direction != "b2a" or ds.kind != "pairs":
        return ds
    ds.x = ds.x[:, [1, 0]].contiguous()
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


def _open(path: Path):
    """A decoded, upright, grey-or-RGB PIL image, or (None, reason)."""
    from PIL import ImageOps

    from gancli.data.images import (ImageTooLarge, NotARegularFile, to_gray_or_rgb,
                                    max_image_pixels, open_image)

    try:
        with open_image(path, limit=max_image_pixels()) as img:
            img.load()
            try:
                img = ImageOps.exif_transpose(img)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the pixels
                pass
            return to_gray_or_rgb(img), ""
    except NotARegularFile:
        return None, "not a regular file"
    except ImageTooLarge as e:
        return None, f"too large: {e}"
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files
        return None, "unreadable"


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


def _map(fn, items: list) -> list:
    if len(items) < 16:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, items))


def _stack(pairs: list[tuple[np.ndarray, np.ndarray]], channels: int | None) -> torch.Tensor:
    from gancli.data.images import stack_images

    if channels is None:
        channels = 1 if all(a.ndim == 2 and b.ndim == 2 for a, b in pairs) else 3
    a = stack_images([p[0] for p in pairs], channels)
    b = stack_images([p[1] for p in pairs], channels)
    return torch.stack([a, b], 1).contiguous()


def _load_aligned(folder: Path, resolution: int, channels: int | None) -> tuple[list, list[str]]:
    from gancli.data.images import scan_folder

    files = [rel for rel, _, _ in scan_folder(folder).entries]
    if not files:
        raise DataError(f"{folder} holds no image file",
                        hint="each image holds A and B side by side (A|B), as pix2pix's datasets")

    def one(rel: str):
        img, why = _open(folder / rel)
        if img is None:
            return None, f"{rel} ({why})"
        try:
            return split_aligned(img, resolution, channels), ""
        except ValueError as e:
            return None, f"odd:{rel} ({e})"

    results = _map(one, files)
    odd = [why[4:] for _, why in results if why.startswith("odd:")]
    if odd:
        raise DataError(f"{len(odd)} image(s) in {folder} cannot be split into two equal halves: "
                        f"{_names(odd)}", hint="an aligned image holds A and B side by side at "
                        "the same size, so its width is even; fix or remove these")
    skipped = [why for p, why in results if p is None]
    return [p for p, _ in results if p is not None], skipped


def _match(root_a: Path, root_b: Path) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(matched (A file, B file) pairs, A files without a partner, B files without one),
    matched by relative path without extension."""
    from gancli.data.images import scan_folder

    def by_stem(folder: Path) -> dict[str, str]:
        out: dict[str, str] = {}
        dup = []
        for rel, _, _ in scan_folder(folder).entries:
            key = str(Path(rel).with_suffix(""))
            if key in out:
                dup.append(f"{out[key]} and {rel}")
            out[key] = rel
        if dup:
            raise DataError(f"{folder} has files that differ only in their extension: {_names(dup)}",
                            hint="pairs are matched by name without extension; keep one of each")
        return out

    a, b = by_stem(root_a), by_stem(root_b)
    matched = [(a[k], b[k]) for k in sorted(a.keys() & b.keys())]
    return (matched, sorted(f"{root_a.name}/{a[k]}" for k in a.keys() - b.keys()),
            sorted(f"{root_b.name}/{b[k]}" for k in b.keys() - a.keys()))


def _load_named(root: Path, a_dir: str, b_dir: str, resolution: int, channels: int | None
                ) -> tuple[list, list[str], list[str]]:
    matched, only_a, only_b = _match(root / a_dir, root / b_dir)
    if not matched:
        raise DataError(f"no file in {root / a_dir} has a partner of the same name in {root / b_dir}",
                        hint=f"pairs are matched by name: {a_dir}/001.jpg goes with {b_dir}/001.png")

    def one(names: tuple[str, str]):
        img_a, why_a = _open(root / a_dir / names[0])
        img_b, why_b = _open(root / b_dir / names[1])
        if img_a is None or img_b is None:
            bad = f"{a_dir}/{names[0]} ({why_a})" if img_a is None else f"{b_dir}/{names[1]} ({why_b})"
            return None, bad
        if img_a.size != img_b.size:
            return None, (f"odd:{a_dir}/{names[0]} {img_a.size[0]}x{img_a.size[1]} vs "
                          f"{b_dir}/{names[1]} {img_b.size[0]}x{img_b.size[1]}")
        return (_fit(img_a, resolution, channels), _fit(img_b, resolution, channels)), ""

    results = _map(one, matched)
    odd = [why[4:] for _, why in results if why.startswith("odd:")]
    if odd:
        raise DataError(f"{len(odd)} pair(s) in {root} have images of different sizes: {_names(odd)}",
                        hint="the two images of a pair must correspond pixel for pixel; resize "
                             "or remove these")
    skipped = [why for p, why in results if p is None]
    return [p for p, _ in results if p is not None], skipped, only_a + only_b


def load_paired_folder(root: Path, resolution: int, channels: int | None) -> Dataset:
    """An aligned (``train/`` of A|B images) or named (``A/``, ``B/``) paired folder."""
    layout = paired_layout(root)
    notes: list[str] = []
    test_pairs: list = []
    if layout == "aligned":
        pairs, skipped = _load_aligned(root / "train", resolution, channels)
        held = next((d for d in ("test", "val") if (root / d).is_dir()), None)
        if held:
            test_pairs, more = _load_aligned(root / held, resolution, channels)
            skipped += more
        domains = ["A", "B"]
    elif layout == "named":
        pairs, skipped, unmatched = _load_named(root, "A", "B", resolution, channels)
        if unmatched:
            notes.append(f"{len(unmatched)} file(s) without a partner of the same name, not used: "
                         f"{_names(unmatched)}")
        if (root / "testA").is_dir() and (root / "testB").is_dir():
            test_pairs, more, unmatched = _load_named(root, "testA", "testB", resolution, channels)
            skipped += more
            if unmatched:
                notes.append(f"{len(unmatched)} held-out file(s) without a partner, not used: "
                             f"{_names(unmatched)}")
        domains = ["A", "B"]
    else:
        raise DataError(f"{root} is not a paired folder",
                        hint="use train/ (A|B side by side) or A/ and B/ matched by name")
    if not pairs:
        raise DataError(f"no pair in {root} could be decoded", hint="are the files complete images?")
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable pair(s): {_names(skipped)}")
    x = _stack(pairs, channels)
    c = x.shape[2]
    test = _stack(test_pairs, c) if test_pairs else None
    info = {"paired": True, "layout": layout, "samples": len(pairs),
            "test": 0 if test is None else len(test), "skipped": len(skipped), "cache": "off"}
    if notes:
        info["notes"] = notes
    return Dataset(name=str(root), kind="pairs", x=x, test=test, domains=domains, info=info)
