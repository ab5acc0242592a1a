"""Does the GAN term buy realism at little L1 cost? pix2pix against two baselines on the
built-in ``paired:digits-outline`` (digit outline -> the digit), in one run:

    flock /tmp/heavy.lock nice -n 5 python benchmarks/quality_pix2pix.py --steps 600

  copy      the input copied through (the outline itself as the "translation")
  l1        the pix2pix preset's U-Net trained with L1 alone (``pix2pix.gan_weight=0``), same
            seed, same steps, same data order
  pix2pix   the preset as shipped (conditional GAN + 100 x L1)

Each is scored on the 500 held-out pairs (``digits_split``; never trained on) by the numbers
``gancli evaluate`` reports for a paired model: L1 (pixels in [0, 1]), PSNR (dB), SSIM, and
FD-digits / KD-digits of the outputs against the real targets in the shipped digits CNN's
features (FID/KID with that network; lower is better). Dropout stays on at test time (the
paper's setting; masks seeded). ``--steps`` trains each model that many steps (the preset's
schedule: constant, then linear decay over the second half); CPU seconds of each training
are printed (``time.process_time``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gancli import load_config
from gancli.data import load_dataset
from gancli.inference import load_translator
from gancli.metrics import frechet, scores
from gancli.metrics.features import load_extractor
from gancli.metrics.paired import paired_scores
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


def train_one(sets: list[str], out: Path, name: str) -> tuple[Path, float]:
    cfg = load_config("pix2pix", sets)
    run = create_run_dir(out, name)
    write_config(run, cfg)
    t0 = time.process_time()
    train(cfg, run, torch.device("cpu"), Reporter())
    return run, time.process_time() - t0


def score(outputs: torch.Tensor, targets: torch.Tensor, extractor, real_feats) -> dict:
    row = paired_scores(outputs, targets)
    u8 = outputs if outputs.dtype == torch.uint8 else \
        outputs.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    feats = np.concatenate([extractor.run(b)[0] for b in u8.split(250)])
    row["fd_digits"] = frechet.frechet_between(real_feats, feats)
    row["kd_digits"] = scores.kid(real_feats, feats)["kid"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--only", choices=["pix2pix", "l1"], help="train this one only, then stop")
    ap.add_argument("--pix2pix", dest="run_pix2pix", help="score this pix2pix run instead of training")
    ap.add_argument("--l1", dest="run_l1", help="score this L1-only run instead of training")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="gancli-pix2pix-"))
    common = [f"train.steps={args.steps}", f"optim.decay_start={args.steps // 2}",
              f"train.seed={args.seed}", "train.sample_every=0", "train.ckpt_every=0",
              "train.log_every=100"]
    runs, cpu = {}, {}
    given = {"pix2pix": args.run_pix2pix, "l1": args.run_l1}
    for name, extra in (("pix2pix", []), ("l1", ["pix2pix.gan_weight=0"])):
        if given[name]:
            runs[name] = Path(given[name])
            continue
        if args.only and args.only != name:
            continue
        runs[name], cpu[name] = train_one(common + extra, out, name)
        print(f"trained {name}: {args.steps} steps, {cpu[name] / 60:.1f} CPU min ({runs[name]})",
              flush=True)
    if args.only:
        return

    ds = load_dataset(load_config("pix2pix").data, 0, "translation")
    x, y = ds.test[:, 0], ds.test[:, 1]
    extractor = load_extractor("digits", torch.device("cpu"))
    real_feats = np.concatenate([extractor.run(b)[0] for b in y.split(250)])
    results = {"copy": score(x, y, extractor, real_feats)}
    xf = x.float().div(127.5).sub(1.0)
    for name, run in runs.items():
        tr = load_translator(run, "cpu")
        outs = torch.cat([tr(b, seed=i) for i, b in enumerate(xf.split(100))])
        results[name] = score(outs, y, extractor, real_feats)
    keys = ["l1", "psnr", "ssim", "fd_digits", "kd_digits"]
    print(f"\n{len(y)} held-out pairs of paired:digits-outline, {args.steps} steps each, seed {args.seed}")
    print(f"{'':10s}" + "".join(f"{k:>12s}" for k in keys) + f"{'CPU min':>10s}")
    for name, run in runs.items():  # a scored run's steps, from its checkpoint
        if name not in cpu:
            print(f"  {name}: {run}")
    for name, row in results.items():
        print(f"{name:10s}" + "".join(f"{row[k]:12.4f}" for k in keys)
              + (f"{cpu[name] / 60:10.1f}" if name in cpu else f"{'':>10s}"))
    p, l1 = results["pix2pix"], results["l1"]
    verdict = {
        "beats_copy": p["l1"] < results["copy"]["l1"] and p["ssim"] > results["copy"]["ssim"]
        and p["fd_digits"] < results["copy"]["fd_digits"],
        "fd_digits_le_l1_only": p["fd_digits"] <= l1["fd_digits"],
        "l1_within_10pct_of_l1_only": p["l1"] <= 1.10 * l1["l1"],
    }
    print("\n" + "  ".join(f"{k}: {v}" for k, v in verdict.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": args.steps, "seed": args.seed,
                                               "results": results, "cpu_seconds": cpu,
                                               "verdict": verdict}, indent=2))


if __name__ == "__main__":
    main()
