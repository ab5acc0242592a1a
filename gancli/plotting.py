"""Training curves from ``metrics.jsonl``: the series, their smoothing, and a matplotlib figure.

A series is one numeric key of the logged rows (``d_loss``, ``g_loss``, ``wdist``, ``gp``,
``lr_g``, the preview's ``modes`` ...) against the generator step; rows that mark an event
(``"event": "rollback"``) and bookkeeping keys (``BOOKKEEPING``) are left out. The log is read
through ``gancli.runlog.read_metrics``, so damaged lines are skipped (and counted), never fatal.

Smoothing: ``ema(values, alpha)`` is the debiased exponential moving average that TensorBoard
draws, s_t = alpha s_{t-1} + (1 - alpha) x_t divided by 1 - alpha^t; ``window_mean(values, n)``
is the trailing mean of the last n values. Both skip non-finite values (NaN/inf stay in the raw
series as gaps). The figure is drawn with matplotlib's object API on the Agg canvas (no display,
no global backend switch): one subplot per metric, one colour per run, a legend of run names.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from gancli.errors import GancliError, UsageError
from gancli.runlog import read_metrics

# keys of a logged row that describe the run's pace, not its training
BOOKKEEPING = {"step", "steps", "eta_s", "elapsed_s", "img_s", "modes_total", "samples"}
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


@dataclass
class RunCurves:
    """The series of one run: ``series[key] = (steps, values)``, in step order."""

    path: Path
    label: str
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    skipped: int = 0  # damaged lines of metrics.jsonl
    log: Path | None = None  # the metrics.jsonl read


def metrics_file(run: str | Path) -> Path:
    """A run folder (or its metrics.jsonl itself) -> the metrics.jsonl path."""
    p = Path(run).expanduser()
    if p.is_dir():
        p = p / "metrics.jsonl"
    if not p.is_file():
        raise GancliError(f"no metrics.jsonl in {run}" if Path(run).expanduser().is_dir()
                          else f"no such run folder or metrics file: {run}",
                          hint="pass run folders such as runs/dcgan-001 (see `gancli runs`)")
    return p


def load_curves(run: str | Path) -> RunCurves:
    """Read one run's series (``GancliError`` if it has no readable metrics.jsonl)."""
    path = metrics_file(run)
    try:
        rows, skipped = read_metrics(path)
    except OSError as e:
        raise GancliError(f"cannot read {path}: {e.strerror or e}",
                          hint="check the file's permissions") from None
    folder = path.parent
    curves = RunCurves(folder, folder.name, skipped=skipped, log=path)
    points: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if "event" in row or "step" not in row:
            continue
        for key, value in row.items():
            if key in BOOKKEEPING or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            points.setdefault(key, []).append((row["step"], float(value)))
    for key, pts in points.items():
        pts.sort(key=lambda p: p[0])  # stable: a step logged twice keeps file order
        curves.series[key] = ([s for s, _ in pts], [v for _, v in pts])
    return curves


def label_runs(curves: list[RunCurves]) -> None:
    """Folder names as labels; the whole path where two runs share a folder name."""
    names = [c.label for c in curves]
    for c in curves:
        if names.count(c.label) > 1:
            c.label = str(c.path)


def ema(values: list[float], alpha: float) -> list[float]:
    """Debiased EMA (TensorBoard's smoothing); non-finite inputs give NaN and are skipped."""
    out, acc, weight = [], 0.0, 0.0
    for x in values:
        if not math.isfinite(x):
            out.append(math.nan)
            continue
        acc = alpha * acc + (1 - alpha) * x
        weight = alpha * weight + (1 - alpha)
        out.append(acc / weight)
    return out


def window_mean(values: list[float], n: int) -> list[float]:
    """Trailing mean of the last ``n`` finite values at each point (NaN where x is not finite)."""
    out, recent = [], []
    for x in values:
        if not math.isfinite(x):
            out.append(math.nan)
            continue
        recent = (recent + [x])[-n:]
        out.append(sum(recent) / len(recent))
    return out


def smoothed(values: list[float], smooth: float = 0.0, window: int = 0) -> list[float] | None:
    if window > 1:
        return window_mean(values, window)
    if smooth > 0:
        return ema(values, smooth)
    return None


def choose_metrics(curves: list[RunCurves], requested: list[str] | None) -> list[str]:
    """The requested keys (each must be in some run), or every key in first-seen order with
    D's and G's losses first."""
    available: list[str] = []
    for c in curves:
        available += [k for k in c.series if k not in available]
    if not available:
        raise GancliError("no numeric metrics in " + ", ".join(str(c.log or c.path) for c in curves),
                          hint="a run logs a row every train.log_every steps; train it longer")
    if requested:
        missing = [k for k in requested if k not in available]
        if missing:
            raise UsageError(f"no metric {', '.join(missing)} in these runs",
                              hint=f"available: {', '.join(available)}")
        return requested
    first = [k for k in ("d_loss", "g_loss") if k in available]
    return first + [k for k in available if k not in first]


def titles() -> dict[str, str]:
    from gancli.reporting import COLUMNS

    names = {key: title for key, title, _ in COLUMNS}
    names.update({"lr_g": "G learning rate", "lr_d": "D learning rate", "modes": "modes covered",
                  "high_quality": "high-quality fraction", "reverse_kl": "reverse KL"})
    return names


def render(curves: list[RunCurves], metrics: list[str], out_format: str = "png",
           smooth: float = 0.0, window: int = 0) -> bytes:
    """The figure as PNG/SVG/PDF bytes: one subplot per metric, runs overlaid, step on x.

    With smoothing, the raw curve is drawn faint and the smoothed one on top.
    """
    from gancli.extras import require

    require("matplotlib", "plot", "gancli plot")
    from matplotlib.figure import Figure

    cols = 2 if len(metrics) == 4 else min(3, len(metrics))  # 4 as 2x2, not 3 + 1
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    names = titles()
    colours = [f"C{i % 10}" for i in range(len(curves))]
    for ax, key in zip(axes, metrics):
        for c, colour in zip(curves, colours):
            if key not in c.series:
                continue
            steps, values = c.series[key]
            smooth_values = smoothed(values, smooth, window)
            marker = "o" if len(steps) == 1 else None
            if smooth_values is None:
                ax.plot(steps, values, color=colour, label=c.label, marker=marker, linewidth=1.2)
            else:
                ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8, marker=marker)
                ax.plot(steps, smooth_values, color=colour, label=c.label, linewidth=1.4)
        ax.set_title(f"{key} ({names[key]})" if key in names else key, fontsize=10)
        ax.set_xlabel("generator step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in axes[:len(metrics)]:  # a run missing from the first subplot still gets its entry
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=min(4, len(labels)),
                   fontsize=9, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format=out_format, dpi=100)
    return buf.getvalue()


def series_json(curves: list[RunCurves], metrics: list[str], smooth: float = 0.0,
                window: int = 0) -> list[dict]:
    """The plotted series as JSON-ready dicts (NaN/inf as null)."""

    def clean(xs):
        return [x if math.isfinite(x) else None for x in xs]

    out = []
    for c in curves:
        series = {}
        for key in metrics:
            if key not in c.series:
                continue
            steps, values = c.series[key]
            entry = {"step": steps, "value": clean(values)}
            s = smoothed(values, smooth, window)
            if s is not None:
                entry["smoothed"] = clean(s)
            series[key] = entry
        out.append({"run": str(c.path), "label": c.label, "skipped_lines": c.skipped,
                    "series": series})
    return out
