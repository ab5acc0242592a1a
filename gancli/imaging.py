"""Writing what a user looks at: image grids, scatter plots, GIFs. PIL only."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from gancli.fileio import atomic_write_bytes


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float32 in [-1, 1] (x / 127.5 - 1), same shape and device:
    the range every generator outputs and every discriminator reads. One new tensor (the
    arithmetic runs in place on the float copy)."""
    return x.to(torch.float32, copy=True).div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1], (N, C, H, W) float -> uint8 (N, C, H, W) on the CPU."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_pil(img: torch.Tensor) -> Image.Image:
    """One uint8 (C, H, W) image -> PIL (L for one channel, RGB for three)."""
    arr = img.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    """Tile uint8 (N, C, H, W) images into one picture, ``nrow`` images per row (at most N:
    a user's ``--nrow 10**9`` must not size the canvas beyond the images it holds)."""
    n, c, h, w = images.shape
    nrow = min(nrow or max(1, math.ceil(math.sqrt(n))), max(n, 1))
    rows = math.ceil(n / nrow)
    canvas = torch.zeros(c, rows * (h + pad) + pad, nrow * (w + pad) + pad, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        canvas[:, y:y + h, x:x + w] = images[i]
    return to_pil(canvas)


def scatter(points: np.ndarray, real: np.ndarray | None = None, size: int = 512,
            modes: np.ndarray | None = None) -> Image.Image:
    """A scatter plot of 2-D samples (red) over real data (grey), with mode centres (blue)."""
    everything = [p for p in (points, real, modes) if p is not None and len(p)]
    stacked = np.concatenate(everything)
    stacked = stacked[np.isfinite(stacked).all(1)]
    lo, hi = (np.percentile(stacked, [0.5, 99.5], axis=0) if len(stacked) else
              (np.array([-1.0, -1.0]), np.array([1.0, 1.0])))
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.15, 1e-6)
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def to_px(p: np.ndarray) -> np.ndarray:
        q = (p - centre) / half  # [-1, 1] inside the frame
        return np.stack([(q[:, 0] + 1) / 2 * (size - 1), (1 - q[:, 1]) / 2 * (size - 1)], 1)

    for pts, colour, r in ((real, (190, 190, 190), 1), (points, (220, 30, 30), 1.5),
                           (modes, (30, 60, 220), 3)):
        if pts is None or not len(pts):
            continue
        for x, y in to_px(pts[np.isfinite(pts).all(1)]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_image(img: Image.Image, path: Path) -> None:
    """Write a PNG (or JPEG, by suffix) atomically."""
    buf = io.BytesIO()
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    img.save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())


def save_gif(frames: list[Image.Image], path: Path, fps: float = 12, bounce: bool = True) -> None:
    """An animated GIF that loops (and plays back and forth with ``bounce``)."""
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:],
                   duration=max(20, int(1000 / fps)), loop=0)
    atomic_write_bytes(path, buf.getvalue())
