"""Data for image-to-image translation: unpaired A/B pairs and multi-domain sets.

CycleGAN data is two unrelated piles of images, domain A and domain B. We serve them as
one ``"pairs"`` set (N, 2, C, H, W) (a tensor for built-ins, a ``PairedImages`` reading two
dataset stores for folders): sample i holds A image ``i % len(A)`` next to
B image ``perm[i] % len(B)`` for a fixed random ``perm``, N = the larger pile. The pairing
means nothing (the losses never compare A_i with B_i); it only lets the one shuffled,
resumable batch stream of ``Batches`` serve both domains.

StarGAN data is a labelled image set whose labels are the domains: one sub-folder per
domain, the built-in ``domains:shapes-colours``, or a CelebA-style folder with an attribute
file (``--set data.attributes=Black_Hair,Blond_Hair,Male``), whose labels are then 0/1
vectors, one entry per chosen attribute.

Built-ins (no download):
    pair:digits-recoloured the digits, white on black (A) and, from a disjoint half, drawn
                           amber on navy (B); 10 % of each held out as the preview set.
    pair:digits-inverted   the same with B colour-inverted (dark digits on white).
    domains:shapes-colours the shapes, each drawn in one of four fixed colours (the
                           domains); the shape class is the content a translation keeps.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gancli.data.base import Dataset
from gancli.data.store import LazyImages
from gancli.errors import DataError, excerpt
from gancli.imaging import from_uint8

PAIR_BUILTINS = ("digits-recoloured", "digits-inverted")
# pair:digits-recoloured: domain B draws the strokes amber on navy (A: white on black)
RECOLOUR_FG, RECOLOUR_BG = (255, 190, 20), (20, 40, 120)
DOMAIN_BUILTINS = ("shapes-colours",)
# name -> foreground RGB of the built-in colour domains
COLOUR_DOMAINS = {"red": (235, 50, 40), "green": (40, 200, 60), "blue": (50, 90, 245),
                  "yellow": (240, 220, 40)}
_TEST_FRACTION = 0.1


def make_pairs(a: torch.Tensor, b: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Stack two unrelated image piles (Na, C, H, W) and (Nb, C, H, W) into pairs."""
    if a.shape[1:] != b.shape[1:]:
        raise DataError(f"domain A images are {tuple(a.shape[1:])} but domain B images are "
                        f"{tuple(b.shape[1:])}", hint="give both domains the same channels, "
                        "e.g. --set data.channels=3")
    n = max(len(a), len(b))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return torch.stack([a[torch.arange(n) % len(a)], b[perm % len(b)]], 1).contiguous()


def recolour(x: torch.Tensor) -> torch.Tensor:
    """Grey digits (N, 1|3, H, W) uint8, white on black -> amber on navy, (N, 3, H, W) uint8."""
    t = x.float().mean(1, keepdim=True) / 255
    fg = torch.tensor(RECOLOUR_FG, dtype=torch.float32).view(1, 3, 1, 1)
    bg = torch.tensor(RECOLOUR_BG, dtype=torch.float32).view(1, 3, 1, 1)
    return (bg + t * (fg - bg)).round().clamp(0, 255).to(torch.uint8)


def uncolour(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``recolour`` for float images in [-1, 1]: the stroke intensity, (N, 1, H, W)
    in [-1, 1] (the projection of each pixel onto the navy-to-amber line)."""
    fg = from_uint8(torch.tensor(RECOLOUR_FG, dtype=torch.uint8).view(1, 3, 1, 1))
    bg = from_uint8(torch.tensor(RECOLOUR_BG, dtype=torch.uint8).view(1, 3, 1, 1))
    d = fg - bg
    t = ((x.float() - bg) * d).sum(1, keepdim=True) / (d * d).sum()
    return (t * 2 - 1).clamp(-1, 1)


def load_pair_builtin(name: str, resolution: int, channels: int | None) -> Dataset:
    if name not in PAIR_BUILTINS:
        raise DataError(f"no built-in translation pair {excerpt(name)}",
                        hint=f"built-in pairs: {', '.join('pair:' + p for p in PAIR_BUILTINS)}")
    from gancli.data.digits import load_digits

    colour = name == "digits-recoloured"
    if colour and channels == 1:
        raise DataError("pair:digits-recoloured is in colour", hint="--set data.channels=3")
    digits = load_digits(resolution, 3 if colour else channels or 1)
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    half = len(order) // 2
    idx_a, idx_b = order[:half], order[half:2 * half]  # disjoint: the data is truly unpaired
    a = digits.x[idx_a]
    b = recolour(digits.x[idx_b]) if colour else 255 - digits.x[idx_b]
    n_test = max(1, int(half * _TEST_FRACTION))
    what = "amber-on-navy" if colour else "colour-inverted"
    info = {"samples_A": half - n_test, "samples_B": half - n_test, "test": n_test,
            "source": f"digits (A) and {what} digits (B), disjoint halves"}
    return Dataset(name=f"pair:{name}", kind="pairs",
                   x=make_pairs(a[n_test:], b[n_test:]), test=torch.stack([a[:n_test], b[:n_test]], 1),
                   domains=["digits", "recoloured" if colour else "inverted"], info=info)


def pair_test_labels() -> tuple[torch.Tensor, torch.Tensor]:
    """Digit labels of the built-in pair's test images: (labels of A, labels of B)."""
    from gancli.data.digits import load_digits

    digits = load_digits(8, 1)
    assert digits.y is not None
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    half = len(order) // 2
    n_test = max(1, int(half * _TEST_FRACTION))
    return digits.y[order[:n_test]], digits.y[order[half:half + n_test]]


class PairedImages(LazyImages):
    """``make_pairs`` without the copy: pairs (N, 2, C, H, W) uint8 read on demand from two
    image sets (``LazyImages`` such as prepared stores, or tensors): sample i is A image
    ``i % len(A)`` next to B image ``perm[i] % len(B)``, with the same ``perm`` (seeded) as
    ``make_pairs``, so both give the same samples.

    ``matched=True`` (pix2pix's pairs): ``a`` and ``b`` have the same length and sample i is
    (A i, B i), no permutation. ``swapped()`` is the same pairs with the halves exchanged
    (``data.direction=b2a``), still read on demand."""

    def __init__(self, a, b, seed: int = 0, matched: bool = False):
        if tuple(a.shape[1:]) != tuple(b.shape[1:]):
            raise DataError(f"domain A images are {tuple(a.shape[1:])} but domain B images are "
                            f"{tuple(b.shape[1:])}", hint="give both domains the same channels, "
                            "e.g. --set data.channels=3")
        if matched and len(a) != len(b):
            raise ValueError(f"matched pairs need as many A as B images ({len(a)} vs {len(b)})")
        self.a, self.b = a, b
        n = max(len(a), len(b))
        self.perm = (torch.arange(n) if matched else
                     torch.randperm(n, generator=torch.Generator().manual_seed(seed)))
        self.shape = torch.Size((n, 2, *a.shape[1:]))
        self.halves = (0, 1)  # where A and B go in a sample: (1, 0) once swapped

    def swapped(self) -> "PairedImages":
        """The same pairs with B in half 0 and A in half 1."""
        import copy

        other = copy.copy(self)
        other.halves = self.halves[::-1]
        return other

    def gather(self, idx, out: torch.Tensor | None = None) -> torch.Tensor:
        idx = self._indices(idx)
        if out is None:
            out = torch.empty((len(idx), *self.shape[1:]), dtype=torch.uint8)
        for half, images, rows in ((self.halves[0], self.a, idx % len(self.a)),
                                   (self.halves[1], self.b, self.perm[idx] % len(self.b))):
            if isinstance(images, torch.Tensor):
                out[:, half] = images[rows]
            else:
                images.gather(rows, out[:, half])
        return out

    def will_need(self, idx) -> None:
        idx = self._indices(idx)
        for images, rows in ((self.a, idx % len(self.a)), (self.b, self.perm[idx] % len(self.b))):
            if not isinstance(images, torch.Tensor):
                images.will_need(rows)


def load_pair_folder(root: Path, cfg, progress=None) -> Dataset:
    """``root/trainA`` and ``root/trainB`` (CycleGAN's layout); ``testA``/``testB`` if there.

    Each domain folder is prepared into a dataset store (in the cache, as any image folder;
    ``progress`` is told how it goes) and read per batch: ``x`` is a ``PairedImages`` over the
    two stores, never one tensor of the whole data. With ``data.channels`` unset and one
    domain grey, the grey one is prepared again in RGB.

    Raises:
        DataError: a missing or empty domain folder, or what preparing a folder raises.
    """
    from dataclasses import replace

    from gancli.data.images import scan_folder
    from gancli.data.stored import folder_dataset

    missing = [d for d in ("trainA", "trainB") if not (root / d).is_dir()]
    if missing:
        raise DataError(f"a translation folder needs trainA/ and trainB/, but {root} has no "
                        f"{' or '.join(missing)}/",
                        hint=f"arrange it as {root}/trainA/*.jpg and {root}/trainB/*.jpg "
                             "(the CycleGAN layout)")
    for d in ("trainA", "trainB"):
        if not scan_folder(root / d).entries:  # before preparing the other domain for nothing
            raise DataError(f"domain folder {root / d} holds no image file",
                            hint=f"CycleGAN learns from two domains: put images in both "
                                 f"{root}/trainA/ and {root}/trainB/")
    cfg = replace(cfg, labels=False, source=str(root))

    def domain(name: str, channels: int | None) -> Dataset:
        tell = None if progress is None else (lambda p: progress({**p, "part": name}))
        return folder_dataset(root / name, replace(cfg, channels=channels), tell)

    sets = {d: domain(d, cfg.channels) for d in ("trainA", "trainB")}
    if cfg.channels is None and sets["trainA"].shape != sets["trainB"].shape:  # one grey, one colour
        sets = {d: s if s.shape[0] == 3 else domain(d, 3) for d, s in sets.items()}
    c = sets["trainA"].shape[0]
    test = None
    if (root / "testA").is_dir() and (root / "testB").is_dir():
        test = PairedImages(domain("testA", c).x, domain("testB", c).x)
    info = {"samples_A": len(sets["trainA"]), "samples_B": len(sets["trainB"]),
            "test": 0 if test is None else len(test),
            "skipped": sum(s.info.get("skipped", 0) for s in sets.values()),
            "cache": sets["trainA"].info.get("cache", "off"),
            "store": [s.info.get("store") for s in sets.values()]}
    a = sets["trainA"]
    return Dataset(name=str(root), kind="pairs", x=PairedImages(a.x, sets["trainB"].x),
                   test=test, domains=["A", "B"], info=info, crop_to=a.crop_to, crop=a.crop)


def load_domain_builtin(name: str, resolution: int, n: int, seed: int = 0) -> Dataset:
    if name != "shapes-colours":
        raise DataError(f"no built-in multi-domain set {excerpt(name)}",
                        hint=f"built-ins: {', '.join('domains:' + d for d in DOMAIN_BUILTINS)}")
    x, shapes, domains = shapes_colours(resolution, n, seed)
    info = {"samples": n, "domains": len(COLOUR_DOMAINS), "source": "procedural"}
    return Dataset(name="domains:shapes-colours", kind="images", x=x, y=domains,
                   classes=list(COLOUR_DOMAINS), info={**info, "content": "shape"},
                   test=None, domains=list(COLOUR_DOMAINS))


def shapes_colours(resolution: int, n: int, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images uint8 (n, 3, H, W), shape class (n,), colour domain (n,)).

    Geometry as in the ``shapes`` set; the foreground is one of ``COLOUR_DOMAINS`` and the
    background a dark grey, so the colour is the domain and the shape the content.
    """
    from gancli.data.shapes import SHAPE_CLASSES, composite, draw_masks

    if resolution < 8 or n < 1:
        raise DataError(f"shapes-colours needs resolution >= 8 and n >= 1 (got {resolution}, {n})",
                        hint="e.g. --set data.resolution=32")
    rng = np.random.default_rng(seed)
    k = len(SHAPE_CLASSES)
    shapes = rng.permutation(np.arange(n) % k)
    domains = rng.permutation(np.arange(n) % len(COLOUR_DOMAINS))
    radius = rng.uniform(0.45, 0.75, size=n) * resolution / 2
    low = radius + np.minimum(1.0, (resolution / 2 - radius) / 2)
    cx = low + rng.uniform(size=n) * (resolution - 2 * low)
    cy = low + rng.uniform(size=n) * (resolution - 2 * low)
    angle = rng.uniform(0, 2 * math.pi, size=n)
    palette = np.array(list(COLOUR_DOMAINS.values()), dtype=np.uint8)
    fg = palette[domains]
    bg = np.repeat(np.rint(rng.uniform(10, 60, size=(n, 1))).astype(np.uint8), 3, axis=1)
    alpha = draw_masks(shapes, cx, cy, radius, angle, resolution)
    x = composite(alpha, fg, bg)
    return (torch.from_numpy(x), torch.from_numpy(shapes.astype(np.int64)),
            torch.from_numpy(domains.astype(np.int64)))


ATTR_FILE = "list_attr_celeba.txt"


def read_attribute_file(path: Path, wanted: list[str]) -> dict[str, list[float]]:
    """CelebA's format: a count line, a line of attribute names, then ``FILE v1 v2 ...`` with
    values -1/1 (or 0/1). Returns {file name: [0/1 per wanted attribute]}."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DataError(f"cannot read attribute file {path}: {e.strerror or e}",
                        hint="pass it with --set data.attr_file=PATH") from None
    if len(lines) < 3:
        raise DataError(f"attribute file {path} has no rows",
                        hint="expected a count line, a line of names, then one row per image")
    names = lines[1].split()
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DataError(f"attribute(s) {', '.join(missing)} not in {path.name}",
                        hint=f"it has: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}")
    cols = [names.index(w) for w in wanted]
    table: dict[str, list[float]] = {}
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(f"{path.name} line {number} has {len(parts) - 1} values for "
                            f"{len(names)} attributes", hint="is the file complete?")
        try:
            table[parts[0]] = [1.0 if float(parts[1 + c]) > 0 else 0.0 for c in cols]
        except ValueError:
            raise DataError(f"{path.name} line {number}: a value is not a number",
                            hint="values are -1/1 or 0/1") from None
    return table


def load_attribute_folder(root: Path, cfg, progress=None) -> Dataset:
    """Images of ``root`` that the attribute file lists, labelled by the chosen attributes.

    The folder is prepared into a dataset store (in the cache, once; ``progress`` is told
    how it goes), or ``root`` is a store made by ``gancli data prepare`` (the table is then
    looked for next to the folder it was made from), and read per batch: ``x`` is a ``RowImages`` over the listed samples of the
    store, matched by file name through the store's ``names.jsonl``; ``y`` is float32
    (N, attributes) of 0/1.

    Raises:
        DataError: fewer than two attributes, no or a bad attribute file, no listed image, an
            attribute set for no image (unless ``data.allow_empty_classes``).
    """
    from dataclasses import replace

    from gancli.data import is_store_path
    from gancli.data.images import list_image_files
    from gancli.data.store import RowImages, Store
    from gancli.data.stored import folder_dataset, store_dataset

    stored = is_store_path(root)  # a prepared store: the table is looked for by its source
    store = Store(root) if stored else None
    names = store.names() if store is not None else None
    if store is not None and names is None:
        raise DataError(f"dataset store {root} does not name its source files (format version 1)",
                        hint="prepare it again with this gancli version, or pass the image folder")
    folder = Path(store.meta.get("source") or root) if store is not None else root
    wanted = [a.strip() for a in cfg.attributes.split(",") if a.strip()]
    if len(wanted) < 2:
        raise DataError("StarGAN needs at least two attributes",
                        hint="--set data.attributes=Black_Hair,Blond_Hair,Male")
    if cfg.attr_file:
        attr_path = Path(cfg.attr_file).expanduser()
    else:
        found = [p for p in (folder / ATTR_FILE, folder.parent / ATTR_FILE) if p.is_file()]
        if not found:
            raise DataError(f"no {ATTR_FILE} in {folder} or next to it",
                            hint="pass the attribute file with --set data.attr_file=PATH")
        attr_path = found[0]
    table = read_attribute_file(attr_path, wanted)
    plain = replace(cfg, labels=False, attributes="", source=str(root))
    if store is None:
        entries, _, _ = list_image_files(root)
        listed = [rel for rel, _, _ in entries if Path(rel).name in table]
        if not listed:
            raise DataError(f"none of the images in {root} is listed in {attr_path.name}",
                            hint="the attribute file names files by their base name, e.g. "
                                 "000001.jpg")
        ds = folder_dataset(root, plain, progress)
        names = Store(Path(ds.info["store"]), check=False).names()
    else:
        ds = store_dataset(root, plain)
    decoded = [i for i, rel in enumerate(names) if Path(rel).name in table]  # store rows
    if store is not None:
        listed = decoded  # what the store could not decode was counted when it was prepared
        if not decoded:
            raise DataError(f"none of the {store.n} images of the store {root} is listed in "
                            f"{attr_path.name}", hint="the attribute file names files by their "
                            "base name, e.g. 000001.jpg")
    if not decoded:
        raise DataError(f"no listed image in {root} could be decoded", hint="are the files complete?")
    rows = decoded[:cfg.size] if cfg.size else decoded
    x = RowImages(ds.x, rows)
    y = torch.tensor([table[Path(names[i]).name] for i in rows], dtype=torch.float32)
    info = {"files": len(listed), "skipped": len(listed) - len(decoded),
            "cache": ds.info.get("cache", "off"), "attributes": wanted, "store": ds.info.get("store")}
    # an attribute no image has is a domain with no example: --to it would mean nothing
    empty = [a for a, n in zip(wanted, y.sum(0).tolist()) if n == 0]
    if empty and not getattr(cfg, "allow_empty_classes", False):
        raise DataError(f"attribute {empty[0]} is set for none of the {len(rows)} images in {root}"
                        + (f" (nor is {', '.join(empty[1:])})" if len(empty) > 1 else ""),
                        hint="choose attributes the images have (data.attributes), or train "
                             "without it with --set data.allow_empty_classes=true")
    if empty:
        keep = [i for i, a in enumerate(wanted) if a not in empty]
        if len(keep) < 2:
            raise DataError(f"only {len(keep)} of the attributes {', '.join(wanted)} is set for "
                            f"any image in {root}", hint="StarGAN needs at least two attributes")
        y, wanted = y[:, keep].contiguous(), [wanted[i] for i in keep]
        info.update(attributes=wanted, empty_classes=empty,
                    notes=[f"attribute(s) set for no image left out: {', '.join(empty)}; "
                           f"domains: {', '.join(wanted)}"])
    return Dataset(name=str(root), kind="images", x=x, y=y, classes=wanted, info=info,
                   domains=wanted, crop_to=ds.crop_to, crop=ds.crop)
