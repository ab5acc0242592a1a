"""Tests for the built-in datasets (digits, shapes) and the torchvision adapters."""

from __future__ import annotations

import gzip
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from gancli.data.digits import DIGITS_FILE, load_digits
from gancli.data.shapes import SHAPE_CLASSES, load_shapes
from gancli.data.tv import TORCHVISION_NAMES, load_torchvision
from gancli.errors import DataError

# ------------------------------------------------------------------ digits


def test_digits_native() -> None:
    ds = load_digits()
    assert ds.kind == "images" and ds.name == "digits"
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == torch.uint8
    assert int(ds.x.min()) == 0 and int(ds.x.max()) == 255
    assert ds.classes == [str(i) for i in range(10)]
    assert ds.y is not None and ds.y.dtype == torch.int64 and ds.y.shape == (1797,)
    counts = torch.bincount(ds.y, minlength=10)
    assert counts.sum() == 1797 and counts.min() >= 170 and counts.max() <= 190
    # 0..16 mapped onto 0..255 exactly (rounded), no resampling at 8x8.
    with gzip.open(DIGITS_FILE, "rt") as f:
        first = np.array(f.readline().split(","), dtype=np.int64)
    assert ds.x[0, 0].flatten().tolist() == np.rint(first[:64] * 255 / 16).astype(int).tolist()
    assert int(ds.y[0]) == first[64]


@pytest.mark.parametrize("resolution", [16, 32])
def test_digits_upsampled(resolution: int) -> None:
    ds = load_digits(resolution, channels=3)
    assert ds.x.shape == (1797, 3, resolution, resolution) and ds.x.dtype == torch.uint8
    assert torch.equal(ds.x[:, 0], ds.x[:, 2])  # grey repeated into RGB
    assert torch.equal(ds.x, load_digits(resolution, channels=3).x)  # deterministic
    # Upsampling keeps the picture: mean brightness close to the 8x8 original.
    assert abs(ds.x.float().mean() - load_digits().x.float().mean()) < 3


def test_digits_bad_channels() -> None:
    with pytest.raises(DataError):
        load_digits(8, channels=2)


def test_digits_splits_are_the_held_out_split() -> None:
    from gancli.data import load_dataset
    from gancli.metrics.digits import digits_split

    full = load_digits(16)
    train, test = load_digits(16, split="train"), load_digits(16, split="test")
    train_idx, test_idx = digits_split()
    assert len(train.x) == 1297 and len(test.x) == 500
    assert torch.equal(train.x, full.x[train_idx]) and torch.equal(train.y, full.y[train_idx])
    assert torch.equal(test.x, full.x[test_idx]) and torch.equal(test.y, full.y[test_idx])
    # the spec string reaches the split; an unknown split is a one-line error with the choices
    from gancli.config import DataConfig
    assert len(load_dataset(DataConfig(source="digits:train", resolution=16)).x) == 1297
    with pytest.raises(DataError, match="no split 'val'") as err:
        load_digits(8, split="val")
    assert "digits:train" in err.value.hint


# ------------------------------------------------------------------ shapes


def test_shapes_shape_balance_and_range() -> None:
    ds = load_shapes(resolution=32, n=400, seed=3)
    assert ds.x.shape == (400, 3, 32, 32) and ds.x.dtype == torch.uint8
    assert ds.classes == SHAPE_CLASSES
    assert ds.y is not None and ds.y.dtype == torch.int64
    assert torch.bincount(ds.y, minlength=len(SHAPE_CLASSES)).tolist() == [100] * len(SHAPE_CLASSES)
    assert ds.y[:20].tolist() != [i % 4 for i in range(20)]  # shuffled, not round-robin
    # Every image has a bright shape on a dark background.
    per_image_max = ds.x.amax(dim=(1, 2, 3)).float()
    per_image_min = ds.x.amin(dim=(1, 2, 3)).float()
    assert (per_image_max - per_image_min).min() > 100


def test_shapes_deterministic_and_seed_dependent() -> None:
    a = load_shapes(resolution=16, n=64, seed=7)
    b = load_shapes(resolution=16, n=64, seed=7)
    c = load_shapes(resolution=16, n=64, seed=8)
    assert a.x.numpy().tobytes() == b.x.numpy().tobytes() and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


@pytest.mark.parametrize("resolution", [1, 7, 64])
def test_shapes_any_resolution_and_grey(resolution: int) -> None:
    ds = load_shapes(resolution=resolution, n=10, seed=0, channels=1)
    assert ds.x.shape == (10, 1, resolution, resolution)


def test_shapes_shape_stays_inside_image() -> None:
    # The border rows/columns should be background: the shape is fully inside.
    ds = load_shapes(resolution=32, n=200, seed=1, channels=1)
    x = ds.x[:, 0].float()
    background = x.flatten(1).amin(dim=1)
    border = torch.cat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], dim=1)
    assert (border - background[:, None]).abs().max() < 40  # no shape pixels on the edge


# ------------------------------------------------------------------ torchvision


def test_torchvision_unknown_name_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_torchvision("svhn", tmp_path, 32, None, download=False)
    for name in ("mnist", "fashion-mnist", "cifar10", "celeba"):
        assert name in err.value.hint
    assert set(TORCHVISION_NAMES) == {"mnist", "fashion-mnist", "cifar10", "celeba"}


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "celeba"])
def test_torchvision_missing_files_offline(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError) as err:
        load_torchvision(name, tmp_path / "data", 32, None, download=False)
    assert str(tmp_path / "data") in err.value.message and "not on disk" in err.value.message
    assert "GANCLI_DATA" in err.value.hint


def test_torchvision_download_failure_is_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(DataError) as err:
        load_torchvision("mnist", tmp_path, 28, None, download=True)
    assert "downloading failed" in err.value.message and "GANCLI_DATA" in err.value.hint


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write an array in the IDX format MNIST ships in (uint8 data, big-endian dims)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, folder: str = "MNIST", n: int = 6) -> np.ndarray:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    imgs = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        imgs[i, 4:24, 4:24] = 40 * i
    for split in ("train", "t10k"):
        _write_idx(raw / f"{split}-images-idx3-ubyte", imgs)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    return imgs


@pytest.mark.parametrize("folder,name", [("MNIST", "mnist"), ("FashionMNIST", "fashion-mnist")])
def test_torchvision_mnist_conversion(tmp_path: Path, folder: str, name: str) -> None:
    imgs = _fake_mnist(tmp_path, folder)
    native = load_torchvision(name, tmp_path, 28, None, download=False)
    assert native.x.shape == (6, 1, 28, 28) and native.x.dtype == torch.uint8
    assert torch.equal(native.x[:, 0], torch.from_numpy(imgs))
    assert native.y is not None and native.y.tolist() == [0, 1, 2, 3, 4, 5]
    assert native.classes is not None and len(native.classes) == 10
    small = load_torchvision(name, tmp_path, 16, 3, download=False)
    assert small.x.shape == (6, 3, 16, 16)
    assert small.x[5, :, 8, 8].tolist() == [200, 200, 200]
