"""Ablations for unconditional digits GANs: many evaluations from one training trajectory.

One CPU training of PRESET (with --set overrides) is watched every --every steps. At each
watch point the raw G and several exponential moving averages of its weights (decay beta,
started at step s: before s the average is a copy of G) are scored on the same 1,000 latents
(seeds 0..999, as ``gancli sample`` draws them) with the shipped digits classifier: confident
share, class evenness, classes present, the Frechet distance in the classifier's 128-d
features to all 1,797 real digits, the within-class spread and the median distance to the
nearest other sample (near-duplicates; see quality_digits.py). An
average's batch-norm running statistics are scored two ways: copied from G (what ``train.ema``
stores) and re-estimated for the averaged weights ("bn re-est.";
``gancli.training.ema.recompute_bn_stats``).

    python benchmarks/ablate_digits.py dcgan --every 500 --ema 0.999@0,0.999@1000 \
        [--set train.steps=3000 ...]

Prints one JSON line per (step, weights) and a table at the end. The EMAs here do not
change training (G and D never see them), so every row shares one trajectory.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time

import torch

from quality_digits import fd_real, nn_real, score_images, spread_real

from gancli import load_config
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.sampling import latents_for_seeds
from gancli.training import loop
from gancli.training.ema import recompute_bn_stats


def parse_emas(text: str) -> list[tuple[float, int]]:
    out = []
    for part in filter(None, text.split(",")):
        beta, _, start = part.partition("@")
        out.append((float(beta), int(start or 0)))
    return out


@torch.no_grad()
def evaluate(G: torch.nn.Module, z: torch.Tensor) -> dict:
    G = G.eval()
    images = torch.cat([G(c, None).float() for c in z.split(250)])
    return score_images(images)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--ema", default="0.999@0", help="comma list of beta@start_step")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    cfg = load_config(args.preset, args.sets)
    emas = parse_emas(args.ema)
    z = latents_for_seeds(list(range(args.n)), cfg.model.z_dim, cfg.model.z_dist)
    state: dict = {"step": 0, "avgs": {}}
    rows: list[dict] = []
    real_update = loop.update_ema
    t0 = time.perf_counter()

    def report(step: int, name: str, G: torch.nn.Module) -> None:
        row = {"step": step, "weights": name, **evaluate(G, z)}
        row["train_minutes"] = round((time.perf_counter() - t0) / 60, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)

    def hook(ema, G, decay):  # called once per G step by the loop (train.ema must be set)
        real_update(ema, G, decay)
        state["step"] += 1
        step = state["step"]
        for beta, start in emas:
            key = f"ema {beta}@{start}"
            avg = state["avgs"].setdefault(key, copy.deepcopy(G).eval().requires_grad_(False))
            real_update(avg, G, beta if step > start else 0.0)
        if step % args.every == 0:
            spent = time.perf_counter()
            report(step, "G", copy.deepcopy(G))
            for key, avg in state["avgs"].items():
                report(step, key, copy.deepcopy(avg))
                est = copy.deepcopy(avg)
                recompute_bn_stats(est, cfg.model.z_dim, cfg.model.z_dist, cfg.train.batch_size)
                report(step, key + " bn re-est.", est)
            nonlocal_t0_shift(time.perf_counter() - spent)

    def nonlocal_t0_shift(seconds: float) -> None:  # scoring time is not training time
        nonlocal t0
        t0 += seconds

    loop.update_ema = hook
    if not cfg.train.ema:  # the loop calls update_ema only when train.ema is set
        cfg = load_config(args.preset, args.sets + ["train.ema=1e-9"])
    run = create_run_dir(tempfile.mkdtemp(prefix="gancli-ablate-"), cfg.name)
    write_config(run, cfg)
    loop.train(cfg, run, torch.device("cpu"), Reporter())
    print("\n| step | weights | confident | evenness | classes | FD-digits | spread | NN median |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['weights']} | {100 * r['confident']:.1f} % | "
              f"{r['class_evenness'] + 0.0:.3f} | {r['classes_present']} | {r['fd_digits']:.2f} | "
              f"{r['spread']:.2f} | {r['nn_median']:.2f} |")
    print(f"real digits: FD-digits real vs real {fd_real():.2f}, spread {spread_real():.2f}, "
          f"NN median {nn_real(args.n):.2f}")


if __name__ == "__main__":
    main()
