"""The registries: every name round-trips, misses are helpful, nothing registers twice."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from gancli.errors import RegistryError
from gancli.registry import ALL, FAMILIES, LOSSES, Registry


@pytest.mark.parametrize("kind", sorted(ALL))
def test_every_registered_name_round_trips(kind):
    registry = ALL[kind]
    names = registry.names()
    assert names, f"no {kind} registered"
    for name in names:
        assert name in registry
        assert registry.get(name) is dict(registry.items())[name]
        assert registry.names(name) == [name]


def test_expected_entries_are_registered():
    assert {"mlp", "dcgan"} <= set(FAMILIES.names())
    assert {"minimax", "nonsaturating", "lsgan", "wasserstein", "hinge"} <= set(LOSSES.names())
    assert {"gp", "r1", "clip"} <= set(ALL["regularizers"].names())
    assert {"digits", "shapes", "toy", "folder", "torchvision"} <= set(ALL["datasets"].names())
    assert "unconditional" in ALL["objectives"].names()
    assert "modes" in ALL["metrics"].names()


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(RegistryError) as e:
        LOSSES.get("hinje")
    assert "unknown loss 'hinje'" in e.value.message
    assert "did you mean 'hinge'" in e.value.hint
    assert "nonsaturating" in e.value.hint


def test_wildcards_and_duplicates():
    reg = Registry("thing")
    reg.register("alpha-gan", 1)
    reg.register("beta-gan", 2)
    reg.register("gamma", 3)
    assert reg.names("*gan") == ["alpha-gan", "beta-gan"]
    with pytest.raises(ValueError, match="twice"):
        reg.register("gamma", 4)
    with pytest.raises(ValueError, match="bad thing name"):
        reg.register("Bad Name", 5)


def test_every_model_module_is_imported_by_the_package():
    """A family file that the package forgets to import would silently not exist."""
    import gancli.models as models

    folder = Path(models.__file__).parent
    for path in folder.glob("*.py"):
        if path.stem in ("__init__", "base", "layers"):  # layers: shared by families
            continue
        module = importlib.import_module(f"gancli.models.{path.stem}")
        registered = [f for f in FAMILIES.names() if FAMILIES.get(f).build.__module__ == module.__name__]
        assert registered, f"gancli/models/{path.name} registers no family"
