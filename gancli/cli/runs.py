"""``gancli runs``: the run folders under a folder, with their progress and state."""

from __future__ import annotations

from typing import Annotated

import typer

from gancli.cli._options import JsonOpt, emit_json, state

COLUMNS = ("run", "preset", "steps", "D loss", "G loss", "checkpoint", "state", "updated")


def _loss(losses: dict, *keys: str) -> str:
    """D's (or G's) last loss; CycleGAN logs one per domain: D_A + D_B."""
    if keys[0] in losses:
        return f"{losses[keys[0]]:.4f}"
    parts = [losses[k] for k in keys[1:] if k in losses]
    return f"{sum(parts):.4f}" if parts else "-"


def cells(info: dict) -> list[str]:
    steps = f"{info['step']}/{info['steps'] if info['steps'] is not None else '?'}"
    ckpt = (f"step {info['checkpoint_step']}" if info["checkpoint_step"] is not None
            else ("yes" if info["checkpoint"] else "-"))
    updated = (info["updated"] or "-").replace("T", " ")[:16]  # UTC, to the minute
    return [info["name"], info["preset"] or "?", steps, _loss(info["losses"], "d_loss", "d_a", "d_b"),
            _loss(info["losses"], "g_loss", "g_a", "g_b"), ckpt, info["state"], updated]


STYLE = {"running": "cyan", "finished": "green", "diverged": "red", "stopped": "yellow"}


def runs(
    ctx: typer.Context,
    folder: Annotated[str, typer.Argument(
        help="A folder of run folders (train's --out), or one run folder.")] = "runs",
    json_out: JsonOpt = False,
) -> None:
    """List the run folders: preset, steps done / total, last D and G losses, latest
    checkpoint, and state (running, finished, diverged, stopped).

    Examples:

      gancli runs

      gancli runs experiments/ --json
    """
    from gancli.runinfo import find_runs, summarize

    infos = [summarize(p) for p in find_runs(folder)]
    if json_out or state(ctx).json:
        emit_json({"folder": folder, "runs": infos})
        return
    if not infos:
        typer.echo(f"no run folders in {folder}", err=True)
        return
    from rich.console import Console

    console = Console()
    rows = [cells(i) for i in infos]
    if not console.is_terminal:  # plain aligned columns: easy to grep, cut and diff
        widths = [max(len(r[i]) for r in rows + [list(COLUMNS)]) for i in range(len(COLUMNS))]
        for r in [list(COLUMNS)] + rows:
            typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        return
    from rich.table import Table

    table = Table(title=f"runs in {folder}", title_justify="left")
    for i, col in enumerate(COLUMNS):
        if col in ("run", "preset", "updated"):  # these fold; numbers and states keep their width
            table.add_column(col, overflow="fold", min_width={"run": 10, "preset": 6}.get(col))
        else:
            table.add_column(col, no_wrap=True, justify="right" if "loss" in col else "left",
                             min_width=max(len(r[i]) for r in rows + [list(COLUMNS)]))
    for info, r in zip(infos, rows):
        r[6] = f"[{STYLE[info['state']]}]{r[6]}[/]"
        table.add_row(*r)
    console.print(table)
