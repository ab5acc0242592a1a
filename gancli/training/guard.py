"""NaN / inf watch for the training loop, and roll-back-and-retry on divergence.

``FiniteGuard.watch`` runs after each backward pass: it checks the loss and the gradients
(one fused inf-norm over all of them; a NaN anywhere makes it NaN) and records, on the
device, the first step where something was not finite and what it was. No host sync
happens there: ``check`` reads the two numbers (one sync), and the loop calls it when it
reads its statistics anyway (log time) and *always* before a checkpoint is written, so no
checkpoint ever holds weights that came from a non-finite step.

``run_with_rollback`` implements ``train.on_nan=rollback``: on divergence it reloads the
last good checkpoint, halves both learning rates and carries on, at most
``train.nan_retries`` times; each roll-back is a ``rollback`` row in ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, Iterable

import torch

from gancli.errors import TrainingDiverged

# bit i of the "what" mask
PARTS = ("D loss", "D gradients", "G loss", "G gradients")
_BIT = {"D": 0, "G": 2}


def likely_cause(cfg) -> str:
    """A short guess at why a run diverged, for the one-line message."""
    lr = f"optim.lr_g={cfg.optim.lr_g:g}, optim.lr_d={cfg.optim.lr_d:g}"
    precision = cfg.train.precision
    if precision != "fp32":
        return f"likely cause: the learning rate ({lr}) or {precision} precision"
    return f"likely cause: the learning rate is too high ({lr})"


class FiniteGuard:
    """Device-side record of the first non-finite step; read only by ``check``."""

    def __init__(self, device: torch.device):
        self.first = torch.full((), -1, dtype=torch.int64, device=device)
        self.what = torch.zeros((), dtype=torch.int64, device=device)
        self.device = device

    def watch(self, step: int, net: str, loss: torch.Tensor,
              params: Iterable[torch.nn.Parameter] = ()) -> None:
        """After ``loss.backward()`` for ``net`` ("D" or "G") at ``step`` (1-based).

        With a GradScaler, pass no params (scaled gradients may be inf by design and the
        scaler skips those steps itself): the loss is still checked.
        """
        bit = _BIT[net]
        code = (~torch.isfinite(loss.detach())).any().to(torch.int64) << bit
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            norms = torch._foreach_norm(grads, float("inf"))  # max |g| per tensor; NaN propagates
            bad = ~torch.isfinite(torch.stack([n.float() for n in norms])).all()
            code = code | (bad.to(torch.int64) << (bit + 1))
        now = torch.full((), step, dtype=torch.int64, device=self.device)
        at_first = (self.first < 0) & (code > 0) | (self.first == now)
        self.first = torch.where((self.first < 0) & (code > 0), now, self.first)
        self.what = torch.where(at_first, self.what | code, self.what)

    def check(self, cfg, last_good: Path | None) -> None:
        """Raise ``TrainingDiverged`` if any watched step was not finite (one host sync)."""
        first, what = torch.stack([self.first, self.what]).tolist()
        if first < 0:
            return
        parts = [name for i, name in enumerate(PARTS) if what >> i & 1]
        what_bad = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
        raise diverged(cfg, first, what_bad, last_good)


def diverged(cfg, step: int, what: str, last_good: Path | None) -> TrainingDiverged:
    kept = (f"the last good checkpoint is {last_good}" if last_good
            else "no checkpoint was written before it")
    return TrainingDiverged(
        f"training diverged: NaN/inf in the {what} at step {step} ({likely_cause(cfg)}); {kept}",
        hint="lower the learning rates (--set optim.lr_g=... --set optim.lr_d=...), or retry "
             "automatically from the last good checkpoint with --on-nan rollback; with fp16/bf16, "
             "train in fp32",
        step=step, last_good=last_good)


def check_finite_weights(tensors: dict[str, torch.Tensor], cfg, step: int,
                         last_good: Path | None) -> None:
    """Last line of defence before a checkpoint: every floating weight is finite."""
    bad = [k for k, v in tensors.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise diverged(cfg, step, f"weights ({', '.join(bad[:3])})", last_good)


def halve_lr(cfg):
    optim = dataclasses.replace(cfg.optim, lr_g=cfg.optim.lr_g / 2, lr_d=cfg.optim.lr_d / 2)
    return dataclasses.replace(cfg, optim=optim)


def run_with_rollback(train_once: Callable, cfg, resume, on_event: Callable[[dict], None]):
    """Call ``train_once(cfg, resume)``; on divergence with ``train.on_nan=rollback``, reload
    the last good checkpoint, halve the learning rates and try again (``train.nan_retries``)."""
    from gancli import checkpoints

    attempts = 0
    while True:
        try:
            return train_once(cfg, resume)
        except TrainingDiverged as e:
            if cfg.train.on_nan != "rollback":
                raise
            if attempts >= cfg.train.nan_retries:
                e.message += f" (gave up after {attempts} roll-back(s) with halved learning rates)"
                raise
            attempts += 1
            cfg = halve_lr(cfg)
            resume = checkpoints.load(e.last_good) if e.last_good else None
            on_event({"step": resume.step if resume else 0, "event": "rollback",
                      "diverged_at": e.step, "attempt": attempts,
                      "from_checkpoint": str(e.last_good) if e.last_good else None,
                      "lr_g": cfg.optim.lr_g, "lr_d": cfg.optim.lr_d})


def check_finite_stats(stats: dict[str, float], cfg, step: int, last_good: Path | None) -> None:
    """The logged means (since the last row) must be finite: ``TrainingDiverged`` naming them."""
    bad = [k for k, v in stats.items() if not math.isfinite(v)]
    if bad:
        raise diverged(cfg, step, f"logged {', '.join(bad)}", last_good)
