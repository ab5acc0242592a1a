"""Reporters: how training events reach a person or a script.

The loop calls ``start``, ``step``, ``event`` and ``done`` with plain dicts and never
imports rich. ``RichReporter`` draws a live table on a terminal, ``PlainReporter``
prints one line per logged step (logs, CI, pipes), ``JsonlReporter`` prints one JSON
object per event on stdout and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

# (stats key, column title, format)
COLUMNS = [
    ("d_loss", "D loss", "{:.4f}"), ("g_loss", "G loss", "{:.4f}"),
    ("d_real", "D(x)", "{:.3f}"), ("d_fake", "D(G(z))", "{:.3f}"),
    ("wdist", "W dist", "{:.4f}"), ("gp", "GP", "{:.4f}"), ("r1", "R1", "{:.4f}"),
    ("cls_d", "cls D", "{:.4f}"), ("cls_g", "cls G", "{:.4f}"), ("acc_real", "acc(x)", "{:.3f}"),
    ("mi", "MI", "{:.3f}"), ("q_cont", "Q cont", "{:.4f}"), ("ms", "mode seek", "{:.4f}"),
    ("d_a", "D_A", "{:.4f}"), ("d_b", "D_B", "{:.4f}"), ("g_a", "G_A", "{:.4f}"),
    ("g_b", "G_B", "{:.4f}"), ("cycle_a", "cycle A", "{:.4f}"), ("cycle_b", "cycle B", "{:.4f}"),
    ("idt", "identity", "{:.4f}"), ("rec", "rec", "{:.4f}"), ("acc_fake", "acc(G)", "{:.3f}"),
    ("drift", "drift", "{:.4f}"), ("stage", "stage", "{:.2f}"), ("alpha", "alpha", "{:.3f}"),
    ("ortho", "ortho", "{:.4g}"),  # BigGAN's orthogonal penalty of G, before the beta factor
    ("pl", "PL", "{:.4f}"), ("ada_p", "ADA p", "{:.3f}"), ("ada_rt", "r_t", "{:.2f}"),
]


def fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Reporter:
    """The protocol, with no-op defaults."""

    def start(self, info: dict[str, Any]) -> None: ...
    def step(self, row: dict[str, Any]) -> None: ...
    def event(self, kind: str, **fields: Any) -> None: ...
    def done(self, summary: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def _data_line(info: dict) -> str:
    d = info.get("data_info") or {}
    extra = ""
    if "files" in d:
        extra = f" ({d['files']} files, {d.get('skipped', 0)} skipped, cache {d.get('cache')})"
    return f"data {info['data']}: {info['samples']} samples{extra}"


def next_steps(summary: dict[str, Any]) -> str:
    """The closing line of a finished run: where its samples are and what to run next.

    ``summary`` is the loop's ``done`` payload (``run_dir``, ``samples``: the newest grid or
    None, ``task``, ``data``, ``data_kind``). A translation model is translated, not sampled;
    digits are evaluated in the shipped digits CNN's features (offline), 2-D toy data by its
    modes, other images by FID/KID (Inception weights needed).
    """
    run = summary["run_dir"]
    where = f"samples: {summary['samples']}; " if summary.get("samples") else ""
    if summary.get("task") in ("translation", "multi-domain"):
        return f"{where}next: gancli translate --model {run} --in IMAGE --out translated.png"
    if summary.get("data_kind") == "points":
        evaluate = f"gancli evaluate modes --fake {run}"
    elif str(summary.get("data", "")).startswith("digits"):
        evaluate = f"gancli evaluate digits fid --features digits --fake {run}"
    else:
        evaluate = f"gancli evaluate fid kid --fake {run}"
    return f"{where}next: gancli sample {run} --seeds 0-63 --out grid.png, then {evaluate}"


class PlainReporter(Reporter):
    def __init__(self, stream: IO[str] | None = None, quiet: bool = False):
        self.out = stream or sys.stderr
        self.quiet = quiet

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, info):
        if self.quiet:
            return
        resumed = f", resuming at step {info['start_step']}" if info["start_step"] else ""
        self._print(f"run {info['run_dir']}: {info['preset']} on {info['device']}, "
                    f"{info['steps']} steps{resumed}")
        self._print(_data_line(info) + f"; G {info['params_G']:,} params, D {info['params_D']:,}")
        for note in (info.get("data_info") or {}).get("notes", []):
            self._print(f"note: {note}")

    def step(self, row):
        if self.quiet:
            return
        parts = [f"step {row['step']}/{row['steps']}"]
        parts += [f"{title} {fmt.format(row[key])}" for key, title, fmt in COLUMNS if key in row]
        parts += [f"{row['img_s']:.0f} img/s", f"eta {fmt_time(row['eta_s'])}"]
        self._print("  ".join(parts))

    def event(self, kind, **fields):
        if kind == "warning":  # something the user should know, even with --quiet
            self._print(fields["text"])
        if self.quiet:
            return
        if kind == "sample" and "modes" in fields:
            self._print(f"samples {fields['path']}  modes {fields['modes']}/{fields['modes_total']}"
                        f"  high quality {100 * fields['high_quality']:.1f}%"
                        f"  reverse KL {fields['reverse_kl']:.3f}")
        elif kind in ("sample", "checkpoint"):
            self._print(f"{'samples' if kind == 'sample' else 'checkpoint'} {fields['path']}")
        elif kind == "message":
            self._print(fields["text"])

    def done(self, summary):
        if self.quiet:
            return
        self._print(f"done: {summary['step']} steps in {fmt_time(summary['seconds'])}; "
                    f"checkpoint {summary['checkpoint']}")
        if "task" in summary:
            self._print(next_steps(summary))


class JsonlReporter(Reporter):
    def __init__(self, stream: IO[str] | None = None):
        self.out = stream or sys.stdout

    def _emit(self, event: str, payload: dict) -> None:
        self.out.write(json.dumps({"event": event, **payload}) + "\n")
        self.out.flush()

    def start(self, info):
        self._emit("start", info)

    def step(self, row):
        self._emit("step", row)

    def event(self, kind, **fields):
        self._emit(kind, fields)

    def done(self, summary):
        self._emit("done", summary)


def render_stats(rows: list[dict[str, Any]], info: dict[str, Any]):
    """A pure function: the recent logged rows -> a rich Table (redrawn by Live)."""
    from rich.table import Table

    keys = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    table = Table(title=f"{info.get('preset', '')}  {info.get('run_dir', '')}", title_justify="left",
                  expand=False, header_style="bold")
    table.add_column("step", justify="right")
    for _, title, _ in keys:
        table.add_column(title, justify="right")
    table.add_column("lr G / D", justify="right")
    table.add_column("img/s", justify="right")
    table.add_column("ETA", justify="right")
    for r in rows:
        cells = [f"{r['step']}/{r['steps']}"]
        cells += [fmt.format(r[k]) if k in r else "" for k, _, fmt in keys]
        cells += [f"{r['lr_g']:.1e} / {r['lr_d']:.1e}", f"{r['img_s']:.0f}", fmt_time(r["eta_s"])]
        table.add_row(*cells)
    return table


class RichReporter(Reporter):
    """A live table of the last logged steps plus a progress bar, on stderr."""

    def __init__(self, history: int = 12):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.history = history
        self.rows: list[dict] = []
        self.info: dict = {}
        self.live = None
        self.progress = None
        self.task = None

    def _group(self):
        from rich.console import Group

        return Group(render_stats(self.rows, self.info), self.progress)

    def start(self, info):
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
            TimeRemainingColumn

        self.info = info
        self.console.print(f"[bold]run[/] {info['run_dir']}: {info['preset']} on {info['device']}")
        self.console.print(_data_line(info) + f"; G {info['params_G']:,} params, "
                           f"D {info['params_D']:,}", highlight=False)
        for note in (info.get("data_info") or {}).get("notes", []):
            self.console.print(f"note: {note}", highlight=False, markup=False)
        self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=self.console)
        self.task = self.progress.add_task("train", total=info["steps"],
                                           completed=info["start_step"])
        self.live = Live(self._group(), console=self.console, refresh_per_second=4)
        self.live.start()

    def step(self, row):
        self.rows = (self.rows + [row])[-self.history:]
        self.progress.update(self.task, completed=row["step"])
        self.live.update(self._group())

    def event(self, kind, **fields):
        if kind == "sample" and "modes" in fields:
            self.console.print(f"samples {fields['path']}  modes {fields['modes']}/"
                               f"{fields['modes_total']}  high quality "
                               f"{100 * fields['high_quality']:.1f}%  reverse KL "
                               f"{fields['reverse_kl']:.3f}", highlight=False)
        elif kind in ("sample", "checkpoint"):
            self.console.print(f"[dim]{kind} {fields['path']}[/]", highlight=False)
        elif kind in ("message", "warning"):  # e.g. why --compile fell back to eager
            self.console.print(fields["text"], style="yellow", markup=False, highlight=False)

    def done(self, summary):
        self.close()
        self.console.print(f"[green]done[/]: {summary['step']} steps in "
                           f"{fmt_time(summary['seconds'])}; checkpoint {summary['checkpoint']}")
        if "task" in summary:
            self.console.print(next_steps(summary), highlight=False, markup=False)

    def close(self):
        if self.live is not None:
            self.live.stop()
            self.live = None


class GuardedOutput(Reporter):
    """Output is never a reason to stop training. The first ``OSError`` a reporter raises (a
    closed pipe: ``gancli train --json | head -1``, whose ``BrokenPipeError`` Python raises as
    it ignores SIGPIPE; a closed terminal: EIO) switches all further output off: the dead
    stream is pointed at ``os.devnull`` (so the interpreter's final flush is quiet too) and one
    line goes to stderr, if stderr is still alive. Checkpoints and ``metrics.jsonl`` go on."""

    def __init__(self, inner: Reporter):
        self.inner = inner
        self.failed: OSError | None = None

    def _call(self, method: str, *args, **kwargs) -> None:
        if self.failed is not None:
            return
        try:
            getattr(self.inner, method)(*args, **kwargs)
        except OSError as e:
            self.failed = e
            silence_dead_streams()
            try:
                print(f"warning: output stopped ({e.strerror or type(e).__name__}); training goes "
                      "on, checkpoints and metrics.jsonl are still written", file=sys.stderr,
                      flush=True)
            except (OSError, ValueError):
                silence_dead_streams()

    def start(self, info):
        self._call("start", info)

    def step(self, row):
        self._call("step", row)

    def event(self, kind, **fields):
        self._call("event", kind, **fields)

    def done(self, summary):
        self._call("done", summary)

    def close(self):
        self._call("close")


def guard_output(reporter: Reporter) -> Reporter:
    """``reporter`` wrapped in ``GuardedOutput`` (once)."""
    return reporter if isinstance(reporter, GuardedOutput) else GuardedOutput(reporter)


def silence_dead_streams() -> None:
    """Point stdout / stderr at ``os.devnull`` where a flush fails (closed pipe or terminal)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):  # no real file descriptor
                pass


class FanOut(Reporter):
    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def start(self, info):
        for r in self.reporters:
            r.start(info)

    def step(self, row):
        for r in self.reporters:
            r.step(row)

    def event(self, kind, **fields):
        for r in self.reporters:
            r.event(kind, **fields)

    def done(self, summary):
        for r in self.reporters:
            r.done(summary)

    def close(self):
        for r in self.reporters:
            r.close()


def make_reporter(json_mode: bool, quiet: bool, interactive: bool | None = None) -> Reporter:
    """``--json``: JSON lines on stdout; a terminal: the live table; otherwise plain lines."""
    if json_mode:
        return JsonlReporter()
    if interactive is None:
        interactive = sys.stderr.isatty()
    if quiet or not interactive:
        return PlainReporter(quiet=quiet)
    return RichReporter()
