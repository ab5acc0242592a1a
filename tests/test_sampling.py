"""Sampling by seed, interpolation and latent arithmetic, through the CLI and the library."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gancli.errors import GancliError
from gancli.sampling import (latents_for_seeds, lerp, parse_arithmetic, parse_seeds, path_through,
                             slerp)

from conftest import TINY, tiny_overrides


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: dcgan (images), wgan-gp-toy (2-D points), cgan, infogan."""
    from gancli.cli import main

    out = tmp_path_factory.mktemp("runs")
    for preset in ("dcgan", "wgan-gp-toy", "cgan", "infogan"):
        try:
            main(["train", preset, *TINY, *tiny_overrides(preset), "--out", str(out), "--quiet"])
        except SystemExit as e:
            assert e.code in (0, None)
    return {"images": out / "dcgan-001", "points": out / "wgan-gp-toy-001",
            "conditional": out / "cgan-001", "info": out / "infogan-001"}


def test_parse_seeds():
    assert parse_seeds("0-3,7, 9-10") == [0, 1, 2, 3, 7, 9, 10]
    for bad in ("", "a", "5-2", "-1", "1.5"):
        with pytest.raises(GancliError):
            parse_seeds(bad)


def test_parse_arithmetic_keeps_ranges_inside_groups():
    assert parse_arithmetic("1,2,3 - 4-6 + 7") == [(1, [1, 2, 3]), (-1, [4, 5, 6]), (1, [7])]
    with pytest.raises(GancliError):
        parse_arithmetic("1,2,3")


def test_seed_latents_are_independent_of_company():
    a = latents_for_seeds([0, 1, 2], 16)
    b = latents_for_seeds([2, 0], 16)
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])
    assert not torch.equal(a[0], a[1])


def test_slerp_endpoints_and_norm():
    a, b = torch.randn(1, 64), torch.randn(1, 64)
    t = torch.linspace(0, 1, 9)[:, None]
    path = slerp(a, b, t)
    assert torch.allclose(path[0], a[0], atol=1e-5) and torch.allclose(path[-1], b[0], atol=1e-5)
    # slerp keeps norms between the ends; the straight line dips toward the origin
    norms, lnorms = path.norm(dim=1), lerp(a, b, t).norm(dim=1)
    lo, hi = min(a.norm(), b.norm()), max(a.norm(), b.norm())
    assert ((norms >= lo - 1e-4) & (norms <= hi + 1e-4)).all()
    assert lnorms[4] < norms[4]
    assert torch.allclose(slerp(a, a, t), a.expand(9, -1), atol=1e-5)  # parallel: no NaN
    walk = path_through(torch.cat([a, b, a]), 5, "slerp")
    assert len(walk) == 9


def test_sample_grid_folder_npz(runs, tmp_path, cli):
    r = cli("sample", str(runs["images"]), "--seeds", "0-7", "--out", str(tmp_path / "g.png"),
            "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["samples"] == 8 and Image.open(tmp_path / "g.png").size[0] > 8
    r = cli("sample", str(runs["images"]), "--seeds", "3,5", "--out", str(tmp_path / "one") + "/")
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == \
        ["seed-000003.png", "seed-000005.png"]
    r = cli("sample", str(runs["images"]), "--n", "6", "--out", str(tmp_path / "s.npz"))
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert z["samples"].shape == (6, 8, 8, 1) and z["samples"].dtype == np.uint8
        assert z["seeds"].tolist() == list(range(6))
    # seed 5 alone, as a file, equals seed 5 inside the npz batch
    single = np.array(Image.open(tmp_path / "one" / "seed-000005.png"))
    with np.load(tmp_path / "s.npz") as z:
        assert np.array_equal(single, z["samples"][5, :, :, 0])


def test_sample_points(runs, tmp_path, cli):
    r = cli("sample", str(runs["points"]), "--n", "100", "--out", str(tmp_path / "p.npz"))
    assert r.code == 0, r.err
    with np.load(tmp_path / "p.npz") as z:
        assert z["samples"].shape == (100, 2) and z["samples"].dtype == np.float32
    assert cli("sample", str(runs["points"]), "--out", str(tmp_path / "p.png")).code == 0
    r = cli("sample", str(runs["points"]), "--out", str(tmp_path / "dir") + "/")
    assert r.code == 2 and "scatter" in r.err


def test_sample_errors(runs, cli, tmp_path):
    assert cli("sample", str(runs["images"]), "--n", "4", "--seeds", "1").code == 2  # usage
    r = cli("sample", str(runs["images"]), "--out", str(tmp_path / "x.bmp"))
    assert r.code == 2 and "unsupported output" in r.err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    r = cli("sample", str(bad))
    assert r.code == 1 and "cannot read checkpoint" in r.err


def test_interpolate_grid_gif_and_arithmetic(runs, tmp_path, cli):
    r = cli("interpolate", str(runs["images"]), "--seeds", "3,7,11", "--steps", "5",
            "--out", str(tmp_path / "w.png"), "--json")
    assert r.code == 0, r.err and json.loads(r.out)["frames"] == 10
    r = cli("interpolate", str(runs["images"]), "--seeds", "1,2", "--method", "lerp",
            "--out", str(tmp_path / "w.gif"))
    gif = Image.open(tmp_path / "w.gif")
    assert r.code == 0 and gif.is_animated and gif.n_frames >= 8
    r = cli("interpolate", str(runs["images"]), "--arith", "1,2,3 - 4,5,6 + 7,8,9",
            "--out", str(tmp_path / "a.png"), "--json")
    assert r.code == 0 and json.loads(r.out)["frames"] == 4
    assert cli("interpolate", str(runs["images"]), "--seeds", "1").code == 2
    assert cli("interpolate", str(runs["images"]), "--seeds", "1,2", "--method", "cubic").code == 2


def test_conditional_sampling(runs, tmp_path, cli):
    run = str(runs["conditional"])
    r = cli("sample", run, "--class", "7", "--seeds", "0-3", "--out", str(tmp_path / "s.npz"))
    assert r.code == 0, r.err
    with np.load(tmp_path / "s.npz") as z:
        assert z["labels"].tolist() == [7, 7, 7, 7] and z["seeds"].tolist() == [0, 1, 2, 3]
    r = cli("sample", run, "--seeds", "0-2", "--out", str(tmp_path / "all.npz"))
    with np.load(tmp_path / "all.npz") as z:  # no --class: every class for every seed
        assert z["labels"].tolist() == [k for k in range(10) for _ in range(3)]
    assert cli("sample", run, "--out", str(tmp_path / "grid.png")).code == 0
    r = cli("sample", run, "--class", "3", "--seeds", "5", "--out", str(tmp_path / "d") + "/")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["seed-000005-class-3.png"]
    r = cli("sample", run, "--class", "eleven")
    assert r.code == 2 and "unknown class" in r.err and "0, 1, 2" in r.err
    r = cli("sample", str(runs["images"]), "--class", "1")
    assert r.code == 2 and "needs a conditional model" in r.err


def test_class_walks_at_a_fixed_seed(runs, tmp_path, cli):
    run = str(runs["conditional"])
    r = cli("interpolate", run, "--classes", "1,7,3", "--seeds", "4", "--steps", "5",
            "--out", str(tmp_path / "c.png"), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) | {"out": None} == {
        "checkpoint": json.loads(r.out)["checkpoint"], "frames": 10, "method": "lerp",
        "out": None, "mode": "classes"}
    # the ends of the walk are exactly the samples of the two classes for that seed
    from gancli.inference import generate, generate_from_latents, load_generator
    from gancli.models.base import one_hot

    model = load_generator(run, "cpu")
    z = latents_for_seeds([4, 4], model.cfg.model.z_dim)
    ends = generate_from_latents(model, z, labels=one_hot(torch.tensor([1, 7]), 10))
    assert torch.allclose(ends, generate(model, [4, 4], labels=torch.tensor([1, 7])))
    assert cli("interpolate", run, "--classes", "1,7", "--seeds", "4,5").code == 2
    assert cli("interpolate", run, "--classes", "1").code == 2
    r = cli("interpolate", run, "--seeds", "1,2")  # a conditional walk needs a class
    assert r.code == 2 and "--class K" in r.err
    r = cli("interpolate", run, "--seeds", "1,2", "--class", "3", "--out", str(tmp_path / "w.gif"))
    assert r.code == 0, r.err
    r = cli("interpolate", str(runs["images"]), "--classes", "1,2")
    assert r.code == 2 and "conditional model" in r.err


def test_infogan_codes_come_from_the_seed_and_sweep(runs, tmp_path, cli):
    run = str(runs["info"])
    r = cli("sample", run, "--seeds", "0-3", "--out", str(tmp_path / "s.npz"))
    assert r.code == 0, r.err
    assert cli("sample", run, "--seeds", "2,3", "--out", str(tmp_path / "t.npz")).code == 0
    with np.load(tmp_path / "s.npz") as a, np.load(tmp_path / "t.npz") as b:
        codes = a["codes"]
        assert codes.shape == (4, 12)
        assert np.array_equal(codes[2:], b["codes"]) and np.array_equal(a["samples"][2:],
                                                                        b["samples"])
    # categorical sweep: one row per seed, one column per category
    r = cli("sample", run, "--vary", "code.0", "--seeds", "0-2", "--out", str(tmp_path / "v.npz"))
    assert r.code == 0, r.err
    with np.load(tmp_path / "v.npz") as v:
        assert v["seeds"].tolist() == [s for s in range(3) for _ in range(10)]
        assert v["codes"][:, :10].argmax(1).tolist() == list(range(10)) * 3
        # the continuous codes stay as the seed drew them
        assert np.array_equal(v["codes"][:10, 10:], np.repeat(codes[:1, 10:], 10, 0))
    # continuous sweep from -2 to 2
    r = cli("sample", run, "--vary", "code.2", "--values", "5", "--seeds", "0",
            "--out", str(tmp_path / "c.npz"))
    with np.load(tmp_path / "c.npz") as c:
        assert c["codes"][:, 11].tolist() == [-2, -1, 0, 1, 2]
        assert np.array_equal(c["codes"][:, :11], np.repeat(codes[:1, :11], 5, 0))
    assert cli("sample", run, "--vary", "code.0", "--out", str(tmp_path / "g.png")).code == 0
    r = cli("sample", run, "--vary", "code.9")
    assert r.code == 2 and "code.0 (categorical, 10 values)" in r.err
    r = cli("sample", str(runs["images"]), "--vary", "code.0")
    assert r.code == 2 and "InfoGAN" in r.err
    r = cli("interpolate", run, "--seeds", "1,2,3", "--out", str(tmp_path / "w.png"))
    assert r.code == 0, r.err


def test_sample_interpolate_and_evaluate_take_a_truncation_threshold(runs, cli, tmp_path):
    """--truncation-threshold (BigGAN's resampling) in sample, interpolate and evaluate: the
    written samples are the ones the threshold's latents give; a bad threshold is one line,
    exit 2."""
    from gancli import imaging
    from gancli.inference import generate, load_generator

    run = str(runs["conditional"])
    r = cli("sample", run, "--class", "3", "--seeds", "0-3", "--truncation-threshold", "0.5",
            "--out", str(tmp_path / "t.npz"), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["truncation_threshold"] == 0.5
    with np.load(tmp_path / "t.npz") as f:
        written = f["samples"]
    model = load_generator(run, "cpu")
    labels = torch.full((4,), 3)
    want = generate(model, [0, 1, 2, 3], labels=labels, threshold=0.5)
    assert np.array_equal(written, imaging.to_uint8(want).permute(0, 2, 3, 1).numpy())
    assert not torch.equal(want, generate(model, [0, 1, 2, 3], labels=labels))
    r = cli("interpolate", run, "--class", "1", "--seeds", "0,1", "--steps", "3",
            "--truncation-threshold", "1.0", "--out", str(tmp_path / "w.png"))
    assert r.code == 0, r.err
    r = cli("evaluate", "digits", "--fake", run, "--n", "20", "--truncation-threshold", "1.0",
            "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["settings"]["truncation_threshold"] == 1.0
    r = cli("sample", run, "--truncation-threshold", "0.001", "--out", str(tmp_path / "x.png"))
    assert r.code == 2 and "below" in r.err and "Traceback" not in r.err
    r = cli("sample", run, "--truncation-scale", "0.5", "--class", "3", "--seeds", "0",
            "--out", str(tmp_path / "s.png"))
    assert r.code == 0, r.err
