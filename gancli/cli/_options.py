"""Options shared by several commands, as ``Annotated`` aliases."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Callable, Optional

import typer

from gancli.errors import UsageError


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


def finite(ctx: typer.Context, param: typer.CallbackParam, value: float | None) -> float | None:
    """Callback for every float option: refuse ``nan``, ``inf`` and ``-inf`` (exit 2).

    Click parses them as floats, its ``min``/``max`` bounds let ``nan`` through (every
    comparison with it is false) and an infinite truncation scale turns every sample black.
    """
    if value is not None and not math.isfinite(value):
        name = param.opts[0] if param.opts else param.name
        raise UsageError(f"{name} {value}: not a finite number", hint=f"give {name} a number, e.g. "
                                                                      f"{param.default or 1}")
    return value


def at_least(low: float, example: str):
    """A callback for a float option: ``finite``, and not below ``low``, as one line (exit 2)
    where click's own range check would print a boxed panel (and let ``nan`` past some)."""
    def check(ctx: typer.Context, param: typer.CallbackParam, value: float | None) -> float | None:
        value = finite(ctx, param, value)
        if value is not None and value < low:
            raise UsageError(f"{param.opts[0]} {value:g} is below {low:g}",
                             hint=f"for example {param.opts[0]} {example}")
        return value
    return check


def nonempty_path(ctx: typer.Context, param: typer.CallbackParam, value):
    """Callback for every ``--out``: refuse an empty or blank path (exit 2), which the
    filesystem reads as the current folder (``--out ""`` wrote one file per sample there)."""
    if value is not None and not str(value).strip():
        raise UsageError(f"{param.opts[0]} is empty", hint=f"give a file or folder, e.g. "
                                                           f"{param.opts[0]} out.png")
    return value


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
    "--truncation", "--truncation-scale", callback=at_least(0, "0.7 (0 gives the mean, 1 is off)"),
    help="Scale latents toward the mean by PSI (1 = off).")]
ThresholdOpt = Annotated[Optional[float], typer.Option(
    "--truncation-threshold", metavar="T", show_default=False, callback=finite,
    help="BigGAN's truncation trick: redraw every latent value whose magnitude exceeds T until "
         "all lie in [-T, T] (smaller T: less variety, more fidelity; at least 0.01). Off when "
         "omitted; applied before --truncation.")]


def emit_json(payload: dict) -> None:
    import json

    typer.echo(json.dumps(payload))
