"""Issue 18 probe: is biggan's G, at initialisation, easier for D to reject than the resnet
family's G, or slower to answer D? Seconds per variant, one thread.

    python benchmarks/biggan_init_probe.py [--seeds 3] [--d-steps 40] [--g-steps 5]

For each G (the biggan preset, and the same preset with ``model.family=resnet``: the SNGAN G
with one-hot labels into its dense layer, same D) and each seed s, G is built with seed s and
D is re-initialised with seed 100 + s, so the two Gs face identical Ds. Printed per seed:

- ``sample-mean std``: the standard deviation over 200 samples of each sample's mean pixel (on
  [-1, 1]): how much the global brightness of G's samples varies (real digits: printed first);
- ``D-only loss``: D trained alone (Adam, the preset's D learning rate, batch 32) against the
  frozen G for ``--d-steps`` steps; the mean hinge loss over the last 10 (lower: the samples
  are easier to reject);
- ``G gain``: the rise of the mean D(G(z), y) over 64 fixed latents after ``--g-steps`` Adam
  steps of G alone against the frozen D (higher: G answers D faster).

    python benchmarks/biggan_init_probe.py --trajectory 75 [key=value ...]

instead trains each G with its D (seed 0, the preset's steps in loop.py's order: n_critic D
steps, one G step) and every 25 steps prints the same ``G gain`` measured on copies of G, D and
G's Adam state (so training is untouched), with D's mean output on those fakes and on 200 real
digits.
"""

from __future__ import annotations

import argparse
import copy

import torch

import gancli.training.objectives  # noqa: F401  (registers the objectives)
from gancli import load_config
from gancli.data import load_dataset
from gancli.models import DataSpec, build_nets
from gancli.models.base import initialise
from gancli.registry import OBJECTIVES
from gancli.training.loop import make_optimizer


def probe(family: str, seed: int, d_steps: int, g_steps: int, X, Y, sets: list[str]) -> tuple:
    cfg = load_config("biggan", ["data.source=digits:train", f"model.family={family}", *sets])
    spec = DataSpec("images", tuple(X.shape[1:]), 10)
    obj_cls = OBJECTIVES.get(cfg.objective)

    def fresh():
        torch.manual_seed(seed)
        nets = build_nets(cfg.model, spec, obj_cls.conditioning)
        torch.manual_seed(100 + seed)
        initialise(nets.D, cfg.model.init)
        return nets.G, nets.D

    G, D = fresh()
    with torch.no_grad():
        f = G(torch.randn(200, cfg.model.z_dim, generator=torch.Generator().manual_seed(9)),
              torch.arange(10).repeat(20))
    spread = float(f.mean((1, 2, 3)).std())
    obj = obj_cls(cfg, G, D, torch.Generator().manual_seed(1), torch.device("cpu"), 10)
    opt_D = make_optimizer(cfg, D.parameters(), cfg.optim.lr_d)
    draw, losses = torch.Generator().manual_seed(2), []
    for _ in range(d_steps):
        idx = torch.randint(len(X), (32,), generator=draw)
        loss, _ = obj.d_step(X[idx], Y[idx], 0.0)
        opt_D.zero_grad()
        loss.backward()
        opt_D.step()
        losses.append(float(loss.detach()))
    G, D = fresh()  # G's side from the same initial pair
    D.eval()
    D.requires_grad_(False)
    opt_G = make_optimizer(cfg, G.parameters(), cfg.optim.lr_g)
    z = torch.randn(64, cfg.model.z_dim, generator=torch.Generator().manual_seed(5))
    y = torch.arange(10).repeat(7)[:64]
    with torch.no_grad():
        before = float(D(G(z, y), y).mean())
    for _ in range(g_steps):
        loss = -D(G(z, y), y).mean()
        opt_G.zero_grad()
        loss.backward()
        opt_G.step()
    with torch.no_grad():
        after = float(D(G(z, y), y).mean())
    tail = losses[-10:]
    return spread, sum(tail) / len(tail), after - before


def trajectory(family: str, steps: int, g_steps: int, X, Y, sets: list[str]) -> None:
    cfg = load_config("biggan", ["data.source=digits:train", f"model.family={family}", *sets])
    spec = DataSpec("images", tuple(X.shape[1:]), 10)
    obj_cls = OBJECTIVES.get(cfg.objective)
    torch.manual_seed(0)
    nets = build_nets(cfg.model, spec, obj_cls.conditioning)
    G, D = nets.G, nets.D
    torch.manual_seed(100)
    initialise(D, cfg.model.init)
    obj = obj_cls(cfg, G, D, torch.Generator().manual_seed(1), torch.device("cpu"), 10)
    opt_G = make_optimizer(cfg, G.parameters(), cfg.optim.lr_g)
    opt_D = make_optimizer(cfg, D.parameters(), cfg.optim.lr_d)
    z = torch.randn(64, cfg.model.z_dim, generator=torch.Generator().manual_seed(5))
    y = torch.arange(10).repeat(7)[:64]
    draw = torch.Generator().manual_seed(2)
    for step in range(steps + 1):
        if step % 25 == 0:
            G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
            D2.eval()
            D2.requires_grad_(False)
            opt = make_optimizer(cfg, G2.parameters(), cfg.optim.lr_g)
            opt.load_state_dict(opt_G.state_dict())
            with torch.no_grad():
                before, real = float(D2(G2(z, y), y).mean()), float(D2(X[:200], Y[:200]).mean())
            for _ in range(g_steps):
                loss = -D2(G2(z, y), y).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                gain = float(D2(G2(z, y), y).mean()) - before
            print(f"{family:7s} step {step:4d}: G gain {gain:+.2f}  D(fake) {before:+.2f}  "
                  f"D(real) {real:+.2f}", flush=True)
        if step == steps:
            break
        D.requires_grad_(True)
        for _ in range(cfg.train.n_critic):
            idx = torch.randint(len(X), (cfg.train.batch_size,), generator=draw)
            loss, _ = obj.d_step(X[idx], Y[idx], 0.0)
            opt_D.zero_grad()
            loss.backward()
            opt_D.step()
        D.requires_grad_(False)
        loss, _ = obj.g_step(cfg.train.batch_size, 0.0)
        opt_G.zero_grad()
        loss.backward()
        opt_G.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--d-steps", type=int, default=40)
    ap.add_argument("--g-steps", type=int, default=5)
    ap.add_argument("--trajectory", type=int, default=0, metavar="STEPS")
    ap.add_argument("sets", nargs="*", help="config overrides for both Gs, key=value")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(load_config("biggan", ["data.source=digits:train"]).data, 0, "conditional")
    X, Y = data.x.float() / 127.5 - 1, data.y
    if args.trajectory:
        for family in ("biggan", "resnet"):
            trajectory(family, args.trajectory, args.g_steps, X, Y, args.sets)
        return
    print(f"real digits: sample-mean std {float(X[:200].mean((1, 2, 3)).std()):.3f}")
    for family in ("biggan", "resnet"):
        rows = [probe(family, s, args.d_steps, args.g_steps, X, Y, args.sets)
                for s in range(args.seeds)]
        cols = list(zip(*rows))
        print(f"{family:7s} sample-mean std " + " ".join(f"{v:.3f}" for v in cols[0])
              + " | D-only loss " + " ".join(f"{v:.3f}" for v in cols[1])
              + " | G gain " + " ".join(f"{v:+.2f}" for v in cols[2]), flush=True)


if __name__ == "__main__":
    main()
