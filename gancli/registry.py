"""Name -> object registries: model families, losses, regularisers, objectives, datasets, metrics.

A registry fills itself on first use by importing the module that registers its
entries (no import-time scanning, no magic file names): ``FAMILIES.get("dcgan")``
imports ``gancli.models``, whose ``__init__`` imports each family module.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from typing import Any

from gancli.errors import RegistryError, excerpt

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


class Registry:
    """A small named registry with wildcard listing and helpful misses."""

    def __init__(self, kind: str, populate: str | None = None):
        self.kind = kind
        self._populate = populate
        self._loaded = populate is None
        self._entries: dict[str, Any] = {}
        self._meta: dict[str, dict] = {}

    def register(self, name: str, obj: Any = None, **meta: Any) -> Any:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        if not _NAME.match(name):
            raise ValueError(f"bad {self.kind} name {name!r}: use lower-case letters, digits, ._-")

        def add(o: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = o
            self._meta[name] = meta
            return o

        return add if obj is None else add(obj)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self._populate)

    def get(self, name: str) -> Any:
        self._load()
        if name not in self._entries:
            raise self.unknown(name)
        return self._entries[name]

    def meta(self, name: str) -> dict:
        self.get(name)
        return self._meta[name]

    def unknown(self, name: str) -> RegistryError:
        known = self.names()
        close = difflib.get_close_matches(name[:200], known, n=1, cutoff=0.4)
        hint = (f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(known)}"
        return RegistryError(f"unknown {self.kind} {excerpt(name)}", hint=hint)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def items(self) -> list[tuple[str, Any]]:
        self._load()
        return sorted(self._entries.items())

    def values(self) -> list[Any]:
        """Every registered object, in registration order."""
        self._load()
        return list(self._entries.values())


FAMILIES = Registry("model family", "gancli.models")
LOSSES = Registry("loss", "gancli.losses")
REGULARIZERS = Registry("regulariser", "gancli.regularizers")
OBJECTIVES = Registry("objective", "gancli.training.objectives")
DATASETS = Registry("dataset", "gancli.data")
METRICS = Registry("metric", "gancli.metrics")
# config sections owned by an objective or a toolbox (gancli.config.register_section)
SECTIONS = Registry("config section", "gancli.training.objectives")

ALL: dict[str, Registry] = {
    "families": FAMILIES,
    "losses": LOSSES,
    "regularizers": REGULARIZERS,
    "objectives": OBJECTIVES,
    "datasets": DATASETS,
    "metrics": METRICS,
}
