"""The built-in ``shapes`` dataset: one coloured shape per image, 4 classes.

Procedural, so it exists at any resolution and size without a download, and
labelled, so conditional GANs have something to condition on. Everything is
drawn from ``numpy.random.default_rng(seed)``: the same arguments give the
same bytes on every machine.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from gancli.data.base import Dataset
from gancli.errors import DataError

SHAPE_CLASSES = ["circle", "square", "triangle", "cross"]
# Shape size = diameter of its circumscribed circle, as a fraction of the image.
_SIZE_RANGE = (0.35, 0.70)
# Half-thickness of a cross arm relative to its half-length.
_CROSS_THICKNESS = 0.32
# Images composited per batch; bounds the uint16 temporaries to a few MB.
_CHUNK = 1024


def load_shapes(resolution: int = 32, n: int = 10000, seed: int = 0, channels: int = 3) -> Dataset:
    """Draw ``n`` labelled shape images.

    Args:
        resolution: image side in pixels.
        n: number of images; classes are balanced (counts differ by at most 1).
        seed: everything random comes from ``numpy.random.default_rng(seed)``.
        channels: 3 for colour, 1 for grey (grey levels chosen for contrast).

    Returns:
        A ``Dataset`` with x (n, channels, resolution, resolution) uint8, y int64
        labels indexing ``classes`` (circle, square, triangle, cross).
    """
    if channels not in (1, 3):
        raise DataError(f"shapes has 1 or 3 channels, not {channels}", hint="use 1 (grey) or 3 (RGB)")
    if int(resolution) < 1 or int(n) < 1:
        raise DataError(
            f"shapes needs resolution >= 1 and n >= 1 (got {resolution}, {n})", hint="e.g. 32 and 10000"
        )
    rng = np.random.default_rng(seed)
    k = len(SHAPE_CLASSES)
    labels = rng.permutation(np.arange(n) % k)
    # Geometry in pixel units; the centre is drawn so the shape lies fully inside.
    radius = rng.uniform(*_SIZE_RANGE, size=n) * resolution / 2
    # A 1-pixel margin (when there is room) keeps anti-aliasing off the border.
    low = radius + np.minimum(1.0, (resolution / 2 - radius) / 2)
    cx = low + rng.uniform(size=n) * (resolution - 2 * low)
    cy = low + rng.uniform(size=n) * (resolution - 2 * low)
    angle = rng.uniform(0, 2 * math.pi, size=n)
    fg, bg = _colours(rng, n, channels)
    alpha = draw_masks(labels, cx, cy, radius, angle, resolution)
    x = composite(alpha, fg, bg)
    info = {"samples": n, "seed": seed, "source": "procedural"}
    return Dataset(
        name="shapes",
        kind="images",
        x=torch.from_numpy(x),
        y=torch.from_numpy(labels.astype(np.int64)),
        classes=list(SHAPE_CLASSES),
        info=info,
    )


def _colours(rng: np.random.Generator, n: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright foreground and dark, muted background per image, (n, channels) uint8.

    Both colour draws happen for either channel count, so the geometry of a
    given seed does not depend on ``channels``.
    """
    fg_hsv = np.stack([rng.uniform(size=n), rng.uniform(0.55, 1.0, n), rng.uniform(0.85, 1.0, n)], axis=1)
    bg_hsv = np.stack([rng.uniform(size=n), rng.uniform(0.0, 0.45, n), rng.uniform(0.05, 0.30, n)], axis=1)
    grey = rng.uniform(size=(n, 2))
    if channels == 3:
        return _hsv_to_rgb(fg_hsv), _hsv_to_rgb(bg_hsv)
    # Hue-to-grey would make a saturated blue as dark as the background, so
    # grey images get their own levels: shape 160..255, background 0..70.
    fg = np.rint(160 + 95 * grey[:, :1]).astype(np.uint8)
    bg = np.rint(70 * grey[:, 1:]).astype(np.uint8)
    return fg, bg


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Vectorised HSV (all in 0..1) to RGB uint8."""
    h, s, v = hsv[:, 0] * 6.0, hsv[:, 1], hsv[:, 2]
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sectors = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    table = np.stack([np.stack(c, axis=1) for c in sectors], axis=0)  # (6, n, 3)
    rgb = table[i, np.arange(len(i))]
    return np.rint(rgb * 255).astype(np.uint8)


def _outline(label: int, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices of a square, triangle or cross inscribed in radius ``r``."""
    name = SHAPE_CLASSES[label]
    if name == "square":
        polar = [(r, angle + math.pi / 4 + k * math.pi / 2) for k in range(4)]
    elif name == "triangle":
        polar = [(r, angle + k * 2 * math.pi / 3) for k in range(3)]
    else:  # cross: 12 corners; arm-end corners lie on the circle of radius r
        length = r / math.hypot(1.0, _CROSS_THICKNESS)
        t = length * _CROSS_THICKNESS
        quarter = [(length, -t), (length, t), (t, t)]
        polar = []
        for k in range(4):
            for px, py in quarter:
                polar.append((math.hypot(px, py), angle + math.atan2(py, px) + k * math.pi / 2))
    return [(cx + d * math.cos(a), cy + d * math.sin(a)) for d, a in polar]


def draw_masks(
    labels: np.ndarray, cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, angle: np.ndarray, resolution: int
) -> np.ndarray:
    """Coverage masks (n, res, res) uint8, drawn supersampled then LANCZOS-reduced."""
    # 4x supersampling anti-aliases edges; past 128 px, 2x is enough and 4x slow.
    ss = 4 if resolution <= 128 else 2
    big = resolution * ss
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    out = np.empty((len(labels), resolution, resolution), dtype=np.uint8)
    for i, label in enumerate(labels):
        draw.rectangle((0, 0, big, big), fill=0)
        x, y, r = cx[i] * ss, cy[i] * ss, radius[i] * ss
        if SHAPE_CLASSES[label] == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        else:
            draw.polygon(_outline(int(label), x, y, r, float(angle[i])), fill=255)
        out[i] = np.asarray(canvas.resize((resolution, resolution), Image.Resampling.LANCZOS))
    return out


def composite(alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Blend per-image colours through the masks: (n, C, H, W) uint8."""
    n, h, w = alpha.shape
    c = fg.shape[1]
    out = np.empty((n, c, h, w), dtype=np.uint8)
    for s in range(0, n, _CHUNK):
        a = alpha[s : s + _CHUNK, None].astype(np.uint16)
        f = fg[s : s + _CHUNK, :, None, None].astype(np.uint16)
        b = bg[s : s + _CHUNK, :, None, None].astype(np.uint16)
        # Integer blend with rounding: exact and identical on every platform.
        out[s : s + _CHUNK] = ((f * a + b * (255 - a) + 127) // 255).astype(np.uint8)
    return out
