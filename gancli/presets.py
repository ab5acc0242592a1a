"""Find, read and list presets: one YAML file per preset.

Search order for a name: an explicit ``.yaml`` path, then each folder in
``GANCLI_PRESETS`` (``os.pathsep``-separated), then the built-ins shipped with the
package. A preset may start from another with ``extends: NAME``.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from gancli.config import Config, check_layer, load_yaml, merge, resolve
from gancli.errors import PresetError, excerpt

ENV_DIRS = "GANCLI_PRESETS"


def builtin_dir() -> Path:
    """The built-in presets: inside the wheel (``gancli/_presets``) or the source checkout."""
    packaged = Path(str(resources.files("gancli"))) / "_presets"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "presets"


def preset_dirs() -> list[tuple[str, Path]]:
    """(source label, folder) in search order: user folders first, then built-ins."""
    dirs = [("user", Path(d)) for d in os.environ.get(ENV_DIRS, "").split(os.pathsep) if d]
    return dirs + [("builtin", builtin_dir())]


@dataclass(frozen=True)
class PresetRef:
    name: str
    path: Path
    source: str  # "builtin", "user" or "file"


def _is_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or os.sep in name or "/" in name


def list_presets(pattern: str = "*") -> list[PresetRef]:
    """Every preset visible from here (a user preset hides a built-in of the same name)."""
    found: dict[str, PresetRef] = {}
    for source, folder in preset_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            name = path.stem
            if name not in found and fnmatch.fnmatchcase(name, pattern):
                found[name] = PresetRef(name, path, source)
    return sorted(found.values(), key=lambda r: r.name)


def find_preset(name: str) -> PresetRef:
    if _is_path(name):
        path = Path(name)
        if not path.is_file():
            raise PresetError(f"preset file not found: {path}", hint="check the path, or use a "
                              "preset name from `gancli zoo`")
        return PresetRef(path.stem, path, "file")
    for ref in list_presets():
        if ref.name == name:
            return ref
    names = [r.name for r in list_presets()]
    close = difflib.get_close_matches(name[:200], names, n=1, cutoff=0.4)
    hint = (f"did you mean '{close[0]}'? " if close else "") + f"known presets: {', '.join(names)}"
    raise PresetError(f"unknown preset {excerpt(name)}", hint=hint)


def _read_yaml(path: Path) -> dict:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise PresetError(f"cannot parse preset {path}: {problem}{where}",
                          hint="presets are plain YAML mappings (no tags, no code)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PresetError(f"cannot read preset {path}: {e}") from None
    if not isinstance(data, dict):
        raise PresetError(f"preset {path} must be a YAML mapping, got {type(data).__name__}")
    return data


def load_preset(name: str, _seen: tuple[str, ...] = ()) -> dict:
    """The preset's settings as a validated nested dict, ``extends`` chains merged in."""
    ref = find_preset(name)
    if ref.name in _seen:
        raise PresetError(f"preset '{ref.name}' extends itself through {' -> '.join(_seen)}")
    data = _read_yaml(ref.path)
    if isinstance(data.get("run"), dict) and "out" in data["run"]:
        raise PresetError(f"preset {ref.path.name} sets run.out: a preset may not choose where "
                          "files are written", hint="remove run.out from the preset; pass --out")
    parent = data.pop("extends", None)
    data.setdefault("name", ref.name)
    layer = check_layer(data, f"preset {ref.path.name}")
    if parent:
        base = load_preset(str(parent), _seen + (ref.name,))
        layer = merge(base, layer)
    return layer


def resolve_preset(name: str) -> Config:
    return resolve([(f"preset {name}", load_preset(name))])


def availability(cfg: Config) -> str | None:
    """None when every piece the preset needs (family, objective, loss) is registered, else
    what is missing; ``gancli zoo`` shows it, ``gancli train`` refuses such a preset."""
    from gancli.registry import FAMILIES, LOSSES, OBJECTIVES

    for registry, name in ((FAMILIES, cfg.model.family), (OBJECTIVES, cfg.objective),
                           (LOSSES, cfg.loss.name)):
        if name not in registry:
            return f"{registry.kind} '{name}' is not in this version yet"
    return None
