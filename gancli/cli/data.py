"""``gancli data prepare`` and ``gancli data info``: dataset stores on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gancli.cli._options import JsonOpt, QuietOpt, emit_json, nonempty_path, state

app = typer.Typer(help="Prepare image folders into dataset stores and inspect them.",
                  no_args_is_help=True)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


@app.command("prepare")
def prepare(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(help="An image folder (searched recursively).",
                                        show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The store folder to write.", show_default=False,
                                      callback=nonempty_path)],
    resolution: Annotated[int, typer.Option(help="Side of the square images, pixels.", min=1,
                                            max=4096)] = 64,
    channels: Annotated[Optional[int], typer.Option(
        help="1 (grey) or 3 (RGB); default: 1 when every image is grey, else 3.", min=1, max=3,
        show_default=False)] = None,
    labels: Annotated[bool, typer.Option("--labels", help="Store class labels from the first-level "
                                         "sub-folders.")] = False,
    workers: Annotated[Optional[int], typer.Option(
        help="Decoding processes; default: every core.", min=1, max=512, show_default=False)] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Decode an image folder once into a store that training and evaluation read from disk.

    Memory stays constant whatever the folder's size. Killed midway, the same command
    resumes where it stopped and gives a byte-identical store.

    Examples:

      gancli data prepare ./celeba --out ./celeba-128 --resolution 128

      gancli train wgan-gp --data ./celeba-128 --set data.resolution=128
    """
    from gancli.data.prepare import prepare as run_prepare
    from gancli.data.progress import PrepareProgress
    from gancli.errors import ConfigError

    app_state = state(ctx)
    json_out, quiet = json_out or app_state.json, quiet or app_state.quiet
    if channels not in (None, 1, 3):
        raise ConfigError(f"--channels must be 1 or 3, not {channels}", hint="1 = grey, 3 = RGB")
    bar = None if quiet else PrepareProgress("json" if json_out else "auto",
                                             stream=None if not json_out else _stdout())
    try:
        summary = run_prepare(src, out, resolution, channels, labels, workers, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if json_out:
        emit_json({"event": "done", **summary})
        return
    verb = {"exists": "already prepared", "resumed": "prepared (resumed)"}.get(summary["status"],
                                                                                 "prepared")
    typer.echo(f"{verb}: {summary['path']}: {summary['n']} images, {summary['resolution']}x"
               f"{summary['resolution']} px, {summary['channels']} channel(s), "
               f"{_size(summary['bytes'])}"
               + (f", {summary['files_s']:.0f} files/s" if summary["status"] != "exists" else ""))
    _print_skipped(summary)
    if summary.get("classes"):
        typer.echo(f"classes: {_classes(summary)}")


def _stdout():
    import sys

    return sys.stdout


def _print_skipped(summary: dict) -> None:
    if not summary["skipped"]:
        return
    typer.echo(f"skipped {summary['skipped']} file(s):", err=True)
    for rel, reason in summary["skipped_examples"]:
        typer.echo(f"  {rel}: {reason}", err=True)
    if summary["skipped"] > len(summary["skipped_examples"]):
        typer.echo(f"  ... and {summary['skipped'] - len(summary['skipped_examples'])} more; by "
                   "reason: " + "; ".join(f"{k} ({v})" for k, v in summary["reasons"].items()),
                   err=True)


def _classes(info: dict) -> str:
    return ", ".join(f"{c} ({n})" for c, n in zip(info["classes"], info["counts"]))


@app.command("info")
def info(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A dataset store or an image folder.",
                                         show_default=False)],
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash every byte of a store "
                                         "(sha256) instead of the quick size and fingerprint "
                                         "check.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """What a store or a folder holds: count, resolution, channels, classes, bytes, origin.

    Examples:

      gancli data info ./celeba-128

      gancli data info ./celeba-128 --verify --json
    """
    from gancli.data.store import Store, is_store
    from gancli.errors import DataError

    json_out = json_out or state(ctx).json
    p = path.expanduser()
    if is_store(p) or (p.is_dir() and p.name.endswith(".partial")):
        store = Store(p)
        if verify:
            store.verify()
        m = store.meta
        out = {"kind": "store", "path": str(p), "n": store.n, "resolution": store.resolution,
               "channels": store.channels, "classes": store.classes, "counts": m.get("counts"),
               "bytes": store.nbytes, "source": m["source"], "created": m["created"],
               "gancli_version": m["gancli_version"], "decode": m["decode"],
               "skipped": m["skipped"], "skipped_examples": m["skipped_examples"],
               "reasons": m["reasons"], "verified": "sha256" if verify else "sizes+fingerprint"}
        if m.get("pairs"):  # pix2pix pairs: rows 2i (A) and 2i + 1 (B)
            out["pairs"] = m["pairs"]
        if json_out:
            emit_json(out)
            return
        held = (f"{store.n // 2} {m['pairs']} pairs ({store.n} images, A then B)" if m.get("pairs")
                else f"{store.n} images")
        typer.echo(f"store {p}: {held}, {store.resolution}x{store.resolution} px, "
                   f"{store.channels} channel(s), {_size(store.nbytes)}")
        typer.echo(f"made from {m['source']} on {m['created']} by gancli {m['gancli_version']} "
                   f"({m['decode']['resize']}); {m['skipped']} file(s) skipped")
        if store.classes:
            typer.echo(f"classes: {_classes(out)}")
        typer.echo("integrity: every byte matches its sha256" if verify
                   else "integrity: sizes and fingerprints match (--verify re-hashes every byte)")
        return
    if not p.is_dir():
        raise DataError(f"{p} is neither a dataset store nor an image folder",
                        hint="give a folder of images, or a store made by gancli data prepare")
    from PIL import Image

    from gancli.data.images import list_image_files

    entries, broken, n_other = list_image_files(p)
    counts: dict[str, int] = {}
    for rel, _, _ in entries:
        if "/" in rel:
            top = rel.split("/", 1)[0]
            counts[top] = counts.get(top, 0) + 1
    first = None
    if entries:
        try:
            with Image.open(p / entries[0][0]) as im:
                first = {"file": entries[0][0], "size": list(im.size), "mode": im.mode}
        except Exception:  # noqa: BLE001 - only informative
            first = None
    out = {"kind": "folder", "path": str(p), "files": len(entries), "unreadable": len(broken),
           "other_files": n_other, "bytes": sum(s for _, s, _ in entries),
           "classes": sorted(counts) or None, "counts": [counts[c] for c in sorted(counts)] or None,
           "first_image": first}
    if json_out:
        emit_json(out)
        return
    typer.echo(f"folder {p}: {len(entries)} image file(s), {_size(out['bytes'])}"
               + (f", {len(broken)} unreadable" if broken else "")
               + (f", {n_other} other file(s) ignored" if n_other else ""))
    if first:
        typer.echo(f"first image: {first['file']} ({first['size'][0]}x{first['size'][1]}, "
                   f"{first['mode']})")
    if out["classes"]:
        typer.echo(f"sub-folders (classes with --labels): {_classes(out)}")
    typer.echo(f"not prepared: gancli data prepare {p} --out STORE --resolution R")
