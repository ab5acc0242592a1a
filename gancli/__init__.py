"""gancli: a command-line GAN workbench.

The small public API: ``list_presets``, ``load_config`` and ``load_generator``.
Nothing here imports torch until it is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "list_presets", "load_config", "load_generator"]


def list_presets(pattern: str = "*") -> list[str]:
    """Names of the presets visible from here, filtered by a shell-style wildcard."""
    from gancli.presets import list_presets as _list

    return [ref.name for ref in _list(pattern)]


def load_config(preset: str, overrides: list[str] | None = None):
    """A preset's resolved Config, with optional ``key=value`` overrides."""
    from gancli.config import parse_set, resolve
    from gancli.presets import load_preset

    return resolve([(f"preset {preset}", load_preset(preset)), ("--set", parse_set(overrides))])


def load_generator(checkpoint: str, device: str = "cpu"):
    """(G, config) from a checkpoint or run folder: G in eval mode, EMA weights if present."""
    from gancli.inference import load_generator as _load

    model = _load(checkpoint, device)
    return model.G, model.cfg
