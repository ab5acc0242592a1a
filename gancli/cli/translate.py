"""``gancli translate``: one photo, or a folder of them, through a CycleGAN, StarGAN or pix2pix
model."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import DeviceOpt, JsonOpt, QuietOpt, emit_json, nonempty_path, output, state
from gancli.errors import GancliError, UsageError, excerpt


def translate(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="A translation run folder "
                                       "(runs/cyclegan-001), a .safetensors checkpoint, or a "
                                       "preset name for its newest run under ./runs.",
                                       show_default=False)],
    src: Annotated[str, typer.Option("--in", "-i", help="An image file or a folder of them.",
                                     show_default=False)],
    out: Annotated[Optional[str], typer.Option(
        "--out", "-o", help="Output file (for one input) or folder (for a folder; names are "
                            "kept). Default: in the current directory, NAME-TAG.EXT or "
                            "FOLDER-TAG/.", callback=nonempty_path)] = None,
    direction: Annotated[Optional[str], typer.Option(
        help="CycleGAN: a2b (A to B, the default) or b2a. pix2pix: only the direction it "
             "was trained for (data.direction).")] = None,
    to: Annotated[Optional[str], typer.Option(
        "--to", help="StarGAN: target domain(s), by name or index, comma-separated: one "
                     "output each (default: every domain). For an attribute model, one output "
                     "with the named attributes on and the others off.")] = None,
    size: Annotated[Optional[int], typer.Option(
        min=4, max=8192, help="Translate with this shorter side (the model is fully "
                              "convolutional), then resize back to the input's size. Default: the "
                              "model's training resolution.")] = None,
    dropout: Annotated[Optional[bool], typer.Option(
        "--dropout/--no-dropout", help="pix2pix: keep the U-Net's dropout on (the paper's test-"
                                       "time noise; seeded, so repeatable) or turn it off. Default: "
                                       "the model's model.test_dropout (on).",
        show_default=False)] = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Translate an image (any size, any aspect ratio) or a folder of images.

    The output has the input's size and alpha channel; EXIF orientation is applied; grey, RGBA, palette, CMYK and 16-bit inputs are accepted.

    A file that cannot be read is reported on one line and the rest of a folder is still translated (exit code 1).

    Examples:

      gancli translate --model runs/cyclegan-001 --in photo.jpg --out photo-b.jpg

      gancli translate --model runs/cyclegan-001 --in photos/ --out translated/ --direction b2a

      gancli translate --model runs/stargan-001 --in face.png --to Blond_Hair,Male
    """
    from gancli.inference import load_translator

    app = state(ctx)
    json_out, quiet = (mode := output(ctx, json_out, quiet)).json, mode.quiet
    tr = load_translator(resolve_model(model), device or app.device)
    jobs = plan_targets(tr, direction, to, dropout)
    src_path = Path(src).expanduser()
    if not src_path.exists():
        raise GancliError(f"no such file or folder: {src_path}", hint="check --in")
    short = size or tr.resolution
    results, failures = [], []
    for in_file, out_files in plan_files(src_path, out, jobs):
        started = time.perf_counter()
        try:
            written = translate_file(tr, in_file, out_files, short)
        except GancliError as e:
            if src_path.is_file():
                raise
            failures.append({"in": str(in_file), "error": e.message})
            print(f"error: {e.message}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - started
        results.append({"in": str(in_file), "out": written["out"], "size": written["size"],
                        "seconds": round(seconds, 3)})
        if not quiet and not json_out:
            print(f"{in_file} -> {', '.join(written['out'])}  "
                  f"({written['size'][0]}x{written['size'][1]}, {seconds:.2f} s)", file=sys.stderr)
    if json_out:
        emit_json({"translated": results, "failed": failures, "model": str(tr.model.path),
                   "working_short_side": short})
    elif not quiet and src_path.is_dir():
        print(f"translated {len(results)} file(s), {len(failures)} failed", file=sys.stderr)
    if failures:
        raise SystemExit(1)


def resolve_model(spec: str) -> str:
    """A path as it is; a bare preset name -> its newest run under ./runs (if any)."""
    p = Path(spec).expanduser()
    if p.exists() or os.sep in spec or "/" in spec:
        return spec
    runs = Path("runs")
    if runs.is_dir():
        found = sorted((d for d in runs.iterdir() if d.is_dir() and d.name.startswith(spec + "-")
                        and d.name[len(spec) + 1:].isdigit()), key=lambda d: int(d.name[len(spec) + 1:]))
        if found:
            return str(found[-1])
    raise GancliError(f"no run folder or checkpoint {excerpt(spec)}",
                      hint=f"train one first (gancli train {spec}) or pass runs/NAME-NNN")


def plan_targets(tr, direction: Optional[str], to: Optional[str],
                 dropout: Optional[bool] = None) -> list[tuple[str, dict]]:
    """[(tag for file names, arguments for the translator)] for each requested translation."""
    if dropout is not None and tr.kind != "paired":
        raise UsageError("--dropout/--no-dropout is for pix2pix models",
                          hint="CycleGAN and StarGAN generators have no test-time dropout")
    if tr.kind == "paired":
        if to:
            raise UsageError("--to picks StarGAN target domains; a pix2pix model has one direction",
                              hint=f"this one translates {tr.direction}")
        if direction and direction != tr.direction:
            raise UsageError(f"this pix2pix model translates {tr.direction} "
                              f"({' -> '.join(tr.domains)}), not {excerpt(direction)}",
                              hint=f"train one with --set data.direction={direction}")
        return [(tr.direction, {} if dropout is None else {"dropout": dropout})]
    if tr.kind == "cycle":
        if to:
            raise UsageError("--to picks StarGAN target domains; a CycleGAN model has a direction",
                              hint="use --direction a2b or --direction b2a")
        d = direction or "a2b"
        if d not in ("a2b", "b2a"):
            raise UsageError(f"unknown direction {excerpt(d)}", hint="use a2b or b2a")
        return [(d, {"direction": d})]
    if direction:
        raise UsageError("--direction is for CycleGAN; a StarGAN model takes --to DOMAIN",
                          hint=f"domains: {', '.join(tr.domains)}")
    names = [n.strip() for n in to.split(",") if n.strip()] if to else list(tr.domains)
    if not names:
        raise UsageError("--to names no domain", hint=f"domains: {', '.join(tr.domains)}")
    indices = [tr.domain_index(n) for n in names]
    if tr.multi_label and to:  # attributes: one output with every named attribute on
        return [("+".join(tr.domains[i] for i in indices), {"target": indices})]
    return [(tr.domains[i], {"target": i}) for i in indices]


def plan_files(src: Path, out: Optional[str], jobs: list[tuple[str, dict]]):
    """Yield (input file, [(output path, translator args)]) for every file to translate.

    With several targets (StarGAN ``--to a,b``) each output name gets ``-DOMAIN``; without
    ``--out`` outputs go to the current directory as ``NAME-TAG.EXT`` (or ``FOLDER-TAG/``).
    """
    from gancli.data.images import is_regular, scan_folder

    tags = "-".join(tag for tag, _ in jobs)

    def named(base: Path, tag: str, always: bool = False) -> Path:
        if len(jobs) > 1 or always:
            return base.with_name(f"{base.stem}-{tag}{base.suffix}")
        return base

    if src.exists() and not src.is_dir() and not is_regular(src):
        raise GancliError(f"{src} is not a regular file (a FIFO, socket or device)",
                          hint="--in takes an image file or a folder of them")
    if src.is_file():
        if out is None:
            yield src, [(named(Path.cwd() / src.name, tag, True), args) for tag, args in jobs]
            return
        target = Path(out).expanduser()
        if target.is_dir() or out.endswith(("/", os.sep)):
            target = target / src.name
        yield src, [(named(target, tag), args) for tag, args in jobs]
        return
    root_out = Path(out).expanduser() if out else Path.cwd() / f"{src.name}-{tags}"
    found = scan_folder(src, extensions=None)  # the walk training uses: regular files only
    for name in found.special:
        print(f"skipped {src / name}: not a regular file (a FIFO, socket or device)", file=sys.stderr)
    for name, _, _ in found.entries:
        path, rel = src / name, Path(name)
        if root_out.resolve() in path.resolve().parents:
            continue  # never translate our own outputs (--out inside --in)
        yield path, [(named(root_out / rel, tag), args) for tag, args in jobs]


def translate_file(tr, in_file: Path, outputs: list[tuple[Path, dict]], short: int) -> dict:
    from gancli.fileio import atomic_write_bytes
    from gancli.photo import encode, read_photo, translate_photo

    for target, _ in outputs:
        if target.exists() and target.resolve() == in_file.resolve():
            raise UsageError(f"{target} would overwrite its own input",
                              hint="choose another --out")
    photo = read_photo(in_file, tr.channels)
    written = []
    for target, args in outputs:
        try:
            img = translate_photo(photo, lambda x, a=args: tr(x, **a), short)
        except (RuntimeError, ValueError, MemoryError) as e:  # e.g. out of memory at --size
            raise GancliError(f"{in_file}: cannot translate ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160] if str(e) else ''})",
                              hint="try a smaller --size") from None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, encode(img, target.suffix))
        except OSError as e:
            raise GancliError(f"cannot write {target}: {e.strerror or e}",
                              hint="check that the output folder is writable") from None
        written.append(str(target))
    return {"out": written, "size": list(photo.size)}
