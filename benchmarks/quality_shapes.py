"""Do an image GAN's samples on the built-in ``shapes`` look like shapes? Scores from a
shapes classifier trained here, on shapes the GAN never saw.

    python benchmarks/quality_shapes.py --run runs/sngan-001
    python benchmarks/quality_shapes.py --run runs/sngan-001/checkpoints/step-0002000.safetensors,runs/sngan-001
    python benchmarks/quality_shapes.py --train sagan [--set train.steps=4000]
    python benchmarks/quality_shapes.py --raw-too --run CKPT,...   # also each run's raw G

The classifier (a 3-conv CNN, ~30 s on 2 cores) learns circle / square / triangle / cross
from 8,000 shapes drawn with seed 1 (the GANs train on seed 0's) and is tested on 2,000 more
(seed 2). Reported for 1,000 samples (seeds 0..999) and, as the yardstick, for 1,000 real
held-out shapes:
  confident   share labelled with softmax > 0.9
  evenness    normalised entropy of the predicted-class histogram (1 = four equal classes)
  fd          Fréchet distance between the classifier's 128-d features of the samples and of
              the held-out real shapes (an FID with our network; lower is better). The real
              row compares two disjoint real sets.
"""

from __future__ import annotations

import json
import math
import time

import torch
import torch.nn.functional as F
from common import run_or_train, run_or_train_parser
from torch import nn

from gancli import checkpoints
from gancli.data.shapes import load_shapes
from gancli.inference import generate, load_generator
from gancli.metrics.frechet import frechet_between

CLASSES = 4


class ShapesNet(nn.Module):
    def __init__(self, classes: int = CLASSES):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1),
                                    nn.Conv2d(64, 64, 3, padding=1)])
        self.fc = nn.Linear(64 * 4 * 4, 128)
        self.head = nn.Linear(128, classes)

    def features(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


def to_input(x: torch.Tensor) -> torch.Tensor:
    x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float().clamp(-1, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False) \
        if x.shape[-1] != 32 else x


def train_classifier(epochs: int = 4) -> tuple[ShapesNet, float]:
    # one thread: CPU kernels split work by thread count, and the classifier (so every score)
    # would otherwise differ between machines (measured: 97.85 % at 1 thread, 99.75 % at 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_classifier(epochs)
    finally:
        torch.set_num_threads(threads)


def _train_classifier(epochs: int) -> tuple[ShapesNet, float]:
    torch.manual_seed(0)
    train, test = load_shapes(32, 8000, seed=1), load_shapes(32, 2000, seed=2)
    net = fit(ShapesNet(), to_input(train.x), train.y, epochs)
    with torch.no_grad():
        acc = float((net(to_input(test.x)).argmax(1) == test.y).float().mean())
    return net, acc


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    """Adam 1e-3, batches of 64, a seeded shuffle per epoch; returns ``net`` in eval mode."""
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def scores(net: ShapesNet, images: torch.Tensor, reference_features: torch.Tensor) -> dict:
    x = to_input(images)
    feats = torch.cat([net.features(c) for c in x.split(500)])
    probs = torch.cat([net.head(f).softmax(1) for f in feats.split(500)])
    top, pred = probs.max(1)
    p = torch.bincount(pred, minlength=CLASSES).double() / len(pred)
    nz = p[p > 0]
    return {"confident": round(float((top > 0.9).double().mean()), 4),
            "class_shares": [round(float(v), 3) for v in p],
            "evenness": round(float(-(nz * nz.log()).sum()) / math.log(CLASSES), 4),
            "fd": round(frechet_between(feats, reference_features), 3)}


def main() -> None:
    ap = run_or_train_parser(__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--raw-too", action="store_true",
                    help="also score the raw G of runs that keep an EMA of G")
    args = ap.parse_args()
    target, minutes = run_or_train(ap, args)
    t0 = time.perf_counter()
    net, accuracy = train_classifier()
    held_out = load_shapes(32, 2000, seed=2).x
    with torch.no_grad():
        reference = torch.cat([net.features(c) for c in to_input(held_out[:1000]).split(500)])
    real = scores(net, held_out[1000:1000 + args.n], reference)
    print(json.dumps({"classifier_accuracy": round(accuracy, 4),
                      "classifier_seconds": round(time.perf_counter() - t0, 1), "real": real}))
    for one in target.split(","):  # several runs or checkpoints share one classifier
        for ema in (True, False) if args.raw_too else (True,):
            model = load_generator(one, "cpu", ema=ema)
            if not ema and not any(k.startswith("G_ema.") for k in
                                   checkpoints.load(model.path).tensors):
                continue  # no EMA in this run: its G was scored already
            fake = scores(net, generate(model, list(range(args.n))), reference)
            print(json.dumps({"checkpoint": str(model.path), "step": model.step,
                              "weights": model.weights, "train_minutes": minutes,
                              "samples": fake}), flush=True)


if __name__ == "__main__":
    main()
