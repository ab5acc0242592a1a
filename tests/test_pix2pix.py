"""pix2pix: the U-Net's skips, paired data layouts, the shared crop/flip, direction, translate
at any size, and the paired metrics on known values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from gancli.config import DataConfig
from gancli.data import load_dataset
from gancli.data.base import Dataset
from gancli.data.batches import Batches
from gancli.errors import DataError
from gancli.models.pix2pix import UNetGenerator, unet_depth

from conftest import TINY, no_traceback, tiny_overrides

TINY_P2P = [*TINY, *tiny_overrides("pix2pix")]


# --- the U-Net ---------------------------------------------------------------------------------------

def test_unet_depth_follows_the_resolution():
    assert unet_depth(256, 256) == 8 and unet_depth(32, 32) == 5 and unet_depth(8, 8) == 3
    assert unet_depth(48, 48) == 4 and unet_depth(512, 512) == 8 and unet_depth(32, 48) == 4


def test_unet_skips_join_each_decoder_layer_to_the_encoder_map_of_its_size():
    torch.manual_seed(0)
    G = UNetGenerator(3, 3, 4, 4, "instance", dropout=0.0).eval()
    enc, dec_in = [], []
    for down in G.downs:
        down.register_forward_hook(lambda m, i, o: enc.append(o))
    for up in [*G.ups[1:], G.final]:  # every layer after the bottleneck's takes a concatenation
        up.register_forward_hook(lambda m, i, o: dec_in.append(i[0]))
    x = torch.randn(2, 3, 32, 32)
    y = G(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert [e.shape[-1] for e in enc] == [16, 8, 4, 2]
    # decoder input j = [upsampled features, encoder map of the same size], in that order
    for inp, skip in zip(dec_in, reversed(enc[:-1])):
        c = skip.shape[1]
        assert inp.shape[-1] == skip.shape[-1]
        assert torch.equal(inp[:, -c:], skip)
    # the skips carry the input's detail: the output moves when one input pixel does
    x2 = x.clone()
    x2[0, :, 5, 5] += 1.0
    assert not torch.allclose(G(x2)[0], y[0])


def test_dropout_is_the_noise_kept_on_at_test_time_and_seeded():
    torch.manual_seed(0)
    G = UNetGenerator(1, 1, 4, 3, "instance", dropout=0.5).eval()
    x = torch.randn(1, 1, 8, 8)
    a = G(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, G(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, G(x, torch.Generator().manual_seed(2)))
    G.test_dropout = False
    assert torch.equal(G(x, torch.Generator().manual_seed(1)), G(x, torch.Generator().manual_seed(2)))


# --- data layouts ------------------------------------------------------------------------------------

def _img(path, w, h, value, mode="RGB"):
    rng = np.random.default_rng(value)
    a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a, "RGB").convert(mode).save(path)
    return a


def test_aligned_splitter_takes_the_left_half_as_a_and_the_right_as_b():
    from gancli.data.paired import split_aligned

    left = np.zeros((8, 8), np.uint8)
    right = np.full((8, 8), 200, np.uint8)
    left[2, 3] = 90
    img = Image.fromarray(np.concatenate([left, right], 1), "L")
    a, b = split_aligned(img, 8, 1)
    assert np.array_equal(a, left) and np.array_equal(b, right)
    with pytest.raises(ValueError, match="odd width"):
        split_aligned(Image.new("L", (17, 8)), 8, 1)


def _cfg(source, **kw):
    return DataConfig(source=str(source), resolution=8, **kw)


def test_aligned_layout_loads_pairs_and_holds_out_test(tmp_path):
    for i in range(3):
        _img(tmp_path / "train" / f"{i}.png", 16, 8, i)
    _img(tmp_path / "test" / "t.png", 16, 8, 9)
    ds = load_dataset(_cfg(tmp_path), 0, "translation")
    assert ds.kind == "pairs" and ds.info["paired"] and ds.info["layout"] == "aligned"
    assert ds.x.shape == (3, 2, 3, 8, 8) and ds.test.shape == (1, 2, 3, 8, 8)
    src = np.asarray(Image.open(tmp_path / "train" / "0.png"))
    assert np.array_equal(ds.x[0, 1].permute(1, 2, 0).numpy(), src[:, 8:])


def _expected_halves(path, side):
    """What the store path should hold for an A|B file: each half fitted as any image is."""
    from gancli.data.images import fit_image

    img = Image.open(path)
    w, h = img.size
    return [fit_image(img.crop(box), side, 3).transpose(2, 0, 1)
            for box in ((0, 0, w // 2, h), (w // 2, 0, w, h))]


def test_aligned_folder_is_prepared_once_into_a_store_and_read_per_batch(tmp_path):
    from gancli.data.store import Store
    from gancli.data.translation import PairedImages

    for i in range(3):
        _img(tmp_path / "train" / f"{i}.png", 16, 8, i)
    _img(tmp_path / "train" / "big.png", 40, 20, 7)  # halves 20x20, fitted to 8 px
    _img(tmp_path / "test" / "t.png", 16, 8, 9)
    (tmp_path / "train" / "broken.png").write_bytes(b"not a png")
    ds = load_dataset(_cfg(tmp_path), 0, "translation")
    assert isinstance(ds.x, PairedImages) and not isinstance(ds.x, torch.Tensor)  # never whole
    assert ds.info["cache"] == "miss" and ds.info["skipped"] == 1
    (note,) = ds.info["notes"]
    assert note.startswith("skipped 1 unreadable pair(s): broken.png")
    train_store, test_store = (Store(p) for p in ds.info["store"])
    assert train_store.n == 8 and train_store.meta["pairs"] == "aligned"  # 4 pairs, 2 rows each
    assert train_store.names() == [n for f in ("0", "1", "2", "big") for n in (f + ".png",) * 2]
    for i, f in enumerate(("0", "1", "2", "big")):
        a, b = _expected_halves(tmp_path / "train" / f"{f}.png", 8)
        assert np.array_equal(ds.x[i, 0].numpy(), a) and np.array_equal(ds.x[i, 1].numpy(), b)
    src = np.asarray(Image.open(tmp_path / "train" / "0.png"))  # PNG at the size: exact pixels
    assert np.array_equal(ds.x[0, 0].permute(1, 2, 0).numpy(), src[:, :8])
    assert isinstance(ds.test, torch.Tensor) and test_store.n == 2
    a, b = _expected_halves(tmp_path / "test" / "t.png", 8)
    assert np.array_equal(ds.test[0, 0].numpy(), a) and np.array_equal(ds.test[0, 1].numpy(), b)
    again = load_dataset(_cfg(tmp_path), 0, "translation")
    assert again.info["cache"] == "hit" and torch.equal(again.x[:], ds.x[:])


def test_data_info_tells_a_store_of_pairs(tmp_path, cli):
    from gancli.data.images import list_image_files
    from gancli.data.prepare import prepare

    for i in range(3):
        _img(tmp_path / "train" / f"{i}.png", 16, 8, i)
    prepare(tmp_path / "train", tmp_path / "st", 8, scan=list_image_files(tmp_path / "train"),
            pairs="aligned")
    r = cli("data", "info", str(tmp_path / "st"))
    assert r.code == 0 and "3 aligned pairs (6 images, A then B)" in r.out, r.out + r.err
    assert json.loads(cli("data", "info", str(tmp_path / "st"), "--json").out)["pairs"] == "aligned"


def test_an_interrupted_pairs_prepare_resumes_to_the_same_store(tmp_path, monkeypatch):
    from gancli.data import prepare as p
    from gancli.data.images import list_image_files
    from gancli.fileio import sha256_file

    src = tmp_path / "train"
    for i in range(140):  # 3 chunks of 64 pairs (2 rows of 3x8x8 each)
        _img(src / f"{i:03d}.png", 16, 8, i)
    monkeypatch.setattr(p, "JOURNAL_EVERY_S", 0.0)  # a journal after every chunk

    class Stop(Exception):
        pass

    def stop_after_first(d):
        if d["done"] >= 64:
            raise Stop

    scan = list_image_files(src)
    with pytest.raises(Stop):
        p.prepare(src, tmp_path / "cut", 8, None, workers=2, scan=scan, pairs="aligned",
                  progress=stop_after_first)
    assert not (tmp_path / "cut").exists()  # never read as a store
    resumed = p.prepare(src, tmp_path / "cut", 8, None, workers=2, scan=scan, pairs="aligned")
    whole = p.prepare(src, tmp_path / "whole", 8, None, workers=1, scan=scan, pairs="aligned")
    assert resumed["status"] == "resumed" and resumed["n"] == whole["n"] == 280
    for name in ("pixels.u8", "names.jsonl"):
        assert sha256_file(tmp_path / "cut" / name) == sha256_file(tmp_path / "whole" / name)


def test_aligned_layout_names_odd_width_images(tmp_path):
    _img(tmp_path / "train" / "ok.png", 16, 8, 0)
    _img(tmp_path / "train" / "bad.png", 17, 8, 1)
    for _ in range(2):  # the second time from the prepare's journal, refused the same
        with pytest.raises(DataError, match="bad.png") as e:
            load_dataset(_cfg(tmp_path), 0, "translation")
        assert "17x8" in e.value.message and e.value.message.startswith("1 image(s)")


def test_named_layout_matches_by_name_and_lists_the_unmatched(tmp_path):
    a = _img(tmp_path / "A" / "001.png", 8, 8, 1)
    b = _img(tmp_path / "B" / "001.bmp", 8, 8, 2)  # another extension, the same name
    _img(tmp_path / "A" / "sub" / "002.png", 8, 8, 3)
    _img(tmp_path / "B" / "sub" / "002.png", 8, 8, 4)
    _img(tmp_path / "A" / "lonely.png", 8, 8, 5)
    _img(tmp_path / "B" / "stray.png", 8, 8, 6)
    ds = load_dataset(_cfg(tmp_path), 0, "translation")
    assert ds.info["layout"] == "named" and len(ds) == 2
    assert np.array_equal(ds.x[0, 0].permute(1, 2, 0).numpy(), a)
    assert np.array_equal(ds.x[0, 1].permute(1, 2, 0).numpy(), b)
    (note,) = ds.info["notes"]
    assert "A/lonely.png" in note and "B/stray.png" in note and note.startswith("2 file(s)")
    assert not isinstance(ds.x, torch.Tensor) and ds.test is None


def test_named_layout_holds_out_test_pairs_and_b2a_swaps_them_lazily(tmp_path):
    from gancli.data.translation import PairedImages

    a = [_img(tmp_path / "A" / f"{i}.png", 8, 8, i) for i in range(3)]
    b = [_img(tmp_path / "B" / f"{i}.jpg", 8, 8, 10 + i) for i in range(3)]
    ta = _img(tmp_path / "testA" / "t.png", 8, 8, 20)
    tb = _img(tmp_path / "testB" / "t.png", 8, 8, 21)
    a2b = load_dataset(_cfg(tmp_path), 0, "translation")
    b2a = load_dataset(_cfg(tmp_path, direction="b2a"), 0, "translation")
    assert isinstance(b2a.x, PairedImages) and b2a.domains == ["B", "A"]
    assert len(a2b) == 3 and torch.equal(b2a.x[:], a2b.x[:][:, [1, 0]])
    assert torch.equal(b2a.test, a2b.test[:, [1, 0]])
    assert np.array_equal(a2b.x[2, 0].permute(1, 2, 0).numpy(), a[2])
    jpeg = np.asarray(Image.open(tmp_path / "B" / "2.jpg").convert("RGB"))  # as decoded, lossy
    assert np.array_equal(a2b.x[2, 1].permute(1, 2, 0).numpy(), jpeg) and not np.array_equal(jpeg, b[2])
    assert np.array_equal(a2b.test[0, 0].permute(1, 2, 0).numpy(), ta)
    assert np.array_equal(a2b.test[0, 1].permute(1, 2, 0).numpy(), tb)
    # the batches gather matched halves from the store: every sample is a true (A, B) pair
    x, _ = Batches(b2a, 3, seed=0, device=torch.device("cpu")).next()
    want = {tuple(a2b.x[i, 1].flatten().tolist()): i for i in range(3)}
    for pair in x:
        i = want[tuple(pair[0].add(1).mul(127.5).round().to(torch.uint8).flatten().tolist())]
        assert torch.equal(pair[1].add(1).mul(127.5).round().to(torch.uint8), a2b.x[i, 0])


def test_named_layout_names_pairs_of_different_sizes(tmp_path):
    _img(tmp_path / "A" / "x.png", 8, 8, 1)
    _img(tmp_path / "B" / "x.png", 8, 8, 2)
    _img(tmp_path / "A" / "y.png", 10, 8, 1)
    _img(tmp_path / "B" / "y.png", 8, 10, 2)
    with pytest.raises(DataError, match=r"A/y.png 10x8 vs B/y.png 8x10"):
        load_dataset(_cfg(tmp_path), 0, "translation")


def test_both_folder_layouts_train_from_the_preset_and_unpaired_data_is_refused(tmp_path, cli):
    aligned, named = tmp_path / "aligned", tmp_path / "named"
    for i in range(4):
        _img(aligned / "train" / f"{i}.png", 16, 8, i)
        _img(named / "A" / f"{i}.png", 8, 8, i)
        _img(named / "B" / f"{i}.png", 8, 8, 10 + i)
    for data in (aligned, named):
        r = cli("train", "pix2pix", *TINY_P2P, "--data", str(data), "--out", str(tmp_path / "runs"),
                "--quiet")
        assert r.code == 0, r.err
    r = cli("train", "pix2pix", *TINY_P2P, "--data", "pair:digits-recoloured", "--out",
            str(tmp_path / "runs"))
    assert r.code == 2 and "not paired" in r.err and no_traceback(r.err)


def test_pix2pix_from_a_paired_folder_resumes_bit_identically(tmp_path, cli):
    from safetensors.torch import load_file

    for i in range(6):
        _img(tmp_path / "data" / "train" / f"{i}.png", 20, 10, i)
    common = ["--data", str(tmp_path / "data"), "--batch-size", "2", "--quiet",
              *tiny_overrides("pix2pix"), "--set", "data.crop_scale=1.25", "--set",
              "data.crop=random", "--set", "data.flip=true", "--sample-every", "0",
              "--ckpt-every", "2"]
    r = cli("train", "pix2pix", "--steps", "4", "--out", str(tmp_path / "a"), *common)
    assert r.code == 0, r.err
    assert cli("train", "pix2pix", "--steps", "2", "--out", str(tmp_path / "b"), *common).code == 0
    r = cli("train", "--resume", str(tmp_path / "b" / "pix2pix-001"), "--steps", "4", "--quiet")
    assert r.code == 0, r.err
    a = load_file(str(tmp_path / "a/pix2pix-001/checkpoints/step-0000004.safetensors"))
    b = load_file(str(tmp_path / "b/pix2pix-001/checkpoints/step-0000004.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # no held-out split: evaluate scores the store's pairs, read on demand and center-cropped
    r = cli("evaluate", "l1", "psnr", "--fake", str(tmp_path / "a" / "pix2pix-001"), "--n", "4",
            "--json")
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["real"]["pairs"] == 4 and res["real"]["split"] == "all"
    assert 0 < res["values"]["l1"]["mean"] < 2


# --- crop, flip, direction ---------------------------------------------------------------------------

def test_the_same_random_crop_and_flip_apply_to_both_halves():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (16, 1, 12, 12), generator=g, dtype=torch.uint8)
    ds = Dataset("t", "pairs", torch.stack([a, 255 - a], 1), crop_to=8, crop="random")
    batches = Batches(ds, 16, seed=0, device=torch.device("cpu"), flip=True)
    x, _ = batches.next()
    assert x.shape == (16, 2, 1, 8, 8)
    assert torch.allclose(x[:, 1], -x[:, 0], atol=1e-6)  # B = 255 - A survives only if both moved alike
    # and the crops and flips did vary: not every sample is its own unflipped centre
    a_f = a.float().div(127.5).sub(1)
    centre = a_f[..., 2:10, 2:10]
    plain = [torch.equal(x[i, 0], centre[batches._plan(0).idx[i]]) for i in range(16)]
    assert not all(plain)


def test_train_direction_flag_sets_data_direction(cli):
    r = cli("train", "pix2pix", "--direction", "b2a", "--dry-run")
    assert r.code == 0 and "direction: b2a" in r.out
    r = cli("train", "pix2pix", "--direction", "sideways", "--dry-run")
    assert r.code == 2 and "a2b" in r.err and no_traceback(r.err)


def test_direction_b2a_swaps_the_halves_and_the_domain_names():
    a2b = load_dataset(DataConfig(source="paired:digits-outline", resolution=8), 0, "translation")
    b2a = load_dataset(DataConfig(source="paired:digits-outline", resolution=8, direction="b2a"), 0,
                       "translation")
    assert torch.equal(a2b.x[:, 0], b2a.x[:, 1]) and torch.equal(a2b.test[:, 1], b2a.test[:, 0])
    assert a2b.domains == ["outline", "digit"] and b2a.domains == ["digit", "outline"]


def test_builtin_pairs_are_outline_and_digit_with_held_out_digits():
    from gancli.data.digits import digits_split

    ds = load_dataset(DataConfig(source="paired:digits-outline", resolution=16), 0, "translation")
    assert len(ds) == 1297 and len(ds.test) == 500 == len(digits_split()[1])
    a, b = ds.x[:, 0], ds.x[:, 1]
    assert set(a.unique().tolist()) == {0, 255}  # a binary outline
    inside = (b >= 128) & (a == 0)  # the filled interior is not on the outline
    assert inside.any() and (a[b < 20] == 0).float().mean() > 0.9


# --- train, translate, evaluate ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from gancli.cli import main

    out = tmp_path_factory.mktemp("p2p")
    try:
        main(["train", "pix2pix", *TINY_P2P, "--out", str(out), "--quiet"])
    except SystemExit as e:
        assert not e.code
    return out / "pix2pix-001"


def test_translate_keeps_any_size_and_the_alpha(tiny_run, tmp_path, cli):
    src = tmp_path / "odd.png"
    rgba = np.random.default_rng(0).integers(0, 256, (31, 33, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(src)
    out = tmp_path / "out.png"
    r = cli("translate", "--model", str(tiny_run), "--in", str(src), "--out", str(out))
    assert r.code == 0, r.err
    img = Image.open(out)
    assert img.size == (33, 31) and img.mode == "LA"  # a grey model; alpha kept
    assert np.array_equal(np.asarray(img)[..., 1], rgba[..., 3])
    # repeatable (seeded dropout), and --no-dropout is another output
    out2, out3 = tmp_path / "again.png", tmp_path / "nodrop.png"
    cli("translate", "--model", str(tiny_run), "--in", str(src), "--out", str(out2))
    cli("translate", "--model", str(tiny_run), "--in", str(src), "--out", str(out3), "--no-dropout")
    assert np.array_equal(np.asarray(Image.open(out2)), np.asarray(img))
    assert not np.array_equal(np.asarray(Image.open(out3)), np.asarray(img))
    r = cli("translate", "--model", str(tiny_run), "--in", str(src), "--direction", "b2a")
    assert r.code != 0 and "translates a2b" in r.err and no_traceback(r.err)


def test_translate_a_4000x3000_photo(tiny_run, tmp_path, cli):
    src = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(src)
    r = cli("translate", "--model", str(tiny_run), "--in", str(src), "--out", str(tmp_path / "o.jpg"))
    assert r.code == 0, r.err
    assert Image.open(tmp_path / "o.jpg").size == (4000, 3000)


def test_evaluate_scores_a_pix2pix_run_on_its_held_out_pairs(tiny_run, cli):
    r = cli("evaluate", "l1", "psnr", "ssim", "fid", "kid", "--features", "digits", "--fake",
            str(tiny_run), "--n", "60", "--json")
    assert r.code == 0, r.err
    res = json.loads(r.out)
    v = {k: x["mean"] for k, x in res["values"].items()}
    assert 0 < v["l1"] < 1 and 0 < v["psnr"] < 60 and -1 <= v["ssim"] < 1
    assert v["fd_digits"] > 0 and "kd_digits" in v
    assert res["real"] == {"spec": "paired:digits-outline", "pairs": 60, "split": "held-out"}
    r = cli("evaluate", "is", "--fake", str(tiny_run))
    assert r.code != 0 and "cannot score a paired" in r.err and no_traceback(r.err)


# --- the metrics on known values ---------------------------------------------------------------------

def test_paired_metrics_on_known_values():
    from gancli.metrics.paired import paired_scores

    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    same = paired_scores(x, x)
    assert same["l1"] == 0 and same["ssim"] == pytest.approx(1.0) and math.isinf(same["psnr"])
    # constant images 0.5 and 0.25 (in [0, 1]): SSIM is its luminance term alone,
    # (2 * 0.5 * 0.25 + C1) / (0.5^2 + 0.25^2 + C1), C1 = 0.01^2 (Wang et al. 2004, eq. 13)
    a, b = torch.full((2, 1, 16, 16), 0.0), torch.full((2, 1, 16, 16), -0.5)
    s = paired_scores(a, b)
    assert s["ssim"] == pytest.approx((0.25 + 1e-4) / (0.3125 + 1e-4), abs=1e-6)
    assert s["l1"] == pytest.approx(0.25) and s["psnr"] == pytest.approx(10 * math.log10(1 / 0.0625))
    # uint8 inputs read as 0..255: an offset of 51 = 0.2 everywhere, MSE 0.04, PSNR 13.98 dB
    u = torch.full((1, 1, 8, 8), 100, dtype=torch.uint8)
    t = paired_scores(u, u + 51)
    assert t["psnr"] == pytest.approx(10 * math.log10(25)) and t["l1"] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        paired_scores(x, x[:2])


def test_paired_metrics_json_writes_identical_psnr_as_null(tiny_run, tmp_path, cli, monkeypatch):
    import gancli.metrics.paired as paired

    monkeypatch.setattr(paired, "paired_scores",
                        lambda o, t, m: {"l1": 0.0, "psnr": math.inf, "ssim": 1.0})
    r = cli("evaluate", "psnr", "--fake", str(tiny_run), "--n", "4", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["values"]["psnr"]["mean"] is None


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_export_writes_the_generator_with_dropout_off(tiny_run, tmp_path, cli):
    from gancli.inference import load_translator

    out = tmp_path / "G.pt"
    r = cli("export", str(tiny_run), "--format", "torchscript", "--out", str(out), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["max_abs_diff"] <= 1e-4
    tr = load_translator(tiny_run, "cpu")
    x = torch.rand(2, tr.channels, 8, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    assert (torch.jit.load(str(out))(x) - tr(x, dropout=False)).abs().max() <= 1e-4
    r = cli("export", str(tiny_run), "--out", str(tmp_path / "b.pt"), "--direction", "b2a")
    assert r.code != 0 and "translates a2b" in r.err
