"""Run folders: ``<out>/<name>-NNN``, numbered, never overwritten; one owner at a time."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from gancli.fileio import atomic_write_bytes
from gancli.config import Config, upgrade_stored
from gancli.errors import CheckpointError, ConfigError, GancliError, RunInUse

LOCK_FILE = ".lock"  # the holder's PID, for the message a second process prints


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


@contextmanager
def run_lock(run: Path) -> Iterator[None]:
    """Hold the exclusive lock of run folder ``run`` for the body: one process trains into it.

    An advisory ``flock`` on the folder itself (Linux, macOS, BSD): the kernel drops it when
    the process ends in any way, SIGKILL and crashes included, so it never stays stuck. The
    holder's PID is written (atomically) to ``RUN/.lock`` and removed on release; a ``.lock``
    left by a killed process holds a stale PID and is simply overwritten.

    Raises ``RunInUse`` (exit 1) naming the holder's PID when another process holds it. Where
    ``fcntl`` does not exist (Windows), or the filesystem does not support locks (some network
    mounts: ENOLCK / EOPNOTSUPP), the body runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    run = Path(run)
    try:
        fd = os.open(run, os.O_RDONLY)
    except OSError:  # no such folder yet, or unreadable: the command's own checks say so
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            holder = lock_holder(run)
            who = f"process {holder}" if holder else "another process"
            stop = f"kill -TERM {holder}" if holder else "kill -TERM PID"
            raise RunInUse(f"run folder {run} is in use by {who}",
                           hint=f"wait for it to end, or stop it with `{stop}` (it saves a "
                                "checkpoint first), then resume") from None
        except OSError:  # locks not supported here
            locked = False
        if locked:
            try:
                atomic_write_bytes(run / LOCK_FILE, f"{os.getpid()}\n".encode())
            except OSError:  # a read-only folder fails later, with its own message
                pass
        try:
            yield
        finally:
            if locked:
                try:
                    (run / LOCK_FILE).unlink(missing_ok=True)
                except OSError:
                    pass
    finally:
        os.close(fd)  # releases the lock


def lock_holder(run: Path) -> int | None:
    """The PID written in ``RUN/.lock`` (None if unreadable)."""
    try:
        text = (Path(run) / LOCK_FILE).read_text(encoding="ascii", errors="replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


# the config that gives a run its networks and data shapes (what a checkpoint must share with
# the run folder it is resumed into); the rest (lengths, cadence, learning rates) may change
SHAPE_KEYS = ("name", "task", "objective", "model", "data.resolution", "data.channels")


def _get(cfg: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        cfg = cfg.get(key) if isinstance(cfg, dict) else None
    return cfg


def check_checkpoint_belongs(run: Path, path: Path, meta: dict) -> None:
    """Refuse to resume checkpoint ``path`` (metadata ``meta``) into run folder ``run`` unless
    it belongs there: the step in its name ``step-NNNNNNN.safetensors`` equals ``meta["step"]``,
    and its preset and shape-defining config (``SHAPE_KEYS``) equal those of ``RUN/config.yaml``.

    A missing or unreadable ``config.yaml`` (a kill before it was written) is no evidence
    against the checkpoint and is accepted. Raises ``CheckpointError`` (exit 1), one line.
    """
    import yaml

    m = re.fullmatch(r"step-(\d+)\.safetensors", path.name)
    if m and int(m.group(1)) != meta.get("step"):
        raise CheckpointError(f"{path} is named step {int(m.group(1))} but holds step "
                              f"{meta.get('step')}", hint="it was renamed or copied over; resume "
                              "from another checkpoint of the run (pass its file)")
    try:
        own = yaml.safe_load((Path(run) / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return
    theirs = dict(meta.get("config") or {})
    theirs.setdefault("name", meta.get("preset"))
    if not isinstance(own, dict):
        return
    own = upgrade_stored(own)  # a run folder written before keys moved (gancli.config.MOVED_KEYS)
    for key in SHAPE_KEYS:
        a, b = _get(theirs, key), _get(own, key)
        if isinstance(a, dict) and isinstance(b, dict):  # name the first key that differs
            sub = next((k for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)), None)
            if sub is not None:
                key, a, b = f"{key}.{sub}", a.get(sub), b.get(sub)
        if a != b:
            raise CheckpointError(
                f"{path.name} does not belong to run {run}: its "
                f"{'preset' if key == 'name' else key} is {a!r}, the run's is {b!r}",
                hint="pass the right run, or copy the file out of the run's checkpoints/ folder "
                     "and resume the copy (that makes a new run folder)")
