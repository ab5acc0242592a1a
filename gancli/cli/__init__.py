"""The ``gancli`` command line: a thin Typer shell over the library.

No torch import at module level anywhere under ``gancli.cli``: ``gancli --help`` must
stay instant. Every user error is a ``GancliError``, printed by ``main`` as one line
plus a hint with its exit code; set ``GANCLI_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from gancli import __version__
from gancli.cli import data, evaluate, export, interpolate, plot, runs, sample, train, translate, zoo
from gancli.cli._options import AppState
from gancli.errors import EXIT_ERROR, GancliError

app = typer.Typer(
    name="gancli",
    help="Train, sample, interpolate and evaluate GANs from one command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gancli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    device: Annotated[Optional[str], typer.Option(
        help="Default device for every command: auto, cpu, cuda, cuda:N, mps "
             "[env: GANCLI_DEVICE].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and results.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """gancli: a command-line GAN workbench.

    Examples:

      gancli train dcgan                      # built-in digits, no download

      gancli train wgan-gp-toy --steps 3000   # 25-Gaussian grid

      gancli sample runs/dcgan-001 --seeds 0-63 --out grid.png

      gancli translate --model runs/cyclegan-001 --in photo.jpg --out photo-b.jpg

      gancli evaluate fid is --features digits --fake runs/dcgan-001

      gancli zoo
    """
    ctx.obj = AppState(device=device, quiet=quiet, json=json_out)


app.command("train")(train.train)
app.command("sample")(sample.sample)
app.command("interpolate")(interpolate.interpolate)
app.command("translate")(translate.translate)
app.command("evaluate")(evaluate.evaluate)
app.command("zoo")(zoo.zoo)
app.command("export")(export.export)
app.command("plot")(plot.plot)
app.command("runs")(runs.runs)
app.add_typer(data.app, name="data")


def report_error(err: GancliError) -> None:
    """One line for the error, one for the hint; red on a terminal. A dead stderr (the terminal
    was closed: SIGHUP) is not a second error: the exit code still says what happened."""
    from gancli.reporting import silence_dead_streams

    try:
        tty = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
        red, dim, reset = ("\x1b[31m", "\x1b[2m", "\x1b[0m") if tty else ("", "", "")
        print(f"{red}error:{reset} {err.message}", file=sys.stderr)
        if err.hint:
            print(f"{dim}hint:{reset} {err.hint}", file=sys.stderr)
        sys.stderr.flush()
    except (OSError, ValueError):
        silence_dead_streams()


# What to lower when a command runs out of memory: each names the sizes that command controls.
MEMORY_HINTS = {
    "train": "lower the batch size (--batch-size), data.resolution or the model widths "
             "(--set model.g_width=... --set model.d_width=...)",
    "evaluate": "lower --batch-size, score fewer samples (--n, --n-real), or read image folders "
                "at a smaller --resolution",
    "sample": "ask for fewer samples (--n, --seeds)",
    "interpolate": "walk through fewer seeds or use a smaller --steps",
    "translate": "use a smaller working size (--size)",
}


def command_of(argv: list[str] | None) -> str | None:
    """The sub-command named on a command line (``train``, ``evaluate``...), or None."""
    for arg in (sys.argv[1:] if argv is None else argv):
        if arg in MEMORY_HINTS or arg == "zoo":
            return arg
    return None


def environment_error(err: BaseException, command: str | None = None) -> GancliError:
    """A one-line error for a failure of the machine rather than of gancli; an out-of-memory
    hint names what the command that ran (``command``) can make smaller."""
    if isinstance(err, MemoryError):
        return GancliError(f"out of memory{f' in {command}' if command else ''}",
                           hint=MEMORY_HINTS.get(command or "", "use smaller sizes (batch size, "
                                                 "resolution, number of samples)"))
    assert isinstance(err, OSError)
    where = f" ({err.filename})" if getattr(err, "filename", None) else ""
    return GancliError(f"{err.strerror or type(err).__name__}{where}",
                       hint="check the path, its permissions and the free disk space")


def main(argv: list[str] | None = None) -> None:
    debug = bool(os.environ.get("GANCLI_DEBUG"))
    try:
        app(args=argv, prog_name="gancli")
    except GancliError as err:
        if debug:
            raise
        report_error(err)
        sys.exit(err.exit_code)
    except (MemoryError, OSError) as err:  # the machine, not the code: out of memory, disk, I/O
        if debug:
            raise
        report_error(environment_error(err, command_of(argv)))
        sys.exit(EXIT_ERROR)
    except Exception as err:  # a bug, not a user error: still no wall of text by default
        if debug:
            raise
        if "out of memory" in str(err) or "can't allocate memory" in str(err):  # torch's OOM errors
            report_error(environment_error(MemoryError(), command_of(argv)))
            sys.exit(EXIT_ERROR)
        text = " ".join(str(err).split())
        text = text if len(text) <= 200 else text[:197] + "..."
        report_error(GancliError(f"internal error: {type(err).__name__}: {text}",
                                 hint="rerun with GANCLI_DEBUG=1 for the traceback and report it"))
        sys.exit(EXIT_ERROR)
