"""Issue 22: the pieces of the sharper digits recipe (EMA batch-norm statistics, the closing
line of ``gancli train``)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from gancli.config import ModelConfig
from gancli.models import DataSpec, build_nets
from gancli.reporting import next_steps
from gancli.training.ema import ema_decay, make_ema, recompute_bn_stats, update_ema

from conftest import TINY, load_benchmark, tiny_overrides


def _dcgan_G() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(family="dcgan", z_dim=16, g_width=8, d_width=8)
    return build_nets(cfg, DataSpec("images", (1, 16, 16)), "none").G


def _eval_vs_batch_gap(G: torch.nn.Module, z: torch.Tensor) -> float:
    """Mean |eval-mode output - train-mode output| on one big batch: 0 when the running
    statistics equal the statistics of G's own activations."""
    with torch.no_grad():
        ev = G.eval()(z, None)
        tr = copy.deepcopy(G).train()(z, None)
    return float((ev - tr).abs().mean())


def test_recomputed_bn_stats_fit_the_averaged_weights():
    G = _dcgan_G()
    ema = make_ema(G)
    with torch.no_grad():  # G moves away; the average follows only part of the way
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        G.train()(torch.randn(256, 16), None)  # G's running statistics: G's activations
    update_ema(ema, G, 0.5)  # buffers copied from G, as during training
    z = torch.randn(2048, 16, generator=torch.Generator().manual_seed(5))
    copied = _eval_vs_batch_gap(ema, z)
    state = torch.get_rng_state()
    recompute_bn_stats(ema, 16, "normal", batch_size=256, batches=16)
    assert torch.equal(state, torch.get_rng_state())  # training's random stream is untouched
    assert not ema.training
    fitted = _eval_vs_batch_gap(ema, z)
    assert fitted < 0.25 * copied, (fitted, copied)
    assert fitted < 0.01
    bn = next(m for m in ema.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn.momentum == 0.1  # restored after the cumulative average


def test_recompute_is_deterministic_and_a_no_op_without_batch_norm():
    a, b = _dcgan_G(), _dcgan_G()
    recompute_bn_stats(a, 16, batches=2, batch_size=32)
    recompute_bn_stats(b, 16, batches=2, batch_size=32)
    for x, y in zip(a.buffers(), b.buffers()):
        assert torch.equal(x, y)
    net = torch.nn.Linear(3, 3)
    assert recompute_bn_stats(net, 3) is net


def test_next_steps_line_per_kind_of_run():
    base = {"run_dir": "runs/x-001", "samples": "runs/x-001/samples/step-000100.png"}
    line = next_steps({**base, "task": "unconditional", "data": "digits", "data_kind": "images"})
    assert line.startswith("samples: runs/x-001/samples/step-000100.png; next: ")
    assert "gancli sample runs/x-001 --seeds 0-63 --out grid.png" in line
    assert "gancli evaluate digits fid --features digits --fake runs/x-001" in line
    line = next_steps({**base, "task": "unconditional", "data": "toy:grid25", "data_kind": "points"})
    assert "gancli evaluate modes --fake runs/x-001" in line
    line = next_steps({**base, "task": "unconditional", "data": "/data/faces", "data_kind": "images"})
    assert "gancli evaluate fid kid --fake runs/x-001" in line
    line = next_steps({**base, "samples": None, "task": "translation", "data": "d",
                       "data_kind": "pairs"})
    assert line == "next: gancli translate --model runs/x-001 --in IMAGE --out translated.png"


def test_train_ends_with_where_the_samples_are_and_what_next(cli, tmp_path):
    r = cli("train", "dcgan", *TINY, *tiny_overrides("dcgan"), "--out", str(tmp_path))
    assert r.code == 0, r.err
    last = r.err.strip().splitlines()[-1]
    run = tmp_path / "dcgan-001"
    grid = run / "samples" / sorted(p.name for p in (run / "samples").iterdir())[-1]
    assert last == (f"samples: {grid}; next: gancli sample {run} --seeds 0-63 --out grid.png, "
                    f"then gancli evaluate digits fid --features digits --fake {run}")
    assert Path(grid).is_file()


def _trained(cli, tmp_path, *sets: str) -> dict[str, torch.Tensor]:
    from gancli import checkpoints

    args = [x for s in sets for x in ("--set", s)]
    r = cli("train", "dcgan", *TINY, *tiny_overrides("dcgan"), *args, "--out", str(tmp_path))
    assert r.code == 0, r.err
    return checkpoints.load(checkpoints.resolve(tmp_path / "dcgan-001")).tensors


def test_ema_start_keeps_the_average_a_copy_of_G_until_then(cli, tmp_path):
    late = _trained(cli, tmp_path / "late", "train.ema=0.9", "train.ema_start=4")  # 4 steps
    early = _trained(cli, tmp_path / "early", "train.ema=0.9", "train.ema_start=0")
    w = [k[2:] for k in late if k.startswith("G.") and k.endswith("weight")]
    assert w and all(torch.equal(late["G." + k], late["G_ema." + k]) for k in w)
    assert any(not torch.equal(early["G." + k], early["G_ema." + k]) for k in w)


def test_ema_rampup_caps_the_half_life_at_a_share_of_the_steps_done():
    """StyleGAN2-ADA's ema_rampup: half-life = min(the decay's, rampup x steps done)."""
    half_life = lambda d: math.log(0.5) / math.log(d)  # noqa: E731
    assert ema_decay(0.995, 5, rampup=0.0) == 0.995  # off: the decay as given
    assert ema_decay(0.995, 3, start=4, rampup=0.05) == 0.0  # before ema_start: a copy
    assert math.isclose(half_life(ema_decay(0.995, 999, rampup=0.05)), 50.0)  # 0.05 x 1,000
    assert math.isclose(half_life(ema_decay(0.995, 199, rampup=0.5)), 100.0)
    assert ema_decay(0.995, 9_999, rampup=0.05) == 0.995  # 500 > 138.3: the decay's own
    assert ema_decay(0.995, 0, rampup=0.05) < 1e-5  # first step: G itself, not its init
    assert ema_decay(0.0, 10, rampup=0.05) == 0.0 and ema_decay(1.0, 10, rampup=0.05) == 1.0


def test_ema_rampup_run_averages_recent_weights_only(cli, tmp_path):
    """Trained with a ramp, the average after 4 steps sits nearer G than without one."""
    plain = _trained(cli, tmp_path / "plain", "train.ema=0.99")
    ramped = _trained(cli, tmp_path / "ramped", "train.ema=0.99", "train.ema_rampup=0.05")
    w = [k[2:] for k in plain if k.startswith("G.") and k.endswith("weight")]
    gap = lambda t: sum(float((t["G." + k] - t["G_ema." + k]).abs().sum()) for k in w)  # noqa: E731
    assert all(torch.equal(plain["G." + k], ramped["G." + k]) for k in w)  # same training
    assert gap(ramped) < 0.1 * gap(plain)


def test_saved_ema_has_batch_norm_statistics_of_its_own_weights(cli, tmp_path):
    t = _trained(cli, tmp_path, "train.ema=0.9")
    G, z_dim = _dcgan_tiny_like(t)
    means = [k for k in t if k.startswith("G_ema.") and k.endswith("running_mean")]
    assert means
    # the copied statistics would be G's; the saved ones are re-estimated for the average
    assert any(not torch.equal(t[k], t["G." + k[6:]]) for k in means)
    recompute_bn_stats(G, z_dim, "normal", batch_size=8)  # TINY's batch size
    for k in means:
        assert torch.allclose(G.state_dict()[k[6:]], t[k], atol=1e-6)


def _dcgan_tiny_like(t: dict[str, torch.Tensor]) -> tuple[torch.nn.Module, int]:
    """The tiny dcgan G of ``tiny_overrides`` with the checkpoint's G_ema weights loaded."""
    from gancli import load_config

    from gancli.registry import OBJECTIVES

    cfg = load_config("dcgan", ["model.g_width=8", "model.d_width=8", "data.resolution=8"])
    conditioning = OBJECTIVES.get(cfg.objective).conditioning  # the preset's clusters
    G = build_nets(cfg.model, DataSpec("images", (1, 8, 8)), conditioning).G
    G.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("G_ema.")})
    return G, cfg.model.z_dim


def test_latent_mixture_reads_the_component_from_z_and_adds_its_centre():
    from gancli.models.base import LatentMixture

    mix = LatentMixture(z_dim=8, components=3, sigma=0.5)
    z = torch.tensor([[0.1, 2.0, -1.0, 0.3, 0.0, 0.0, 0.0, 1.0],
                      [-3.0, -2.0, -0.5, 9.0, 9.0, 9.0, 9.0, 9.0]])  # argmax of the first 3
    assert mix.component(z).tolist() == [1, 2]
    assert torch.equal(mix(z), mix.centres[[1, 2]] + 0.5 * z)
    # the truncation trick (z * psi) keeps the component and pulls toward its centre
    for psi in (0.7, 0.1):
        assert torch.equal(mix.component(z * psi), mix.component(z))
        assert (mix(z * psi) - mix.centres[[1, 2]]).norm() < (mix(z) - mix.centres[[1, 2]]).norm()
    # latents from the plain prior fall into every component about equally often
    counts = torch.bincount(mix.component(torch.randn(30_000, 8, generator=torch.Generator()
                                                      .manual_seed(1))), minlength=3)
    assert counts.min() > 9_000 and counts.max() < 11_000
    # the centres are fixed by (components, z_dim), and travel in G's state dict
    assert torch.equal(LatentMixture(8, 3, 0.1).centres, mix.centres)
    assert "centres" in mix.state_dict()


def test_latent_mixture_is_built_into_the_families_that_read_it():
    import pytest

    from gancli.errors import ConfigError
    from gancli.models.base import LatentMixture

    spec = DataSpec("images", (1, 16, 16))
    for family in ("dcgan", "resnet"):
        G = build_nets(ModelConfig(family=family, z_dim=16, g_width=8, d_width=8, z_mixture=4),
                       spec, "none").G
        assert isinstance(G.latent, LatentMixture) and "latent.centres" in G.state_dict()
        z = torch.randn(4, 16)
        with torch.no_grad():  # G(z) is G's layers applied to the mixture's output
            plain = copy.deepcopy(G)
            plain.latent = torch.nn.Identity()
            assert torch.allclose(G.eval()(z), plain.eval()(G.latent(z)))
    assert "latent.centres" not in _dcgan_G().state_dict()  # off by default: checkpoints unchanged
    with pytest.raises(ConfigError, match="does not read model.z_mixture"):
        build_nets(ModelConfig(family="progan", z_dim=16, g_width=8, d_width=8, z_mixture=4,
                               init="torch"),
                   spec, "none")
    with pytest.raises(ConfigError, match="2..z_dim"):
        build_nets(ModelConfig(family="dcgan", z_dim=16, g_width=8, d_width=8, z_mixture=17),
                   spec, "none")


def test_variety_scores_see_near_duplicates_that_confidence_does_not():
    """quality_digits.py: 1,000 samples made of 50 real digits, each repeated 20 times, are as
    confident as real digits, but their nearest other sample is a copy (distance 0) and the
    within-class spread falls; 1,000 distinct real digits keep both."""
    from gancli.data.digits import load_digits

    q = load_benchmark("quality_digits")
    x = load_digits(16).x
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    real, repeated = x[perm[:1000]], x[perm[:50]].repeat(20, 1, 1, 1)
    r, d = q.score_images(real.float() / 127.5 - 1), q.score_images(repeated.float() / 127.5 - 1)
    assert abs(r["confident"] - d["confident"]) < 0.1
    assert d["nn_median"] < 1e-4 and r["nn_median"] > 2.0
    assert math.isclose(r["nn_median"], q.nn_real(1000), rel_tol=1e-6)
    assert d["spread"] < 0.8 * r["spread"]
    # the memorisation check: training digits themselves are 0 from the nearest training
    # digit, where real digits are ~2.8 from their nearest *other* one
    assert r["nn_train"] < 1e-4 and d["nn_train"] < 1e-4 and q.nn_train_real(1000) > 2.0
