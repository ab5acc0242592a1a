"""Atomic file writes: a reader sees the old file or the complete new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def atomic_write_bytes(path: Path, data: bytes,
                       check: Callable[[Path], None] | None = None) -> None:
    """Write to a temporary file in the same folder, fsync it, rename it over ``path``.

    A kill at any moment leaves the previous file intact; a kill between the write and
    the rename leaves a ``.NAME.PID.tmp`` file that ``clean_temporary`` removes later.
    ``check``, when given, is called with the complete temporary file before the rename
    (e.g. to run an exported model); if it raises, the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)  # make the rename itself durable


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; best effort (some file
    systems cannot open a folder for fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def clean_temporary(folder: Path) -> None:
    """Remove temporary files a killed writer left behind (``.NAME.PID.tmp``)."""
    if folder.is_dir():
        for p in folder.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
