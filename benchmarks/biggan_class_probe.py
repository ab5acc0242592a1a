"""Issue 18 probe: does the class reach D's projection and G in biggan's training?

    python benchmarks/biggan_class_probe.py STEPS [key=value ...]
    e.g. python benchmarks/biggan_class_probe.py 200 optim.lr_g=2e-4 train.n_critic=1

Trains the biggan preset on ``digits:train`` for STEPS G steps in loop.py's order (n_critic D
steps, then one G step; no EMA), one thread, and every STEPS/4 steps prints:

- D: mean |head(phi(x))| and |embed(y) . phi(x)| on 100 real digits, and the mean of
  embed(y) . phi(x) - embed(y') . phi(x) for their true label y vs a wrong one y' (> 0 once
  D's projection tells classes apart);
- G (batch statistics): mean absolute pixel change at a fixed z when the label goes 0 -> 7,
  and at label 0 when z is swapped for another sample's;
- class accuracy of 200 samples (20 per class, G in training mode, not the EMA) by the
  shipped digits classifier: a quick stand-in for benchmarks/quality_conditional.py.
"""

from __future__ import annotations

import sys
import time

import torch

import gancli.training.objectives  # noqa: F401  (registers the objectives)
from gancli import load_config
from gancli.data import load_dataset
from gancli.metrics.digits import predict_proba
from gancli.models import DataSpec, build_nets
from gancli.registry import OBJECTIVES
from gancli.training.loop import make_optimizer


def main() -> None:
    torch.set_num_threads(1)
    steps, sets = int(sys.argv[1]), sys.argv[2:]
    cfg = load_config("biggan", ["data.source=digits:train", *sets])
    data = load_dataset(cfg.data, 0, cfg.task)
    spec = DataSpec(data.kind, data.shape, data.num_classes)
    obj_cls = OBJECTIVES.get(cfg.objective)
    torch.manual_seed(0)
    nets = build_nets(cfg.model, spec, obj_cls.conditioning)
    G, D = nets.G, nets.D
    obj = obj_cls(cfg, G, D, torch.Generator().manual_seed(1), torch.device("cpu"),
                  spec.num_classes)
    opt_G = make_optimizer(cfg, G.parameters(), cfg.optim.lr_g)
    opt_D = make_optimizer(cfg, D.parameters(), cfg.optim.lr_d)
    X, Y = data.x.float() / 127.5 - 1, data.y
    xr, yr = X[:100], Y[:100]
    wrong = (yr + 1 + torch.randint(9, yr.shape, generator=torch.Generator().manual_seed(3))) % 10
    zf = torch.randn(100, cfg.model.z_dim, generator=torch.Generator().manual_seed(5))
    zc = torch.randn(200, cfg.model.z_dim, generator=torch.Generator().manual_seed(9))
    yc = torch.arange(10).repeat(20)

    @torch.no_grad()
    def report(step: int) -> None:
        D.eval()
        h = D._features(xr, None)
        head = D.head(h).view(-1)

        def proj(y):
            return (D.embed(y) * h).sum(1)

        gap = (proj(yr) - proj(wrong)).mean()
        a = G(zf, torch.zeros(100, dtype=torch.long))
        b = G(zf, torch.full((100,), 7))
        c = G(zf.roll(1, 0), torch.zeros(100, dtype=torch.long))
        acc = (predict_proba(G(zc, yc)).argmax(1) == yc).float().mean()
        D.train()
        print(f"step {step}: D |head| {head.abs().mean():.3f} |proj| {proj(yr).abs().mean():.3f} "
              f"true-wrong gap {gap:.3f} | G label move {(a - b).abs().mean():.3f} "
              f"seed move {(a - c).abs().mean():.3f} | class acc {acc:.3f}", flush=True)

    report(0)
    draw = torch.Generator().manual_seed(2)
    t0 = time.process_time()
    for step in range(steps):
        D.requires_grad_(True)
        for _ in range(cfg.train.n_critic):
            idx = torch.randint(len(X), (cfg.train.batch_size,), generator=draw)
            d_loss, _ = obj.d_step(X[idx], Y[idx], step / steps)
            opt_D.zero_grad()
            d_loss.backward()
            opt_D.step()
        D.requires_grad_(False)
        g_loss, _ = obj.g_step(cfg.train.batch_size, step / steps)
        opt_G.zero_grad()
        g_loss.backward()
        opt_G.step()
        if (step + 1) % max(1, steps // 4) == 0:
            print(f"  d_loss {float(d_loss.detach()):.3f} g_loss {float(g_loss.detach()):.3f}")
            report(step + 1)
    print(f"CPU s {time.process_time() - t0:.0f}")


if __name__ == "__main__":
    main()
