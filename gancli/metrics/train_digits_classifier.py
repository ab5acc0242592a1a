"""Train the shipped digits classifier: ``python -m gancli.metrics.train_digits_classifier``.

Trains ``DigitsNet`` on the training part of ``digits_split(seed)`` with Adam,
checks it on the held-out part at 8, 16 and 32 px, and writes the weights
(safetensors, with seed / split / accuracy / torch version in the metadata)
atomically. Deterministic under ``--seed`` on the CPU; takes well under a minute.

Augmentation, so the classifier also reads generated images well:
* each time a training digit is drawn it comes, at random, as served at 8, 16
  or 32 px and then passed through ``prepare`` (a generator may work at any of
  these, and the down- or up-sampling blurs differently);
* a random affine: shift of up to 2 px and scale 0.9..1.1 (generated digits are
  not centred and sized as exactly as the scanned ones).

Outlier exposure (Hendrycks et al., 2019): every batch also holds junk images
(uniform noise, blank or constant images, blobs, sparse dots) whose target is
the uniform distribution over the ten classes. Without it a plain classifier
calls a blank image a "1" with > 95 % confidence, and a collapsed generator
emitting blanks would look like confident digits.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gancli.data.digits import load_digits
from gancli.metrics.digits import (INPUT_SIZE, WEIGHTS_FILE, WEIGHTS_FORMAT, DigitsNet, digits_split,
                                   prepare)

TEST_SIZE = 500
MAX_SHIFT_PX = 2.0
SCALE_RANGE = (0.9, 1.1)
JUNK_FRACTION = 4  # one junk image per 4 digits in a batch
JUNK_WEIGHT = 0.5


def _served(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits served at ``resolution`` px, then brought to the classifier input."""
    ds = load_digits(resolution=resolution, channels=1)
    return prepare(ds.x), ds.y


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shift (up to 2 px) and scale jitter of (N, 1, 16, 16) images in [-1, 1]."""
    n = x.shape[0]
    scale = torch.empty(n).uniform_(*SCALE_RANGE, generator=gen)
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / 16 of them.
    shift = torch.empty(n, 2).uniform_(-MAX_SHIFT_PX, MAX_SHIFT_PX, generator=gen) * (2.0 / INPUT_SIZE)
    theta = torch.zeros(n, 2, 3)
    # The grid maps output to input coordinates, so zooming in by s means sampling at 1/s.
    theta[:, 0, 0] = 1.0 / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Sample x + 1 so the zero padding outside the image is background (-1), not mid grey.
    return F.grid_sample(x + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1.0


def _junk(n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` (1, 16, 16) images in [-1, 1] that are not digits, of four kinds mixed at random."""
    kind = torch.randint(0, 4, (n,), generator=gen)
    # Uniform noise, drawn at 8, 16 or 32 px and resized like a generator's output would be.
    res = [8, 16, 32][int(torch.randint(0, 3, (), generator=gen))]
    noise = prepare(torch.rand(n, 1, res, res, generator=gen) * 2 - 1)
    # Constant images: blank background (-1), blank ink (+1) and every grey between.
    level = torch.where(torch.rand(n, generator=gen) < 0.5,
                        torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1,
                        torch.rand(n, generator=gen) * 2 - 1)
    const = level.view(n, 1, 1, 1).expand(n, 1, INPUT_SIZE, INPUT_SIZE)
    # Blobs: 3x3 noise blown up to 16 px, smooth shapes with no digit structure.
    blobs = F.interpolate(torch.rand(n, 1, 3, 3, generator=gen) * 2 - 1, size=(INPUT_SIZE, INPUT_SIZE),
                          mode="bilinear", align_corners=False)
    # Sparse dots on the background: ink in random places.
    density = torch.rand(n, 1, 1, 1, generator=gen) * 0.4
    dots = torch.where(torch.rand(n, 1, INPUT_SIZE, INPUT_SIZE, generator=gen) < density, 1.0, -1.0)
    choices = torch.stack([noise, const, blobs, dots])  # (4, n, 1, 16, 16)
    return choices[kind, torch.arange(n)]


@torch.no_grad()
def accuracy(model: DigitsNet, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` (switched to eval) on prepared images."""
    model.eval()
    return float((model(x).argmax(1) == y).double().mean())


def train(seed: int = 0, epochs: int = 30, batch_size: int = 64, lr: float = 2e-3,
          test: int = TEST_SIZE, log=print) -> tuple[DigitsNet, dict[str, float]]:
    """Train a ``DigitsNet``; returns it (eval mode) and held-out accuracies at 8, 16 and 32 px."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = digits_split(seed=seed, test=test)
    served = {r: _served(r) for r in (8, 16, 32)}
    # (3, n_train, 1, 16, 16): each digit as served at 8, 16 and 32 px; each step picks one per image.
    x_train = torch.stack([served[r][0][train_idx] for r in (8, 16, 32)])
    y_train = served[16][1][train_idx]
    n_train = len(train_idx)

    model = DigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # Cosine decay to zero: the last epochs fine-tune, so the final weights are the ones to keep
    # (picking the "best" epoch on the held-out part would leak it into training).
    steps_per_epoch = -(-n_train // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n_train, generator=gen)
        total = 0.0
        for i in range(0, n_train, batch_size):
            idx = perm[i:i + batch_size]
            res = torch.randint(0, 3, (len(idx),), generator=gen)
            xb = _augment(x_train[res, idx], gen)
            junk = _junk(max(1, len(idx) // JUNK_FRACTION), gen)
            logits = model(torch.cat([xb, junk]))
            # Cross-entropy on digits; on junk, cross-entropy against the uniform distribution.
            loss = F.cross_entropy(logits[:len(idx)], y_train[idx])
            loss = loss - JUNK_WEIGHT * F.log_softmax(logits[len(idx):], dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if (epoch + 1) % 5 == 0 or epoch == 0:
            acc16 = accuracy(model, served[16][0][test_idx], served[16][1][test_idx])
            log(f"epoch {epoch + 1:3d}  loss {total / n_train:.4f}  held-out acc (16 px) {acc16:.4f}")
    model.eval()
    accs = {f"{r}px": accuracy(model, served[r][0][test_idx], served[r][1][test_idx]) for r in (8, 16, 32)}
    return model, accs


def save(model: DigitsNet, out: Path, metadata: dict[str, str]) -> None:
    """Write the weights as safetensors, atomically."""
    from safetensors.torch import save as safetensors_bytes

    from gancli.fileio import atomic_write_bytes

    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out, safetensors_bytes(state, metadata=metadata))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gancli.metrics.train_digits_classifier",
                                     description="Train the shipped digits classifier (CPU, < 1 min).")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE,
                        help=f"weights file (default {WEIGHTS_FILE})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for the split, init and batches (default 0)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    args = parser.parse_args(argv)

    # Same seed, same weights: deterministic kernels, CPU only. One thread: the net is so small that
    # more threads mostly add overhead, and the result then cannot depend on the core count.
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, accs = train(seed=args.seed, epochs=args.epochs)
    secs = time.perf_counter() - start
    print("held-out accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in accs.items()))
    metadata = {
        "format": WEIGHTS_FORMAT,
        "description": "gancli DigitsNet: CNN on 1x16x16 grey digits in [-1, 1] "
                       "(see gancli.metrics.digits.prepare), trained on the UCI 8x8 hand-written digits "
                       "with non-digit junk pushed to a flat prediction; "
                       "features() = 128-d penultimate layer",
        "seed": str(args.seed),
        "split": f"digits_split(seed={args.seed}, test={TEST_SIZE}): randperm(1797) under the seed, "
                 f"first {TEST_SIZE} held out",
        "epochs": str(args.epochs),
        "augmentation": f"served at 8/16/32 px then prepare(); shift <= {MAX_SHIFT_PX:g} px; "
                        f"scale {SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g}",
        "outlier_exposure": f"{1 / JUNK_FRACTION:g} junk images per digit (noise, constant, blobs, dots) "
                            f"trained toward uniform, weight {JUNK_WEIGHT:g}",
        "test_accuracy": f"{accs['16px']:.4f}",
        "test_accuracy_8px": f"{accs['8px']:.4f}",
        "test_accuracy_32px": f"{accs['32px']:.4f}",
        "torch_version": torch.__version__,
    }
    save(model, args.out, metadata)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in {secs:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
