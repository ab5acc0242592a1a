"""Mode collapse, and what minibatch standard deviation does about it (rerunnable demo).

Trains the ``gan`` preset (Goodfellow 2014 minimax GAN, PacGAN's MLP networks) on the
25-Gaussian grid twice with the same seed and budget: as shipped, and with a minibatch-stddev
feature in D (``--set model.mbstd=4``, Karras et al. 2018). Packing (``--set model.pack=4``,
PacGAN4) is the other remedy; with this preset's saturating minimax loss and 20k steps it did
worse, not better (see docs/presets.md), so it is not in the default comparison:
``--variant pack4=model.pack=4`` adds it. Each is scored on 2,500 samples
(PacGAN protocol): modes recovered out of 25, share of high-quality samples (within 3 sigma
of a mode) and reverse KL of the mode histogram against uniform.

    python benchmarks/mode_collapse.py                       # 1 seed, the preset's 20k steps
    python benchmarks/mode_collapse.py --seeds 0,1,2 --set train.steps=10000

The same comparison by hand, for one seed:

    gancli train gan --out runs
    gancli train gan --set model.mbstd=4 --set run.name=gan-mbstd --out runs
    gancli sample runs/gan-001 --n 2500 --out gan.png     # scatter plot over the modes
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch
from quality_toy import run_one

VARIANTS = {"gan": [], "gan + mbstd": ["model.mbstd=4"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="override for both variants, e.g. train.steps=10000")
    ap.add_argument("--out", default=None, help="runs folder (default: a temporary one)")
    ap.add_argument("--variant", action="append", default=[],
                    help="another variant NAME=key=value[,key=value], e.g. pack4=model.pack=4")
    args = ap.parse_args()
    variants = dict(VARIANTS)
    for spec in args.variant:
        name, _, sets = spec.partition("=")
        variants[name] = [s for s in sets.split(",") if s]
    out = args.out or tempfile.mkdtemp(prefix="gancli-collapse-")
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, runs in {out}")
    print(f"{'variant':<14}{'seed':>5}{'steps':>7}{'min':>7}{'modes':>7}{'HQ %':>8}{'rev KL':>8}")
    summary = {}
    for name, extra in variants.items():
        rows = [run_one("gan", seed, [*extra, *args.sets], out) for seed in seeds]
        for r in rows:
            print(f"{name:<14}{r['seed']:>5}{r['steps']:>7}{r['minutes']:>7.1f}{r['modes']:>7}"
                  f"{100 * r['high_quality']:>8.1f}{r['reverse_kl']:>8.3f}", flush=True)
        summary[name] = {k: statistics.mean(r[k] for r in rows)
                         for k in ("modes", "high_quality", "reverse_kl")}
    print(json.dumps({"seeds": seeds, "sets": args.sets, "mean": summary}))


if __name__ == "__main__":
    main()
