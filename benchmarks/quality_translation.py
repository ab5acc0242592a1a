"""Do translations land in the target domain and keep their content? CycleGAN on the
built-in digits <-> recoloured digits, StarGAN on the built-in shapes in four colours.

    python benchmarks/quality_translation.py --cyclegan runs/cyclegan-001
    python benchmarks/quality_translation.py --stargan runs/stargan-001

CycleGAN (``pair:digits-recoloured``), on the 500 digits the shipped digits classifier holds
out (``gancli.metrics.digits.digits_split``), each translated A -> B as it is and B -> A
after recolouring it (amber on navy):
  in_domain  share of outputs in the target domain: whose pixels lie closer to the target's
             colour line (grey for A, navy-to-amber for B) than to the other domain's
  content    share the shipped digits classifier labels as the input's digit (B outputs
             are projected back onto the grey scale first)
  l1_to_*    mean |output - the exact recolouring of the input| (in [-1, 1] units)
  The same numbers for the real images of each domain are the yardstick.

StarGAN (``domains:shapes-colours``), on 1,000 shapes drawn with seed 1 (training uses
seed 0), each translated to the three domains it is not in:
  domain_accuracy  share a colour-domain CNN (trained here on 8,000 real images, seed 2)
                   puts in the target domain
  content          share a shape CNN (trained the same way) labels as the input's shape
  mask_iou         mean intersection-over-union of the shape's pixels in input and output
  The classifiers' accuracy on the real held-out images is the yardstick.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from quality_shapes import ShapesNet, fit
from torch import nn

from gancli.data.translation import (RECOLOUR_BG, RECOLOUR_FG, recolour, shapes_colours,
                                     uncolour)
from gancli.data.shapes import SHAPE_CLASSES
from gancli.inference import load_translator
from gancli.metrics.digits import digits_split, predict_proba


def line_distance(x: torch.Tensor, origin, direction) -> torch.Tensor:
    """Per image, the mean distance of its pixels (N, 3, H, W) to a line in colour space."""
    o = torch.tensor(origin, dtype=torch.float32).view(1, 3, 1, 1)
    d = torch.tensor(direction, dtype=torch.float32).view(1, 3, 1, 1)
    v = x - o
    along = (v * d).sum(1, keepdim=True) / (d * d).sum()
    return (v - along * d).norm(dim=1).flatten(1).mean(1)


def colour_domain(x: torch.Tensor) -> torch.Tensor:
    """0 (A: grey, white on black) or 1 (B: amber on navy), whichever colour line the image's
    pixels lie closer to."""
    fg = [c / 127.5 - 1 for c in RECOLOUR_FG]
    bg = [c / 127.5 - 1 for c in RECOLOUR_BG]
    grey = line_distance(x, (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
    amber = line_distance(x, bg, [f - b for f, b in zip(fg, bg)])
    return (amber < grey).long()


@torch.no_grad()
def cyclegan_scores(run: str) -> dict:
    from gancli.data.digits import load_digits

    tr = load_translator(run, "cpu")
    pair = tr.model.data.get("name", "")
    if pair != "pair:digits-recoloured":
        raise SystemExit(f"{run} was trained on {pair!r}; this benchmark scores "
                         "pair:digits-recoloured models")
    digits = load_digits(tr.resolution, 3)
    _, held = digits_split()
    a_u8 = digits.x[held]
    a = a_u8.float() / 127.5 - 1
    b = recolour(a_u8).float() / 127.5 - 1  # the same digits in domain B
    y = digits.y[held]
    t0 = time.perf_counter()
    a2b = torch.cat([tr(c, direction="a2b") for c in a.split(100)])
    b2a = torch.cat([tr(c, direction="b2a") for c in b.split(100)])
    seconds = time.perf_counter() - t0

    def content(images: torch.Tensor) -> float:
        return round(float((predict_proba(images).argmax(1) == y).float().mean()), 4)

    def share(x: torch.Tensor) -> float:
        return round(float(x.float().mean()), 4)

    return {
        "checkpoint": str(tr.model.path), "step": tr.model.step, "images": len(a),
        "translate_seconds": round(seconds, 2),
        "a2b": {"in_domain": share(colour_domain(a2b) == 1), "content": content(uncolour(a2b)),
                "l1_to_recoloured": round(float((a2b - b).abs().mean()), 4)},
        "b2a": {"in_domain": share(colour_domain(b2a) == 0), "content": content(b2a),
                "l1_to_original": round(float((b2a - a).abs().mean()), 4)},
        "real": {"a_in_domain_a": share(colour_domain(a) == 0),
                 "b_in_domain_b": share(colour_domain(b) == 1),
                 "content_a": content(a), "content_b": content(uncolour(b))},
    }


def train_cnn(x: torch.Tensor, y: torch.Tensor, classes: int, epochs: int = 3) -> nn.Module:
    """quality_shapes.py's 3-conv classifier, trained the same way, on these labels."""
    torch.manual_seed(0)
    return fit(ShapesNet(classes), x, y, epochs)


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    pred = torch.cat([net(c).argmax(1) for c in x.split(500)])
    return round(float((pred == y).float().mean()), 4)


@torch.no_grad()
def stargan_scores(run: str, n: int = 1000) -> dict:
    tr = load_translator(run, "cpu")
    res = tr.resolution
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the classifiers (so every score) must not depend on the machine
    t0 = time.perf_counter()
    try:
        with torch.enable_grad():
            x, shape, dom = shapes_colours(res, 8000, seed=2)
            x = x.float() / 127.5 - 1
            shape_net = train_cnn(x, shape, 4)
            domain_net = train_cnn(x, dom, len(tr.domains))
    finally:
        torch.set_num_threads(threads)
    classifier_seconds = time.perf_counter() - t0
    tx, tshape, tdom = shapes_colours(res, n, seed=1)
    tx = tx.float() / 127.5 - 1
    k = len(tr.domains)
    outs, targets, shapes = [], [], []
    t0 = time.perf_counter()
    for target in range(k):
        keep = tdom != target
        outs.append(torch.cat([tr(c, target=target) for c in tx[keep].split(100)]))
        targets.append(torch.full((int(keep.sum()),), target))
        shapes.append(tshape[keep])
    seconds = time.perf_counter() - t0
    out, target, shape = torch.cat(outs), torch.cat(targets), torch.cat(shapes)
    tx_src = torch.cat([tx[tdom != d] for d in range(k)])  # each output's input
    per_domain = {tr.domains[d]: accuracy(domain_net, out[target == d], target[target == d])
                  for d in range(k)}
    return {
        "checkpoint": str(tr.model.path), "step": tr.model.step, "translations": len(out),
        "translate_seconds": round(seconds, 2), "classifier_seconds": round(classifier_seconds, 1),
        "domain_accuracy": accuracy(domain_net, out, target), "per_domain": per_domain,
        "content": accuracy(shape_net, out, shape),
        "mask_iou": round(float(mask_iou(out, tx_src).mean()), 4),
        "content_per_shape": {name: accuracy(shape_net, out[shape == i], shape[shape == i])
                              for i, name in enumerate(SHAPE_CLASSES)},
        "real": {"domain_accuracy": accuracy(domain_net, tx, tdom),
                 "content": accuracy(shape_net, tx, tshape)},
    }


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image pair, intersection over union of the shape masks (pixels whose brightest
    channel is above mid-grey: every domain colour is, every background is not)."""
    ma, mb = a.max(1).values > 0, b.max(1).values > 0
    inter = (ma & mb).flatten(1).sum(1).float()
    union = (ma | mb).flatten(1).sum(1).float().clamp(min=1)
    return inter / union


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cyclegan", help="a cyclegan run or checkpoint trained on pair:digits-inverted")
    ap.add_argument("--stargan", help="a stargan run or checkpoint trained on domains:shapes-colours")
    args = ap.parse_args()
    if not (args.cyclegan or args.stargan):
        ap.error("give --cyclegan RUN and/or --stargan RUN")
    if args.cyclegan:
        print(json.dumps({"cyclegan": cyclegan_scores(args.cyclegan)}))
    if args.stargan:
        print(json.dumps({"stargan": stargan_scores(args.stargan)}))


if __name__ == "__main__":
    main()
