"""What a run folder says about its run: preset, progress, last losses, last checkpoint, state.

States, in the order they are decided:

- ``running``: a process holds the run's lock. ``gancli train`` keeps an exclusive
  ``fcntl.flock`` on ``RUN/.lock`` while it trains; here a non-blocking *shared* lock is tried
  (and released at once): refused means a holder is alive. No ``.lock`` file, or one nobody
  holds (a killed trainer's locks die with it), means no process is running.
- ``finished``: the latest readable checkpoint is at ``train.steps`` of ``config.yaml``.
- ``diverged``: the last row of ``metrics.jsonl`` is a ``"event": "diverged"`` row (written by
  ``gancli train`` when it stops on NaN/inf, roll-backs exhausted included) or holds a NaN/inf
  value. A resume drops rows after its checkpoint, and new rows follow, so a resumed run is not
  ``diverged`` any more.
- ``stopped``: anything else (Ctrl-C, a kill, a crash, a rolled-back run that was then killed).
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

from gancli import checkpoints
from gancli.config import upgrade_stored
from gancli.errors import CheckpointError, GancliError
from gancli.runlog import read_metrics

STATES = ("running", "finished", "diverged", "stopped")
LOSS_KEYS = ("d_loss", "g_loss", "d_a", "d_b", "g_a", "g_b")
LOCK = ".lock"


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists()
                                 for name in ("config.yaml", "metrics.jsonl", "checkpoints"))


def find_runs(root: str | Path) -> list[Path]:
    """``root`` itself when it is a run folder, else its run sub-folders by name."""
    root = Path(root).expanduser()
    if not root.exists():
        raise GancliError(f"no such folder: {root}", hint="pass the folder that holds the run "
                          "folders (train's --out, default runs)")
    if not root.is_dir():
        raise GancliError(f"{root} is not a folder", hint="pass a folder of run folders")
    if is_run_dir(root) and (root / "config.yaml").is_file():
        return [root]
    return sorted((p for p in root.iterdir() if is_run_dir(p)), key=lambda p: p.name)


def lock_held(run: Path) -> bool:
    """True when another process holds ``RUN/.lock`` (see the module docstring)."""
    lock = Path(run) / LOCK
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # no flock on this platform: nobody could be holding one
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_config(run: Path) -> dict:
    """``config.yaml`` as a dict, with keys moved since it was written at their new place
    (``upgrade_stored``); ``{}`` when it is missing or unreadable."""
    import yaml

    try:
        data = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return upgrade_stored(data) if isinstance(data, dict) else {}


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_diverged_row(row: dict | None) -> bool:
    if row is None:
        return False
    if row.get("event") == "diverged":
        return True
    return any(isinstance(v, float) and not math.isfinite(v) for v in row.values())


def summarize(run: str | Path) -> dict:
    """One run folder as a dict: ``run``, ``name``, ``preset``, ``step`` (last logged or saved
    step), ``steps`` (the configured total), ``losses`` (the last logged row's D/G losses),
    ``last`` (every number of that row), ``checkpoint`` / ``checkpoint_step`` (the latest
    readable one), ``state``, ``updated`` (UTC ISO time of the last change to the log or the
    checkpoints), ``skipped_lines`` (damaged lines of metrics.jsonl)."""
    run = Path(run)
    cfg = read_config(run)
    train_cfg = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    ckpt_path, ckpt_meta = None, {}
    try:
        ckpt_path = checkpoints.latest(run / "checkpoints")
        if ckpt_path is not None:
            ckpt_meta = checkpoints.load(ckpt_path, tensors=False).meta
    except (CheckpointError, OSError):
        ckpt_path = None
    try:
        rows, skipped = read_metrics(run / "metrics.jsonl")
    except OSError:
        rows, skipped = [], 0
    logged = [r for r in rows if "event" not in r and "steps" in r]  # rows the loop logs per step
    last = logged[-1] if logged else None
    ckpt_step = _int(ckpt_meta.get("step"))
    total = _int(train_cfg.get("steps")) or _int((last or {}).get("steps"))
    done = max([s for s in (_int((last or {}).get("step")), ckpt_step) if s is not None],
               default=0)
    if lock_held(run):
        state = "running"
    elif ckpt_step is not None and total is not None and ckpt_step >= total:
        state = "finished"
    elif is_diverged_row(rows[-1] if rows else None):
        state = "diverged"
    else:
        state = "stopped"
    numbers = {k: v for k, v in (last or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    touched = [p.stat().st_mtime for p in (run / "metrics.jsonl", ckpt_path, run)
               if p is not None and p.exists()]
    return {
        "run": str(run), "name": run.name,
        "preset": cfg.get("name") or ckpt_meta.get("preset") or None,
        "step": done, "steps": total, "state": state,
        "losses": {k: numbers[k] for k in LOSS_KEYS if k in numbers},
        "last": numbers or None,
        "checkpoint": str(ckpt_path) if ckpt_path else None, "checkpoint_step": ckpt_step,
        "updated": datetime.fromtimestamp(max(touched), timezone.utc).isoformat(timespec="seconds")
        if touched else None,
        "skipped_lines": skipped,
    }


def diverged_row(step: int | None, message: str) -> dict:
    """The ``metrics.jsonl`` row ``gancli train`` appends when a run stops on NaN/inf."""
    return {"step": int(step or 0), "event": "diverged", "message": message}
