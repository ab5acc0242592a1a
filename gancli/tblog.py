"""TensorBoard events for a training run (``train.tensorboard`` / ``gancli train --tensorboard``).

A ``Reporter`` next to the terminal one: every logged row becomes scalars and every preview
grid an image, written with ``torch.utils.tensorboard`` into the run folder itself, so
``tensorboard --logdir runs`` shows one run per run folder. ``metrics.jsonl`` stays the record
that gancli reads; the events are a view of it.

Tags: ``train/KEY`` for the step statistics (``train/d_loss``, ``train/g_loss``,
``train/wdist``, ``train/gp``, ...), ``lr/lr_g`` and ``lr/lr_d``, ``speed/img_s`` (images per
second) and ``speed/elapsed_s`` (seconds), ``eval/KEY`` for the numbers a preview computes
(mode coverage of 2-D data), and the image ``samples`` (the preview PNG, HWC uint8 RGB).
The step axis is the generator step.

On a resume (or a roll-back) from step S, events after S are purged (``purge_step = S + 1``, S = 0 included):
the events then agree with ``metrics.jsonl``, whose rows after S are dropped too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gancli.extras import require
from gancli.reporting import Reporter

# row keys that are bookkeeping, not measurements
SKIP = {"step", "steps", "eta_s", "modes_total", "samples"}
GROUPS = {"lr_g": "lr", "lr_d": "lr", "img_s": "speed", "elapsed_s": "speed"}


def check_available() -> None:
    """Raise a one-line ``GancliError`` (hint: ``pip install "gancli[tensorboard]"``) if the
    ``tensorboard`` package that ``torch.utils.tensorboard`` writes with is missing."""
    require("tensorboard", "tensorboard", "--tensorboard")


def scalar_tag(key: str, group: str | None = None) -> str:
    return f"{group or GROUPS.get(key, 'train')}/{key}"


def numbers(row: dict[str, Any]) -> dict[str, float]:
    """The numeric fields of a row (booleans, strings and bookkeeping keys left out)."""
    return {k: float(v) for k, v in row.items()
            if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardReporter(Reporter):
    """Writes events under ``run_dir``; opened at ``start`` (each training attempt), closed
    by ``close``."""

    def __init__(self, run_dir: Path):
        check_available()
        self.run_dir = Path(run_dir)
        self.writer = None

    def start(self, info: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.close()
        start = int(info.get("start_step") or 0)
        # events after the start step are hidden: a resume, or a roll-back (to step 0 too)
        self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=start + 1)

    def step(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in numbers(row).items():
            self.writer.add_scalar(scalar_tag(key), value, row["step"])

    def event(self, kind: str, **fields: Any) -> None:
        if self.writer is None or kind != "sample":
            return
        import numpy as np
        from PIL import Image

        step = int(fields["step"])
        for key, value in numbers({k: v for k, v in fields.items() if k != "path"}).items():
            if math.isfinite(value):
                self.writer.add_scalar(scalar_tag(key, "eval"), value, step)
        with Image.open(fields["path"]) as img:
            pixels = np.asarray(img.convert("RGB"))
        self.writer.add_image("samples", pixels, step, dataformats="HWC")

    def done(self, summary: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
