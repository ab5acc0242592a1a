"""``gancli interpolate``: walks through latent space, and latent vector arithmetic."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import (DeviceOpt, JsonOpt, QuietOpt, RunArg, ThresholdOpt, TruncationOpt, finite,
                                 nonempty_path, output, state)
from gancli.errors import UsageError, excerpt


def interpolate(
    ctx: typer.Context,
    run: RunArg,
    seeds: Annotated[Optional[str], typer.Option(
        help="Seeds to walk through, in order, e.g. 3,7,11.")] = None,
    steps: Annotated[int, typer.Option(help="Images per leg between two seeds (ends included).",
                                       min=2, max=1000)] = 8,
    method: Annotated[str, typer.Option(help="slerp (great circle) or lerp (straight line); "
                                       "a stylegan2 model walks lerp in w, slerp in z.")
                      ] = "slerp",
    arith: Annotated[Optional[str], typer.Option(
        help="Latent arithmetic over seed groups: '1,2,3 - 4,5,6 + 7,8,9' (means of groups).",
        show_default=False)] = None,
    class_: Annotated[Optional[str], typer.Option(
        "--class", help="Conditional models: the class (name or index) held fixed along a walk.",
        show_default=False)] = None,
    classes: Annotated[Optional[str], typer.Option(
        help="Conditional models: walk between these classes (names or indices, e.g. 3,8) "
             "with the latent of one seed held fixed (--seeds S, default 0).",
        show_default=False)] = None,
    out: Annotated[str, typer.Option(help="walk.png: a grid, one row per leg; walk.gif: an "
                                          "animation.", callback=nonempty_path)] = "walk.png",
    fps: Annotated[float, typer.Option(help="GIF frames per second.", min=1, max=60, callback=finite)] = 12,
    truncation: TruncationOpt = 1.0,
    truncation_threshold: ThresholdOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Interpolate between seeds' latents, or add and subtract groups of them.

    Examples:

      gancli interpolate runs/dcgan-001 --seeds 3,7,11 --out walk.png

      gancli interpolate runs/dcgan-001 --seeds 0,1,2,3,0 --steps 16 --out loop.gif

      gancli interpolate runs/dcgan-001 --arith '1,2,3 - 4,5,6 + 7,8,9' --out arith.png

      gancli interpolate runs/cgan-001 --classes 1,7 --seeds 5 --out one-to-seven.png
    """
    import torch

    from gancli.inference import generate_from_latents, load_generator
    from gancli.models.base import one_hot
    from gancli.sampling import (check_threshold, latents_for_seeds, parse_arithmetic, parse_seeds,
                                 truncate)

    app = state(ctx)
    if method not in ("slerp", "lerp"):
        raise UsageError(f"unknown method {excerpt(method)}", hint="use slerp or lerp")
    if classes:
        if arith:
            raise UsageError("--classes walks between classes at one seed; --arith is separate",
                              hint="--classes 1,7 --seeds 5")
    elif bool(seeds) == bool(arith):
        raise UsageError("give --seeds (a walk), --arith (arithmetic) or --classes (a class walk)",
                          hint="--seeds 3,7,11  or  --arith '1,2,3 - 4,5,6 + 7,8,9'")
    model = load_generator(run, device or app.device)
    zdim, dist = model.cfg.model.z_dim, model.cfg.model.z_dist
    threshold = truncation_threshold
    check_threshold(threshold, dist)
    from gancli.inference import (generate_from_styles, style_based, styles_for_seeds,
                                  w_truncation)
    style = style_based(model)  # StyleGAN: truncation in w; a lerp walk is a walk in w
    psi_w, truncation = (truncation, 1.0) if style else (1.0, truncation)
    w_walk = None
    path = Path(out).expanduser()
    if path.suffix.lower() not in (".png", ".gif", ".jpg", ".jpeg"):
        raise UsageError(f"unsupported output {excerpt(out)}", hint="use a .png grid or a .gif animation")
    if (class_ or classes) and not model.conditional:
        raise UsageError("--class and --classes need a conditional model",
                          hint=f"this one is {model.cfg.name} ({model.cfg.task})")
    if model.conditional and not (class_ or classes):
        raise UsageError("a conditional model walks within a class or between classes",
                          hint="add --class K, or use --classes A,B --seeds S")
    grid = path.suffix.lower() != ".gif"
    mode = "walk"
    labels = None
    if classes:
        mode = "classes"
        idx = [model.class_index(c.strip()) for c in classes.split(",") if c.strip()]
        if len(idx) < 2:
            raise UsageError("a class walk needs at least two classes", hint="--classes 1,7")
        seed_list = parse_seeds(seeds) if seeds is not None else [0]
        if len(seed_list) != 1:
            raise UsageError("a class walk holds one seed fixed", hint="--seeds 5")
        check_frames(len(idx), steps, grid)
        y = walk(one_hot(torch.tensor(idx), len(model.classes)), steps, "lerp", grid)
        z = truncate(latents_for_seeds(seed_list, zdim, dist, threshold), truncation)
        z = z.expand(len(y), -1)
        labels = y
    elif seeds:
        seed_list = parse_seeds(seeds)
        if len(seed_list) < 2:
            raise UsageError("an interpolation needs at least two seeds", hint="--seeds 3,7")
        check_frames(len(seed_list), steps, grid)
        z = walk(truncate(latents_for_seeds(seed_list, zdim, dist, threshold), truncation), steps,
                 method, grid)
        if style and method == "lerp":
            w_walk = walk(styles_for_seeds(model, seed_list, psi_w), steps, "lerp", grid)
        if model.has_codes:  # InfoGAN: the codes walk too, in a straight line
            labels = walk(model.codes_for(seed_list), steps, "lerp", grid)
    else:
        mode = "arithmetic"
        terms = parse_arithmetic(arith)
        means = [latents_for_seeds(group, zdim, dist, threshold).mean(0) for _, group in terms]
        result = sum(sign * m for (sign, _), m in zip(terms, means))
        z = truncate(torch.stack(means + [result]), truncation)
        if model.has_codes:
            cmeans = [model.codes_for(group).mean(0) for _, group in terms]
            labels = torch.stack(cmeans + [sum(s * c for (s, _), c in zip(terms, cmeans))])
    nrow = steps if mode != "arithmetic" else len(z)
    if model.conditional and labels is None:
        labels = torch.full((len(z),), model.class_index(class_), dtype=torch.long)
    path.parent.mkdir(parents=True, exist_ok=True)
    if w_walk is not None:
        outs = generate_from_styles(model, w_walk)
    else:
        with w_truncation(model, psi_w) if style else nullcontext():
            outs = generate_from_latents(model, z, labels=labels)
    save_walk(outs, model.spec.kind, path, nrow, fps)
    output(ctx, json_out, quiet).result(
        {"checkpoint": str(model.path), "frames": len(z),
         "method": "lerp" if mode == "classes" else method, "out": str(path), "mode": mode},
        lambda: f"{len(z)} images from {model.path} -> {path}")


def save_walk(outs, kind: str, path: Path, nrow: int, fps: float) -> None:
    """A walk's outputs as a grid (.png/.jpg), an animation (.gif), or for 2-D points one
    scatter plot (.png)."""
    from gancli import imaging

    if kind == "points":
        if path.suffix.lower() == ".gif":
            raise UsageError("a 2-D model's walk is drawn as one scatter plot",
                              hint="use --out walk.png")
        imaging.save_image(imaging.scatter(outs.numpy()), path)
    elif path.suffix.lower() == ".gif":
        frames = [imaging.to_pil(img).convert("RGB") for img in imaging.to_uint8(outs)]
        imaging.save_gif(frames, path, fps=fps)
    else:
        img = imaging.grid(imaging.to_uint8(outs), nrow=nrow)
        imaging.save_image(img if path.suffix.lower() == ".png" else img.convert("RGB"), path)


def check_frames(anchors: int, steps: int, grid: bool) -> None:
    """Refuse a walk of more than ``MAX_SEEDS`` images (exit 2), counted before any latent is
    drawn: a grid has ``steps`` images per leg, an animation ``steps - 1`` per leg plus one."""
    from gancli.sampling import MAX_SEEDS, check_count

    legs = anchors - 1
    frames = legs * steps if grid else legs * (steps - 1) + 1
    check_count("too many images in the walk", frames, MAX_SEEDS,
                hint=f"{legs:,} legs x {steps} steps: fewer anchors or a smaller --steps")


def walk(anchors, steps: int, method: str, grid: bool):
    """Points through ``anchors``: for a grid, every leg end to end (one row per leg); for an
    animation, one path with each anchor once."""
    import torch

    from gancli.sampling import lerp, path_through, slerp

    if not grid:
        return path_through(anchors, steps, method)
    fn = slerp if method == "slerp" else lerp
    t = torch.linspace(0, 1, steps)[:, None]
    return torch.cat([fn(anchors[i][None], anchors[i + 1][None], t)
                      for i in range(len(anchors) - 1)])
