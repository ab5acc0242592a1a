"""Does InfoGAN's categorical code find the digit classes, unsupervised?

    python benchmarks/quality_infogan.py --run runs/infogan-001
    python benchmarks/quality_infogan.py --train infogan

For each value k of the categorical code (code.0), 100 samples (seeds 0..99, the other codes
as the seed draws them) are labelled by the shipped digits classifier. Reported:
  purity          share of samples whose digit is their code value's majority digit (the
                  paper: 5 % error on MNIST, i.e. ~95 % purity, with 10 values)
  digits_covered  distinct majority digits over the 10 code values (10 = a 1:1 mapping)
  nmi             normalised mutual information between code value and digit (0..1)
  confident       share of samples the classifier labels with confidence > 0.9
"""

from __future__ import annotations

import json
import math

import torch
from common import run_or_train, run_or_train_parser

from gancli.inference import generate, load_generator
from gancli.metrics.digits import predict_proba


def nmi(a: torch.Tensor, b: torch.Tensor) -> float:
    """I(a; b) / sqrt(H(a) H(b)) from two label vectors."""
    joint = torch.zeros(int(a.max()) + 1, int(b.max()) + 1, dtype=torch.float64)
    joint.index_put_((a, b), torch.ones(len(a), dtype=torch.float64), accumulate=True)
    joint /= joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float((joint[nz] * (joint[nz] / (pa[:, None] * pb[None, :])[nz]).log()).sum())
    ha = float(-(pa[pa > 0] * pa[pa > 0].log()).sum())
    hb = float(-(pb[pb > 0] * pb[pb > 0].log()).sum())
    return mi / math.sqrt(ha * hb) if ha > 0 and hb > 0 else 0.0


def main() -> None:
    ap = run_or_train_parser(__doc__.splitlines()[0])
    ap.add_argument("--per-value", type=int, default=100)
    args = ap.parse_args()
    target, minutes = run_or_train(ap, args)
    model = load_generator(target, "cpu")
    k = model.cfg.model.info_cat
    if not k:
        ap.error("this model has no categorical code")
    seeds = list(range(args.per_value))
    codes = model.codes_for(seeds).repeat(k, 1)
    value = torch.arange(k).repeat_interleave(len(seeds))
    codes[:, :k] = torch.nn.functional.one_hot(value, k).float()
    probs = predict_proba(generate(model, seeds * k, labels=codes))
    top, digit = probs.max(1)
    majority = [int(digit[value == v].mode().values) for v in range(k)]
    purity = float(sum((digit[value == v] == majority[v]).sum() for v in range(k)) / len(digit))
    print(json.dumps({"checkpoint": str(model.path), "step": model.step, "train_minutes": minutes,
                      "purity": round(purity, 4), "majority_digit_per_value": majority,
                      "digits_covered": len(set(majority)), "nmi": round(nmi(value, digit), 4),
                      "confident": round(float((top > 0.9).double().mean()), 4)}))


if __name__ == "__main__":
    main()
