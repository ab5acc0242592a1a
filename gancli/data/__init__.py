"""Datasets: one spec string (``--data``) -> one in-memory ``Dataset``.

Built-ins need no network: ``digits`` (``digits:train`` / ``digits:test`` for its fixed
split), ``shapes``, ``toy:ring8``, ``toy:grid25``,
``toy:spiral``, and for translation ``pair:digits-recoloured``, ``pair:digits-inverted``,
``paired:digits-outline`` (pix2pix) and ``domains:shapes-colours``. ``torchvision:NAME`` reads (or, when asked, downloads) torchvision
datasets; a folder made by ``gancli data prepare`` is read as a dataset store (from disk,
per batch); any other folder is an image folder, prepared into a store in the cache first
(for translation each domain folder, for attributes the folder the table describes).
With ``data.crop_scale`` above 1, images are loaded at ``round(resolution x crop_scale)`` and
each batch is cropped to ``resolution`` (``Dataset.crop_to``).
"""

from __future__ import annotations

import os
from pathlib import Path

from gancli.config import DataConfig
from gancli.data.base import Dataset
from gancli.errors import DataError, excerpt
from gancli.registry import DATASETS

ENV_CACHE = "GANCLI_CACHE"
ENV_DATA = "GANCLI_DATA"


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "gancli")


@DATASETS.register("toy", kind="points")
def _toy(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.toy import load_toy

    return load_toy(arg, cfg.size, seed)


@DATASETS.register("digits", kind="images")
def _digits(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.digits import load_digits

    return load_digits(cfg.resolution, cfg.channels or 1, split=arg or "all")


@DATASETS.register("shapes", kind="images")
def _shapes(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.shapes import load_shapes

    return load_shapes(cfg.resolution, cfg.size or 10_000, seed=0, channels=cfg.channels or 3)


@DATASETS.register("torchvision", kind="images")
def _torchvision(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.tv import load_torchvision

    root = Path(os.environ.get(ENV_DATA) or cache_dir() / "torchvision")
    return load_torchvision(arg, root, cfg.resolution, cfg.channels, download=True)


@DATASETS.register("pair", kind="pairs")
def _pair(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.translation import load_pair_builtin

    return load_pair_builtin(arg, cfg.resolution, cfg.channels)


@DATASETS.register("paired", kind="pairs")
def _paired(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.paired import load_paired_builtin

    return load_paired_builtin(arg, cfg.resolution, cfg.channels)


@DATASETS.register("domains", kind="images")
def _domains(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.translation import load_domain_builtin

    return load_domain_builtin(arg, cfg.resolution, cfg.size or 8000)


@DATASETS.register("folder", kind="images")
def _folder(arg: str, cfg: DataConfig, seed: int, progress=None) -> Dataset:
    from gancli.data.stored import folder_dataset

    return folder_dataset(Path(arg), cfg, progress)


def is_store_path(root: Path) -> bool:
    """A folder written by ``gancli data prepare`` (complete, damaged or interrupted)."""
    from gancli.data.store import META
    from gancli.data.prepare import JOURNAL

    return root.is_dir() and ((root / META).is_file() or (root / JOURNAL).is_file())


def _cropped(ds: Dataset, cfg: DataConfig) -> Dataset:
    """Loaded at resolution x crop_scale: batches are cropped to ``cfg.resolution``."""
    if ds.kind != "points" and round(cfg.resolution * cfg.crop_scale) != cfg.resolution:
        ds.crop_to, ds.crop = cfg.resolution, cfg.crop
    return ds


def load_dataset(cfg: DataConfig, seed: int = 0, task: str = "unconditional",
                 progress=None) -> Dataset:
    """Resolve ``cfg.source``: a registered name, ``name:arg``, a store or an image folder path.

    For ``task="translation"`` a folder is read in the CycleGAN layout (``trainA/``,
    ``trainB/``, optional ``testA/``, ``testB/``); for ``task="multi-domain"`` its
    sub-folders are the domains. ``progress`` (a ``gancli.data.progress.PrepareProgress``
    or any callable taking its dicts) is told how preparing an image folder goes.
    """
    from dataclasses import replace

    spec = cfg.source.strip()
    if not spec:
        raise DataError("no data given", hint="pass --data PATH or a built-in such as digits")
    # built-ins and in-memory folders are loaded at the size batches are cropped from
    wide = replace(cfg, resolution=round(cfg.resolution * cfg.crop_scale))
    if Path(spec).expanduser().exists():
        root = Path(spec).expanduser()
        if is_store_path(root):
            if task == "translation":
                raise DataError(f"{root} is a prepared dataset store; translation models read the "
                                "trainA/ and trainB/ folders (each prepared into the cache)",
                                hint="pass the original image folder as --data")
            if task == "multi-domain" and cfg.attributes:  # the store's names.jsonl meets the table
                from gancli.data.translation import load_attribute_folder

                return load_attribute_folder(root, cfg, progress)
            from gancli.data.stored import store_dataset

            return store_dataset(root, replace(cfg, labels=cfg.labels or task == "multi-domain"))
        if task == "translation":
            from gancli.data.paired import load_paired_folder, orient, paired_layout
            from gancli.data.translation import load_pair_folder

            if paired_layout(root):  # pix2pix: train/ of A|B images, or A/ and B/ by name
                return orient(_cropped(load_paired_folder(root, wide.resolution, cfg.channels,
                                                          cfg.cache, progress), cfg), cfg.direction)
            return load_pair_folder(root, cfg, progress)
        if task == "multi-domain" and cfg.attributes:
            from gancli.data.translation import load_attribute_folder

            return load_attribute_folder(root, cfg, progress)
        if task == "multi-domain" and not cfg.labels:
            cfg = replace(cfg, labels=True)  # the sub-folders are the domains
        return _folder(str(root), cfg, seed, progress)
    name, _, arg = spec.partition(":")
    if name in DATASETS and name != "folder":
        from gancli.data.paired import orient

        return orient(_cropped(DATASETS.get(name)(arg, wide, seed), cfg), cfg.direction)
    builtins = ("digits, shapes, toy:ring8, toy:grid25, toy:spiral, torchvision:mnist, "
                "pair:digits-recoloured, paired:digits-outline, domains:shapes-colours")
    raise DataError(f"no such folder and no built-in dataset {excerpt(spec)}",
                    hint=f"give an existing image folder, or one of: {builtins}")
