"""A digits preset's confident-digit share against the CPU time it trained, in one run.

Trains ``PRESET`` on one thread and, each time its training has used the next CPU-second mark
(``time.process_time``; scoring time excluded), scores 1,000 samples (seeds 0..999, as
``gancli sample`` draws them) of the live G, of the run's G_ema and of two more EMAs of G kept
here (decay 0.99 and 0.995 from ``train.ema_start``), with ``quality_digits.py``'s protocol:
the share the shipped digits classifier labels with confidence > 0.9, classes present,
evenness, FD-digits. Used to tune the ``progan`` preset (docs/presets.md):

    python benchmarks/progan_curve.py progan --marks 120,240,360 --set model.full_width_res=32

One JSON line per mark: step, CPU s, stage and alpha (growing families), one score per G.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from quality_digits import score_images

from gancli import load_config
from gancli.data import load_dataset
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.sampling import latents_for_seeds
from gancli.training.loop import build_state, train_step

EXTRA_DECAYS = (0.99, 0.995)


@torch.no_grad()
def score(G: torch.nn.Module, z: torch.Tensor) -> str:
    G = copy.deepcopy(G).eval()
    s = score_images(torch.cat([G(chunk) for chunk in z.split(250)]))
    return (f"{100 * s['confident']:.1f}% c{s['classes_present']} e{s['class_evenness']:.3f} "
            f"fd{s['fd_digits']:.0f}")


@torch.no_grad()
def follow(ema: torch.nn.Module, G: torch.nn.Module, decay: float) -> None:
    torch._foreach_lerp_(list(ema.parameters()), list(G.parameters()), 1.0 - decay)
    for be, b in zip(ema.buffers(), G.buffers()):
        be.copy_(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset")
    ap.add_argument("--marks", default="120,240,360", help="CPU seconds at which to score")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(1)
    marks = sorted(float(m) for m in args.marks.split(","))
    cfg = load_config(args.preset, args.sets + ["train.steps=1000000"])
    folder = create_run_dir(Path(tempfile.mkdtemp(prefix="gancli-curve-")), cfg.name)
    write_config(folder, cfg)
    data = load_dataset(cfg.data, cfg.train.seed, cfg.task)
    s = build_state(cfg, folder, torch.device("cpu"), Reporter(), data)
    z = latents_for_seeds(list(range(1000)), cfg.model.z_dim, cfg.model.z_dist)
    extra: dict[float, torch.nn.Module | None] = {d: None for d in EXTRA_DECAYS}
    used, t = 0.0, time.process_time()
    while marks:
        train_step(s)
        if s.step - 1 >= cfg.train.ema_start:  # the step just done, as the loop's EMA counts
            for d in extra:
                if extra[d] is None:
                    extra[d] = copy.deepcopy(s.G).requires_grad_(False)
                follow(extra[d], s.G, d)
        now = time.process_time()
        used, t = used + now - t, now
        if used < marks[0]:
            continue
        marks.pop(0)
        row = {"sets": " ".join(args.sets), "step": s.step, "cpu_s": round(used)}
        if hasattr(s.G, "growth"):
            row.update({k: v for k, v in s.G.growth().items() if k != "stage"})
        nets = [("G", s.G), ("G_ema", s.G_ema), *((f"ema{d}", e) for d, e in extra.items())]
        row.update({name: score(G, z) for name, G in nets if G is not None})
        print(json.dumps(row), flush=True)
        t = time.process_time()


if __name__ == "__main__":
    main()
