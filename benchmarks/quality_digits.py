"""Are a digits GAN's samples recognisable digits? Scores from the shipped digits classifier.

Scores 1,000 samples (seeds 0..999) from a run, or trains a preset first:

    python benchmarks/quality_digits.py --run runs/dcgan-001
    python benchmarks/quality_digits.py --train dcgan [--set train.steps=3000]

Reports the share of samples the classifier (99.2 % on held-out real digits) labels with
confidence > 0.9, the number of classes present, and the evenness of the predicted-class
histogram (normalised entropy; 1 = all ten equally often). Real held-out digits score
96.8 % confident, evenness 0.998.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from gancli import load_config
from gancli.inference import generate, load_generator
from gancli.metrics.digits import digit_scores
from gancli.reporting import PlainReporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a run folder or checkpoint to score")
    ap.add_argument("--train", help="a preset to train first")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    target, minutes = args.run, None
    if args.train:
        cfg = load_config(args.train, args.sets)
        run = create_run_dir(tempfile.mkdtemp(prefix="gancli-digits-"), cfg.name)
        write_config(run, cfg)
        t0 = time.perf_counter()
        target = str(train(cfg, run, torch.device("cpu"), PlainReporter(quiet=True)).checkpoint)
        minutes = (time.perf_counter() - t0) / 60
    if not target:
        ap.error("give --run or --train")
    model = load_generator(target, "cpu")
    scores = digit_scores(generate(model, list(range(args.n))))
    scores.update({"checkpoint": str(model.path), "step": model.step, "train_minutes": minutes})
    print(json.dumps(scores))


if __name__ == "__main__":
    main()
