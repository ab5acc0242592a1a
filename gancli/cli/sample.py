"""``gancli sample``: images (or 2-D points) from a trained generator, by seed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import (DeviceOpt, JsonOpt, QuietOpt, RunArg, SeedsOpt, ThresholdOpt, TruncationOpt,
                                 emit_json, nonempty_path, output, state)
from gancli.errors import UsageError, excerpt


def pick_seeds(n: Optional[int], seeds: Optional[str], default: int = 64) -> list[int]:
    from gancli.sampling import parse_seeds

    if n is not None and seeds is not None:
        raise UsageError("give --n or --seeds, not both", hint="--seeds 0-63 is the same as --n 64")
    if seeds is not None:  # '' is refused ('no seeds given'), not the default
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
            raise UsageError("2-D samples cannot be written one file per seed",
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
                                          "x.npz: arrays `samples` and `seeds`.", callback=nonempty_path)] = "samples.png",
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
    mix: Annotated[Optional[str], typer.Option(
        help="stylegan2: a style-mixing grid 'A,B' (each a seed or range, e.g. 0-3,10-15): "
             "row i, column j has seed A_i's styles up to --mix-layer and B_j's after it; the "
             "first row and column show B and A themselves.", show_default=False)] = None,
    mix_layer: Annotated[Optional[int], typer.Option(
        help="--mix: the first layer whose style comes from B (default: half of them).",
        min=1, show_default=False)] = None,
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

      gancli sample runs/stylegan2-001 --mix 0-4,10-15 --out mixing.png
    """
    import torch

    from gancli.inference import generate, load_generator
    from gancli.sampling import MAX_SEEDS, check_count, check_threshold

    app = state(ctx)
    model = load_generator(run, device or app.device)
    check_threshold(truncation_threshold, model.cfg.model.z_dist)
    if mix is not None:
        if n is not None or seeds or vary or class_:
            raise UsageError("--mix makes its own grid from its two seed lists",
                             hint="drop --n/--seeds/--vary/--class: --mix 0-3,10-15")
        return mixing_grid(model, mix, mix_layer, truncation, out, json_out or app.json,
                           quiet or app.quiet)
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
        raise UsageError("--vary needs an InfoGAN model",
                          hint=f"this one is {model.cfg.name} ({model.cfg.objective})")
    names = model.code_names()
    found = [i for i, (n, _, _) in enumerate(names) if n == name]
    if not found:
        listing = ", ".join(f"{n} ({kind}{f', {k} values' if k else ''})" for n, kind, k in names)
        raise UsageError(f"unknown code {excerpt(name)}", hint=f"codes: {listing}")
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


def mixing_grid(model, spec: str, layer, truncation: float, out: str, json_out: bool,
                quiet: bool) -> None:
    """Style mixing (Karras et al. 2019, StyleGAN, fig. 3): a grid with B's images along the
    top, A's down the left, and at (i, j) the image with A_i's styles on layers before
    ``layer`` (coarse: pose, shape) and B_j's from it on (fine: colour, texture)."""
    import torch

    from gancli import imaging
    from gancli.inference import generate_from_styles, style_based, styles_for_seeds
    from gancli.sampling import check_count, parse_seeds

    if not style_based(model):
        raise UsageError("--mix needs a style-based model (stylegan2)",
                          hint=f"this one is {model.cfg.name} ({model.cfg.model.family})")
    parts = [p for p in spec.split(",")]
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise UsageError(f"--mix takes two seed lists, rows and columns: got {excerpt(spec)}",
                         hint="--mix 0-3,10-15 (or --mix 5,7 for one of each)")
    rows, cols = parse_seeds(parts[0]), parse_seeds(parts[1])
    check_count("too many images in the mixing grid", (len(rows) + 1) * (len(cols) + 1), 4096,
                hint="ask for fewer seeds in A or B")
    num_ws = model.G.num_ws
    layer = num_ws // 2 if layer is None else layer
    if not 1 <= layer < num_ws:
        raise UsageError(f"--mix-layer {layer} is not between 1 and {num_ws - 1}",
                         hint=f"this generator has {num_ws} style layers")
    path = Path(out).expanduser()
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"a mixing grid is one image, not {excerpt(out)}",
                         hint="use --out mixing.png")
    wa, wb = styles_for_seeds(model, rows, truncation), styles_for_seeds(model, cols, truncation)
    mixed = wa[:, None, None, :].expand(-1, len(cols), num_ws, -1).clone()  # (A, B, L, w)
    mixed[:, :, layer:] = wb[None, :, None, :]
    every = model.G.broadcast  # one w for all layers: (N, w) -> (N, L, w)
    images = generate_from_styles(model, torch.cat([every(wb), every(wa), mixed.flatten(0, 1)]))
    top, left, cells = images.split([len(cols), len(rows), len(rows) * len(cols)])
    blank = torch.ones_like(images[:1])  # white corner
    grid_rows = [torch.cat([blank, top])]
    for i in range(len(rows)):
        grid_rows.append(torch.cat([left[i:i + 1], cells[i * len(cols):(i + 1) * len(cols)]]))
    tiles = torch.cat(grid_rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = imaging.grid(imaging.to_uint8(tiles), nrow=len(cols) + 1)
    imaging.save_image(img if path.suffix.lower() == ".png" else img.convert("RGB"), path)
    if json_out:
        emit_json({"checkpoint": str(model.path), "step": model.step, "rows": rows,
                   "columns": cols, "mix_layer": layer, "style_layers": num_ws,
                   "truncation": truncation, "out": [str(path)]})
    elif not quiet:
        typer.echo(f"style mixing grid {len(rows)} x {len(cols)} (B's styles from layer {layer} "
                   f"of {num_ws}) from {model.path} -> {path}", err=True)
