"""``gancli sample``: images (or 2-D points) from a trained generator, by seed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import (DeviceOpt, JsonOpt, QuietOpt, RunArg, SeedsOpt, ThresholdOpt,
                                 TruncationOpt, output, state)
from gancli.errors import GancliError, UsageError, excerpt


def pick_seeds(n: Optional[int], seeds: Optional[str], default: int = 64) -> list[int]:
    from gancli.sampling import parse_seeds

    if n is not None and seeds:
        raise UsageError("give --n or --seeds, not both", hint="--seeds 0-63 is the same as --n 64")
    if seeds:
        return parse_seeds(seeds)
    return list(range(n if n is not None else default))


def write_outputs(model, out: str, seeds: list[int], samples, nrow: Optional[int],
                  labels=None, codes=None) -> list[str]:
    """Write a grid / scatter plot, one file per seed (``out`` is a folder), or an ``.npz``."""
    import numpy as np

    from gancli import imaging
    from gancli.fileio import atomic_write_bytes

    path = Path(out).expanduser()
    points = model.spec.kind == "points"
    if out.endswith(("/", "\\")) or path.is_dir():
        if points:
            raise GancliError("2-D samples cannot be written one file per seed",
                              hint="use --out samples.png (scatter plot) or --out samples.npz")
        path.mkdir(parents=True, exist_ok=True)
        images = imaging.to_uint8(samples)
        written = []
        names = [f"seed-{s:06d}" for s in seeds]
        if labels is not None:
            names = [f"{n}-class-{model.classes[int(y)]}" for n, y in zip(names, labels)]
        for name, img in zip(names, images):
            target = path / f"{name}.png"
            imaging.save_image(imaging.to_pil(img), target)
            written.append(str(target))
        return written
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arr = samples.numpy().astype(np.float32) if points else \
            imaging.to_uint8(samples).permute(0, 2, 3, 1).numpy()  # NHWC
        buf = io.BytesIO()
        extra = {"labels": labels.numpy().astype(np.int64)} if labels is not None else {}
        if codes is not None:
            extra["codes"] = codes.numpy().astype(np.float32)
        np.savez(buf, samples=arr, seeds=np.asarray(seeds, dtype=np.int64), **extra)
        atomic_write_bytes(path, buf.getvalue())
    elif suffix in (".png", ".jpg", ".jpeg"):
        if points:
            modes = model.data.get("modes")
            img = imaging.scatter(samples.numpy(), modes=np.asarray(modes) if modes else None)
        else:
            img = imaging.grid(imaging.to_uint8(samples), nrow=nrow)
        imaging.save_image(img if suffix == ".png" else img.convert("RGB"), path)
    else:
        raise UsageError(f"unsupported output {excerpt(out)}",
                          hint="use a .png/.jpg grid, a folder ending in /, or an .npz file")
    return [str(path)]


def sample(
    ctx: typer.Context,
    run: RunArg,
    n: Annotated[Optional[int], typer.Option("--n", "-n", help="Samples for seeds 0..N-1.", min=1,
                                             max=100_000)] = None,
    seeds: SeedsOpt = None,
    out: Annotated[str, typer.Option(help="x.png / x.jpg: a grid; DIR/: one PNG per seed; "
                                          "x.npz: arrays `samples` and `seeds`.")] = "samples.png",
    truncation: TruncationOpt = 1.0,
    truncation_threshold: ThresholdOpt = None,
    class_: Annotated[Optional[str], typer.Option(
        "--class", help="Conditional models: the class (name or index) for every sample; "
                        "omitted, the grid has one row per class.", show_default=False)] = None,
    nrow: Annotated[Optional[int], typer.Option(help="Images per grid row.", min=1)] = None,
    vary: Annotated[Optional[str], typer.Option(
        help="InfoGAN: sweep one latent code (code.0, code.1, ...; the categorical code first): "
             "one row per seed, one column per value.", show_default=False)] = None,
    values: Annotated[int, typer.Option(
        help="Columns of a continuous --vary sweep, evenly from -2 to 2.", min=2, max=64)] = 9,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Generate samples from a run or checkpoint. Seed s gives the same sample every time.

    Examples:

      gancli sample runs/dcgan-001 --seeds 0-63 --out grid.png

      gancli sample runs/dcgan-001 --seeds 3,7,11 --out picks/

      gancli sample runs/wgan-gp-toy-001 --n 2500 --out points.npz

      gancli sample runs/cgan-001 --class 7 --seeds 0-15 --out sevens.png

      gancli sample runs/infogan-001 --vary code.0 --seeds 0-7 --out sweep.png

      gancli sample runs/biggan-001 --truncation-threshold 0.5 --seeds 0-7 --out truncated.png
    """
    import torch

    from gancli.inference import generate, load_generator
    from gancli.sampling import MAX_SEEDS, check_count, check_threshold

    app = state(ctx)
    model = load_generator(run, device or app.device)
    check_threshold(truncation_threshold, model.cfg.model.z_dist)
    per_class_grid = model.conditional and class_ is None
    seed_list = pick_seeds(n, seeds, default=8 if per_class_grid else 64)
    labels = None
    if class_ is not None:
        labels = torch.full((len(seed_list),), model.class_index(class_), dtype=torch.long)
    elif per_class_grid:  # every class for every seed: one grid row per class
        k = len(model.classes)
        check_count("too many samples", len(seed_list) * k, MAX_SEEDS,
                    hint=f"one row per class ({k} classes): ask for fewer seeds, or pick one --class")
        labels = torch.arange(k).repeat_interleave(len(seed_list))
        seed_list = seed_list * k
        nrow = nrow or len(seed_list) // k
    codes = None
    if vary is not None:
        seed_list, codes, nrow = sweep_codes(model, vary, seed_list, values)
    elif model.has_codes:
        codes = model.codes_for(seed_list)
    check_output_memory(model, len(seed_list))
    samples = generate(model, seed_list, truncation, labels=labels if codes is None else codes,
                       threshold=truncation_threshold)
    written = write_outputs(model, out, seed_list, samples, nrow, labels, codes)
    where = written[0] if len(written) == 1 else f"{len(written)} files in {Path(out)}"
    output(ctx, json_out, quiet).result(
        {"checkpoint": str(model.path), "step": model.step, "samples": len(seed_list),
         "seeds": seed_list if len(seed_list) <= 1000 else None, "truncation": truncation,
         "truncation_threshold": truncation_threshold, "out": written},
        lambda: f"{len(seed_list)} samples from {model.path} (step {model.step}) -> {where}")


def check_output_memory(model, n: int) -> None:
    """Refuse ``n`` outputs whose float32 pixels (plus the uint8 copy written out) would not fit
    in 80 % of this machine's memory: a one-line error (exit 2) before anything is generated."""
    import math

    from gancli.preflight import memory_bytes

    have = memory_bytes("cpu")
    need = n * math.prod(model.spec.shape) * 5  # float32 samples + their uint8 copy
    if have and need > 0.8 * have:
        raise UsageError(f"{n:,} samples of shape {tuple(model.spec.shape)} need about "
                         f"{need / 1e9:.3g} GB of memory; this machine has {have / 1e9:.3g} GB",
                         hint="ask for fewer seeds (--n, --seeds)")


def sweep_codes(model, name: str, seeds: list[int], values: int):
    """(seeds repeated, codes, columns) for a sweep of InfoGAN code ``name`` per seed: every
    value of a categorical code, or ``values`` points from -2 to 2 of a continuous one (the
    paper's range, twice what training saw); the other codes stay as the seed drew them."""
    import torch

    if not model.has_codes:
        raise GancliError("--vary needs an InfoGAN model",
                          hint=f"this one is {model.cfg.name} ({model.cfg.objective})")
    names = model.code_names()
    found = [i for i, (n, _, _) in enumerate(names) if n == name]
    if not found:
        listing = ", ".join(f"{n} ({kind}{f', {k} values' if k else ''})" for n, kind, k in names)
        raise GancliError(f"unknown code {excerpt(name)}", hint=f"codes: {listing}")
    index = found[0]
    _, kind, k = names[index]
    cat = model.cfg.model.info_cat
    from gancli.sampling import MAX_SEEDS, check_count

    check_count("too many samples", len(seeds) * (k if kind == "categorical" else values), MAX_SEEDS,
                hint="one row per seed in a --vary sweep: ask for fewer seeds")
    base = model.codes_for(seeds)
    if kind == "categorical":
        columns = k
        codes = base.repeat_interleave(columns, 0)
        codes[:, :cat] = torch.eye(cat).repeat(len(seeds), 1)
    else:
        columns = values
        column = cat + index - (1 if cat else 0)
        codes = base.repeat_interleave(columns, 0)
        codes[:, column] = torch.linspace(-2, 2, columns).repeat(len(seeds))
    return [s for s in seeds for _ in range(columns)], codes, columns
