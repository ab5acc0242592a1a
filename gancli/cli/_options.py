"""Options shared by several commands, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Optional

import typer


@dataclass
class AppState:
    """Global options from the root callback; a command's own flag wins over these."""

    device: Optional[str] = None
    quiet: bool = False
    json: bool = False


def state(ctx: typer.Context) -> AppState:
    return ctx.obj if isinstance(ctx.obj, AppState) else AppState()


@dataclass(frozen=True)
class Output:
    """How a command reports its result: JSON on stdout (``--json``), nothing but errors
    (``--quiet``), or one line on stderr."""

    json: bool = False
    quiet: bool = False

    def result(self, payload: dict, line: Callable[[], str]) -> None:
        if self.json:
            emit_json(payload)
        elif not self.quiet:
            typer.echo(line(), err=True)


def output(ctx: typer.Context, json_out: bool, quiet: bool) -> Output:
    """The command's own ``--json`` / ``--quiet``, or the global ones (``gancli --json CMD``)."""
    app = state(ctx)
    return Output(json_out or app.json, quiet or app.quiet)


DeviceOpt = Annotated[Optional[str], typer.Option(
    help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps [env: GANCLI_DEVICE].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and results.")]
RunArg = Annotated[str, typer.Argument(
    help="A run folder (runs/NAME-NNN) or a .safetensors checkpoint.", show_default=False)]
SeedsOpt = Annotated[Optional[str], typer.Option(
    "--seeds", help="Seeds: ranges and lists, e.g. 0-63 or 3,7,11. Seed s always gives the same "
                    "sample.")]
TruncationOpt = Annotated[float, typer.Option(
    "--truncation", "--truncation-scale", min=0.0,
    help="Scale latents toward the mean by PSI (1 = off).")]
ThresholdOpt = Annotated[Optional[float], typer.Option(
    "--truncation-threshold", metavar="T", show_default=False,
    help="BigGAN's truncation trick: redraw every latent value whose magnitude exceeds T until "
         "all lie in [-T, T] (smaller T: less variety, more fidelity; at least 0.01). Off when "
         "omitted; applied before --truncation.")]


def emit_json(payload: dict) -> None:
    import json

    typer.echo(json.dumps(payload))
