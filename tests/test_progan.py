"""ProGAN (issue 18): equalised learning rate, pixel norm, fade-in, the growth schedule, the
drift term, optimiser resets, and what a growing run records."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from gancli import checkpoints, load_config
from gancli.config import ModelConfig
from gancli.models.base import DataSpec, build_nets
from gancli.models.layers import EqualizedConv2d, EqualizedLinear, PixelNorm
from gancli.models.progan import fade_reals
from gancli.regularizers import drift_penalty
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train
from gancli.training.objectives.progressive import growth_at, phase_steps

from conftest import no_traceback


def nets(resolution=16, width=8, mbstd=2):
    torch.manual_seed(0)
    cfg = ModelConfig(family="progan", init="torch", z_dim=16, g_width=width, d_width=width,
                      mbstd=mbstd)
    return build_nets(cfg, DataSpec("images", (1, resolution, resolution)))


def test_equalized_conv_scales_unit_normal_weights_by_he_constant():
    torch.manual_seed(0)
    conv = EqualizedConv2d(8, 300, 3, padding=1)
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(8 * 9))  # = 1/6
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.02)  # stored N(0, 1)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 8, 5, 5)
    expected = F.conv2d(x, conv.weight / 6, conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    # the point of it: the gradient w.r.t. the stored weight is scaled by the same 1/6, so
    # Adam's step (invariant to that scale) moves every layer's output at one relative speed
    conv(x).sum().backward()
    w = conv.weight.detach().clone().requires_grad_(True)
    F.conv2d(x, w / 6, conv.bias.detach(), padding=1).sum().backward()
    assert torch.allclose(conv.weight.grad, w.grad, atol=1e-5)


def test_equalized_linear_gain_and_zero_bias():
    torch.manual_seed(0)
    lin = EqualizedLinear(16, 4, gain=1.0)
    assert lin.scale == 0.25 and torch.equal(lin.bias, torch.zeros(4))
    x = torch.randn(3, 16)
    assert torch.allclose(lin(x), x @ lin.weight.t() * 0.25, atol=1e-6)


def test_pixel_norm_divides_each_pixel_by_its_rms_over_channels():
    x = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1).repeat(1, 1, 2, 2)
    x[0, :, 1, 1] = torch.tensor([0.0, 2.0])
    y = PixelNorm()(x)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([3.0, 4.0]) / math.sqrt(12.5))
    assert torch.allclose(y[0, :, 1, 1], torch.tensor([0.0, math.sqrt(2.0)]))
    assert torch.allclose(y.pow(2).mean(1), torch.ones(1, 2, 2))
    assert torch.allclose(PixelNorm()(torch.tensor([[1.0, -1.0, 1.0, -1.0]]) * 5),
                          torch.tensor([[1.0, -1.0, 1.0, -1.0]]))


def test_stage_widths_halve_per_octave_above_full_width_res():
    from gancli.models.progan import stage_width
    assert [stage_width(32, r) for r in (4, 8, 16, 32, 64, 128)] == [32, 32, 32, 32, 16, 8]
    assert [stage_width(32, r, 8) for r in (4, 8, 16, 32)] == [32, 32, 16, 8]
    torch.manual_seed(0)
    cfg = ModelConfig(family="progan", init="torch", z_dim=16, g_width=8, d_width=12, mbstd=2,
                      full_width_res=8)
    nets_ = build_nets(cfg, DataSpec("images", (1, 32, 32)))
    G, D = nets_.G, nets_.D
    # G's block per stage ends with its widest-to-narrowest conv: 8 px 8, 16 px 4, 32 px 2
    assert [rgb.in_channels for rgb in G.to_rgb] == [8, 8, 4, 2]
    assert [rgb[0].out_channels for rgb in D.from_rgb] == [12, 12, 6, 3]
    assert D.blocks[3][2].out_channels == 6 and D.blocks[2][2].out_channels == 12
    for stage in range(4):  # every stage and its fade-in still runs
        G.grow(stage, 0.5), D.grow(stage, 0.5)
        assert D(G(torch.randn(4, 16))).shape == (4,)


@pytest.mark.parametrize("stage", [1, 2])
def test_generator_fade_in_is_old_path_at_alpha_0_and_new_path_at_alpha_1(stage):
    G = nets().G  # train mode: the linear output (no batch norm, so still deterministic)
    z = torch.randn(5, 16)
    with torch.no_grad():
        G.grow(stage - 1, 1.0)
        old = G(z)
        G.grow(stage, 0.0)
        at0 = G(z)
        G.grow(stage, 1.0)
        at1 = G(z)
        G.grow(stage, 0.25)
        mid = G(z)
        # the new path by hand: blocks up to `stage`, its toRGB, nearest-upsampled to 16 px
        h = F.leaky_relu(G.dense(G.pixel_norm(z)), 0.2).view(5, G.w4, 4, 4)
        h = G.blocks[0](G.pixel_norm(h))
        for s in range(1, stage + 1):
            h = G.blocks[s](h)
        new = F.interpolate(G.to_rgb[stage](h), size=16, mode="nearest")
    assert at0.shape == at1.shape == (5, 1, 16, 16)
    assert torch.equal(at0, old)
    assert torch.equal(at1, new)
    assert torch.allclose(mid, 0.75 * old + 0.25 * new, atol=1e-6)
    assert not torch.allclose(old, new)
    with torch.no_grad():  # outside training the image is clamped to [-1, 1]
        assert torch.equal(G.eval()(z), mid.clamp(-1, 1)) and mid.abs().max() > 1


@pytest.mark.parametrize("stage", [1, 2])
def test_discriminator_fade_in_is_old_path_at_alpha_0_and_new_path_at_alpha_1(stage):
    D = nets().D.eval()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        D.grow(stage - 1, 1.0)
        old = D(x)
        D.grow(stage, 0.0)
        at0 = D(x)
        D.grow(stage, 1.0)
        at1 = D(x)
        size = 4 * 2 ** stage  # the new path by hand: fromRGB at the stage's size, then blocks
        h = D.from_rgb[stage](F.avg_pool2d(x, 16 // size))
        for s in range(stage, 0, -1):
            h = D.blocks[s](h)
        new = D.head(D.mbstd(h)).view(-1)
    assert torch.allclose(at0, old, atol=1e-5)  # pooling 16->4 once or 16->8->4: same means
    assert torch.equal(at1, new)
    assert not torch.allclose(old, new)


def test_fade_reals_blends_the_two_resolutions_and_is_identity_at_the_end():
    x = torch.randn(3, 1, 16, 16)
    assert torch.equal(fade_reals(x, 2, 1.0), x)
    at8 = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
    assert torch.allclose(fade_reals(x, 2, 0.0), at8, atol=1e-6)
    assert torch.allclose(fade_reals(x, 2, 0.5), 0.5 * x + 0.5 * at8, atol=1e-6)
    assert torch.allclose(fade_reals(x, 0, 1.0),
                          F.interpolate(F.avg_pool2d(x, 4), scale_factor=4), atol=1e-6)


def test_growth_schedule_phases():
    assert phase_steps(48, 8) == 6 and phase_steps(50, 8) == 7 and phase_steps(0, 8) == 0
    # 2 stages, 6 steps per phase: 4x4 | fade 8 | 8 | fade 16 | 16 ...
    got = [growth_at(s, 6, 2) for s in (0, 5, 6, 9, 11, 12, 17, 18, 21, 24, 10 ** 6)]
    assert got == [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 5 / 6), (1, 1.0), (1, 1.0),
                   (2, 0.0), (2, 0.5), (2, 1.0), (2, 1.0)]
    assert growth_at(0, 0, 2) == (2, 1.0)  # no phases: the full network


def test_drift_penalty_value():
    assert drift_penalty(torch.tensor([1.0, -2.0, 3.0])).item() == pytest.approx(14 / 3)


def tiny_progan(tmp_path, steps, extra=()):
    cfg = load_config("progan", ["data.size=512", "model.g_width=8", "model.d_width=8",
                                 "train.batch_size=8", f"train.steps={steps}",
                                 "train.log_every=1", "train.ckpt_every=0", "train.sample_n=4",
                                 "train.n_critic=1",
                                 *extra])
    run = create_run_dir(tmp_path, "progan")
    write_config(run, cfg)
    return cfg, run


def test_growing_run_records_stage_resets_adam_and_names_grids(tmp_path):
    # 8 px, 6 steps per phase: 4x4 for steps 0-5, fade-in 6-11, 8x8 from 12 on
    cfg, run = tiny_progan(tmp_path, 16, ["data.resolution=8", "progressive.phase_images=48",
                                          "train.sample_every=4"])
    train(cfg, run, torch.device("cpu"), Reporter())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    by_step = {r["step"]: r for r in rows if "d_loss" in r}
    assert [by_step[s]["stage"] for s in (1, 6, 7, 12, 13, 16)] == [0, 0, 1, 1, 1, 1]
    assert by_step[8]["alpha"] == pytest.approx(1 / 6) and by_step[13]["alpha"] == 1.0
    assert "drift" in by_step[1] and "gp" in by_step[1]  # ProGAN's loss: WGAN-GP + drift
    grids = sorted(p.name for p in (run / "samples").glob("*.png"))
    # a grid shows the stage of the step just taken: steps 8 and 12 are the fade-in's 2nd and 6th
    assert grids == ["step-0000004-4px.png", "step-0000008-8px-fade0.17.png",
                     "step-0000012-8px-fade0.83.png", "step-0000016-8px.png"]
    ckpt = checkpoints.load(checkpoints.resolve(run))
    assert int(ckpt.tensors["G.stage"]) == 1 and float(ckpt.tensors["G_ema.alpha"]) == 1.0
    # Adam's moments were cleared when the fade-in began (step 6) and ended (step 12): the
    # dense layer's step count restarted at 12; the 4x4 toRGB, unused since, has no state
    G = build_nets(cfg.model, DataSpec("images", (1, 8, 8))).G
    names = [n for n, _ in G.named_parameters()]
    steps = {names[int(k.split(".")[1])]: int(v) for k, v in ckpt.tensors.items()
             if k.startswith("opt_G.") and k.endswith(".step")}
    assert steps["dense.weight"] == 4 and steps["to_rgb.1.weight"] == 4
    assert "to_rgb.0.weight" not in steps


def test_progan_refuses_what_it_cannot_do(cli, tmp_path):
    r = cli("train", "progan", "--set", "model.init=dcgan", "--out", str(tmp_path))
    assert r.code == 2 and "model.init=torch" in r.err and no_traceback(r.err)
    r = cli("train", "dcgan", "--set", "objective=progressive", "--out", str(tmp_path))
    assert r.code == 2 and "needs networks that grow" in r.err and no_traceback(r.err)
    r = cli("train", "dcgan", "--set", "objective=progressive", "--dry-run")
    assert r.code == 2 and "needs networks that grow" in r.err  # refused before anything is built
    r = cli("train", "cgan", "--set", "model.family=progan", "--set", "model.init=torch",
            "--out", str(tmp_path))
    assert r.code == 2 and "unconditional" in r.err and no_traceback(r.err)
    assert not list(tmp_path.iterdir()), "a refused run leaves no folder behind"
