"""``gancli export``: a run's generator as an ONNX or TorchScript file, checked after writing."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from gancli.cli._options import JsonOpt, QuietOpt, RunArg, nonempty_path, output


def export(
    ctx: typer.Context,
    run: RunArg,
    format_: Annotated[Optional[str], typer.Option(
        "--format", "-f", help="onnx or torchscript [default: from the --out suffix: .onnx, "
                               ".pt]", show_default=False)] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="The file to write (.onnx, .pt).",
                                     callback=nonempty_path)
                   ] = "G.onnx",
    direction: Annotated[Optional[str], typer.Option(
        help="CycleGAN: the generator to export, a2b (the default) or b2a.",
        show_default=False)] = None,
    ema: Annotated[bool, typer.Option(
        "--ema/--no-ema", help="Export the EMA generator when the run kept one (as `gancli "
                               "sample` uses), or the raw one.")] = True,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export the generator to ONNX or TorchScript, then run the file on seeds 0-7 and compare
    it with `gancli sample` / `gancli translate` (refused above 1e-4).

    Inputs: z (N, z_dim) float32, plus labels (N,) int64 for conditional models or codes for
    InfoGAN; CycleGAN and StarGAN take image (N, C, H, W) in [-1, 1] (StarGAN also target).
    Output: images in [-1, 1]. The batch size is dynamic. ONNX needs gancli[export].

    Examples:

      gancli export runs/dcgan-001 --out G.onnx

      gancli export runs/cgan-001 --format torchscript --out G.pt

      gancli export runs/cyclegan-001 --direction b2a --out b2a.onnx
    """
    from gancli.export import export as run_export

    report = run_export(run, out, format_, direction, ema)
    output(ctx, json_out, quiet).result(report, lambda: describe(report))


def describe(report: dict) -> str:
    """The one-line summary of an export."""
    extra = (f", {report['max_abs_diff_2x']:.2e} at twice the resolution"
             if "max_abs_diff_2x" in report else "")
    return (f"{report['format']} {report['out']}: {report['bytes']:,} bytes; "
            f"{report['preset']} step {report['step']} ({report['weights']}); inputs "
            f"{', '.join(report['inputs'])} -> {report['output']}, dynamic "
            f"{', '.join(report['dynamic'])}; max |diff| vs PyTorch on seeds 0-7 "
            f"{report['max_abs_diff']:.2e}{extra} (tolerance {report['tolerance']:g})")
