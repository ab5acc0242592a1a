"""Class-conditional quality on digits: are samples of class k recognised as k, and do they
train a classifier as well as real digits do (TSTR vs TRTR)?

    python benchmarks/quality_conditional.py --run runs/cgan-001
    python benchmarks/quality_conditional.py --train acgan [--set train.steps=3000]
    python benchmarks/quality_conditional.py --train acgan --set model.aux_classifier=adc
    python benchmarks/quality_conditional.py --run runs/biggan-001 --thresholds 2,1,0.5

With --train the GAN trains on ``digits:train``, the 1,297 training digits only, so the 500
held-out digits TSTR tests on are ones it never saw (a run given with --run is scored as it
is; the output says what it trained on and warns when that included the held-out part).

Per class k, 200 samples (seeds 0..199) are asked for; the shipped digits classifier
(99.2 % on held-out real digits) labels them. TSTR trains a fresh classifier on those
2,000 labelled samples (capped to the 1,297 real training digits so that TRTR sees as
many) and tests on the 500 held-out real digits.

--thresholds T1,T2,...: the same samples again under BigGAN's truncation trick (latent values
beyond T redrawn), one row per threshold: class accuracy, the classifier's mean probability for
the class asked for (fidelity), and the mean pairwise Euclidean distance between samples of one
class in the classifier's 128-d features, averaged over classes (variety; it falls as samples
of a class grow alike).
"""

from __future__ import annotations

import json
import sys

import torch
from common import run_or_train, run_or_train_parser
from quality_digits import within_class_spread

from gancli.inference import generate, load_generator
from gancli.metrics.digits import _default_classifier, predict_proba, prepare
from gancli.metrics.tstr import held_out_note, tstr_digits


def main() -> None:
    ap = run_or_train_parser(__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--thresholds", default="", help="truncation thresholds, e.g. 2,1,0.5")
    args = ap.parse_args()
    args.sets = ["data.source=digits:train", *args.sets]  # a later --set still wins
    target, minutes = run_or_train(ap, args)
    model = load_generator(target, "cpu")
    trained_on = model.cfg.data.source
    if note := held_out_note(trained_on):
        print(f"warning: {note}", file=sys.stderr)
    k, n = len(model.classes), args.per_class
    labels = torch.arange(k).repeat_interleave(n)
    images = generate(model, list(range(n)) * k, labels=labels)
    predicted = predict_proba(images).argmax(1)
    per_class = [float((predicted[labels == c] == c).float().mean()) for c in range(k)]
    result = {"checkpoint": str(model.path), "step": model.step, "train_minutes": minutes,
              "trained_on": trained_on,
              "class_accuracy": float((predicted == labels).float().mean()),
              "per_class_accuracy": per_class, **tstr_digits(images, labels, per_class=True)}
    if args.thresholds:
        result["truncation"] = [
            {"threshold": None, **fidelity_and_variety(images, labels)},
            *({"threshold": t, **fidelity_and_variety(
                generate(model, list(range(n)) * k, labels=labels, threshold=t), labels)}
              for t in map(float, args.thresholds.split(",")))]
    print(json.dumps(result))


@torch.no_grad()
def fidelity_and_variety(images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Class accuracy and mean p(asked class) by the shipped classifier, and the mean pairwise
    feature distance within a class (averaged over classes)."""
    proba = predict_proba(images)
    net = _default_classifier(torch.device("cpu"))
    feats = net.features(prepare(images))
    return {"class_accuracy": float((proba.argmax(1) == labels).float().mean()),
            "confidence": float(proba[torch.arange(len(labels)), labels].mean()),
            "feature_spread": within_class_spread(feats, labels)}


if __name__ == "__main__":
    main()
