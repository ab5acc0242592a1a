"""The built-in ``digits`` dataset: 1,797 hand-written digits, 8x8, 10 classes.

This is the test set of the UCI "Optical Recognition of Handwritten Digits"
data (Alpaydin & Kaynak, 1998; CC BY 4.0), in the copy scikit-learn ships.
It is tiny (57 KB) so it travels inside the package: a GAN can be trained on
real data with no download. See ``DIGITS_LICENSE.txt`` next to this file.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gancli.data.base import Dataset
from gancli.errors import DataError, excerpt

DIGITS_FILE = Path(__file__).with_name("digits.csv.gz")
NUM_SAMPLES = 1797
# Pixel values in the file are counts of "on" pixels in 4x4 blocks: 0..16.
_MAX_VALUE = 16


SPLITS = ("all", "train", "test")
# The fixed held-out part: the shipped digits classifier never saw it, and TSTR tests on it.
HELD_OUT = 500


def digits_split(seed: int = 0, test: int = HELD_OUT) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed train / held-out split of the 1,797 digit indices.

    ``torch.randperm(1797)`` under ``torch.Generator().manual_seed(seed)``: the
    first ``test`` indices are held out, the rest are for training. Both are
    returned sorted as int64 tensors. The shipped classifier uses the defaults
    (seed 0, 500 held out), so TSTR and accuracy checks should test on that
    held-out part only, and a GAN they judge should train on ``digits:train``.
    """
    if not 0 < test < NUM_SAMPLES:
        raise ValueError(f"test must be in 1..{NUM_SAMPLES - 1}, not {test}")
    perm = torch.randperm(NUM_SAMPLES, generator=torch.Generator().manual_seed(int(seed)))
    return perm[test:].sort().values, perm[:test].sort().values


def load_digits(resolution: int = 8, channels: int = 1, split: str = "all") -> Dataset:
    """Load the digits as uint8 images.

    Args:
        resolution: output side; 8 is the native size, larger sizes are
            bilinearly upsampled (deterministic, on the CPU).
        channels: 1 for grey, 3 to repeat the grey channel as RGB.
        split: ``all`` (1,797), ``train`` (1,297) or ``test`` (the 500 held out by
            ``digits_split()``).

    Returns:
        A ``Dataset`` with x (N, channels, resolution, resolution) uint8 in
        0..255, y int64 digit labels and classes ``["0", ..., "9"]``.
    """
    if split not in SPLITS:
        raise DataError(f"digits has no split {excerpt(split)}",
                        hint="use digits (all 1,797), digits:train (1,297) or digits:test (500 held out)")
    if channels not in (1, 3):
        raise DataError(f"digits has 1 or 3 channels, not {channels}", hint="use 1 (grey) or 3 (RGB)")
    if int(resolution) < 1:
        raise DataError(f"resolution must be at least 1, not {resolution}", hint="try 8, 16 or 32")
    pixels, labels = _read_csv()
    # Scale 0..16 -> 0..255 in float and round once, after any resampling.
    x = torch.from_numpy(pixels).float().reshape(-1, 1, 8, 8) * (255.0 / _MAX_VALUE)
    if resolution != 8:
        size = (resolution, resolution)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = x.round().clamp(0, 255).to(torch.uint8)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    y = torch.from_numpy(labels).to(torch.int64)
    if split != "all":
        train_idx, test_idx = digits_split()
        keep = train_idx if split == "train" else test_idx
        x, y = x[keep], y[keep]
    info = {"samples": int(x.shape[0]), "split": split,
            "source": "UCI ML hand-written digits (scikit-learn copy)"}
    classes = [str(i) for i in range(10)]
    return Dataset(name="digits", kind="images", x=x.contiguous(), y=y, classes=classes, info=info)


def _read_csv() -> tuple[np.ndarray, np.ndarray]:
    """Read the 65-column CSV: 64 pixel values then the label."""
    try:
        with gzip.open(DIGITS_FILE, "rt") as f:
            data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        # Only a broken installation gets here: the file ships with the package.
        raise DataError(
            f"the built-in digits file {DIGITS_FILE} is missing or damaged ({exc})",
            hint="reinstall gancli",
        ) from exc
    if data.shape != (NUM_SAMPLES, 65):
        raise DataError(
            f"the built-in digits file {DIGITS_FILE} has shape {data.shape}", hint="reinstall gancli"
        )
    return data[:, :64], data[:, 64]
