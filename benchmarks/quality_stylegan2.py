"""StyleGAN2 against SN-GAN and SAGAN on ``shapes`` at 32 px, at the same CPU minutes.

    python benchmarks/quality_stylegan2.py --cpu-minutes 10

Each preset first runs ``--calibrate`` steps and measures its CPU seconds per step
(``time.process_time``: CPU time of this process, so other jobs on the machine do not change
the budget) between step ``--calibrate`` // 3 and the last (start-up and the first, slower
steps left out); it then trains from scratch for the number of steps that fits
``--cpu-minutes`` of training. The runs are then scored by one shapes classifier
(``quality_shapes.py``: confident share, evenness, Fréchet distance in its features; lower fd
is better) on 1,000 samples each, in the same process, so one classifier scores them all.
The real CPU minutes each run took (start-up included) are printed beside its steps.

Presets can also be trained in separate calls (``--presets stylegan2 --out DIR --no-score``)
and scored together afterwards:

    python benchmarks/quality_shapes.py --run CKPT_SNGAN,CKPT_SAGAN,CKPT_STYLEGAN2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from quality_shapes import scores, to_input, train_classifier

from gancli import load_config
from gancli.data.shapes import load_shapes
from gancli.inference import generate, load_generator
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


class StepClock(Reporter):
    """Records ``time.process_time()`` at every logged step."""

    def __init__(self):
        super().__init__()
        self.at: dict[int, float] = {}

    def step(self, row) -> None:
        self.at[row["step"]] = time.process_time()


def timed_train(preset: str, sets: list[str], out: str,
                reporter: Reporter | None = None) -> tuple[Path, float, int]:
    """Train; (checkpoint, CPU seconds, steps)."""
    cfg = load_config(preset, sets)
    run = create_run_dir(out, cfg.name)
    write_config(run, cfg)
    t0 = time.process_time()
    result = train(cfg, run, torch.device("cpu"), reporter or Reporter())
    return result.checkpoint, time.process_time() - t0, result.step


def cpu_per_step(preset: str, sets: list[str], out: str, steps: int) -> float:
    """CPU seconds per training step, from step ``steps // 3`` to ``steps`` of a short run."""
    clock = StepClock()
    timed_train(preset, sets + [f"train.steps={steps}", "train.log_every=1"], out, clock)
    first = steps // 3
    return (clock.at[steps] - clock.at[first]) / (steps - first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="sngan,sagan,stylegan2")
    ap.add_argument("--cpu-minutes", type=float, default=3.0)
    ap.add_argument("--calibrate", type=int, default=30)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--no-score", action="store_true", help="train only")
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="PRESET:key=value, an override for one preset")
    args = ap.parse_args()
    presets = args.presets.split(",")
    for s in args.sets:  # an override naming no listed preset would be silently ignored
        if s.split(":", 1)[0] not in presets or "=" not in s:
            ap.error(f"--set {s!r}: write PRESET:key=value with PRESET one of {presets}")
    out = args.out or tempfile.mkdtemp(prefix="gancli-sg2-")
    quiet = ["train.sample_every=0", "train.ckpt_every=0", "train.log_every=100000",
             "train.ckpt_minutes=0"]
    runs = []
    for preset in presets:
        own = [s.split(":", 1)[1] for s in args.sets if s.startswith(preset + ":")]
        per_step = cpu_per_step(preset, own + quiet, out + "/calibrate", args.calibrate)
        budget_steps = max(1, int(args.cpu_minutes * 60 / per_step))
        ckpt, cpu, steps = timed_train(preset, own + quiet + [f"train.steps={budget_steps}"], out)
        runs.append((preset, ckpt))
        print(json.dumps({"preset": preset, "cpu_s_per_step": round(per_step, 3),
                          "steps": steps, "cpu_minutes": round(cpu / 60, 2), "sets": own,
                          "checkpoint": str(ckpt)}), flush=True)
    if args.no_score:
        print("score them with one classifier: python benchmarks/quality_shapes.py --run "
              + ",".join(str(r[1]) for r in runs), flush=True)
        return
    net, accuracy = train_classifier()
    held_out = load_shapes(32, 2000, seed=2).x
    with torch.no_grad():
        reference = torch.cat([net.features(c) for c in to_input(held_out[:1000]).split(500)])
    print(json.dumps({"classifier_accuracy": round(accuracy, 4),
                      "real": scores(net, held_out[1000:1000 + args.n], reference)}), flush=True)
    for preset, ckpt in runs:
        model = load_generator(ckpt, "cpu")
        print(json.dumps({"preset": preset, "step": model.step,
                          "samples": scores(net, generate(model, list(range(args.n))), reference)}),
              flush=True)


if __name__ == "__main__":
    main()
