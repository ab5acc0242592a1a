"""Run folders: ``<out>/<name>-NNN``, numbered, never overwritten."""

from __future__ import annotations

import re
from pathlib import Path

from gancli.fileio import atomic_write_bytes
from gancli.config import Config
from gancli.errors import ConfigError, GancliError


# a run name is one plain folder name: no separators, no "..", no leading dot or dash
_SAFE_NAME = re.compile(r"^\w[\w.+ -]{0,99}$")


def check_run_name(name: str) -> str:
    """Refuse a run name (``run.name``, or a preset's name) that is not one plain folder name.

    The name may come from a preset or from a checkpoint's stored config: it must never be a
    path that leads outside the output folder (``../../x``, ``/etc``).
    """
    if not _SAFE_NAME.match(name) or ".." in name:
        raise ConfigError(f"run name {name!r} is not a plain folder name",
                          hint="use letters, digits, spaces, '_', '-', '.' and '+' (set run.name=NAME); "
                               "choose the parent folder with --out")
    return name


def create_run_dir(out: str | Path, name: str) -> Path:
    """Make the next free ``out/name-NNN`` folder (safe against two runs starting at once)."""
    check_run_name(name)
    root = Path(out).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GancliError(f"cannot create output folder {root}: {e.strerror}",
                          hint="choose another --out") from None
    pattern = re.compile(rf"^{re.escape(name)}-(\d+)$")
    taken = [int(m.group(1)) for p in root.iterdir() if (m := pattern.match(p.name))]
    n = max(taken, default=0)
    while True:
        n += 1
        run = root / f"{name}-{n:03d}"
        try:
            run.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise GancliError(f"cannot create run folder {run}: {e.strerror}",
                              hint="choose another --out") from None
        for sub in ("samples", "checkpoints"):
            (run / sub).mkdir()
        return run


def write_config(run: Path, cfg: Config) -> None:
    atomic_write_bytes(run / "config.yaml", cfg.to_yaml().encode())
