"""StyleGAN2 (issue 20): modulated convolution with demodulation, equalised lr with the mapping
network's lr multiplier, truncation in w, lazy R1 cadence, and ADA (pipeline and controller)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from gancli import checkpoints, load_config
from gancli.config import ModelConfig
from gancli.models.base import DataSpec, build_nets
from gancli.models.layers import EqualizedLinear
from gancli.models.stylegan2 import ModulatedConv2d
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.objectives import stylegan2 as stylegan2_objective
from gancli.training.ada import ADA_INTERVAL, OPS, AdaptiveAugment
from gancli.training.loop import train

from conftest import load_benchmark, no_traceback


def nets(resolution=16, width=8):
    torch.manual_seed(0)
    cfg = ModelConfig(family="stylegan2", init="torch", z_dim=16, g_width=width, d_width=width,
                      map_depth=2, mbstd=4)
    return build_nets(cfg, DataSpec("images", (3, resolution, resolution)))


def test_demodulation_gives_unit_output_std_whatever_the_style():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 32, 3, w_dim=16)
    x = torch.randn(4, 64, 48, 48)  # i.i.d. unit-variance input
    w = torch.randn(4, 16) * 3  # styles far from 1
    with torch.no_grad():
        conv.affine.weight.mul_(5)  # make the per-channel scales s very uneven
        y = conv(x, w)[:, :, 1:-1, 1:-1]  # away from the zero padding
    std = y.std(dim=(2, 3))  # (B, out): every sample's every output channel
    assert std.shape == (4, 32)
    assert torch.allclose(std, torch.ones_like(std), atol=0.06), (std.min(), std.max())
    # without demodulation the same styles scale the output far from 1
    plain = ModulatedConv2d(64, 32, 3, w_dim=16, demodulate=False)
    plain.load_state_dict(conv.state_dict())
    with torch.no_grad():
        spread = plain(x, w).std(dim=(2, 3))
    assert (spread - 1).abs().max() > 1.0


def test_modulated_conv_equals_per_sample_weight_convolution():
    """The non-fused form (x * s, shared conv, * 1/sigma) is eq. 1-3 with a weight per sample."""
    torch.manual_seed(1)
    conv = ModulatedConv2d(5, 7, 3, w_dim=4)
    x, w = torch.randn(2, 5, 6, 6), torch.randn(2, 4)
    with torch.no_grad():
        out = conv(x, w)
        s = conv.affine(w)
        for b in range(2):
            wb = conv.weight * conv.scale * s[b][None, :, None, None]  # w'_oik = s_i w_oik
            wb = wb / (wb.square().sum((1, 2, 3), keepdim=True) + 1e-8).sqrt()
            ref = F.conv2d(x[b:b + 1], wb, padding=1)
            assert torch.allclose(out[b:b + 1], ref, atol=1e-5)


def test_equalized_linear_lr_multiplier():
    torch.manual_seed(0)
    lin = EqualizedLinear(256, 512, gain=1.0, lr_mul=0.01, bias_init=0.5)
    assert lin.scale == pytest.approx(0.01 / 16)
    # stored weights N(0, 1/lr_mul^2), so the weights in use are N(0, 1/fan_in), as at lr_mul 1
    assert (lin.weight * lin.scale).std().item() == pytest.approx(1 / 16, rel=0.02)
    assert torch.allclose(lin.bias * 0.01, torch.full((512,), 0.5))
    x = torch.randn(3, 256)
    ref = x @ (lin.weight * 0.01 / 16).t() + 0.5
    assert torch.allclose(lin(x), ref, atol=1e-5)
    # a gradient step of size lr on the stored weight moves the weight in use by lr * scale^2
    # times the gradient in use: lr_mul^2 / fan_in, 10^4 times slower than at lr_mul 1
    lin(x).sum().backward()
    g_use = x.sum(0)[None].expand(512, -1)  # d(sum y) / d(weight in use)
    assert torch.allclose(lin.weight.grad, g_use * lin.scale, atol=1e-6)


def test_truncation_in_w_pulls_towards_tracked_mean():
    G = nets().G.eval()
    z = torch.randn(4, 16)
    with torch.no_grad():
        G.mapping.track(G.mapping(torch.randn(256, 16)))
        G.psi = 0.0
        mean_images = G(z)
        G.psi = 1.0
        full = G(z)
    assert torch.allclose(mean_images, mean_images[:1].expand_as(mean_images), atol=1e-5)
    assert not torch.allclose(full[0], full[1])
    # and G is deterministic in eval mode (fixed noise buffers)
    with torch.no_grad():
        assert torch.equal(G(z), full)
    assert G.num_ws == 2 * int(math.log2(16)) - 2


def tiny(tmp_path, steps, extra=()):
    sets = ["data.size=256", "data.resolution=8", "model.g_width=8", "model.d_width=8",
            "model.z_dim=16", f"train.steps={steps}", "train.batch_size=8", "train.log_every=1",
            "train.sample_every=0", "train.ckpt_every=0", "train.sample_n=4", *extra]
    cfg = load_config("stylegan2", sets)
    run = create_run_dir(tmp_path, "sg2")
    write_config(run, cfg)
    return cfg, run


def test_lazy_r1_runs_every_r1_every_d_steps_scaled_by_it(tmp_path, monkeypatch):
    calls = []
    real_r1 = stylegan2_objective.r1_penalty

    def counting(D, x):
        calls.append(len(x))
        return real_r1(D, x)

    monkeypatch.setattr(stylegan2_objective, "r1_penalty", counting)
    cfg, run = tiny(tmp_path, 5, ["stylegan2.r1_every=4", "reg.r1=1.0", "train.n_critic=2"])
    train(cfg, run, torch.device("cpu"), Reporter())
    assert len(calls) == 3  # D steps 0, 4, 8 of 10

    # the lazy term is gamma / 2 * interval * R1
    from gancli.training.objectives.stylegan2 import StyleGAN2Objective
    torch.manual_seed(0)
    n = build_nets(cfg.model, DataSpec("images", (3, 8, 8)))
    obj = StyleGAN2Objective(cfg, n.G, n.D, torch.Generator().manual_seed(0), torch.device("cpu"))
    real, fake = torch.rand(8, 3, 8, 8) * 2 - 1, torch.rand(8, 3, 8, 8) * 2 - 1
    plain, _ = obj.lazy_d_loss(real, fake, real, fake, reg=False)
    lazy, stats = obj.lazy_d_loss(real, fake, real, fake, reg=True)
    assert (lazy - plain).item() == pytest.approx(0.5 * 1.0 * 4 * stats["r1"].item(), rel=1e-4)


def test_ada_controller_update_rule_on_fixed_inputs():
    ada = AdaptiveAugment(torch.Generator(), torch.device("cpu"), batch_size=64, target=0.6,
                          kimg=500)
    speed = 64 * ADA_INTERVAL / 500_000
    for _ in range(ADA_INTERVAL - 1):
        ada.observe(torch.tensor(1.0))
    assert float(ada.p) == 0.0  # nothing before the interval is full
    ada.observe(torch.tensor(1.0))  # r_t = 1 > 0.6: D overfits, p rises by one step
    assert float(ada.p) == pytest.approx(speed)
    for _ in range(ADA_INTERVAL):
        ada.observe(torch.tensor(0.7))
    assert float(ada.p) == pytest.approx(2 * speed)
    for _ in range(3 * ADA_INTERVAL):  # r_t = 0.5 < 0.6: p falls, and stops at 0
        ada.observe(torch.tensor(0.5))
    assert float(ada.p) == 0.0
    # p can go from 0 to 1 in kimg thousand images: 500k / (64 x 4) updates
    fast = AdaptiveAugment(torch.Generator(), torch.device("cpu"), 64, 0.6, kimg=500)
    updates = math.ceil(500_000 / (64 * ADA_INTERVAL))
    for _ in range(updates * ADA_INTERVAL):
        fast.observe(torch.tensor(1.0))
    assert float(fast.p) == 1.0


@pytest.mark.parametrize("channels", [1, 3])
def test_ada_pipeline_keeps_shape_and_range_and_is_identity_at_p0(channels):
    ada = AdaptiveAugment(torch.Generator().manual_seed(0), torch.device("cpu"), 16)
    x = torch.rand(16, channels, 16, 16) * 2 - 1
    assert torch.equal(ada.augment(x, 0.0), x)
    assert torch.equal(ada(x), x)  # a fresh controller: p = 0
    for p in (0.3, 1.0):
        y = ada.augment(x, p)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.min() >= -1 and y.max() <= 1
    changed = [(not torch.equal(a, b)) for a, b in zip(ada.augment(x, 1.0), x)]
    assert sum(changed) >= 15  # at p = 1 (almost) every image is transformed
    # differentiable: G gets gradients through the augmentation
    xg = x.clone().requires_grad_(True)
    ada.augment(xg, 1.0).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


@pytest.mark.parametrize("op", OPS)
def test_each_ada_transform_keeps_shape_and_range_and_is_identity_at_p0(op):
    ada = AdaptiveAugment(torch.Generator().manual_seed(0), torch.device("cpu"), 16)
    x = torch.rand(16, 3, 16, 16) * 1.6 - 0.8  # colour transforms have room to move
    assert torch.equal(ada.augment(x, 0.0, only={op}), x)
    y = ada.augment(x, 1.0, only={op})
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    changed = sum(not torch.equal(a, b) for a, b in zip(y, x))
    assert changed >= 4, f"{op} changed only {changed} of 16 images at p = 1"
    if op in ("xflip", "rotate90", "xint"):  # whole-pixel moves: every output pixel is an
        for a, b in zip(y, x):  # input pixel (reflected at the border), nothing blended
            gap = (a.permute(1, 2, 0).reshape(-1, 1, 3) - b.permute(1, 2, 0).reshape(1, -1, 3))
            assert gap.abs().amax(-1).amin(1).max() < 1e-5
    if op in ("brightness", "contrast", "lumaflip", "hue", "saturation"):  # pixels stay put
        grey = torch.rand(4, 1, 16, 16) * 1.6 - 0.8
        assert ada.augment(grey, 1.0, only={op}).shape == grey.shape


def test_ada_integer_ops_are_exact_permutations():
    """With only x-flip / 90-degree rotations / whole-pixel shifts, pixels are moved, not
    blended: each output pixel is some input pixel (reflection at the border)."""
    ada = AdaptiveAugment(torch.Generator().manual_seed(3), torch.device("cpu"), 8)
    x = torch.arange(8 * 8, dtype=torch.float32).reshape(1, 1, 8, 8).expand(4, 1, 8, 8) / 64
    G = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).expand(4, 3, 3)
    out = ada._warp(x, G.clone(), torch.ones(4, dtype=torch.bool))
    assert torch.allclose(out[0, 0], torch.rot90(x[0, 0], 1, (0, 1)), atol=1e-5) or \
        torch.allclose(out[0, 0], torch.rot90(x[0, 0], -1, (0, 1)), atol=1e-5)


def test_ada_run_logs_p_and_resumes_bit_identical(tmp_path, cli):
    extra = ["train.augment=ada", "ada.kimg=0.02", "ada.target=0.0",
             "stylegan2.r1_every=4", "stylegan2.style_mixing=0.5", "stylegan2.pl_weight=2",
             "train.ema=0.9"]
    cfg, straight = tiny(tmp_path / "a", 8, extra)
    train(cfg, straight, torch.device("cpu"), Reporter())
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    ps = [r["ada_p"] for r in rows if "ada_p" in r]
    assert len(ps) == 8 and ps[0] == 0.0
    assert all(0 <= p <= 1 for p in ps)
    assert all("pl" in r and "r1" in r for r in rows if "g_loss" in r)

    cfg9, stopped = tiny(tmp_path / "b", 8, extra)
    from gancli.errors import Interrupted
    import os
    import signal

    class StopAt(Reporter):
        def step(self, row):
            if row["step"] == 5:  # mid ADA interval, mid lazy-R1 and PL cadence
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        train(cfg9, stopped, torch.device("cpu"), StopAt())
    r = cli("train", "--resume", str(stopped), "--quiet")
    assert r.code == 0, r.err
    a = checkpoints.load(checkpoints.resolve(straight)).tensors
    b = checkpoints.load(checkpoints.resolve(stopped)).tensors
    assert a.keys() == b.keys() and "ada.p" in a
    assert not [k for k in a if not torch.equal(a[k], b[k])]
    assert float(a["ada.p"]) == ps[-1]


def test_stylegan2_refuses_what_it_cannot_do(cli, tmp_path):
    r = cli("train", "stylegan2", "--set", "objective=conditional", "--out", str(tmp_path))
    assert r.code == 2 and "unconditional" in r.err and no_traceback(r.err)
    r = cli("train", "dcgan", "--set", "objective=stylegan2", "--out", str(tmp_path))
    assert r.code == 2 and "style-based generator" in r.err and no_traceback(r.err)
    r = cli("train", "dcgan", "--set", "objective=stylegan2", "--dry-run")
    assert r.code == 2 and "style-based generator" in r.err  # refused before anything is built
    r = cli("train", "stylegan2", "--set", "data.resolution=12", "--out", str(tmp_path))
    assert r.code == 2 and "power-of-two" in r.err and no_traceback(r.err)
    assert not list(tmp_path.iterdir()), "a refused run leaves no folder behind"


def test_sample_mix_grid_truncation_and_w_walk(cli, tmp_path):
    from PIL import Image

    from gancli.inference import generate, generate_from_styles, load_generator, styles_for_seeds

    from conftest import TINY, tiny_overrides

    r = cli("train", "stylegan2", *TINY, *tiny_overrides("stylegan2"), "--out", str(tmp_path),
            "--quiet")
    assert r.code == 0, r.err
    run = tmp_path / "stylegan2-001"
    out = tmp_path / "mix.png"
    r = cli("sample", str(run), "--mix", "0-1,5-7", "--mix-layer", "2", "--out", str(out), "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["rows"] == [0, 1] and info["columns"] == [5, 6, 7] and info["mix_layer"] == 2
    w, h = Image.open(out).size
    assert w / h == pytest.approx(4 / 3, rel=0.05)  # (1 + 3) columns, (1 + 2) rows of tiles
    model = load_generator(run, "cpu")
    # a cell: A's w on layers 0-1, B's from layer 2 on; it differs from both sources
    wa, wb = styles_for_seeds(model, [0]), styles_for_seeds(model, [5])
    ws = model.G.broadcast(wa).clone()
    ws[:, 2:] = wb
    cell, a, b = generate_from_styles(model, torch.cat([ws, model.G.broadcast(wa),
                                                        model.G.broadcast(wb)])).split(1)
    assert not torch.equal(cell, a) and not torch.equal(cell, b)
    assert torch.allclose(a, generate(model, [0]), atol=1e-5)  # styles == the plain path
    # psi = 0: every seed gives the mean-w image; psi = 1 leaves seeds apart
    mean = generate(model, [0, 1, 2], truncation=0.0)
    assert torch.allclose(mean, mean[:1].expand_as(mean), atol=1e-5)
    assert not torch.allclose(generate(model, [0]), generate(model, [1]))
    assert model.G.psi == 1.0  # generate restores it
    for args, code in ((["--mix", "0-1"], 2), (["--mix", "0,1", "--mix-layer", "99"], 2),
                       (["--mix", "0,1", "--seeds", "3"], 2)):
        r = cli("sample", str(run), *args, "--out", str(tmp_path / "x.png"))
        assert r.code == code and no_traceback(r.err), r.err
    r = cli("interpolate", str(run), "--seeds", "0,1", "--method", "lerp", "--steps", "3",
            "--out", str(tmp_path / "walk.png"))
    assert r.code == 0, r.err


@pytest.mark.slow
def test_compiled_stylegan2_phases_match_eager():
    """``train.compile`` compiles lazy_d_loss (R1 through torch.func.grad on a regularisation
    step) and style_g_loss; they must give eager's losses and gradients (minutes on a CPU)."""
    from gancli.runtime import compile_problem
    from gancli.training.loop import compile_nets
    from gancli.training.objectives.stylegan2 import StyleGAN2Objective

    problem = compile_problem(torch.device("cpu"))
    if problem:
        pytest.skip(f"torch.compile unavailable: {problem}")
    cfg = load_config("stylegan2", ["data.resolution=8", "model.g_width=8", "model.d_width=8",
                                    "model.z_dim=16", "train.batch_size=8", "stylegan2.r1_every=2",
                                    "reg.r1=1.0", "stylegan2.style_mixing=0.5"])
    torch.manual_seed(0)
    n = build_nets(cfg.model, DataSpec("images", (3, 8, 8)))
    real = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1

    def phases(compiled: bool):
        obj = StyleGAN2Objective(cfg, n.G, n.D, torch.Generator().manual_seed(1),
                                 torch.device("cpu"))
        if compiled:
            compile_nets(n.G, n.D, cfg, torch.device("cpu"), Reporter(), obj)
            assert {"lazy_d_loss", "style_g_loss"} <= vars(obj).keys()
        out = []
        for step in range(2):  # step 0 regularises D, step 1 does not
            obj.on_step(step)
            n.D.requires_grad_(True)
            n.D.zero_grad(), n.G.zero_grad()
            d_loss, _ = obj.d_step(real, None, 0.0)
            d_loss.backward()
            n.D.requires_grad_(False)
            g_loss, _ = obj.g_step(8, 0.0)
            g_loss.backward()
            out.append((d_loss.detach(), g_loss.detach(),
                        [p.grad.clone() for p in n.D.parameters()],
                        [p.grad.clone() for p in n.G.parameters() if p.grad is not None]))
        return out

    for e, c in zip(phases(False), phases(True)):
        assert torch.allclose(e[0], c[0], rtol=1e-4, atol=1e-6)
        assert torch.allclose(e[1], c[1], rtol=1e-4, atol=1e-6)
        for ge, gc in zip(e[2:], c[2:]):
            assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(ge, gc))


def test_ada_digits_subset_keeps_the_digits_grey_levels(tmp_path):
    """benchmarks/ada_digits.py's 200-digit folder holds the digits' own uint8 pixels (it once
    passed 0..255 values through the [-1, 1] -> uint8 conversion, which made them binary)."""
    import numpy as np
    from PIL import Image

    from gancli.data.digits import load_digits

    mod = load_benchmark("ada_digits")
    picked = mod.write_subset(tmp_path)
    digits = load_digits(16)
    assert len(picked) == 200 and sorted(int(digits.y[i]) for i in picked) == \
        sorted(list(range(10)) * 20)
    for i in picked[:20]:
        png = tmp_path / str(int(digits.y[i])) / f"{i:04d}.png"
        assert torch.equal(torch.from_numpy(np.array(Image.open(png)))[None], digits.x[i])
    assert len(torch.unique(digits.x[picked])) > 10  # grey levels, not a binary image


def test_ada_digits_copying_tells_copies_from_new_digits():
    """benchmarks/ada_digits.py's memorisation probe: the training digits themselves (a G that
    copies them) give closer_to_train 1 and nn_ratio 0; real digits neither set holds sit near
    the no-copying values 0.5 and 1; a held-out draw is balanced and disjoint from training."""
    from gancli.data.digits import load_digits

    mod = load_benchmark("ada_digits")
    digits = load_digits(16)
    picked = mod.pick_subset(10)
    held = sorted(set(range(len(digits.x))) - set(picked))
    near = mod.pick_subset(10, held, seed=1)
    assert not set(near) & set(picked)
    assert sorted(int(digits.y[i]) for i in near) == sorted(list(range(10)) * 10)
    x_train, x_near = mod.to_model_range(digits.x[picked]), mod.to_model_range(digits.x[near])
    assert mod.copying(x_train, x_train, x_near) == {"closer_to_train": 1.0, "nn_ratio": 0.0}
    others = mod.to_model_range(digits.x[sorted(set(held) - set(near))])
    fresh = mod.copying(others, x_train, x_near)
    assert 0.4 < fresh["closer_to_train"] < 0.6 and 0.9 < fresh["nn_ratio"] < 1.1
