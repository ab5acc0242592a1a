"""``gancli evaluate``: FID, KID, IS, precision/recall, density/coverage, TSTR and mode coverage."""

from __future__ import annotations

import math
from typing import Annotated, Optional

import typer

from gancli.cli._options import (DeviceOpt, JsonOpt, QuietOpt, ThresholdOpt, TruncationOpt, emit_json,
                                 output, state)
from gancli.errors import GancliError, UsageError, excerpt
from gancli.metrics import catalog

def _finite(obj):
    """JSON has no inf/nan: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    if float(v).is_integer() and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.6g}" if abs(v) >= 1e-3 else f"{v:.4e}"


# input side of each feature network (torch-fidelity's Inception resizes to 299; the digits CNN
# to 16): the most a folder is read at when --resolution is not given
NATIVE_SIZE = {"inception": 299, "digits": 16}


def working_resolution(*sources) -> dict | None:
    """Score every image side at one resolution: the smallest of the sides' (a folder's is
    already at most its smallest image), so nothing is upsampled. Larger sides are downsampled
    batch by batch. Returns {"working": px, "fake": px, "real": px or None}, or None without
    images."""
    sizes = [s.image_size()[0] if s is not None and s.image_size() else None for s in sources]
    known = [v for v in sizes if v is not None]
    if not known:
        return None
    res = min(known)
    for src in sources:
        if src is not None:
            src.set_working_resolution(res)
    return {"working": res, "fake": sizes[0], "real": sizes[1] if len(sizes) > 1 else None}


def run_paired(names, fake, real, settings, dev, progress) -> dict:
    from gancli.metrics.paired import evaluate_paired

    try:
        return evaluate_paired(names, fake, real, settings, dev, progress)
    except ValueError as e:  # too few pairs for a metric and the like
        raise GancliError(str(e).splitlines()[0], hint="use more pairs (--n)") from None


def render(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 160
    seeds = result["seeds"]
    title = (f"{result['fake']['spec']} vs {result['real']['spec']}" if result["real"] else
             result["fake"]["spec"])
    table = Table(title=title, title_justify="left")
    labels = catalog.labels()
    table.add_column("metric", no_wrap=True)
    table.add_column("value" if len(seeds) == 1 else f"mean ± std over {len(seeds)} seeds", no_wrap=True)
    for key, v in result["values"].items():
        value = _fmt(v["mean"]) if v["std"] is None else f"{_fmt(v['mean'])} ± {_fmt(v['std'])}"
        table.add_row(labels.get(key, key), value)
    console.print(table)
    lines = [f"samples: {result['samples']['fake']} generated/fake"
             + (f", {result['samples']['real']} real" if result["samples"]["real"] else "")]
    if result.get("resolution"):
        r = result["resolution"]
        sides = ", ".join(f"{k} {r[k]} px" for k in ("fake", "real") if r.get(k))
        lines.append(f"resolution: images scored at {r['working']}x{r['working']} px ({sides})")
    for side in ("fake", "real"):
        info = result[side] or {}
        if info.get("chosen_by"):
            lo, med, hi = info["short_sides"]
            lines.append(f"{side} folder: read at {info['resolution']} px ({info['chosen_by']}; "
                         f"short sides {lo}..{hi}, median {med}"
                         + (f"; {info['upsampled']} image(s) upsampled" if info.get("upsampled") else "")
                         + ")")
        lines += [f"note: {n}" for n in info.get("notes", [])]
    if result["features"]:
        f = result["features"]
        lines.append(f"features: {f['name']} ({f['dim']}-d), weights {f['weights']} sha256 {f['sha256']}")
    if result["real"] and result["real"].get("cache"):
        lines.append(f"real statistics: {result['real']['cache']}"
                     + (f" ({result['real']['cache_file']})" if result["real"].get("cache_file") else ""))
    lines += [f"note: {n}" for n in result["notes"]]
    for line in lines:
        console.print(line, highlight=False, markup=False)


def evaluate(
    ctx: typer.Context,
    metrics: Annotated[list[str], typer.Argument(
        metavar="METRIC", help=catalog.help_text(),
        show_default=False)],
    fake: Annotated[str, typer.Option(
        "--fake", help="Generated side: a run folder or checkpoint (samples made by seed, in "
                       "batches), an .npz of samples, an image folder or a built-in dataset.",
        show_default=False)],
    real: Annotated[Optional[str], typer.Option(
        "--real", help="Reference side: an image folder, built-in dataset (digits, shapes, "
                       "toy:grid25, ...), .npz of samples or statistics, or a model. Default: "
                       "the data a --fake model was trained on.", show_default=False)] = None,
    n: Annotated[Optional[int], typer.Option(
        "--n", "-n", min=2, max=1_000_000,
        help="Generated samples per seed [default: 10000; 2500 for modes alone].",
        show_default=False)] = None,
    n_real: Annotated[Optional[int], typer.Option(
        "--n-real", min=2, max=1_000_000, help="Real samples [default: all of the data; N for a model].",
        show_default=False)] = None,
    seeds: Annotated[Optional[str], typer.Option(
        "--seeds", help="Generation seeds, e.g. 0,1,2: everything is repeated per seed and "
                        "reported as mean ± std. Seed s uses sample seeds s*1e6 .. s*1e6+N-1.")] = None,
    features: Annotated[str, typer.Option(
        "--features", help="Feature network for fid/kid/is/prdc: inception (FID Inception, needs "
                           "its weights file) or digits (shipped offline digits CNN).")] = "inception",
    weights: Annotated[Optional[str], typer.Option(
        "--weights", help="Inception weights file (pt_inception-2015-12-05-6726825d.pth) "
                          "[env: GANCLI_INCEPTION_WEIGHTS].", show_default=False)] = None,
    download_weights: Annotated[bool, typer.Option(
        "--download-weights", help="Allow downloading the Inception weights into the torch hub "
                                   "cache (SHA-256 prefix checked) when they are not found.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=4096,
                                            help="Images per generator / feature batch.")] = 64,
    truncation: TruncationOpt = 1.0,
    truncation_threshold: ThresholdOpt = None,
    resolution: Annotated[Optional[int], typer.Option(
        "--resolution", min=4, max=4096,
        help="Working resolution (px) for image folders [default: the smallest image's short side, "
             "at most the feature network's input; required when sizes differ a lot].",
        show_default=False)] = None,
    tstr_epochs: Annotated[int, typer.Option("--tstr-epochs", min=1, max=1000,
                                             help="Training epochs of the TSTR/TRTR classifiers.")] = 30,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write cached "
                                                              "real statistics.")] = False,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score generated samples against real data, the way papers compute the numbers.

    FID/KID/IS as the TF reference computes them (torch-fidelity's Inception). See docs/evaluate.md.

    Examples:

      gancli evaluate fid kid is prdc --fake runs/dcgan-001 --real ./celeba --weights pt_inception.pth

      gancli evaluate fid is prdc --features digits --fake runs/dcgan-001 --real digits

      gancli evaluate tstr --fake runs/cgan-001 --seeds 0,1,2

      gancli evaluate modes --fake runs/wgan-gp-toy-001 --real toy:grid25
    """
    from gancli.metrics.evaluate import Settings
    from gancli.metrics.evaluate import evaluate as run_evaluation
    from gancli.metrics.sources import resolve_source
    from gancli.runtime import resolve_device
    from gancli.sampling import parse_seeds

    app = state(ctx)
    json_out, quiet = (mode := output(ctx, json_out, quiet)).json, mode.quiet
    asked = catalog.check_metrics(metrics)
    if features not in ("inception", "digits"):
        raise UsageError(f"unknown --features {excerpt(features)}", hint="use inception or digits")
    seed_list = parse_seeds(seeds, limit=1000) if seeds is not None else [0]
    dev = resolve_device(device or app.device)

    def progress(msg: str) -> None:
        if not (quiet or json_out):
            typer.echo(msg, err=True)

    from gancli.metrics.paired import is_paired_model

    if any(m.needs == "pairs" for m in asked) or is_paired_model(fake):
        # a paired translation model: its outputs on a paired test set against the targets
        settings = Settings(n=n, seeds=seed_list, batch_size=batch_size, features=features,
                            weights=weights, download=download_weights)
        result = run_paired([m.name for m in asked], fake, real, settings, dev, progress)
        if json_out:
            emit_json(_finite(result))
        else:
            render(result)
        return
    # the feature network's input side: reading a folder larger than this only costs memory
    cap = NATIVE_SIZE[features] if any(m.uses_features for m in asked) else None
    bar = None  # preparing an image folder into a store: a bar, never a blank screen
    if not (quiet or json_out):
        from gancli.data.progress import PrepareProgress

        bar = PrepareProgress("auto", label="preparing data")
    try:
        fake_src = resolve_source(fake, dev, resolution=resolution, cap=cap, prepare_progress=bar)
        if truncation_threshold is not None:
            from gancli.sampling import check_threshold

            if fake_src.kind != "generator":
                raise UsageError("--truncation-threshold draws a model's latents; --fake is not a "
                                 "model", hint="give a run folder or checkpoint as --fake")
            check_threshold(truncation_threshold, fake_src.model.cfg.model.z_dist)
        if real is None and fake_src.kind == "generator" and any(m.real != "none" for m in asked):
            real = fake_src.model.cfg.data.source
            progress(f"--real not given: using the model's training data, {real}")
        real_src = (resolve_source(real, dev, like=fake_src.image_size(), resolution=resolution,
                                   cap=cap, prepare_progress=bar) if real is not None else None)
    finally:
        if bar is not None:
            bar.close()
    working = working_resolution(fake_src, real_src)
    settings = Settings(n=n, n_real=n_real, seeds=seed_list, batch_size=batch_size, features=features,
                        weights=weights, download=download_weights, truncation=truncation,
                        threshold=truncation_threshold,
                        tstr_epochs=tstr_epochs, cache=not no_cache)
    try:
        result = run_evaluation([m.name for m in asked], real_src, fake_src, settings, dev, progress)
    except ValueError as e:  # too few samples for a metric and the like
        raise GancliError(str(e), hint="use more samples (--n, --n-real)") from None
    if working is not None:
        result["resolution"] = working
    if json_out:
        emit_json(_finite(result))
    else:
        render(result)
