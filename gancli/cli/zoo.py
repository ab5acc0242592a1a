"""``gancli zoo``: the presets, their papers, and whether this version can train them."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from gancli.cli._options import JsonOpt, emit_json, state


def preset_summary(ref) -> dict:
    from gancli.presets import availability, resolve_preset

    cfg = resolve_preset(str(ref.path) if ref.source == "file" else ref.name)
    missing = availability(cfg)
    return {"name": ref.name, "task": cfg.task, "family": cfg.model.family, "loss": cfg.loss.name,
            "regularizers": cfg.regularizers, "paper": cfg.paper.title, "year": cfg.paper.year,
            "arxiv": cfg.paper.arxiv, "data": cfg.data.source, "source": ref.source,
            "available": missing is None, "missing": missing, "description": cfg.description}


def zoo(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="Show one preset in full.",
                                                  show_default=False)] = None,
    pattern: Annotated[str, typer.Option("--filter", help="Wildcard over names, e.g. '*gan*'.")] = "*",
    json_out: JsonOpt = False,
) -> None:
    """List the presets with their papers, or show one preset in full.

    Examples:

      gancli zoo

      gancli zoo wgan-gp

      gancli zoo --filter 'wgan*' --json
    """
    from gancli.presets import find_preset, list_presets, resolve_preset

    json_out = json_out or state(ctx).json
    if name:
        ref = find_preset(name)
        cfg = resolve_preset(name)
        info = preset_summary(ref)
        if json_out:
            emit_json({**info, "config": cfg.to_dict()})
            return
        status = "available" if info["available"] else f"unavailable: {info['missing']}"
        typer.echo(f"# {ref.name} ({status})\n# {cfg.paper.title}, {cfg.paper.authors}, "
                   f"{cfg.paper.year}, arXiv:{cfg.paper.arxiv}\n# file: {ref.path}")
        typer.echo(cfg.to_yaml().rstrip())
        return
    rows = [preset_summary(ref) for ref in list_presets(pattern)]
    if json_out:
        emit_json({"presets": rows})
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 160  # piped: do not fold the table to 80 columns
    table = Table(title="gancli presets (gancli zoo NAME for one in full)", title_justify="left")
    for col in ("name", "task", "family", "loss", "regularisers", "year", "available"):
        table.add_column(col, no_wrap=True)
    table.add_column("paper", overflow="ellipsis", no_wrap=True, max_width=60)
    for r in rows:
        table.add_row(r["name"], r["task"], r["family"], r["loss"], ", ".join(r["regularizers"]) or "-",
                      str(r["year"]), "yes" if r["available"] else "[dim]not yet[/]", r["paper"])
    console.print(table)
