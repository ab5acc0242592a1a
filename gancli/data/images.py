"""Load a folder of image files into one uint8 tensor, with an optional cache.

Every image is decoded once, converted to grey or RGB, resized so its shorter
side is ``resolution`` and center-cropped to a square. Files that cannot be
decoded are skipped and counted, never fatal: a real-world folder nearly always
holds a stray ``.DS_Store``, a half-copied JPEG or a mislabelled text file.

Only regular files are ever opened (a FIFO named ``x.png`` would block a reader
forever; sockets and devices are no images either): they are skipped and counted.
An image with more than ``GANCLI_MAX_IMAGE_PIXELS`` pixels (default 200 MP) is
skipped by name with that reason instead of being decoded; Pillow's own
decompression-bomb check is replaced by this one, so no raw Pillow warning
reaches the terminal.

The decoded tensor can be cached as a safetensors file (no pickle: a cache file
must never be able to run code when loaded).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from gancli.data.base import Dataset
from gancli.errors import DataError, UsageError, excerpt
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

ENV_MAX_PIXELS = "GANCLI_MAX_IMAGE_PIXELS"
# The largest camera sensors (200 MP phone sensors, 100-150 MP medium format) fit. Decoding and
# resizing a 182.5 MP RGB PNG peaked at 1.4 GB above the interpreter's baseline (3 bytes per
# pixel plus the decode's working copies), so 4 decoder threads stay under ~6 GB even if every
# one holds such an image. Pillow's own limit (a warning above 89 MP, an error above 179 MP)
# would refuse or warn about valid scans and phone photos.
DEFAULT_MAX_IMAGE_PIXELS = 200_000_000
# gancli checks every image's size itself (``open_image``) before decoding, with a limit the
# user can change and a named skip; Pillow's check would warn on stderr or fail unnamed.
Image.MAX_IMAGE_PIXELS = None

SKIP_UNREADABLE = "unreadable"
SKIP_NOT_REGULAR = "not a regular file"
SKIP_TOO_LARGE = "too large"


class NotARegularFile(OSError):
    """A path that is a FIFO, socket, device or folder where an image file was expected."""


class ImageTooLarge(ValueError):
    """An image with more pixels than ``max_image_pixels()``; ``size`` is (width, height)."""

    def __init__(self, size: tuple[int, int], limit: int):
        self.size, self.limit = size, limit
        super().__init__(f"{megapixels(size[0] * size[1])} > limit {megapixels(limit)}")


def megapixels(n: int) -> str:
    """``182 MP``, ``0.04 MP``: a pixel count for a message."""
    return f"{n / 1e6:.3g} MP"


def max_image_pixels() -> int:
    """The most pixels gancli decodes from one image: ``$GANCLI_MAX_IMAGE_PIXELS`` or
    ``DEFAULT_MAX_IMAGE_PIXELS`` (200,000,000). JPEGs count after libjpeg's reduced-size decode.

    Raises:
        UsageError (exit 2): the variable is set but is not a positive integer.
    """
    text = os.environ.get(ENV_MAX_PIXELS, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{ENV_MAX_PIXELS}={excerpt(text)} is not a positive number of pixels",
                         hint=f"e.g. {ENV_MAX_PIXELS}=400000000 (400 MP), or unset it for "
                              f"{DEFAULT_MAX_IMAGE_PIXELS:,}")
    return value


def too_large_hint(pixels: int) -> str:
    """How to allow an image of ``pixels`` pixels."""
    need = max(pixels, 1)
    return f"set {ENV_MAX_PIXELS}={need} (or more) to allow it"


def is_regular(path: str | Path) -> bool:
    """True when ``path`` (links followed) is a regular file; False for FIFOs, sockets,
    devices, folders, dangling links and anything that cannot be stat'ed."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def open_regular(path: str | Path):
    """Open ``path`` for reading only if it is a regular file, without ever blocking.

    The file is opened with ``O_NONBLOCK`` (a FIFO then opens at once instead of waiting for
    a writer) and checked with ``fstat`` on the open descriptor, so a file swapped for a FIFO
    after a ``stat`` cannot slip through.

    Returns:
        A binary file object.

    Raises:
        NotARegularFile: a FIFO, socket, device or folder.
        OSError: missing, unreadable.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise NotARegularFile(f"{path} is a folder") from None
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENODEV):  # a socket, a device without a driver
            raise NotARegularFile(f"{path} is not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def open_image(path: str | Path, draft: int | None = None, limit: int | None = None):
    """Open an image lazily (header only), refusing non-regular files and oversized images.

    Args:
        path: the file.
        draft: for JPEGs, let libjpeg decode at a reduced scale whose short side is still at
            least ``draft`` pixels (the size check then counts the reduced size).
        limit: most pixels allowed; None = ``max_image_pixels()``.

    Yields:
        The opened ``PIL.Image.Image`` (not yet decoded: ``.size`` needs no decode).

    Raises:
        NotARegularFile, OSError, ImageTooLarge, and whatever Pillow raises for a bad file.
    """
    limit = max_image_pixels() if limit is None else limit
    with open_regular(path) as f, Image.open(f) as img:
        if draft is not None and img.format == "JPEG":
            img.draft(None, (draft, draft))
        w, h = img.size
        if w * h > limit:
            raise ImageTooLarge((w, h), limit)
        yield img


@dataclass
class FolderScan:
    """What ``scan_folder`` found under a root (relative posix paths, sorted).

    ``entries``: (path, size, mtime_ns) of regular files with a supported extension;
    ``broken``: such names that cannot be stat'ed (dangling or looping links) or folders that
    cannot be listed (ending in ``/``); ``special``: such names that are not regular files
    (FIFOs, sockets, devices), never opened; ``n_other``: files with other extensions;
    ``top_dirs``: the non-hidden sub-folders directly under the root (class folders).
    """

    entries: list[tuple[str, int, int]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    n_other: int = 0
    top_dirs: list[str] = field(default_factory=list)


def load_image_folder(
    path: str | Path,
    resolution: int,
    channels: int | None,
    cache_dir: Path | None,
    labels: bool = False,
    allow_empty_classes: bool = False,
) -> Dataset:
    """Load every image under ``path`` (recursively) as a square uint8 tensor.

    Args:
        path: the folder to scan.
        resolution: output side length in pixels.
        channels: 1 (grey), 3 (RGB) or None (1 if every image is grey, else 3).
        cache_dir: where to keep a decoded copy keyed by the files' names, sizes
            and mtimes; None disables the cache.
        labels: take the first sub-folder under ``path`` as each image's class.
        allow_empty_classes: with labels, train without a class sub-folder that holds no
            usable image (it is named in ``info["notes"]``) instead of refusing the folder.

    Returns:
        A ``Dataset`` of kind ``"images"``; ``info`` holds ``files``, ``skipped``,
        ``skipped_examples`` and ``cache`` (``"hit"``, ``"miss"`` or ``"off"``),
        plus ``cache_error`` when the cache could not be written (not fatal),
        ``skipped_reasons`` ({reason: count}) and ``notes`` (one line per skip reason
        that needs the user: too-large images, non-regular files, dropped classes).

    Raises:
        DataError: missing folder, no usable image, a bad layout for labels, or (with
            labels) a class sub-folder without a usable image, like torchvision's ImageFolder.
    """
    root = Path(path).expanduser()
    check_source_args(root, resolution, channels)
    found = scan_folder(root)
    entries, broken, n_other = found.entries, sorted(found.broken + found.special), found.n_other
    if labels:
        check_label_layout(root, entries)

    cache_file, key = None, ""
    if cache_dir is not None:
        key = _cache_key(entries, broken, resolution, channels, labels)
        cache_file = _cache_path(Path(cache_dir), root, key, resolution, channels, labels)
        cached = _read_cache(cache_file, key, resolution, channels)
        if cached is not None:
            x, y, classes, info = cached
            if labels:
                info = check_classes(root, found.top_dirs, classes, info, allow_empty_classes)
            return _make_dataset(root, x, y, classes, info, cache="hit")

    x, y, classes, info = _decode_all(root, entries, broken, n_other, resolution, channels, labels,
                                      special=found.special)
    if labels:
        info = check_classes(root, found.top_dirs, classes, info, allow_empty_classes)
    cache = "off"
    if cache_file is not None:
        cache = "miss"
        error = _write_cache(cache_file, key, x, y, classes, info)
        if error:
            info["cache_error"] = error
    return _make_dataset(root, x, y, classes, info, cache=cache)


def check_classes(root: Path, top_dirs: list[str], classes: list[str] | None, info: dict,
                  allow_empty: bool) -> dict:
    """Every class sub-folder must hold a usable image, or the class indices of the others
    would shift silently (``--class 1`` drawing the third folder). With ``allow_empty`` the
    empty ones are dropped and named in ``info["notes"]``."""
    empty = [d for d in top_dirs if d not in set(classes or [])]
    if not empty:
        return info
    if not allow_empty:
        more = f" (and {len(empty) - 1} more: {', '.join(empty[1:4])}{' ...' if len(empty) > 4 else ''})" \
            if len(empty) > 1 else ""
        raise DataError(f"class folder {root / empty[0]} holds no usable image{more}",
                        hint="add images to it, remove it, or train without it with "
                             "--set data.allow_empty_classes=true")
    note = (f"class folder(s) without a usable image left out: {', '.join(empty[:5])}"
            f"{' ...' if len(empty) > 5 else ''}; classes: {', '.join(classes or [])}")
    notes = [n for n in info.get("notes", []) if n != note]  # a cache hit already holds it
    return {**info, "notes": [*notes, note], "empty_classes": empty}


def check_source_args(root: Path, resolution: int, channels: int | None) -> None:
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


def list_image_files(root: Path) -> tuple[list[tuple[str, int, int]], list[str], int]:
    """List candidate image files under ``root``.

    Returns:
        (entries, broken, n_other): ``entries`` are (relative posix path, size,
        mtime_ns) for regular files with a supported extension, sorted by path;
        ``broken`` are such names that cannot be used: dangling links, and files that
        are not regular files (FIFOs, sockets, devices), which are never opened;
        ``n_other`` counts files with other extensions, which are ignored.
    """
    found = scan_folder(root)
    return found.entries, sorted(found.broken + found.special), found.n_other


def scan_folder(root: Path, extensions: tuple[str, ...] | None = SUPPORTED_EXTENSIONS) -> FolderScan:
    """Walk ``root`` (recursively, following folder links once each, skipping hidden names).

    The one folder walk of gancli: training, ``evaluate`` and ``translate`` all read folders
    through it. Every candidate is ``stat``-ed (links followed) and only regular files are
    listed as entries; FIFOs, sockets and devices go to ``special`` and are never opened.

    Args:
        root: the folder.
        extensions: lower-case name endings to keep (others are counted in ``n_other``);
            None keeps every file.

    Raises:
        DataError: ``root`` itself cannot be listed.
    """
    out = FolderScan()
    visited: set[tuple[int, int]] = set()

    def unreadable(err: OSError) -> None:
        # os.walk skips a folder it cannot list; say so for the root, count the others
        if Path(err.filename or "") == root:
            raise DataError(f"cannot read image folder {root}: {err.strerror or err}",
                            hint="check the folder's permissions")
        out.broken.append(Path(os.path.relpath(err.filename, root)).as_posix() + "/")

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
        if dirpath == str(root):
            out.top_dirs = list(dirnames)
        for name in filenames:
            if name.startswith("."):
                continue
            if extensions is not None and not name.lower().endswith(extensions):
                out.n_other += 1
                continue
            full = os.path.join(dirpath, name)
            rel = Path(os.path.relpath(full, root)).as_posix()
            try:
                fst = os.stat(full)
            except OSError:
                out.broken.append(rel)
                continue
            if not stat.S_ISREG(fst.st_mode):
                out.special.append(rel)  # a FIFO would block the reader forever: never opened
                continue
            out.entries.append((rel, fst.st_size, fst.st_mtime_ns))
    out.entries.sort()
    out.broken.sort()
    out.special.sort()
    return out


def check_label_layout(root: Path, entries: list[tuple[str, int, int]]) -> None:
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
    special: list[str] = (),  # type: ignore[assignment]
) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None, dict]:
    """Decode every candidate file; skip and count the ones that fail (``special``: the
    names in ``broken`` that are not regular files, for the skip reasons)."""
    rels = [rel for rel, _, _ in entries]
    limit = max_image_pixels()  # read once: a bad value is one error, not a skip per file

    def work(rel: str) -> tuple[np.ndarray | None, str]:
        # Looked up at call time so tests can swap the decoder out.
        return decode_image_why(root / rel, resolution, channels, limit)

    if len(rels) >= _POOL_MIN_FILES:
        # PIL releases the GIL while decoding and resampling, so threads help.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            results = list(pool.map(work, rels))
    else:
        results = [work(rel) for rel in rels]

    used = [(rel, a) for rel, (a, _) in zip(rels, results) if a is not None]
    failed = [(rel, why) for rel, (a, why) in zip(rels, results) if a is None]
    skipped = sorted(broken + [rel for rel, _ in failed])
    special_set = set(special)
    reasons: dict[str, int] = {}
    for rel in broken:
        why = SKIP_NOT_REGULAR if rel in special_set else SKIP_UNREADABLE
        reasons[why] = reasons.get(why, 0) + 1
    for _, why in failed:
        key = why.split(":", 1)[0]
        reasons[key] = reasons.get(key, 0) + 1
    notes = _skip_notes(failed, sorted(special_set))
    if not used:
        looked = len(rels) + len(broken)
        counts = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items())) or "0 could not be read"
        if reasons and set(reasons) != {SKIP_UNREADABLE}:
            # name the reason: a lone big scan is "too large", not "could not be read"
            first = next((f"{rel}: {why.split('; ', 1)[0]}" for rel, why in failed
                          if not why.startswith(SKIP_UNREADABLE)),
                         f"{sorted(special_set)[0]}: {SKIP_NOT_REGULAR}" if special_set else "")
            big = [why for _, why in failed if why.startswith(SKIP_TOO_LARGE)]
            raise DataError(
                f"no usable image in {root}: looked at {looked} image file(s) ({counts}), e.g. {first}",
                hint=big[0].split("; ", 1)[1] if big else "only regular files are read: FIFOs, "
                "sockets and devices are skipped",
            )
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
    if reasons:
        info["skipped_reasons"] = reasons
    if notes:
        info["notes"] = notes
    return x, y, classes, info


def _skip_notes(failed: list[tuple[str, str]], special: list[str]) -> list[str]:
    """One line per skip reason the user can act on (the unreadable ones are only counted)."""
    notes = []
    big = [(rel, why) for rel, why in failed if why.startswith(SKIP_TOO_LARGE)]
    if big:
        rel, why = big[0]
        more = f" (and {len(big) - 1} more)" if len(big) > 1 else ""
        notes.append(f"skipped {len(big)} image(s) over the pixel limit: {rel}: {why}{more}")
    if special:
        more = f" (and {len(special) - 1} more)" if len(special) > 1 else ""
        notes.append(f"skipped {len(special)} file(s) that are not regular files (FIFOs, "
                     f"sockets, devices): {special[0]}{more}")
    return notes


def decode_image(file: Path, resolution: int, channels: int | None) -> np.ndarray | None:
    """Decode one file to an (H, W) grey or (H, W, 3) RGB uint8 array; None if unreadable."""
    return decode_image_why(file, resolution, channels)[0]


def decode_image_why(file: Path, resolution: int, channels: int | None,
                     limit: int | None = None) -> tuple[np.ndarray | None, str]:
    """Like ``decode_image``, with the reason for a skip.

    Returns:
        (array, "") on success, else (None, reason): ``"not a regular file"``,
        ``"too large: 182 MP > limit 100 MP; set GANCLI_MAX_IMAGE_PIXELS=... to allow it"``,
        or ``"unreadable"``.

    Raises:
        UsageError: a bad ``GANCLI_MAX_IMAGE_PIXELS`` (never turned into a skip).
    """
    limit = max_image_pixels() if limit is None else limit
    try:
        # JPEG: let libjpeg decode at a reduced scale (still >= resolution): big photos
        # then decode several times faster, and only the reduced size counts.
        with open_image(file, draft=resolution, limit=limit) as img:
            img.load()
            return fit_image(img, resolution, channels), ""
    except NotARegularFile:
        return None, SKIP_NOT_REGULAR
    except ImageTooLarge as e:
        return None, f"{SKIP_TOO_LARGE}: {e}; {too_large_hint(e.size[0] * e.size[1])}"
    except Exception:  # noqa: BLE001 - see below
        # PIL's format plugins raise a zoo of types for malformed files (OSError,
        # SyntaxError, ValueError, EOFError, struct.error, ...); the contract is
        # "skip and count", so any failure here is a skip.
        return None, SKIP_UNREADABLE


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
    img = to_gray_or_rgb(img)
    if channels == 1 and img.mode == "RGB":
        img = img.convert("L")  # before resizing: a third of the work
    img = resize_center_crop(img, resolution)
    if channels == 3 and img.mode == "L":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def is_gray_mode(mode: str) -> bool:
    """True for PIL modes that hold no colour (L, LA, 1, I, I;16*, F)."""
    return mode in _GRAY_MODES or mode.startswith("I;")


def to_gray_or_rgb(img: Image.Image) -> Image.Image:
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
