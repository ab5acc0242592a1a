"""ADA on little data: ``stylegan2`` on 200 digits with and without ``train.augment=ada``.

    flock /tmp/heavy.lock nice -n 5 python benchmarks/ada_digits.py --steps 1500 --ada-kimg 10

Writes 200 of the built-in digits (20 per class, a fixed draw) as 16 px PNGs into a folder,
trains the preset on it twice with the same seed and steps (once plain, once with ADA), and
scores 1,000 samples of each with the shipped digits classifier (``quality_digits.py``:
share labelled with confidence > 0.9, classes present, FD-digits to all 1,797 real digits).
Prints p (``ada_p``) along the ADA run, every ``--every`` steps, from its metrics.jsonl.

The paper's controller speed (p from 0 to 1 in 500k images) is for runs of millions of
images; ``--ada-kimg`` sets a faster one for a run of minutes (said in the output).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from quality_digits import score_images

from gancli import imaging, load_config
from gancli.data.digits import load_digits
from gancli.inference import generate, load_generator
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


def write_subset(folder: Path, per_class: int = 20) -> int:
    data = load_digits(16)
    perm = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(0))
    count = {k: 0 for k in range(10)}
    for i in perm.tolist():
        k = int(data.y[i])
        if count[k] >= per_class:
            continue
        count[k] += 1
        (folder / str(k)).mkdir(parents=True, exist_ok=True)
        img = imaging.to_uint8(data.x[i:i + 1].float())[0]
        imaging.save_image(imaging.to_pil(img), folder / str(k) / f"{i:04d}.png")
    return sum(count.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="stylegan2")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--ada-kimg", type=float, default=10.0)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="gancli-ada-"))
    folder = out / "digits200"
    n = write_subset(folder)
    base = [f"data.source={folder}", "data.resolution=16", "data.channels=1",
            f"train.steps={args.steps}", "train.sample_every=0", "train.ckpt_every=0",
            "train.ckpt_minutes=0", "train.log_every=10", *args.sets]
    for augment in ("", "ada"):
        sets = base + [f"train.augment={augment}", f"ada.kimg={args.ada_kimg}"]
        cfg = load_config(args.preset, sets)
        run = create_run_dir(out, f"{args.preset}-{augment or 'plain'}")
        write_config(run, cfg)
        t0 = time.process_time()
        result = train(cfg, run, torch.device("cpu"), Reporter())
        cpu = time.process_time() - t0
        scores = score_images(generate(load_generator(result.checkpoint, "cpu"),
                                       list(range(args.n))))
        row = {"preset": args.preset, "augment": augment or "none", "images": n,
               "steps": result.step, "cpu_minutes": round(cpu / 60, 2),
               "confident": scores["confident"], "classes_present": scores["classes_present"],
               "fd_digits": round(scores["fd_digits"], 2), "run": str(run)}
        if augment:
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            row["ada_kimg"] = args.ada_kimg
            row["p"] = {r["step"]: round(r["ada_p"], 3) for r in rows
                        if "ada_p" in r and r["step"] % args.every == 0}
            row["rt"] = {r["step"]: round(r["ada_rt"], 2) for r in rows
                         if "ada_rt" in r and r["step"] % args.every == 0}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
