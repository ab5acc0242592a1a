"""``gancli plot``: training curves of one or more runs from their metrics.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import JsonOpt, QuietOpt, emit_json, finite, nonempty_path, output
from gancli.errors import UsageError


def plot(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(
        help="Run folders (or metrics.jsonl files), drawn overlaid.", show_default=False)],
    out: Annotated[Optional[str], typer.Option(
        "--out", "-o", help="The figure: .png, .svg or .pdf [default: curves.png; with --json, "
                            "no figure unless given].", show_default=False, callback=nonempty_path)] = None,
    metrics: Annotated[Optional[str], typer.Option(
        "--metrics", "-m", help="Comma-separated keys, e.g. d_loss,g_loss [default: every "
                                "logged loss, estimate, penalty, learning rate and evaluation "
                                "number].", show_default=False)] = None,
    smooth: Annotated[float, typer.Option(
        min=0.0, max=0.999, callback=finite, help="EMA smoothing weight (0.9 = strong), TensorBoard's "
                                 "debiased EMA; 0 = off.")] = 0.0,
    window: Annotated[int, typer.Option(
        min=0, help="Smooth with the trailing mean of this many logged rows instead; "
                    "0 = off.")] = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Plot losses, the Wasserstein estimate, penalties, learning rates and evaluation numbers
    against the step, one subplot per metric, several runs overlaid. Needs gancli[plot].

    Examples:

      gancli plot runs/dcgan-001 runs/dcgan-002 --out curves.png

      gancli plot runs/wgan-gp-toy-001 --metrics wdist,gp --smooth 0.9

      gancli plot runs/dcgan-001 --metrics d_loss,g_loss --json
    """
    from gancli import plotting
    from gancli.fileio import atomic_write_bytes

    out_mode = output(ctx, json_out, quiet)
    json_out = out_mode.json
    if smooth and window:
        raise UsageError("give --smooth or --window, not both",
                          hint="--smooth 0.9 (EMA) or --window 20 (trailing mean)")
    wanted = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    if metrics is not None and not wanted:
        raise UsageError("--metrics names no metric", hint="for example --metrics d_loss,g_loss")
    curves = [plotting.load_curves(r) for r in runs]
    plotting.label_runs(curves)
    keys = plotting.choose_metrics(curves, wanted)
    target = out if out is not None else (None if json_out else "curves.png")
    written = None
    if target is not None:
        path = Path(target).expanduser()
        fmt = plotting.FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise UsageError(f"unsupported output '{target}'", hint="use a .png, .svg or .pdf file")
        data = plotting.render(curves, keys, fmt, smooth, window)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        written = str(path)
    if json_out:
        emit_json({"out": written, "metrics": keys, "smooth": smooth, "window": window,
                   "runs": plotting.series_json(curves, keys, smooth, window)})
    elif not out_mode.quiet:
        skipped = sum(c.skipped for c in curves)
        note = f"; {skipped} damaged line(s) of metrics.jsonl skipped" if skipped else ""
        typer.echo(f"{len(keys)} metric(s) of {len(curves)} run(s) -> {written}{note}", err=True)
