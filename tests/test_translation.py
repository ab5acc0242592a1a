"""CycleGAN / StarGAN: data layouts, networks, exact resume, and ``gancli translate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gancli import checkpoints, load_config
from gancli.config import ModelConfig
from gancli.data import load_dataset
from gancli.data.translation import load_pair_builtin, make_pairs, recolour, shapes_colours, uncolour
from gancli.errors import ConfigError, DataError
from gancli.models import DataSpec, build_nets
from gancli.models.translation import patch_receptive_field
from gancli.photo import working_size
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train

from conftest import no_traceback, tiny_overrides


def tiny(preset: str, steps: int, *extra: str):
    sets = [s for s in tiny_overrides(preset) if s != "--set"] + list(extra) + [
        f"train.steps={steps}", "train.batch_size=4", "train.log_every=1", "train.sample_every=0",
        "train.ckpt_every=0", "train.sample_n=4"]
    return load_config(preset, sets)


# -- data ---------------------------------------------------------------------------------------

def test_builtin_pair_is_unpaired_and_recoloured():
    d = load_pair_builtin("digits-recoloured", 16, None)
    assert d.kind == "pairs" and d.x.shape[1:] == (2, 3, 16, 16) and d.test is not None
    a, b = d.x[:, 0].float(), d.x[:, 1].float()
    assert a[:, 0].equal(a[:, 2])  # A is grey
    assert (b[:, 2, 0, 0] > b[:, 0, 0, 0]).all()  # B's background is navy (blue > red)
    # B is not A recoloured sample by sample: the halves are disjoint digits
    assert not torch.equal(recolour(d.x[:, 0]), d.x[:, 1])
    # recolour / uncolour round trip (the content check of the benchmark relies on it)
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    back = uncolour(recolour(x).float() / 127.5 - 1)
    assert (back - (x.float() / 127.5 - 1)).abs().max() < 0.02
    inv = load_pair_builtin("digits-inverted", 8, None)
    assert inv.x.shape[2] == 1 and inv.domains == ["digits", "inverted"]


def test_pair_folder_layout(tmp_path):
    for sub, n, colour in (("trainA", 3, 0), ("trainB", 5, 255), ("testA", 2, 0), ("testB", 2, 255)):
        (tmp_path / sub).mkdir()
        for i in range(n):
            Image.new("RGB", (20 + i, 12), (colour, 10, 10)).save(tmp_path / sub / f"{i}.png")
    cfg = load_config("cyclegan", [f"data.source={tmp_path}", "data.resolution=8"])
    d = load_dataset(cfg.data, 0, "translation")
    assert d.kind == "pairs" and d.x.shape == (5, 2, 3, 8, 8) and d.test.shape[0] == 2
    assert (d.x[:, 0, 0] < 50).all() and (d.x[:, 1, 0] > 200).all()  # A stays A, B stays B
    (tmp_path / "trainB").rename(tmp_path / "other")
    with pytest.raises(DataError, match="trainA/ and trainB/"):
        load_dataset(cfg.data, 0, "translation")


def test_make_pairs_uses_every_image_of_both_domains():
    a = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1)
    b = torch.arange(10, 17, dtype=torch.uint8).view(7, 1, 1, 1)
    p = make_pairs(a, b)
    assert p.shape == (7, 2, 1, 1, 1)
    assert set(p[:, 0].flatten().tolist()) == {0, 1, 2}
    assert sorted(p[:, 1].flatten().tolist()) == list(range(10, 17))


def test_shapes_colours_domains_are_colours():
    x, shape, dom = shapes_colours(16, 40)
    assert x.shape == (40, 3, 16, 16) and set(dom.tolist()) == {0, 1, 2, 3}
    red = x[dom == 0].float()
    brightest = red.flatten(2).max(2).values  # the shape's colour, per channel
    assert (brightest[:, 0] > brightest[:, 2]).all()


# -- networks -----------------------------------------------------------------------------------

def test_cyclegan_networks_follow_the_paper():
    cfg = ModelConfig(family="cyclegan", g_norm="instance", d_norm="instance")
    nets = build_nets(cfg, DataSpec("pairs", (2, 3, 32, 32)), "translation")
    # c7s1-64, d128, d256, 6 residual blocks (<= 128 px), u128, u64, c7s1-3
    blocks = [m for m in nets.G.a2b.modules() if type(m).__name__ == "ResidualBlock"]
    assert len(blocks) == 6
    assert patch_receptive_field(3) == 70
    x = torch.randn(2, 3, 36, 52)  # fully convolutional: any size divisible by 4
    assert nets.G(x, "b2a").shape == x.shape
    big = build_nets(cfg, DataSpec("pairs", (2, 3, 256, 256)), "translation")
    assert len([m for m in big.G.a2b.modules() if type(m).__name__ == "ResidualBlock"]) == 9
    with pytest.raises(ConfigError, match="PatchGAN needs images of at least 24"):
        build_nets(cfg, DataSpec("pairs", (2, 3, 16, 16)), "translation")


def test_stargan_networks_have_two_heads():
    cfg = ModelConfig(family="stargan", g_width=8, d_width=8, res_blocks=1)
    nets = build_nets(cfg, DataSpec("images", (3, 32, 32), 5), "domain")
    src, cls = nets.D.forward_with_classes(torch.randn(3, 3, 32, 32))
    assert src.shape == (3, 1, 2, 2) and cls.shape == (3, 5)
    x = torch.randn(3, 3, 32, 32)
    a, b = nets.G(x, torch.tensor([0, 0, 0])), nets.G(x, torch.tensor([4, 4, 4]))
    assert a.shape == x.shape and not torch.allclose(a, b)  # the target domain matters
    attrs = nets.G(x, torch.tensor([[1.0, 0, 1, 0, 1]] * 3))  # attribute vectors work too
    assert attrs.shape == x.shape
    with pytest.raises(ConfigError, match="two domains"):
        build_nets(cfg, DataSpec("images", (3, 32, 32), 1), "domain")


# -- training -----------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["cyclegan", "stargan"])
def test_translation_run_resumes_bit_identical(preset, tmp_path, cli):
    cfg = tiny(preset, 6)
    straight = create_run_dir(tmp_path, "straight")
    write_config(straight, cfg)
    train(cfg, straight, torch.device("cpu"), Reporter())
    half = tiny(preset, 3)
    stopped = create_run_dir(tmp_path, "stopped")
    write_config(stopped, half)
    train(half, stopped, torch.device("cpu"), Reporter())
    r = cli("train", "--resume", str(stopped), "--steps", "6", "--quiet")
    assert r.code == 0, r.err
    a = checkpoints.load(checkpoints.resolve(straight)).tensors
    b = checkpoints.load(checkpoints.resolve(stopped)).tensors
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_cyclegan_logs_the_papers_columns(tmp_path):
    cfg = tiny("cyclegan", 2)
    run = create_run_dir(tmp_path, "c")
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert {"d_a", "d_b", "g_a", "g_b", "cycle_a", "cycle_b", "idt"} <= row.keys()


# -- gancli translate ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One tiny CycleGAN and one tiny StarGAN run, trained once for every CLI test here."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for preset in ("cyclegan", "stargan"):
        cfg = tiny(preset, 2)
        run = create_run_dir(out, preset)
        write_config(run, cfg)
        train(cfg, run, torch.device("cpu"), Reporter())
        runs[preset] = run
    return runs


def write_mixed_folder(folder):
    """Every kind of input a user's folder holds."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(folder / "rgb.jpg")
    Image.fromarray(rng.integers(0, 255, (17, 9), dtype=np.uint8)).save(folder / "grey.png")
    rgba = Image.fromarray(rng.integers(0, 255, (20, 20, 4), dtype=np.uint8), "RGBA")
    rgba.save(folder / "alpha.png")
    Image.new("CMYK", (24, 16), (10, 200, 30, 0)).save(folder / "cmyk.jpg")
    Image.fromarray((rng.integers(0, 65535, (12, 14))).astype(np.uint16)).save(folder / "deep.png")
    Image.new("P", (10, 10)).save(folder / "palette.gif")
    frames = [Image.new("RGB", (16, 12), c) for c in ("red", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (folder / "sub").mkdir()
    Image.new("RGB", (1, 1)).save(folder / "sub" / "tiny.png")
    Image.new("RGB", (1000, 10)).save(folder / "sub" / "strip.png")
    return {"rgb.jpg": (50, 30), "grey.png": (9, 17), "alpha.png": (20, 20), "cmyk.jpg": (24, 16),
            "deep.png": (14, 12), "palette.gif": (10, 10), "anim.gif": (16, 12),
            "sub/tiny.png": (1, 1), "sub/strip.png": (1000, 10)}


def test_translate_a_folder_of_mixed_files(models, tmp_path, cli):
    expected = write_mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    r = cli("translate", "--model", str(models["cyclegan"]), "--in", str(tmp_path / "in"),
            "--out", str(out), "--json")
    assert r.code == 1 and no_traceback(r.err), r.err  # two bad files: reported, the rest translated
    report = json.loads(r.out)
    assert sorted(f["in"].rsplit("/", 1)[-1] for f in report["failed"]) == ["broken.jpg", "notes.txt"]
    assert len(report["translated"]) == len(expected)
    for name, size in expected.items():
        with Image.open(out / name) as img:
            assert img.size == size, name
    with Image.open(out / "alpha.png") as img:  # the alpha channel comes back unchanged
        with Image.open(tmp_path / "in" / "alpha.png") as src:
            assert img.mode == "RGBA" and img.getchannel("A").tobytes() == src.getchannel("A").tobytes()


def test_translate_reads_only_regular_files(models, tmp_path, cli):
    from contextlib import ExitStack

    from pathlib import Path

    from bad_inputs import make_fifo

    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (12, 12), "white").save(folder / "a.png")
    with ExitStack() as stack:  # a reader that opened the FIFO would hang until the watchdog
        make_fifo(folder / "pipe.png", stack)
        r = cli("translate", "-m", str(models["cyclegan"]), "--in", str(folder), "--out",
                str(tmp_path / "out"), "--json")
        assert r.code == 0 and "pipe.png: not a regular file" in r.err, r.err
        assert [Path(f["in"]).name for f in json.loads(r.out)["translated"]] == ["a.png"]
        r = cli("translate", "-m", str(models["cyclegan"]), "--in", str(folder / "pipe.png"),
                "--out", str(tmp_path / "o.png"))
        assert r.code == 1 and "is not a regular file" in r.err and no_traceback(r.err), r.err
        assert not (tmp_path / "o.png").exists()


def test_translate_honours_exif_orientation(models, tmp_path, cli):
    img = Image.new("RGB", (40, 20), "white")
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the upright picture is 20 x 40
    img.save(tmp_path / "turned.jpg", exif=exif)
    r = cli("translate", "-m", str(models["cyclegan"]), "--in", str(tmp_path / "turned.jpg"),
            "--out", str(tmp_path / "o.png"), "--direction", "b2a")
    assert r.code == 0, r.err
    with Image.open(tmp_path / "o.png") as out:
        assert out.size == (20, 40)


def test_translate_one_file_errors(models, tmp_path, cli):
    good = tmp_path / "a.png"
    Image.new("RGB", (12, 12)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    cases = [
        (["-m", str(models["cyclegan"]), "--in", str(bad)], "bad.png"),
        (["-m", str(models["cyclegan"]), "--in", str(good), "--to", "red"], "--to picks StarGAN"),
        (["-m", str(models["cyclegan"]), "--in", str(good), "--direction", "up"], "unknown direction"),
        (["-m", str(models["stargan"]), "--in", str(good), "--direction", "a2b"], "--direction is for"),
        (["-m", str(models["stargan"]), "--in", str(good), "--to", "purple"], "unknown domain"),
        (["-m", str(models["cyclegan"]), "--in", str(tmp_path / "nope.png")], "no such file"),
        (["-m", str(models["cyclegan"]), "--in", str(good), "--out", str(good)], "overwrite its own"),
    ]
    for args, message in cases:  # an option that does not fit the model: a usage error
        r = cli("translate", *args)
        code = 1 if message in ("bad.png", "no such file") else 2
        assert r.code == code and message in r.err and no_traceback(r.err), (args, r.err)


def test_stargan_translates_to_each_requested_domain(models, tmp_path, cli):
    src = tmp_path / "shape.png"
    Image.new("RGB", (30, 22), (200, 20, 20)).save(src)
    r = cli("translate", "-m", str(models["stargan"]), "--in", str(src), "--to", "green,3",
            "--out", str(tmp_path / "t.png"))
    assert r.code == 0, r.err
    for name in ("t-green.png", "t-yellow.png"):
        with Image.open(tmp_path / name) as img:
            assert img.size == (30, 22)


def test_sampling_commands_refuse_a_translation_model(models, cli, tmp_path):
    for args in (["sample", str(models["cyclegan"]), "--out", str(tmp_path / "g.png")],
                 ["interpolate", str(models["stargan"]), "--seeds", "1,2", "--out",
                  str(tmp_path / "i.gif")]):
        r = cli(*args)
        assert r.code == 1 and "translation model" in r.err and "gancli translate" in r.err


def test_translate_refuses_a_sampling_model(cli, tmp_path):
    cfg = load_config("gan", [s for s in tiny_overrides("gan") if s != "--set"] + [
        "train.steps=1", "train.sample_every=0"])
    run = create_run_dir(tmp_path, "g")
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(img)
    r = cli("translate", "-m", str(run), "--in", str(img))
    assert r.code == 1 and "not a translation model" in r.err


def test_working_size_keeps_aspect_and_multiples_of_four():
    assert working_size(4000, 3000, 32) == (44, 32)
    assert working_size(3000, 4000, 256) == (256, 340)
    w, h = working_size(10000, 10, 32)
    assert h == 8 and w == 256  # the long side is capped at 8x the short; sides are >= 8
    assert working_size(1, 1, 32) == (32, 32)


def test_stargan_on_a_celeba_style_attribute_folder(tmp_path, cli):
    images = tmp_path / "img_align_celeba"
    images.mkdir()
    rows = []
    for i in range(8):
        Image.new("RGB", (10, 12), (30 * i, 100, 200 - 20 * i)).save(images / f"{i:06d}.jpg")
        rows.append(f"{i:06d}.jpg " + " ".join(["1" if (i >> k) & 1 else "-1" for k in range(3)]))
    (tmp_path / "list_attr_celeba.txt").write_text(
        "8\nBlack_Hair Blond_Hair Male\n" + "\n".join(rows) + "\n")
    base = [*tiny_overrides("stargan"), "--steps", "2", "--batch-size", "4", "--set",
            "train.sample_every=0", "--set", "train.log_every=1", "--set", "data.size=0",
            "--data", str(images), "--out", str(tmp_path / "runs"), "--quiet"]
    r = cli("train", "stargan", *base, "--set", "data.attributes=Black_Hair,Male,Bald")
    assert r.code == 1 and "Bald" in r.err and no_traceback(r.err)
    r = cli("train", "stargan", *base, "--set", "data.attributes=Black_Hair,Male")
    assert r.code == 0, r.err
    run = tmp_path / "runs" / "stargan-001"
    ckpt = checkpoints.load(checkpoints.resolve(run))
    assert ckpt.meta["data"]["multi_label"] and ckpt.meta["data"]["classes"] == ["Black_Hair", "Male"]
    r = cli("translate", "-m", str(run), "--in", str(images / "000003.jpg"), "--to",
            "Black_Hair,Male", "--out", str(tmp_path / "out.png"))
    assert r.code == 0, r.err
    with Image.open(tmp_path / "out.png") as img:
        assert img.size == (10, 12)
