"""Progress of a long data step (preparing a store): a rich bar with files/s and ETA on a
terminal, a plain line every few seconds otherwise, JSON events with ``--json``."""

from __future__ import annotations

import json
import sys
import time
from typing import IO

from gancli.reporting import fmt_time

PLAIN_EVERY_S = 5.0
JSON_EVERY_S = 1.0


class PrepareProgress:
    """Callable with the dicts ``gancli.data.prepare.prepare`` reports; ``close()`` when done.

    A dict with a ``part`` (``"trainA"``: a caller preparing several folders in turn) is
    labelled with it, and a new part starts a new bar."""

    def __init__(self, mode: str = "auto", stream: IO[str] | None = None, label: str = "decoding"):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "rich" if self.stream.isatty() else "plain"
        self.mode, self.label = mode, label
        self._last = 0.0
        self._bar = self._task = None
        self._part = None  # several folders in turn (``part``: translation domains): one bar each

    def __call__(self, p: dict) -> None:
        now = time.monotonic()
        final = p["done"] >= p["total"]
        if self.mode == "rich":
            self._rich(p)
        elif self.mode == "plain" and (now - self._last >= PLAIN_EVERY_S or final):
            self._last = now
            pct = 100.0 * p["done"] / max(p["total"], 1)
            where = f" {p['part']}" if p.get("part") else ""
            print(f"{self.label}{where}: {p['done']}/{p['total']} files ({pct:.0f}%), {p['files_s']:.0f} "
                  f"files/s, ETA {fmt_time(p['eta_s'])}, {p['skipped']} skipped",
                  file=self.stream, flush=True)
        elif self.mode == "json" and (now - self._last >= JSON_EVERY_S or final):
            self._last = now
            print(json.dumps({"event": "prepare", **{k: (round(v, 2) if isinstance(v, float) else v)
                                                      for k, v in p.items()}}),
                  file=self.stream, flush=True)

    def _rich(self, p: dict) -> None:
        if self._bar is not None and p.get("part") != self._part:
            self._task = None
        if self._bar is None:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]} files/s"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[skipped]} skipped"),
                                 console=Console(file=self.stream), transient=False)
            self._bar.start()
        if self._task is None:
            self._part = p.get("part")
            label = self.label + (f" {self._part}" if self._part else "")
            self._task = self._bar.add_task(label, total=p["total"], completed=p["done"],
                                            rate="-", skipped=0)
        self._bar.update(self._task, completed=p["done"], rate=f"{p['files_s']:.0f}",
                         skipped=p["skipped"])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

