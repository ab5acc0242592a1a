"""Are a digits GAN's samples recognisable digits? Scores from the shipped digits classifier.

Scores 1,000 samples (seeds 0..999) from a run, trains a preset first, or trains every
unconditional preset at its defaults and prints one table:

    python benchmarks/quality_digits.py --run runs/dcgan-001
    python benchmarks/quality_digits.py --train dcgan [--set train.steps=3000] [--seed 1]
    python benchmarks/quality_digits.py --all [--seeds 0,1,2] [--only dcgan,lsgan]

Reports the share of samples the classifier (99.2 % on held-out real digits) labels with
confidence > 0.9, the number of classes present, the evenness of the predicted-class
histogram (normalised entropy; 1 = all ten equally often), and FD-digits: the Frechet
distance between the classifier's 128-d penultimate features of the 1,000 samples and of all
1,797 real digits (Heusel et al. 2017's FID formula in the shipped CNN's features instead of
Inception's). For scale, real vs real (a fixed random half of the real digits against the
other half) is printed with the table. Real held-out digits score 96.8 % confident, evenness
0.998. Two variety numbers follow, because a generator that repeats a few images per digit can
be confident and even: the within-class spread (mean pairwise feature distance inside each
predicted class; real digits 15.6) and the median pixel distance from each sample to its
nearest other sample (near-duplicates score near 0; 1,000 real digits 3.03). A memorisation
check follows: the median pixel distance from each sample to its nearest training digit
(copies score 0; real digits to their nearest other one, 2.8). Training runs on the CPU with
the threads torch picks (set OMP_NUM_THREADS to share).
"""

from __future__ import annotations

import json
from functools import lru_cache

import torch

from common import run_or_train, run_or_train_parser, train_preset

from gancli.data.digits import load_digits
from gancli.inference import generate, load_generator
from gancli.metrics.digits import digit_scores, load_classifier, prepare
from gancli.metrics.frechet import frechet_between
from gancli import list_presets


@lru_cache(maxsize=1)
def _classifier():
    return load_classifier("cpu")


@torch.no_grad()
def digit_features(images: torch.Tensor) -> torch.Tensor:
    """The shipped classifier's 128-d penultimate features of images ``prepare`` accepts."""
    net = _classifier()
    return torch.cat([net.features(prepare(images[i:i + 512])) for i in range(0, len(images), 512)])


@lru_cache(maxsize=1)
def _real_features() -> torch.Tensor:
    return digit_features(load_digits(16).x)


def fd_real() -> float:
    """FD-digits of real against real: a fixed random half of the 1,797 digits vs the rest."""
    feats = _real_features()
    perm = torch.randperm(len(feats), generator=torch.Generator().manual_seed(0))
    half = len(feats) // 2
    return frechet_between(feats[perm[:half]], feats[perm[half:]])


def within_class_spread(feats: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """Variety inside the classes: the mean pairwise distance between the classifier features
    (N, 128) of images of one class, averaged over the classes with 2 or more images. The
    classes are ``labels`` (N,) when given (a conditional model's asked-for classes), else the
    classifier's predictions. A generator that repeats a few images per digit scores low even
    when every image is confident (real digits: ``spread_real``)."""
    if labels is None:
        labels = _classifier().eval().head(feats).argmax(1)  # the head follows the features
    spreads = [float(torch.pdist(feats[labels == c]).mean()) for c in range(10)
               if int((labels == c).sum()) >= 2]
    return sum(spreads) / len(spreads) if spreads else 0.0


def nearest_neighbour_median(images: torch.Tensor) -> float:
    """Median over the images of the pixel L2 distance (images in [-1, 1], 16x16) to the
    nearest *other* image of the same set. Near-duplicates drive it toward 0; a generator
    that maps many latents to one image per digit can be confident and even, yet score far
    below real digits here (``nn_real``, on as many real digits)."""
    x = prepare(images).flatten(1).double()
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return float(d.min(1).values.median())


@lru_cache(maxsize=4)
def nn_real(n: int = 1000) -> float:
    """``nearest_neighbour_median`` of ``n`` real digits (a fixed random subset)."""
    x = load_digits(16).x
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]
    return nearest_neighbour_median(x[perm])


def nearest_training_median(images: torch.Tensor, exclude_self: bool = False) -> float:
    """Median over the images of the pixel L2 distance to the nearest of the 1,797 real
    digits every digits preset trains on: memorisation check. A generator that copies its
    training digits scores near 0; real digits score ``nn_train_real`` (each real digit to its
    nearest *other* real digit, ``exclude_self``)."""
    x = prepare(images).flatten(1).double()
    real = prepare(load_digits(16).x).flatten(1).double()
    d = torch.cdist(x, real)
    if exclude_self:  # x are real digits: leave out each one's own copy
        d[d < 1e-3] = float("inf")
    return float(d.min(1).values.median())


@lru_cache(maxsize=4)
def nn_train_real(n: int = 1000) -> float:
    """``nearest_training_median`` of ``n`` real digits (the ``nn_real`` subset) to the others."""
    x = load_digits(16).x
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]
    return nearest_training_median(x[perm], exclude_self=True)


def spread_real() -> float:
    """``within_class_spread`` of all 1,797 real digits."""
    return within_class_spread(_real_features())


def score_images(images: torch.Tensor) -> dict:
    """``digit_scores`` plus ``fd_digits`` (to all 1,797 real digits) and
    ``within_class_spread`` for generated images."""
    scores = digit_scores(images, classifier=_classifier())
    feats = digit_features(images)
    scores["fd_digits"] = frechet_between(feats, _real_features())
    scores["spread"] = within_class_spread(feats)
    scores["nn_median"] = nearest_neighbour_median(images)
    scores["nn_train"] = nearest_training_median(images)
    return scores


UNCONDITIONAL_OBJECTIVES = ("unconditional", "self_conditional", "progressive")  # G(z), no codes


def unconditional_digits_presets() -> list[str]:
    """Built-in presets that train an unconditional image GAN on the built-in digits."""
    from gancli import load_config

    out = []
    for name in list_presets():
        cfg = load_config(name, [])
        if cfg.task == "unconditional" and cfg.objective in UNCONDITIONAL_OBJECTIVES \
                and cfg.data.source.startswith("digits"):
            out.append(name)
    return out


def score_run(target: str, n: int) -> dict:
    model = load_generator(target, "cpu")
    scores = score_images(generate(model, list(range(n))))
    scores.update({"checkpoint": str(model.path), "step": model.step, "weights": model.weights})
    return scores


def main() -> None:
    ap = run_or_train_parser(__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--all", action="store_true", help="train and score every unconditional "
                    "digits preset at its defaults")
    ap.add_argument("--only", default="", help="with --all: a comma list of presets")
    ap.add_argument("--seeds", default="0", help="with --all: comma list of train.seed values")
    ap.add_argument("--seed", type=int, default=None, help="with --train: train.seed")
    args = ap.parse_args()
    if not args.all:
        if args.seed is not None:
            args.sets.append(f"train.seed={args.seed}")
        target, minutes = run_or_train(ap, args)
        scores = score_run(target, args.n)
        scores["train_minutes"] = minutes
        print(json.dumps(scores), flush=True)
        return
    presets = [p for p in args.only.split(",") if p] or unconditional_digits_presets()
    rows = []
    for preset in presets:
        for seed in [int(s) for s in args.seeds.split(",")]:
            ckpt, minutes = train_preset(preset, args.sets + [f"train.seed={seed}"])
            row = {"preset": preset, "seed": seed, **score_run(str(ckpt), args.n),
                   "train_minutes": minutes}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| preset | seed | confident | classes | evenness | FD-digits | minutes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['seed']} | {100 * r['confident']:.1f} % | "
              f"{r['classes_present']}/10 | {r['class_evenness'] + 0.0:.3f} | {r['fd_digits']:.2f} | "
              f"{r['train_minutes']:.1f} |")
    print(f"| real digits (half vs half) | | | | | {fd_real():.2f} | |")
    print(f"within-class spread of the samples (real digits {spread_real():.2f}): "
          + ", ".join(f"{r['preset']} {r['spread']:.2f}" for r in rows))
    print(f"median distance to the nearest other sample (real digits {nn_real(args.n):.2f}): "
          + ", ".join(f"{r['preset']} {r['nn_median']:.2f}" for r in rows))
    print("median distance to the nearest training digit (real digits, to the nearest other: "
          f"{nn_train_real(args.n):.2f}; copies of training digits: 0): "
          + ", ".join(f"{r['preset']} {r['nn_train']:.2f}" for r in rows))


if __name__ == "__main__":
    main()
