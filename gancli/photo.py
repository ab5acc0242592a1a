"""Photos in and out of a translation model, whatever their size, mode or orientation.

A photo is translated at a working size the model accepts and resized back, so the
output always has the input's pixel size:

1. decode (first frame of an animation), apply the EXIF orientation;
2. split off the alpha channel, if any (it is put back unchanged at the end);
3. bring the colour to what the model was trained on: grey (``L``) or ``RGB``; CMYK,
   palette and 16-bit images are converted (16-bit grey is rescaled, not clipped);
4. scale so the shorter side is ``size`` (the model's training resolution by default),
   the longer side following the aspect ratio, both rounded to multiples of 4: the
   generators are fully convolutional, so no crop or squash is needed;
5. translate, then resize the result back to the input's size (bicubic).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from gancli.errors import GancliError
from gancli.imaging import from_uint8

# working sizes never exceed this many times the requested short side along the long side,
# so a 10000 x 10 strip costs what a 32 x 320 one does
MAX_ASPECT = 8
# the generators' reflection padding needs at least 2 x 2 pixels after two 2x downsamplings
MIN_SIDE = 8
# the formats we write, by file suffix; anything else is written as PNG
WRITERS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
           ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF"}
_ALPHA_WRITERS = {"PNG", "WEBP", "TIFF"}


class PhotoError(GancliError):
    """A file that cannot be read or written as an image."""


@dataclass
class Photo:
    rgb: Image.Image  # mode "L" or "RGB", upright
    alpha: Image.Image | None  # mode "L", or None
    size: tuple[int, int]  # (width, height) after the EXIF rotation
    source_mode: str


def read_photo(path: Path, channels: int) -> Photo:
    """Decode ``path`` for a model with ``channels`` (1 or 3) input channels."""
    from gancli.data.images import (ImageTooLarge, NotARegularFile, to_gray_or_rgb,
                                    max_image_pixels, open_image, too_large_hint)

    limit = max_image_pixels()  # a bad setting is its own error, not "cannot decode"
    try:
        with open_image(path, limit=limit) as img:
            img.seek(0)  # the first frame of an animated GIF / WebP / APNG
            img.load()
            mode = img.mode
            try:
                img = ImageOps.exif_transpose(img)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the pixels
                pass
            alpha = None
            if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
                alpha = img.convert("RGBA").getchannel("A")
                if alpha.getextrema() == (255, 255):
                    alpha = None  # fully opaque: nothing to keep
            if alpha is None:
                base = to_gray_or_rgb(img)
            elif mode in ("LA", "La"):
                base = img.convert("LA").getchannel("L")  # the grey under the alpha, as it is
            else:
                base = img.convert("RGBA").convert("RGB")
    except FileNotFoundError:
        raise PhotoError(f"{path}: no such file", hint="check the path") from None
    except (IsADirectoryError, NotARegularFile):
        if Path(path).is_dir():
            raise PhotoError(f"{path} is a folder", hint="pass it as --in FOLDER") from None
        raise PhotoError(f"{path} is not a regular file (a FIFO, socket or device)",
                         hint="only regular image files are read") from None
    except ImageTooLarge as e:
        raise PhotoError(f"{path}: too large: {e}", hint=too_large_hint(e.size[0] * e.size[1])) from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
        reason = "not an image" if isinstance(e, Image.UnidentifiedImageError) else \
            f"cannot decode ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
        raise PhotoError(f"{path}: {reason}", hint="is the file complete and an image?") from None
    if channels == 1 and base.mode != "L":
        base = base.convert("L")
    elif channels == 3 and base.mode != "RGB":
        base = base.convert("RGB")
    return Photo(base, alpha, base.size, mode)


def working_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(w, h) with the shorter side ``short``, the aspect kept up to ``MAX_ASPECT`` (a longer
    strip is squeezed to it), both multiples of 4 and at least ``MIN_SIDE``."""
    scale = short / min(width, height)
    if max(width, height) * scale > MAX_ASPECT * short:
        scale = MAX_ASPECT * short / max(width, height)

    def four(v: float) -> int:
        return max(MIN_SIDE, int(round(v / 4)) * 4)

    return four(width * scale), four(height * scale)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL L/RGB -> (1, C, H, W) float in [-1, 1]."""
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return from_uint8(torch.from_numpy(a.copy()).permute(2, 0, 1)[None])


def from_tensor(x: torch.Tensor) -> Image.Image:
    """(C, H, W) in [-1, 1] -> PIL L/RGB."""
    a = x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(a[:, :, 0], "L") if a.shape[2] == 1 else Image.fromarray(a, "RGB")


def translate_photo(photo: Photo, run, short: int) -> Image.Image:
    """``run(x)`` translates a (1, C, h, w) tensor; returns the output at the photo's size."""
    w, h = working_size(*photo.size, short)
    small = photo.rgb.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = from_tensor(run(to_tensor(small))[0])
    out = out.resize(photo.size, Image.Resampling.BICUBIC)
    if photo.alpha is not None:
        out.putalpha(photo.alpha)  # L -> LA, RGB -> RGBA
    return out


def encode(img: Image.Image, suffix: str) -> bytes:
    """The bytes of ``img`` in the format its suffix names (PNG when unknown)."""
    fmt = WRITERS.get(suffix.lower(), "PNG")
    if img.mode in ("RGBA", "LA") and fmt not in _ALPHA_WRITERS:
        base = Image.new("RGB" if img.mode == "RGBA" else "L", img.size, "white")
        base.paste(img, mask=img.getchannel("A"))  # no alpha in JPEG/BMP/GIF: onto white
        img = base
    buf = io.BytesIO()
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    img.save(buf, format=fmt, **options)
    return buf.getvalue()
