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
"""

from __future__ import annotations

import argparse

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--d-steps", type=int, default=40)
    ap.add_argument("--g-steps", type=int, default=5)
    ap.add_argument("sets", nargs="*", help="config overrides for both Gs, key=value")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(load_config("biggan", ["data.source=digits:train"]).data, 0, "conditional")
    X, Y = data.x.float() / 127.5 - 1, data.y
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
