"""Mixed precision, compile fallback, fused optimisers and data sharding (single process)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gancli import checkpoints
from gancli.errors import ConfigError
from gancli.regularizers import gradient_penalty, r1_penalty
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train

from test_resume import assert_identical, final_tensors, straight_and_resumed, tiny_cfg


class Events(Reporter):
    def __init__(self):
        self.events = []

    def event(self, kind, **fields):
        self.events.append((kind, fields))


def run(cfg, tmp_path, reporter=None, name="r"):
    d = create_run_dir(tmp_path, name)
    write_config(d, cfg)
    return train(cfg, d, torch.device("cpu"), reporter or Reporter())


def test_bf16_resume_is_bit_exact(tmp_path, cli):
    plain = ["objective=unconditional", "model.z_clusters=0"]  # the clusters refuse a pool
    cfg = tiny_cfg("dcgan", 12, plain + ["train.precision=bf16", "train.channels_last=true",
                                         "train.pool_size=4", "train.ema=0.9"])
    straight, stopped = straight_and_resumed(cfg, tmp_path, cli, 5)
    assert_identical(final_tensors(straight), final_tensors(stopped))
    # and bf16 really ran: it does not end where fp32 ends
    fp32 = run(tiny_cfg("dcgan", 12, plain + ["train.pool_size=4", "train.ema=0.9"]), tmp_path,
               name="f")
    assert not torch.equal(final_tensors(fp32.run_dir)["G.net.0.weight"],
                           final_tensors(straight)["G.net.0.weight"])


def test_fp16_trains_with_two_scalers_saved(tmp_path):
    cfg = tiny_cfg("wgan-gp", 3, ["train.precision=fp16"])
    result = run(cfg, tmp_path)
    meta = checkpoints.load(result.checkpoint).meta
    assert set(meta["scalers"]) == {"D", "G"} and meta["scalers"]["D"]["scale"] > 0


def critic():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 1))


@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_penalties_under_autocast(penalty):
    D = critic()
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(64, 2, generator=g) * 1e-3, torch.randn(64, 2, generator=g)
    alpha = torch.rand(64, generator=g)

    def value():
        if penalty == "gp":
            return gradient_penalty(D, real, fake, alpha)
        return r1_penalty(D, real)

    exact = value()
    with torch.autocast("cpu", dtype=torch.float16):
        half = value()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf = value()
    assert half.dtype == torch.float32 and bf.dtype == torch.float32
    assert torch.equal(half, exact)  # fp16: the penalty's pass through D runs in fp32
    assert torch.allclose(bf, exact, rtol=0.05, atol=1e-6)


def test_compile_fallback_says_why_in_one_line(tmp_path, monkeypatch):
    import gancli.training.loop as loop

    monkeypatch.setattr(loop, "compile_problem", lambda device: "RuntimeError: no C++ compiler")
    events = Events()
    run(tiny_cfg("gan", 2, ["train.compile=true"]), tmp_path, events)
    messages = [f["text"] for k, f in events.events if k == "message"]
    assert len(messages) == 1 and "training eagerly" in messages[0]
    assert "\n" not in messages[0] and "no C++ compiler" in messages[0]


def test_fused_optimisers_are_used(tmp_path):
    from gancli.training.loop import make_optimizer

    cfg = tiny_cfg("gan", 1, [])
    opt = make_optimizer(cfg, nn.Linear(2, 2).parameters(), 1e-3)
    assert opt.param_groups[0]["fused"] is True


def test_global_batch_must_match_processes(tmp_path):
    with pytest.raises(ConfigError, match="global_batch"):
        run(tiny_cfg("gan", 1, ["train.global_batch=16"]), tmp_path)  # batch 8 x 1 process


def test_batches_shard_the_global_batch_by_rank():
    from gancli.data.base import Dataset
    from gancli.data.batches import Batches

    x = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1)
    data = Dataset(name="n", kind="images", x=x)
    single = Batches(data, 8, 3, torch.device("cpu"))
    ranks = [Batches(data, 4, 3, torch.device("cpu"), rank=r, world=2) for r in (0, 1)]
    for _ in range(7):  # crosses epoch boundaries
        whole = single.next()[0]
        parts = [b.next()[0] for b in ranks]
        assert torch.equal(torch.cat(parts), whole)
    assert ranks[0].pos == ranks[1].pos == single.pos



def test_compiled_phases_match_eager():
    """``train.compile`` compiles the objective's two loss functions whole, the gradient
    penalty included (through torch.func.grad); they must give eager's losses and gradients."""
    from gancli import load_config
    from gancli.models.base import DataSpec, build_nets
    from gancli.runtime import compile_problem
    from gancli.training.loop import compile_nets
    from gancli.training.objectives import AdversarialObjective

    problem = compile_problem(torch.device("cpu"))
    if problem:
        pytest.skip(f"torch.compile unavailable: {problem}")
    cfg = load_config("wgan-gp-toy", ["model.g_width=16", "model.d_width=16"])
    torch.manual_seed(0)
    nets = build_nets(cfg.model, DataSpec("points", (2,), 0))
    real = torch.randn(32, 2, generator=torch.Generator().manual_seed(3))

    def phases(compiled: bool):
        obj = AdversarialObjective(cfg, nets.G, nets.D, torch.Generator().manual_seed(1),
                                   torch.device("cpu"))
        if compiled:  # what train.compile does
            compile_nets(nets.G, nets.D, cfg, torch.device("cpu"), Reporter(), obj)
            assert {"d_loss", "g_loss"} <= vars(obj).keys()  # replaced by compiled ones
        out = []
        for step in range(2):  # a second call runs the compiled code, not the tracing
            nets.D.requires_grad_(True)
            nets.D.zero_grad(), nets.G.zero_grad()
            d_loss, d_stats = obj.d_step(real, None, step / 10)
            d_loss.backward()
            nets.D.requires_grad_(False)
            g_loss, _ = obj.g_step(32, step / 10)
            g_loss.backward()
            out.append((d_loss.detach(), d_stats["gp"], g_loss.detach(),
                        [p.grad.clone() for p in nets.D.parameters()],
                        [p.grad.clone() for p in nets.G.parameters()]))
        return out

    eager, compiled = phases(False), phases(True)
    for e, c in zip(eager, compiled):
        assert c[1] > 0  # the penalty is really there
        for a, b in zip(e[:3], c[:3]):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
        for grads_e, grads_c in zip(e[3:], c[3:]):
            assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(grads_e, grads_c))


def test_rich_reporter_shows_messages():
    """The one-line messages (e.g. why --compile fell back) reach the live display too."""
    import io

    from rich.console import Console

    from gancli.reporting import RichReporter

    rep = RichReporter()
    rep.console = Console(file=io.StringIO(), width=200)
    rep.event("message", text="--compile: torch.compile is unavailable here ([no] compiler)")
    assert "--compile: torch.compile is unavailable here ([no] compiler)" in rep.console.file.getvalue()
