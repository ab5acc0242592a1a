"""Mode coverage on the 25-Gaussian grid (PacGAN protocol), for one or more presets.

Trains each preset on toy:grid25 from scratch, then scores 2,500 samples from the final
generator (seeds 0..2499): modes recovered out of 25, share of high-quality samples
(within 3 sigma of the nearest mode) and reverse KL of the mode histogram.

    python benchmarks/quality_toy.py wgan-gp-toy gan --seeds 0,1,2
    python benchmarks/quality_toy.py gan --set train.steps=5000

Anchor (PacGAN, Table 1, 2D-grid, 10 runs, 400k updates): GAN 17.3 modes / 94.8 % / 0.70;
PacGAN4 24.8 / 93.6 % / 0.04.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch
from common import train_preset

from gancli.data.toy import mixture_modes
from gancli.inference import generate, load_generator
from gancli.metrics.toy import mode_coverage


def run_one(preset: str, seed: int, sets: list[str], out: str) -> dict:
    checkpoint, minutes = train_preset(preset, ["data.source=toy:grid25", f"train.seed={seed}",
                                                "train.ckpt_every=0", *sets], out, f"{preset}-s{seed}")
    model = load_generator(checkpoint, "cpu")
    modes, sigma = mixture_modes("grid25")
    m = mode_coverage(generate(model, list(range(2500))), modes, sigma)
    return {"preset": preset, "seed": seed, "steps": model.cfg.train.steps, "minutes": minutes, **m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("presets", nargs="+")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--out", default=None, help="runs folder (default: a temporary one)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="gancli-toy-")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, runs in {out}")
    print(f"{'preset':<14}{'seed':>5}{'steps':>7}{'min':>7}{'modes':>7}{'HQ %':>8}{'rev KL':>8}")
    for preset in args.presets:
        rows = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            r = run_one(preset, seed, args.sets, out)
            rows.append(r)
            print(f"{preset:<14}{seed:>5}{r['steps']:>7}{r['minutes']:>7.1f}{r['modes']:>7}"
                  f"{100 * r['high_quality']:>8.1f}{r['reverse_kl']:>8.3f}", flush=True)
        if len(rows) > 1:
            mean = {k: statistics.mean(r[k] for r in rows) for k in ("modes", "high_quality",
                                                                     "reverse_kl", "minutes")}
            print(f"{preset + ' mean':<19}{'':>7}{mean['minutes']:>7.1f}{mean['modes']:>7.1f}"
                  f"{100 * mean['high_quality']:>8.1f}{mean['reverse_kl']:>8.3f}")
        print(json.dumps({"preset": preset, "runs": rows}))


if __name__ == "__main__":
    main()
