"""Tests for the image-folder loader (gancli.data.images)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancli.data import images
from gancli.data.images import load_image_folder, resize_center_crop
from gancli.errors import DataError

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _mixed_folder(root: Path) -> Path:
    """One file per format/mode plus the awkward cases; 14 good, 3 bad files."""
    _save(Image.new("RGB", (40, 30), RED), root / "rgb.png")
    _save(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), root / "rgba_clear.png")
    _save(Image.new("L", (12, 20), 100), root / "gray.png")
    _save(Image.new("LA", (12, 12), (0, 0)), root / "la_clear.png")
    _save(Image.new("RGB", (20, 20), BLUE).convert("P"), root / "sub" / "palette.png")
    _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), root / "cmyk.jpg", quality=95)
    _save(Image.fromarray(np.full((10, 14), 32896, np.uint16)), root / "deep" / "er" / "g16.png")
    _save(Image.new("RGB", (24, 24), GREEN), root / "x.webp", lossless=True)
    _save(Image.new("RGB", (24, 24), RED), root / "x.bmp")
    _save(Image.new("RGB", (24, 24), RED), root / "x.TIFF")
    frames = [Image.new("RGB", (20, 20), c) for c in (RED, BLUE)]
    _save(frames[0], root / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    _save(Image.new("RGB", (1, 1), GREEN), root / "one.png")
    _save(Image.new("RGB", (10000, 10), GREEN), root / "strip.png")
    _save(Image.new("RGB", (50, 30), BLUE), root / "photo.jpeg", quality=90)
    # Bad files: empty, truncated JPEG, text named .png; plus an ignored extension.
    (root / "empty.png").write_bytes(b"")
    good = root / "photo.jpeg"
    (root / "trunc.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (root / "notes.png").write_text("not an image")
    (root / "README.txt").write_text("ignored")
    return root


def test_mixed_formats_counts_shapes_and_skips(tmp_path: Path) -> None:
    root = _mixed_folder(tmp_path / "imgs")
    ds = load_image_folder(root, 8, None, None)
    assert ds.kind == "images" and ds.name == str(root)
    assert ds.x.dtype == torch.uint8 and ds.x.shape == (14, 3, 8, 8)
    assert ds.y is None and ds.classes is None
    assert ds.info["files"] == 14 and ds.info["skipped"] == 3 and ds.info["cache"] == "off"
    assert ds.info["skipped_examples"] == ["empty.png", "notes.png", "trunc.jpg"]


def test_mode_conversions_give_sensible_pixels(tmp_path: Path) -> None:
    root = _mixed_folder(tmp_path / "imgs")
    # Files come back in sorted relative-path order.
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name not in {"empty.png", "trunc.jpg", "notes.png", "README.txt"}
    )
    ds = load_image_folder(root, 8, 3, None)
    px = {f: ds.x[i, :, 4, 4].tolist() for i, f in enumerate(files)}
    assert px["rgba_clear.png"] == [255, 255, 255]  # transparent -> white
    assert px["la_clear.png"] == [255, 255, 255]
    assert px["gray.png"] == [100, 100, 100]
    assert px["anim.gif"] == [255, 0, 0]  # first frame
    assert px["sub/palette.png"] == [0, 0, 255]
    assert abs(px["deep/er/g16.png"][0] - 128) <= 1  # 16-bit scaled, not clipped to 255
    r, g, b = px["cmyk.jpg"]
    assert r > 200 and g < 60 and b < 60
    assert px["x.webp"] == [0, 255, 0] and px["one.png"] == [0, 255, 0]


def test_channels_auto_grey_and_forced(tmp_path: Path) -> None:
    _save(Image.new("L", (9, 9), 10), tmp_path / "a.png")
    _save(Image.fromarray(np.full((9, 9), 65535, np.uint16)), tmp_path / "b.png")
    ds = load_image_folder(tmp_path, 4, None, None)
    assert ds.x.shape == (2, 1, 4, 4)
    assert ds.x[0].unique().tolist() == [10] and ds.x[1].unique().tolist() == [255]
    _save(Image.new("RGB", (9, 9), RED), tmp_path / "c.png")
    assert load_image_folder(tmp_path, 4, None, None).x.shape == (3, 3, 4, 4)
    grey = load_image_folder(tmp_path, 4, 1, None)
    assert grey.x.shape == (3, 1, 4, 4)
    assert grey.x[2].unique().tolist() == [76]  # PIL's luma of pure red


def test_center_crop_and_exif_orientation(tmp_path: Path) -> None:
    wide = Image.new("RGB", (40, 20), RED)
    wide.paste(BLUE, (10, 0, 30, 20))  # middle square is blue, sides red
    _save(wide, tmp_path / "a_wide.png")
    # Stored landscape: left half red, right half blue; EXIF 6 = rotate 90 deg clockwise,
    # so once displayed the red half is on top.
    tall = Image.new("RGB", (40, 20), RED)
    tall.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(tall, tmp_path / "b_exif.png", exif=exif)
    ds = load_image_folder(tmp_path, 10, 3, None)
    # The crop keeps the blue middle (LANCZOS rings by a level or two, and may
    # pull a little red in at the very edges).
    assert ds.x[0, 2].min() > 230 and ds.x[0, 0, :, 1:9].max() < 3
    top, bottom = ds.x[1, :, 1, 5].tolist(), ds.x[1, :, 8, 5].tolist()
    assert top == [255, 0, 0] and bottom == [0, 0, 255]
    assert ds.x[1, 0, :3].min() > 250 and ds.x[1, 2, -3:].min() > 250


def test_resize_helper_extremes() -> None:
    assert resize_center_crop(Image.new("RGB", (1, 1)), 64).size == (64, 64)
    assert resize_center_crop(Image.new("L", (10000, 10)), 32).size == (32, 32)
    assert resize_center_crop(Image.new("L", (10, 10000)), 3).size == (3, 3)


def test_symlink_loop_is_not_followed_forever(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _save(Image.new("RGB", (8, 8), RED), root / "a" / "x.png")
    os.symlink(root, root / "a" / "loop", target_is_directory=True)
    os.symlink(root / "a", root / "alias", target_is_directory=True)
    ds = load_image_folder(root, 4, None, None)
    assert ds.info["files"] == 1  # the same real folder is read once


def test_labels_from_subfolders(tmp_path: Path) -> None:
    for cls, colour, count in (("dog", BLUE, 2), ("cat", RED, 3)):
        for i in range(count):
            _save(Image.new("RGB", (8, 8), colour), tmp_path / cls / f"{i}.png")
    _save(Image.new("RGB", (8, 8), RED), tmp_path / "cat" / "nested" / "deep.png")
    ds = load_image_folder(tmp_path, 4, None, None, labels=True)
    assert ds.classes == ["cat", "dog"]
    assert ds.y is not None and ds.y.dtype == torch.int64
    assert ds.y.tolist() == [0, 0, 0, 0, 1, 1]
    assert (ds.x[ds.y == 0][:, 0] == 255).all() and (ds.x[ds.y == 1][:, 2] == 255).all()
    assert load_image_folder(tmp_path, 4, None, None).y is None


def test_labels_with_loose_root_images_is_a_data_error(tmp_path: Path) -> None:
    _save(Image.new("RGB", (8, 8)), tmp_path / "cat" / "a.png")
    _save(Image.new("RGB", (8, 8)), tmp_path / "loose.png")
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path, 4, None, None, labels=True)
    assert "sub-folder" in err.value.message and "loose.png" in err.value.message
    assert err.value.hint and "<class name>" in err.value.hint


def test_cache_hit_decodes_nothing_and_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _mixed_folder(tmp_path / "imgs")
    cache = tmp_path / "cache"
    first = load_image_folder(root, 8, None, cache)
    assert first.info["cache"] == "miss"
    assert len(list(cache.glob("*.safetensors"))) == 1 and not list(cache.glob("*.tmp"))

    def boom(*args, **kwargs):
        raise AssertionError("decoded on a cache hit")

    monkeypatch.setattr(images, "decode_image", boom)
    monkeypatch.setattr(images, "decode_image_why", boom)
    second = load_image_folder(root, 8, None, cache)
    assert second.info == {**first.info, "cache": "hit"}
    assert torch.equal(second.x, first.x) and second.y is None
    monkeypatch.undo()

    # Touching a file changes the key: a miss, and the stale cache is replaced.
    st = (root / "rgb.png").stat()
    os.utime(root / "rgb.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert load_image_folder(root, 8, None, cache).info["cache"] == "miss"
    assert len(list(cache.glob("*.safetensors"))) == 1
    # Different settings get their own cache entry.
    assert load_image_folder(root, 4, None, cache).info["cache"] == "miss"


def test_cache_keeps_labels(tmp_path: Path) -> None:
    for cls in ("b", "a"):
        _save(Image.new("RGB", (8, 8)), tmp_path / "data" / cls / "x.png")
    first = load_image_folder(tmp_path / "data", 4, 3, tmp_path / "c", labels=True)
    second = load_image_folder(tmp_path / "data", 4, 3, tmp_path / "c", labels=True)
    assert second.info["cache"] == "hit" and second.classes == ["a", "b"]
    assert second.y is not None and torch.equal(second.y, first.y)


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    _save(Image.new("RGB", (8, 8), RED), tmp_path / "data" / "a.png")
    cache = tmp_path / "cache"
    first = load_image_folder(tmp_path / "data", 4, None, cache)
    (cache_file,) = cache.glob("*.safetensors")
    cache_file.write_bytes(b"\x00garbage" * 10)
    again = load_image_folder(tmp_path / "data", 4, None, cache)
    assert again.info["cache"] == "miss" and torch.equal(again.x, first.x)
    assert load_image_folder(tmp_path / "data", 4, None, cache).info["cache"] == "hit"


def test_empty_missing_and_file_paths_are_data_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path / "empty", 8, None, None)
    assert str(tmp_path / "empty") in err.value.message and "looked at 0" in err.value.message
    assert ".png" in err.value.hint
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path / "nope", 8, None, None)
    assert err.value.hint
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path / "f.png", 8, None, None)
    assert "not a folder" in err.value.message


def test_only_broken_files_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("text")
    with pytest.raises(DataError) as err:
        load_image_folder(tmp_path, 8, None, None)
    assert "looked at 2" in err.value.message and "2 could not be read" in err.value.message


def test_thread_pool_path_keeps_order(tmp_path: Path) -> None:
    n = images._POOL_MIN_FILES + 8
    for i in range(n):
        _save(Image.new("L", (6, 6), i), tmp_path / f"{i:03d}.png")
    ds = load_image_folder(tmp_path, 3, None, None)
    assert ds.x[:, 0, 1, 1].tolist() == list(range(n))


def test_no_pickle_in_data_modules() -> None:
    for mod in ("images.py", "tv.py", "digits.py", "shapes.py"):
        assert "pickle" not in (Path(images.__file__).parent / mod).read_text().replace("no pickle", "")
