"""progan against dcgan on digits at the same CPU time, in one run (issue 18).

Trains ``dcgan`` (its preset, ``--dcgan-steps`` steps) and measures the CPU time it used
(``time.process_time``, one thread each, so the shared machine's load does not count); then
trains ``progan`` until it has used the same CPU time (stopped cleanly by a SIGINT at the
first logged step past the budget, which saves a checkpoint) and scores both with
``quality_digits.py``'s protocol: 1,000 samples (seeds 0..999) of the saved generator (EMA
weights where the run keeps them), the share the shipped digits classifier labels with
confidence > 0.9, classes present, evenness, FD-digits. The raw G of both is scored too.
progan's per-stage sample grids (``samples/step-*-Npx*.png``) stay in its run folder.

    flock /tmp/heavy.lock nice -n 5 python benchmarks/quality_progan.py --out /tmp/qp
    python benchmarks/quality_progan.py --dcgan-steps 1500 --set progressive.phase_images=25600
    python benchmarks/quality_progan.py --data shapes --resolution 32 --no-dcgan --cpu-seconds 400

``--set`` goes to progan only. ``--variant "k=v k=v"`` (repeatable) trains one more progan per
variant, each with the ``--set`` keys plus its own, each for the same CPU time, after the same
dcgan run. ``--no-dcgan --cpu-seconds S`` trains progan alone for S CPU seconds (the shapes run:
grown to 32 px; no digit classifier applies there). ``--stage-ceiling`` only scores the real
digits as each stage draws them (average-pooled to 4, 8 and 16 px and nearest-upsampled back to
16 px): what a perfect G at that stage would score.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

import torch

from quality_digits import score_images

from gancli import load_config
from gancli.errors import Interrupted
from gancli.inference import generate, load_generator
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


class CpuBudget(Reporter):
    """Presses Ctrl-C (a real SIGINT to this process) at the first logged step after this
    process has used ``seconds`` more CPU time than when the run began; keeps the rows."""

    def __init__(self, seconds: float | None):
        self.seconds, self.began = seconds, time.process_time()
        self.rows: list[dict] = []
        self.fired = False

    def step(self, row):
        self.rows.append(row)
        used = time.process_time() - self.began
        if self.seconds is not None and used >= self.seconds and not self.fired:
            self.fired = True
            os.kill(os.getpid(), signal.SIGINT)


def run(preset: str, sets: list[str], out: Path, seconds: float | None) -> dict:
    cfg = load_config(preset, sets)
    folder = create_run_dir(out, cfg.name)
    write_config(folder, cfg)
    budget = CpuBudget(seconds)
    t0 = time.process_time()
    try:
        result = train(cfg, folder, torch.device("cpu"), budget)
        step = result.step
    except Interrupted:
        step = budget.rows[-1]["step"]
    cpu = time.process_time() - t0
    last = budget.rows[-1] if budget.rows else {}
    print(f"{preset}: {step} steps, {cpu:.1f} CPU s, stage {last.get('stage', '-')}, "
          f"alpha {last.get('alpha', '-')}  ({folder})", flush=True)
    return {"preset": preset, "run": str(folder), "steps": step, "cpu_s": cpu}


def scores(run_dir: str, ema: bool, n: int) -> dict:
    model = load_generator(run_dir, "cpu", ema=ema)
    s = score_images(generate(model, list(range(n))))
    return {"weights": model.weights, "step": model.step, **s}


def stage_ceiling() -> None:
    """The 1,797 real digits as a perfect G at each stage draws them, scored like samples."""
    from gancli.data.digits import load_digits
    from gancli.models.progan import resize

    x = load_digits(16).x.float() / 127.5 - 1.0
    print("| stage | confident | classes | evenness | FD-digits |\n|---|---|---|---|---|")
    for size in (4, 8, 16):
        s = score_images(resize(resize(x, size), 16))
        print(f"| {size} px | {100 * s['confident']:.1f} % | {s['classes_present']}/10 | "
              f"{s['class_evenness']:.3f} | {max(s['fd_digits'], 0.0):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="folder for both runs (default: a temp folder)")
    ap.add_argument("--dcgan-steps", type=int, default=1500)
    ap.add_argument("--no-dcgan", action="store_true")
    ap.add_argument("--cpu-seconds", type=float, default=None,
                    help="progan's CPU budget (default: what dcgan used)")
    ap.add_argument("--data", default=None, help="progan's data.source (default: the preset's)")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--variant", action="append", default=[],
                    help="space-separated k=v overrides for one more progan run (repeatable)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--preset", default="progan",
                    help="the preset trained for the CPU budget in progan's place (default progan; "
                         "e.g. wgan-gp, to see what its loss alone costs at that budget)")
    ap.add_argument("--stage-ceiling", action="store_true",
                    help="only score the real digits at each stage's resolution")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.stage_ceiling:
        stage_ceiling()
        return
    import tempfile
    out = Path(args.out or tempfile.mkdtemp(prefix="gancli-progan-"))
    sets = list(args.sets)
    if args.data:
        sets.append(f"data.source={args.data}")
    if args.resolution:
        sets.append(f"data.resolution={args.resolution}")
    rows = []
    budget = args.cpu_seconds
    if not args.no_dcgan:
        d = run("dcgan", [f"train.steps={args.dcgan_steps}"], out, None)
        rows.append(d)
        budget = budget if budget is not None else d["cpu_s"]
    if budget is None:
        ap.error("give --cpu-seconds with --no-dcgan")
    for extra in [""] + args.variant:
        # logged every 5 steps, so the CPU budget stops it within 5 steps (a few CPU s)
        p = run(args.preset, sets + extra.split() + ["train.steps=1000000", "train.ckpt_every=0",
                                                  "train.log_every=5"], out, budget)
        p["variant"] = extra
        rows.append(p)
    digits = load_config(args.preset, sets).data.source.startswith("digits")
    for r in rows:
        for ema in ((True, False) if r["preset"] != "dcgan" else (False,)):
            s = scores(r["run"], ema, args.n) if digits else {}
            if s and s["weights"] == "G" and ema:
                continue  # no EMA in this run: the G row follows
            r.setdefault("scores", []).append(s)
            print(json.dumps({**{k: v for k, v in r.items() if k != "scores"}, **s}), flush=True)
    if not digits:
        return
    print("\n| preset | steps | CPU s | weights | confident | classes | evenness | FD-digits |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = r["preset"] + (f" {r['variant']}" if r.get("variant") else "")
        for s in r["scores"]:
            print(f"| {name} | {r['steps']} | {r['cpu_s']:.0f} | {s['weights']} | "
                  f"{100 * s['confident']:.1f} % | {s['classes_present']}/10 | "
                  f"{s['class_evenness'] + 0.0:.3f} | {s['fd_digits']:.2f} |")


if __name__ == "__main__":
    main()
