"""Load a folder of image files into one uint8 tensor, with an optional cache.

Every image is decoded once, converted to grey or RGB, resized so its shorter
side is ``resolution`` and center-cropped to a square. Files that cannot be
decoded are skipped and counted, never fatal: a real-world folder nearly always
holds a stray ``.DS_Store``, a half-copied JPEG or a mislabelled text file.

The decoded tensor can be cached as a safetensors file (no pickle: a cache file
must never be able to run code when loaded).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from gancli.data.base import Dataset
from gancli.errors import DataError
from gancli.fileio import atomic_write_bytes

# Bump when decoding changes in a way that alters pixels: old cache files then miss.
LOADER_VERSION = 1

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# Modes whose pixels carry no colour; ``channels=None`` picks 1 channel when all are.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_MAX_EXAMPLES = 5
# Below this many files a thread pool costs more than it saves.
_POOL_MIN_FILES = 32


def load_image_folder(
    path: str | Path,
    resolution: int,
    channels: int | None,
    cache_dir: Path | None,
    labels: bool = False,
) -> Dataset:
    """Load every image under ``path`` (recursively) as a square uint8 tensor.

    Args:
        path: the folder to scan.
        resolution: output side length in pixels.
        channels: 1 (grey), 3 (RGB) or None (1 if every image is grey, else 3).
        cache_dir: where to keep a decoded copy keyed by the files' names, sizes
            and mtimes; None disables the cache.
        labels: take the first sub-folder under ``path`` as each image's class.

    Returns:
        A ``Dataset`` of kind ``"images"``; ``info`` holds ``files``, ``skipped``,
        ``skipped_examples`` and ``cache`` (``"hit"``, ``"miss"`` or ``"off"``),
        plus ``cache_error`` when the cache could not be written (not fatal).

    Raises:
        DataError: missing folder, no usable image, or a bad layout for labels.
    """
    root = Path(path).expanduser()
    _check_args(root, resolution, channels)
    entries, broken, n_other = _scan(root)
    if labels:
        _check_label_layout(root, entries)

    cache_file, key = None, ""
    if cache_dir is not None:
        key = _cache_key(entries, broken, resolution, channels, labels)
        cache_file = _cache_path(Path(cache_dir), root, key, resolution, channels, labels)
        cached = _read_cache(cache_file, key, resolution, channels)
        if cached is not None:
            return _make_dataset(root, *cached, cache="hit")

    x, y, classes, info = _decode_all(root, entries, broken, n_other, resolution, channels, labels)
    cache = "off"
    if cache_file is not None:
        cache = "miss"
        error = _write_cache(cache_file, key, x, y, classes, info)
        if error:
            info["cache_error"] = error
    return _make_dataset(root, x, y, classes, info, cache=cache)


def _check_args(root: Path, resolution: int, channels: int | None) -> None:
    """Reject a missing folder, a file path, or nonsensical sizes."""
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1, 3 or None, not {channels!r}", hint="use 1 (grey) or 3 (RGB)")
    if int(resolution) < 1:
        raise DataError(f"resolution must be at least 1, not {resolution}", hint="try 32 or 64")
    if not root.exists():
        raise DataError(
            f"image folder {root} does not exist",
            hint="check the path (a relative path starts at the current directory)",
        )
    if not root.is_dir():
        raise DataError(
            f"{root} is a file, not a folder of images",
            hint="pass the folder that contains the images, not a single image",
        )


def _scan(root: Path) -> tuple[list[tuple[str, int, int]], list[str], int]:
    """List candidate image files under ``root``.

    Returns:
        (entries, broken, n_other): ``entries`` are (relative posix path, size,
        mtime_ns) for files with a supported extension, sorted by path;
        ``broken`` are such files that cannot even be stat'ed (dangling links);
        ``n_other`` counts files with other extensions, which are ignored.
    """
    entries: list[tuple[str, int, int]] = []
    broken: list[str] = []
    n_other = 0
    visited: set[tuple[int, int]] = set()

    def unreadable(err: OSError) -> None:
        # os.walk skips a folder it cannot list; say so for the root, count the others
        if Path(err.filename or "") == root:
            raise DataError(f"cannot read image folder {root}: {err.strerror or err}",
                            hint="check the folder's permissions")
        broken.append(Path(os.path.relpath(err.filename, root)).as_posix() + "/")

    # Follow symlinked folders (datasets are often linked in) but remember each
    # real folder, so a link back up the tree cannot make the walk loop forever.
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in visited:
            dirnames[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        # Hidden entries are tool litter (.git, .ipynb_checkpoints, macOS ._x.jpg).
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            if not name.lower().endswith(SUPPORTED_EXTENSIONS):
                n_other += 1
                continue
            full = os.path.join(dirpath, name)
            rel = Path(os.path.relpath(full, root)).as_posix()
            try:
                fst = os.stat(full)
            except OSError:
                broken.append(rel)
                continue
            entries.append((rel, fst.st_size, fst.st_mtime_ns))
    entries.sort()
    broken.sort()
    return entries, broken, n_other


def _check_label_layout(root: Path, entries: list[tuple[str, int, int]]) -> None:
    """With labels, every image must sit inside a class sub-folder."""
    loose = [rel for rel, _, _ in entries if "/" not in rel]
    if loose:
        raise DataError(
            f"labels need one sub-folder per class, but {len(loose)} image(s) sit directly in {root} "
            f"(e.g. {loose[0]})",
            hint=f"arrange the images as {root}/<class name>/<image>, e.g. cat/1.png and dog/2.png, "
            "or load the folder without labels",
        )


def _decode_all(
    root: Path,
    entries: list[tuple[str, int, int]],
    broken: list[str],
    n_other: int,
    resolution: int,
    channels: int | None,
    labels: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None, dict]:
    """Decode every candidate file; skip and count the ones that fail."""
    rels = [rel for rel, _, _ in entries]

    def work(rel: str) -> np.ndarray | None:
        # Looked up at call time so tests can swap the decoder out.
        return _decode_image(root / rel, resolution, channels)

    if len(rels) >= _POOL_MIN_FILES:
        # PIL releases the GIL while decoding and resampling, so threads help.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            arrays = list(pool.map(work, rels))
    else:
        arrays = [work(rel) for rel in rels]

    used = [(rel, a) for rel, a in zip(rels, arrays) if a is not None]
    skipped = sorted(broken + [rel for rel, a in zip(rels, arrays) if a is None])
    if not used:
        looked = len(rels) + len(broken)
        raise DataError(
            f"no usable image in {root}: looked at {looked} image file(s), {len(skipped)} could not be read"
            + (f", {n_other} other file(s) ignored" if n_other else ""),
            hint="supported extensions: "
            + ", ".join(SUPPORTED_EXTENSIONS)
            + " (sub-folders are searched too)",
        )
    x = stack_images([a for _, a in used], channels)
    y, classes = None, None
    if labels:
        folders = [rel.split("/", 1)[0] for rel, _ in used]
        classes = sorted(set(folders))
        index = {name: i for i, name in enumerate(classes)}
        y = torch.tensor([index[f] for f in folders], dtype=torch.int64)
    info = {"files": len(used), "skipped": len(skipped), "skipped_examples": skipped[:_MAX_EXAMPLES]}
    return x, y, classes, info


def _decode_image(file: Path, resolution: int, channels: int | None) -> np.ndarray | None:
    """Decode one file to an (H, W) grey or (H, W, 3) RGB uint8 array; None if unreadable."""
    try:
        with Image.open(file) as img:
            if img.format == "JPEG":
                # Let libjpeg decode at a reduced scale (still >= resolution): big
                # photos then decode several times faster.
                img.draft(None, (resolution, resolution))
            img.load()
            return fit_image(img, resolution, channels)
    except Exception:  # noqa: BLE001 - see below
        # PIL's format plugins raise a zoo of types for malformed files (OSError,
        # SyntaxError, ValueError, EOFError, struct.error, DecompressionBombError,
        # ...); the contract is "skip and count", so any failure here is a skip.
        return None


def fit_image(img: Image.Image, resolution: int, channels: int | None) -> np.ndarray:
    """Orient, convert and square-crop one PIL image.

    Args:
        img: any PIL image (first frame is used for animations).
        resolution: output side length.
        channels: 1, 3, or None to keep grey images grey and the rest RGB.

    Returns:
        uint8 array, (resolution, resolution) when grey or (resolution, resolution, 3).
    """
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - broken EXIF must not cost us the pixels
        pass
    img = _to_gray_or_rgb(img)
    if channels == 1 and img.mode == "RGB":
        img = img.convert("L")  # before resizing: a third of the work
    img = resize_center_crop(img, resolution)
    if channels == 3 and img.mode == "L":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def is_gray_mode(mode: str) -> bool:
    """True for PIL modes that hold no colour (L, LA, 1, I, I;16*, F)."""
    return mode in _GRAY_MODES or mode.startswith("I;")


def _to_gray_or_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to ``L`` (if it is grey) or ``RGB``.

    Transparent pixels are composited on white, the usual backdrop of icons and
    sprites; high bit-depth grey is rescaled to 0..255 rather than clipped.
    """
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img), mode), "L")
    has_alpha = mode in _ALPHA_MODES or "transparency" in img.info
    if has_alpha and is_gray_mode(mode):
        la = img.convert("LA")
        out = Image.new("L", img.size, 255)
        out.paste(la.getchannel("L"), mask=la.getchannel("A"))
        return out
    if has_alpha:
        rgba = img.convert("RGBA")
        out = Image.new("RGB", img.size, (255, 255, 255))
        out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return out
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    return img.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX, ...


def _scale_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """Map grey pixels of a wide mode (I;16*, I, F) onto 0..255 without clipping."""
    if mode.startswith("I;16"):
        out = a.astype(np.float64) / 257.0  # 65535 -> 255 exactly, 257 -> 1
    else:
        # 32-bit int and float files carry no declared range: guess the common ones.
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0 and hi <= 1:
            out = a * 255.0  # floats in 0..1 (or a 0/1 mask)
        elif lo >= 0 and hi <= 255:
            out = a  # 8-bit values stored in a wide mode
        elif lo >= 0 and hi <= 65535:
            out = a / 257.0  # 16-bit values (older Pillow opens 16-bit PNG as "I")
        else:
            out = (a - lo) / (hi - lo) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize_center_crop(img: Image.Image, resolution: int) -> Image.Image:
    """Scale the shorter side to ``resolution`` and crop the center square.

    The crop box is applied inside the resize, so a 10000x10 strip is never
    blown up to 32000x32 first, and a 1x1 image simply becomes a flat square.
    """
    w, h = img.size
    if (w, h) == (resolution, resolution):
        return img
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    # reducing_gap: a cheap integer box-reduce first, then LANCZOS for the last
    # factor of 3 or less; visually identical, much faster on big photos.
    gap = 3.0 if side >= 3 * resolution else None
    return img.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box, reducing_gap=gap)


def stack_images(arrays: list[np.ndarray], channels: int | None) -> torch.Tensor:
    """Stack (H, W) / (H, W, 3) uint8 arrays into an (N, C, H, W) uint8 tensor.

    With ``channels=None`` the result has 1 channel when every array is grey,
    else 3 (grey arrays are repeated into R, G and B).
    """
    if channels is None:
        channels = 1 if all(a.ndim == 2 for a in arrays) else 3
    res = arrays[0].shape[:2]
    out = np.empty((len(arrays), *res, channels), dtype=np.uint8)
    for i, a in enumerate(arrays):
        if a.ndim == 2:
            out[i] = a[..., None]  # broadcasts grey into 1 or 3 channels
        elif channels == 1:
            out[i, ..., 0] = np.asarray(Image.fromarray(a, "RGB").convert("L"))
        else:
            out[i] = a
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _make_dataset(
    root: Path, x: torch.Tensor, y: torch.Tensor | None, classes: list[str] | None, info: dict, cache: str
) -> Dataset:
    """Wrap the pieces; ``info`` gets the cache outcome added."""
    info = {**info, "cache": cache}
    return Dataset(name=str(root), kind="images", x=x, y=y, classes=classes, info=info)


# --------------------------------------------------------------------- cache


def _cache_key(
    entries: list[tuple[str, int, int]],
    broken: list[str],
    resolution: int,
    channels: int | None,
    labels: bool,
) -> str:
    """sha256 over everything that decides the decoded tensor."""
    payload = {
        "version": LOADER_VERSION,
        "resolution": int(resolution),
        "channels": channels,
        "labels": bool(labels),
        "files": entries,
        "broken": broken,
    }
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def _cache_path(
    cache_dir: Path, root: Path, key: str, resolution: int, channels: int | None, labels: bool
) -> Path:
    """``images-<folder+settings id>-<content key>.safetensors``.

    The first part lets a rebuild delete the stale file for the same folder and
    settings, so adding images does not pile up old caches.
    """
    slot = hashlib.sha256(f"{root.resolve()}|{resolution}|{channels}|{labels}".encode()).hexdigest()[:12]
    return cache_dir / f"images-{slot}-{key[:32]}.safetensors"


def _read_cache(
    file: Path, key: str, resolution: int | None = None, channels: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None, dict] | None:
    """Load a cache file; None when it is absent, stale or corrupt (then it is rebuilt).

    Corrupt includes well-formed files whose contents disagree with themselves or with the
    settings: images not uint8 (N, C, resolution, resolution), labels out of range, JSON
    metadata of the wrong types."""
    if not file.is_file():
        return None
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("key") != key or meta.get("version") != str(LOADER_VERSION):
                return None
            x = f.get_tensor("x")
            y = f.get_tensor("y") if "y" in f.keys() else None
        classes = json.loads(meta["classes"])
        info = json.loads(meta["info"])
    except Exception:  # noqa: BLE001 - any damage just means "decode again"
        return None
    ok = isinstance(info, dict) and x.dtype == torch.uint8 and x.ndim == 4
    ok = ok and x.shape[0] == info.get("files") and x.shape[1] in (1, 3, 4)
    ok = ok and (resolution is None or tuple(x.shape[2:]) == (resolution, resolution))
    ok = ok and (channels is None or x.shape[1] == channels)
    ok = ok and (classes is None or (isinstance(classes, list)
                                     and all(isinstance(c, str) for c in classes)))
    ok = ok and (y is None) == (classes is None)
    ok = ok and (y is None or (y.dtype == torch.int64 and y.shape == (x.shape[0],)
                               and bool(((y >= 0) & (y < len(classes))).all())))
    return (x, y, classes, info) if ok else None


def _write_cache(
    file: Path, key: str, x: torch.Tensor, y: torch.Tensor | None, classes: list[str] | None, info: dict
) -> str | None:
    """Write the cache atomically; return an error text instead of failing the load."""
    tensors = {"x": x.contiguous()}
    if y is not None:
        tensors["y"] = y.contiguous()
    meta = {
        "key": key,
        "version": str(LOADER_VERSION),
        "classes": json.dumps(classes),
        "info": json.dumps(info),
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(file, safetensors_bytes(tensors, metadata=meta))
    except OSError as exc:
        return f"could not write cache {file}: {exc.strerror or exc}"
    _prune_stale(file)
    return None


def _prune_stale(file: Path) -> None:
    """Delete older caches of the same folder and settings (best effort)."""
    slot_prefix = file.name.rsplit("-", 1)[0] + "-"
    for old in file.parent.glob(slot_prefix + "*.safetensors"):
        if old != file:
            try:
                old.unlink()
            except OSError:
                pass
