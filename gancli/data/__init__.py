"""Datasets: one spec string (``--data``) -> one in-memory ``Dataset``.

Built-ins need no network: ``digits`` (``digits:train`` / ``digits:test`` for its fixed
split), ``shapes``, ``toy:ring8``, ``toy:grid25``,
``toy:spiral``, and for translation ``pair:digits-recoloured``, ``pair:digits-inverted`` and
``domains:shapes-colours``. ``torchvision:NAME`` reads (or, when asked, downloads) torchvision
datasets; anything else is an image folder.
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


@DATASETS.register("domains", kind="images")
def _domains(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.translation import load_domain_builtin

    return load_domain_builtin(arg, cfg.resolution, cfg.size or 8000)


@DATASETS.register("folder", kind="images")
def _folder(arg: str, cfg: DataConfig, seed: int) -> Dataset:
    from gancli.data.images import load_image_folder

    cache = cache_dir() / "datasets" if cfg.cache else None
    return load_image_folder(arg, cfg.resolution, cfg.channels, cache, labels=cfg.labels,
                             allow_empty_classes=cfg.allow_empty_classes)


def load_dataset(cfg: DataConfig, seed: int = 0, task: str = "unconditional") -> Dataset:
    """Resolve ``cfg.source``: a registered name, ``name:arg``, or an image folder path.

    For ``task="translation"`` a folder is read in the CycleGAN layout (``trainA/``,
    ``trainB/``, optional ``testA/``, ``testB/``); for ``task="multi-domain"`` its
    sub-folders are the domains.
    """
    spec = cfg.source.strip()
    if not spec:
        raise DataError("no data given", hint="pass --data PATH or a built-in such as digits")
    if Path(spec).expanduser().exists():
        root = Path(spec).expanduser()
        if task == "translation":
            from gancli.data.translation import load_pair_folder

            cache = cache_dir() / "datasets" if cfg.cache else None
            return load_pair_folder(root, cfg.resolution, cfg.channels, cache)
        if task == "multi-domain" and cfg.attributes:
            from gancli.data.translation import load_attribute_folder

            return load_attribute_folder(root, cfg)
        if task == "multi-domain" and not cfg.labels:
            from dataclasses import replace

            cfg = replace(cfg, labels=True)  # the sub-folders are the domains
        return DATASETS.get("folder")(str(root), cfg, seed)
    name, _, arg = spec.partition(":")
    if name in DATASETS and name != "folder":
        return DATASETS.get(name)(arg, cfg, seed)
    builtins = ("digits, shapes, toy:ring8, toy:grid25, toy:spiral, torchvision:mnist, "
                "pair:digits-recoloured, domains:shapes-colours")
    raise DataError(f"no such folder and no built-in dataset {excerpt(spec)}",
                    hint=f"give an existing image folder, or one of: {builtins}")
