"""Issue 15 kinds 4-6 at the library level: work sized by user input is bounded before it is
allocated, only regular files are read, and class folders without images are refused.

The command-line cases (exit codes, messages) are rows of tests/bad_inputs.py; these tests pin
the helpers those rows rely on, and the paths a command line cannot reach cheaply.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import tracemalloc

import pytest
import torch
import yaml
from PIL import Image

from gancli.config import MAX_YAML_NODES, load_config_file, load_yaml, parse_set
from gancli.data import images
from gancli.data.images import (NotARegularFile, decode_image_why, load_image_folder,
                                max_image_pixels, open_regular, scan_folder)
from gancli.errors import EXIT_USAGE, ConfigError, DataError, UsageError, excerpt
from gancli.sampling import MAX_SEEDS, parse_arithmetic, parse_seeds

from bad_inputs import _alias_bomb


def _shared_nest(levels: int = 9):
    a: list = ["lol"] * 9
    for _ in range(levels - 1):
        a = [a] * 9  # 9**levels strings once printed, a few hundred objects in memory
    return a


# -- kind 4: bounded messages and counts ---------------------------------------------------------

def test_excerpt_bounds_any_value_without_building_its_repr():
    started = time.perf_counter()
    text = excerpt(_shared_nest())
    assert len(text) <= 80 and text.endswith("...") and time.perf_counter() - started < 0.1
    assert excerpt("x" * 10**7, limit=20) == "'xxxxxxxxxxxxxxxx..."
    assert excerpt("two\nlines") == "'two\\nlines'"  # one line
    assert excerpt(3) == "3" and excerpt("ok") == "'ok'"


def test_yaml_alias_bomb_is_refused_before_it_is_built(monkeypatch):
    started = time.perf_counter()
    with pytest.raises(yaml.YAMLError, match="alias bomb"):
        load_yaml(f"x: {_alias_bomb()}\n", "test")
    assert time.perf_counter() - started < 1.0
    # ordinary anchors still work, and a document just under the limit loads
    assert load_yaml("a: &x [1, 2]\nb: *x\n", "test") == {"a": [1, 2], "b": [1, 2]}
    assert MAX_YAML_NODES >= 10_000  # far above any config (the schema has ~100 leaves)
    monkeypatch.setattr("gancli.config.MAX_YAML_NODES", 50)  # the boundary, at a cheap size
    assert len(load_yaml("[" + ",".join(["1"] * 49) + "]", "test")) == 49  # 50 nodes
    with pytest.raises(yaml.YAMLError):
        load_yaml("[" + ",".join(["1"] * 50) + "]", "test")


def test_alias_bomb_in_config_file_and_set_is_a_short_config_error(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(f"train:\n  steps: {_alias_bomb()}\n")
    with pytest.raises(ConfigError, match="alias bomb") as err:
        load_config_file(f)
    assert len(err.value.message) < 300 and err.value.exit_code == EXIT_USAGE
    with pytest.raises(ConfigError, match="expects int") as err:
        parse_set([f"train.batch_size={_alias_bomb()}"])
    assert len(err.value.message) < 300


def test_config_messages_quote_bounded_excerpts():
    huge = "9" * 100_000 + "x"
    for item in (f"train.steps={huge}", f"model.z_dist={huge}", f"{huge}=1", huge):
        with pytest.raises(ConfigError) as err:
            parse_set([item])
        assert len(err.value.message) < 400, item[:40]


def test_seed_count_is_checked_before_any_list_is_built():
    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match="too many seeds") as err:
            parse_seeds("0-99999999")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000 and err.value.exit_code == EXIT_USAGE  # main built 4.6 GB first
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS
    with pytest.raises(UsageError):
        parse_seeds(f"0-{MAX_SEEDS - 1},{MAX_SEEDS}")  # one over, across parts
    with pytest.raises(UsageError, match="too many seeds in --arith"):
        parse_arithmetic("0-99999 - 0-99999")
    with pytest.raises(UsageError) as err:
        parse_seeds("7," + "z" * 10_000)
    assert len(err.value.message) < 120 and err.value.exit_code == EXIT_USAGE


def test_grid_width_is_bounded_by_the_images_not_nrow():
    from gancli import imaging

    img = imaging.grid(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), nrow=10**9)
    assert img.size == (3 * 6 + 2, 8)  # main allocated a 6e9-pixel canvas for --nrow 10**9


@pytest.mark.parametrize("argv", [
    ["train", "p" * 100_000],
    ["train", "gan", "--device", "d" * 100_000],
    ["evaluate", "fid", "--fake", "digits", "--features", "f" * 100_000],
])
def test_messages_quote_bounded_excerpts_of_command_line_values(cli, argv):
    r = cli(*argv)
    assert r.code in (1, 2) and r.err.startswith("error: ")
    assert max(map(len, r.err.splitlines())) < 400


def test_walk_frames_are_counted_before_latents_are_drawn():
    from gancli.cli.interpolate import check_frames

    check_frames(3, 8, grid=True)  # 16 images
    check_frames(MAX_SEEDS // 1000 + 1, 1000, grid=True)  # exactly MAX_SEEDS
    with pytest.raises(UsageError, match="too many images"):
        check_frames(MAX_SEEDS // 1000 + 2, 1000, grid=True)
    with pytest.raises(UsageError):
        check_frames(MAX_SEEDS, 3, grid=False)  # 2 * (MAX_SEEDS - 1) + 1 frames


# -- kind 4: evaluate picks its folder resolution from every image -------------------------------

def test_folder_resolution_is_the_smallest_image_capped_and_never_upsampled():
    from gancli.metrics.sources import choose_folder_resolution

    assert choose_folder_resolution([40, 48, 4000], "f", None, None, None)[0] == 40
    res, info = choose_folder_resolution([40, 48, 4000], "f", None, 16, None)
    assert res == 16 and info["chosen_by"] == "feature network" and info["short_sides"] == [40, 48, 4000]
    assert choose_folder_resolution([40, 48], "f", 32, 299, None)[1]["chosen_by"] == "other side"
    assert choose_folder_resolution([40, 48], "f", 64, 299, None)[0] == 40  # never above its images
    with pytest.raises(UsageError, match="differ too much") as err:
        choose_folder_resolution([7] + [40] * 20, "f", None, 299, None)
    assert "--resolution" in err.value.hint and err.value.exit_code == EXIT_USAGE
    res, info = choose_folder_resolution([7] + [40] * 20, "f", None, 299, 24)
    assert res == 24 and info["upsampled"] == 1 and info["chosen_by"] == "--resolution"


def test_folder_short_sides_read_headers_only(tmp_path, monkeypatch):
    from gancli.metrics.sources import folder_short_sides

    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (9, 70)).save(tmp_path / "b.jpg")
    (tmp_path / "c.png").write_text("no image")
    Image.init()  # import every format plugin first (some build images as they load)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded pixels"))
    entries = scan_folder(tmp_path).entries
    assert sorted(folder_short_sides(tmp_path, entries)) == [9, 20]


def test_sources_are_downsampled_to_the_working_resolution_only():
    from gancli.metrics.sources import Source

    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    src = Source("s", "images", "id", x=x.clone())
    src.set_working_resolution(64)  # larger than the images: nothing changes
    assert src.work_res is None and src.identity == "id"
    src.set_working_resolution(16)
    (batch, _), = list(src.batches(5, 8))
    assert batch.shape == (5, 3, 16, 16) and batch.dtype == torch.uint8 and src.identity == "id:at16"
    flat = Source("f", "images", "id", x=torch.full((2, 1, 32, 32), 77, dtype=torch.uint8))
    flat.set_working_resolution(8)
    (batch, _), = list(flat.batches(2, 8))
    assert torch.all(batch == 77)  # a flat image stays flat: an average, not a crop


# -- kind 4: large images, by our limit and with the reason --------------------------------------

def test_pixel_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("GANCLI_MAX_IMAGE_PIXELS", raising=False)
    assert max_image_pixels() == images.DEFAULT_MAX_IMAGE_PIXELS
    monkeypatch.setenv("GANCLI_MAX_IMAGE_PIXELS", "400_000_000")
    assert max_image_pixels() == 400_000_000
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv("GANCLI_MAX_IMAGE_PIXELS", bad)
        with pytest.raises(UsageError, match="GANCLI_MAX_IMAGE_PIXELS"):
            max_image_pixels()
    assert Image.MAX_IMAGE_PIXELS is None  # Pillow's own check (a raw warning) is replaced


def test_large_image_is_skipped_by_name_with_the_way_to_allow_it(tmp_path, monkeypatch):
    Image.new("RGB", (200, 100)).save(tmp_path / "scan.png")
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    a, why = decode_image_why(tmp_path / "scan.png", 8, None, limit=19_999)
    assert a is None and why.startswith("too large: 0.02 MP > limit 0.02 MP")
    assert "GANCLI_MAX_IMAGE_PIXELS=20000" in why
    assert decode_image_why(tmp_path / "scan.png", 8, None, limit=20_000)[0].shape == (8, 8, 3)
    monkeypatch.setenv("GANCLI_MAX_IMAGE_PIXELS", "10000")
    ds = load_image_folder(tmp_path, 8, None, None)
    assert ds.info["files"] == 1 and ds.info["skipped_reasons"] == {"too large": 1}
    assert "scan.png" in ds.info["notes"][0]
    (tmp_path / "ok.png").unlink()
    with pytest.raises(DataError, match="too large") as err:  # alone: the reason, not "unreadable"
        load_image_folder(tmp_path, 8, None, None)
    assert "GANCLI_MAX_IMAGE_PIXELS=20000" in err.value.hint


def test_large_jpeg_counts_its_reduced_decode(tmp_path):
    Image.new("RGB", (800, 800), (9, 90, 200)).save(tmp_path / "big.jpg")
    # libjpeg decodes at 1/8 scale for a 16 px target: 100 x 100 = 10,000 pixels
    assert decode_image_why(tmp_path / "big.jpg", 16, None, limit=10_000)[0] is not None
    assert decode_image_why(tmp_path / "big.jpg", 400, None, limit=10_000)[1].startswith("too large")


# -- kind 5: only regular files ------------------------------------------------------------------

def _in_thread(fn, timeout: float = 10.0):
    """Run ``fn`` in a daemon thread; fail (instead of hanging) if it blocks."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked on a non-regular file"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_scan_lists_only_regular_files_and_counts_the_rest(tmp_path):
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    os.mkfifo(tmp_path / "pipe.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.png"))
    (tmp_path / "link.png").symlink_to(tmp_path / "ok.png")  # a link to a regular file is fine
    (tmp_path / "fifo-link.png").symlink_to(tmp_path / "pipe.png")
    try:
        found = _in_thread(lambda: scan_folder(tmp_path))
        assert [e[0] for e in found.entries] == ["link.png", "ok.png"]
        assert found.special == ["fifo-link.png", "pipe.png", "sock.png"]
        entries, broken, _ = images.list_image_files(tmp_path)  # the old signature, for the store branch
        assert len(entries) == 2 and broken == ["fifo-link.png", "pipe.png", "sock.png"]
        ds = _in_thread(lambda: load_image_folder(tmp_path, 8, None, None))
        assert ds.info["files"] == 2 and ds.info["skipped_reasons"] == {"not a regular file": 3}
    finally:
        sock.close()


def test_open_regular_never_blocks_on_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(NotARegularFile):
        _in_thread(lambda: open_regular(tmp_path / "pipe.png"))
    a, why = _in_thread(lambda: decode_image_why(tmp_path / "pipe.png", 8, None))
    assert a is None and why == "not a regular file"
    with pytest.raises(NotARegularFile):
        open_regular(tmp_path)


# -- kind 6: class folders without a usable image ------------------------------------------------

def test_empty_class_is_refused_also_on_a_cache_hit(tmp_path):
    root = tmp_path / "data"
    for name in ("black", "white"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / name / "1.png")
    (root / "brown").mkdir()
    (root / "brown" / "broken.png").write_bytes(b"\x89PNG garbage")  # a file, but no image
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="brown holds no usable image") as err:
        load_image_folder(root, 4, None, cache, labels=True)
    assert "allow_empty_classes" in err.value.hint
    ds = load_image_folder(root, 4, None, cache, labels=True, allow_empty_classes=True)
    assert ds.classes == ["black", "white"] and ds.info["empty_classes"] == ["brown"]
    again = load_image_folder(root, 4, None, cache, labels=True, allow_empty_classes=True)
    assert again.info["cache"] == "hit" and again.info["notes"] == ds.info["notes"]
    with pytest.raises(DataError, match="brown"):  # the cached decode does not bypass the check
        load_image_folder(root, 4, None, cache, labels=True)
    # without labels, sub-folders are just folders
    assert len(load_image_folder(root, 4, None, None)) == 2


def test_attribute_set_for_no_image_is_dropped_only_when_allowed(tmp_path):
    from gancli.config import DataConfig
    from gancli.data.translation import load_attribute_folder

    for i in range(3):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"{i}.png")
    rows = [f"{i}.png {'1' if i else '-1'} -1 1" for i in range(3)]
    (tmp_path / "list_attr_celeba.txt").write_text("3\nBlack_Hair Bald Male\n" + "\n".join(rows))
    cfg = DataConfig(source=str(tmp_path), resolution=4, attributes="Black_Hair,Bald,Male")
    with pytest.raises(DataError, match="attribute Bald is set for none"):
        load_attribute_folder(tmp_path, cfg)
    cfg.allow_empty_classes = True
    ds = load_attribute_folder(tmp_path, cfg)
    assert ds.classes == ["Black_Hair", "Male"] and ds.y.tolist() == [[0, 1], [1, 1], [1, 1]]


# -- out-of-memory hints and the internal-error line -----------------------------------------------

@pytest.mark.parametrize("command, words", [
    ("train", "--batch-size"), ("evaluate", "--n-real"), ("sample", "--seeds"),
    ("interpolate", "--steps"), ("translate", "--size"),
])
def test_out_of_memory_hint_fits_the_command(command, words):
    from gancli.cli import command_of, environment_error

    err = environment_error(MemoryError(), command_of(["--json", command, "x"]))
    assert err.message == f"out of memory in {command}" and words in err.hint


def test_out_of_memory_in_evaluate_names_evaluate_options(cli, tmp_path, monkeypatch):
    import gancli.metrics.evaluate as ev

    def oom(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(ev, "evaluate", oom)
    r = cli("evaluate", "digits", "--fake", "digits")
    assert r.code == 1 and "out of memory in evaluate" in r.err and "--batch-size" in r.err
    assert "train.batch_size" not in r.err


def test_a_bad_pixel_limit_is_an_error_everywhere_never_a_skip(tmp_path, monkeypatch):
    from gancli.metrics.sources import folder_short_sides
    from gancli.photo import read_photo

    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    monkeypatch.setenv("GANCLI_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(UsageError):
        decode_image_why(tmp_path / "a.png", 8, None)
    with pytest.raises(UsageError):
        read_photo(tmp_path / "a.png", 3)
    with pytest.raises(UsageError):
        folder_short_sides(tmp_path, scan_folder(tmp_path).entries)
