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

import json

from common import run_or_train, run_or_train_parser

from gancli.inference import generate, load_generator
from gancli.metrics.digits import digit_scores


def main() -> None:
    ap = run_or_train_parser(__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    target, minutes = run_or_train(ap, args)
    model = load_generator(target, "cpu")
    scores = digit_scores(generate(model, list(range(args.n))))
    scores.update({"checkpoint": str(model.path), "step": model.step, "train_minutes": minutes})
    print(json.dumps(scores))


if __name__ == "__main__":
    main()
