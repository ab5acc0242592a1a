"""Adapters for the standard torchvision datasets (MNIST, Fashion-MNIST, CIFAR-10, CelebA).

torchvision does the downloading and the reading of its formats; this module
turns the result into the same uint8 ``Dataset`` the folder loader returns,
resized and center-cropped by the very same helper.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gancli.data.base import Dataset
from gancli.data.images import fit_image, stack_images
from gancli.errors import DataError


@dataclass(frozen=True)
class _Spec:
    cls: str  # torchvision.datasets class name
    subdir: str  # where torchvision expects the files, relative to root
    labelled: bool


_SPECS = {
    "mnist": _Spec("MNIST", "MNIST/raw", True),
    "fashion-mnist": _Spec("FashionMNIST", "FashionMNIST/raw", True),
    "cifar10": _Spec("CIFAR10", "cifar-10-batches-py", True),
    "celeba": _Spec("CelebA", "celeba", False),
}
TORCHVISION_NAMES = tuple(_SPECS)
DATA_ENV_VAR = "GANCLI_DATA"


def load_torchvision(name: str, root: Path, resolution: int, channels: int | None, download: bool) -> Dataset:
    """Load the training split of a torchvision dataset (all of CelebA) as uint8 images.

    Args:
        name: ``mnist``, ``fashion-mnist``, ``cifar10`` or ``celeba``.
        root: the data folder (the caller takes it from ``$GANCLI_DATA``).
        resolution: output side; images are resized and center-cropped.
        channels: 1, 3, or None for the dataset's own (1 for the MNISTs, else 3).
        download: let torchvision fetch missing files.

    Returns:
        A ``Dataset`` with class labels, except for CelebA (y is None).

    Raises:
        DataError: unknown name, or the files are absent and cannot be downloaded.
    """
    key = name.lower()
    if key not in _SPECS:
        raise DataError(
            f"unknown torchvision dataset {name!r}", hint="choose one of: " + ", ".join(TORCHVISION_NAMES)
        )
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1, 3 or None, not {channels!r}", hint="use 1 (grey) or 3 (RGB)")
    if int(resolution) < 1:
        raise DataError(f"resolution must be at least 1, not {resolution}", hint="try 32 or 64")
    spec = _SPECS[key]
    root = Path(root).expanduser()
    ds = _open(key, spec, root, download)
    if key == "celeba":
        x = _convert_pil(ds, resolution, channels)
        y, classes = None, None
    else:
        x = _convert_array(np.asarray(ds.data), resolution, channels)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        classes = [str(c) for c in ds.classes]
    info = {"samples": int(x.shape[0]), "root": str(root), "source": f"torchvision.datasets.{spec.cls}"}
    return Dataset(name=key, kind="images", x=x, y=y, classes=classes, info=info)


def _open(key: str, spec: _Spec, root: Path, download: bool):
    """Construct the torchvision dataset, turning "not found" into a DataError."""
    import torchvision.datasets as tvd  # heavy import, only when asked for

    cls = getattr(tvd, spec.cls)
    try:
        # With download=True torchvision checks each file's md5 after fetching
        # it (and CIFAR/CelebA re-check before use), so a corrupted or tampered
        # download is refused there rather than decoded here.
        if key == "celeba":
            return cls(root=str(root), split="all", target_type=[], download=download)
        return cls(root=str(root), train=True, download=download)
    except (RuntimeError, OSError) as exc:
        # RuntimeError: "Dataset not found or corrupted" / all mirrors failed;
        # OSError covers urllib's URLError and socket errors when offline.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        how = f"downloading failed ({reason})" if download else "downloading is off"
        raise DataError(
            f"{key} is not on disk at {root} and {how}",
            hint=f"run once with network access and downloading allowed, or place the {key} files under "
            f"{root / spec.subdir}; the data folder is taken from ${DATA_ENV_VAR}",
        ) from exc


def _convert_array(data: np.ndarray, resolution: int, channels: int | None) -> torch.Tensor:
    """(N, H, W) or (N, H, W, 3) uint8 array -> (N, C, res, res) uint8 tensor."""
    gray = data.ndim == 3
    n, h, w = data.shape[:3]
    if h == w == resolution and not (channels == 1 and not gray):
        # Already the right size: skip the per-image PIL round trip.
        x = torch.from_numpy(np.ascontiguousarray(data))
        x = x.unsqueeze(1) if gray else x.permute(0, 3, 1, 2)
        if channels == 3 and gray:
            x = x.repeat(1, 3, 1, 1)
        return x.contiguous()
    from PIL import Image

    mode = "L" if gray else "RGB"
    arrays = [fit_image(Image.fromarray(data[i], mode), resolution, channels) for i in range(n)]
    return stack_images(arrays, channels)


def _convert_pil(ds, resolution: int, channels: int | None) -> torch.Tensor:
    """Datasets that yield PIL images (CelebA): decode with a few threads."""

    def one(i: int) -> np.ndarray:
        img, _ = ds[i]
        return fit_image(img, resolution, channels)

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(one, range(len(ds))))
    return stack_images(arrays, channels)
