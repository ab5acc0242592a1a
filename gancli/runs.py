"""Run folders: ``<out>/<name>-NNN``, numbered, never overwritten."""

from __future__ import annotations

import re
from pathlib import Path

from gancli.fileio import atomic_write_bytes
from gancli.config import Config
from gancli.errors import GancliError


def create_run_dir(out: str | Path, name: str) -> Path:
    """Make the next free ``out/name-NNN`` folder (safe against two runs starting at once)."""
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
