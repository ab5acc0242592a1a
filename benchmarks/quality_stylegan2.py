"""StyleGAN2 against SN-GAN and SAGAN on ``shapes`` at 32 px, at the same CPU minutes.

    flock /tmp/heavy.lock nice -n 5 python benchmarks/quality_stylegan2.py --cpu-minutes 3

Each preset first takes ``--calibrate`` steps to measure its CPU seconds per step
(``time.process_time``, all threads of this process, so other jobs on the machine do not
change the budget), then trains from scratch for the number of steps that fits
``--cpu-minutes``; the three runs are then scored by one shapes classifier
(``quality_shapes.py``: confident share, evenness, Fréchet distance in its features; lower fd
is better) on 1,000 samples each, in one call so that one classifier scores them all:

    python benchmarks/quality_shapes.py --run CKPT_SNGAN,CKPT_SAGAN,CKPT_STYLEGAN2

Presets can be trained in separate calls (``--presets stylegan2 --out DIR``) to keep each
heavy run short; the budget is the same CPU minutes either way.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from gancli import load_config
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


def timed_train(preset: str, sets: list[str], out: str) -> tuple[Path, float, int]:
    """Train; (checkpoint, CPU seconds, steps)."""
    cfg = load_config(preset, sets)
    run = create_run_dir(out, cfg.name)
    write_config(run, cfg)
    t0 = time.process_time()
    result = train(cfg, run, torch.device("cpu"), Reporter())
    return result.checkpoint, time.process_time() - t0, result.step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="sngan,sagan,stylegan2")
    ap.add_argument("--cpu-minutes", type=float, default=3.0)
    ap.add_argument("--calibrate", type=int, default=8)
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="PRESET:key=value, an override for one preset")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="gancli-sg2-")
    quiet = ["train.sample_every=0", "train.ckpt_every=0", "train.log_every=100000",
             "train.ckpt_minutes=0"]
    runs = []
    for preset in args.presets.split(","):
        own = [s.split(":", 1)[1] for s in args.sets if s.startswith(preset + ":")]
        _, cpu, steps = timed_train(preset, own + quiet + [f"train.steps={args.calibrate}"],
                                    out + "/calibrate")
        per_step = cpu / steps
        budget_steps = max(1, int(args.cpu_minutes * 60 / per_step))
        ckpt, cpu, steps = timed_train(preset, own + quiet + [f"train.steps={budget_steps}"], out)
        runs.append((preset, ckpt, cpu, steps, own))
        print(json.dumps({"preset": preset, "cpu_s_per_step": round(per_step, 3),
                          "steps": steps, "cpu_minutes": round(cpu / 60, 2), "sets": own}),
              flush=True)
    print("score them with one classifier: python benchmarks/quality_shapes.py --run "
          + ",".join(str(r[1]) for r in runs), flush=True)


if __name__ == "__main__":
    main()
