"""``metrics.jsonl``: one JSON object per line, appended by the training loop.

The log is appended to (never rewritten mid-run), so a kill can cut its last line short, and
users and tools edit it by hand. Every reader goes through ``read_metrics``, which keeps only
well-formed rows and skips the rest, so one damaged line never makes a run unreadable or
impossible to resume.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from gancli.fileio import atomic_write_bytes

# A metrics row larger than this is not one gancli wrote (a row is a few hundred bytes).
MAX_ROW_BYTES = 1 << 20


def append_jsonl(path: Path, row: dict) -> None:
    """Append ``row`` as one JSON line (``OSError`` on a full or read-only disk)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def parse_row(line: bytes | str) -> dict | None:
    """One line of the log as a dict, or None when it is not a row gancli could have written.

    A row is a JSON object whose ``step``, when present, is a non-negative integer (a float
    with an integral value is accepted, as older logs may hold ``"step": 10.0``). Bare numbers,
    lists, strings, non-UTF-8 bytes, over-long lines, NaN/inf or boolean steps are rejected.
    """
    if isinstance(line, bytes):
        if len(line) > MAX_ROW_BYTES:
            return None
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif len(line) > MAX_ROW_BYTES:
        return None
    line = line.strip()
    if not line:
        return None
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(row, dict):
        return None
    if "step" in row:
        step = row["step"]
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            return None
        if isinstance(step, float):
            if not math.isfinite(step) or step != int(step):
                return None
            row["step"] = step = int(step)
        if step < 0:
            return None
    return row


def read_metrics(path: Path) -> tuple[list[dict], int]:
    """The well-formed rows of a ``metrics.jsonl`` and the number of lines skipped.

    Returns ``([], 0)`` when the file does not exist. Raises ``OSError`` only when the file
    exists but cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        return [], 0
    rows, skipped = [], 0
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        row = parse_row(raw)
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    return rows, skipped


def trim_metrics(path: Path, step: int) -> int:
    """On resume, keep only well-formed rows logged at or before ``step`` (later ones are about
    to be redone; damaged lines, such as one cut short by a kill, are dropped). Returns the
    number of damaged lines dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    rows, skipped = read_metrics(path)
    keep = [json.dumps(r) for r in rows if r.get("step", 0) <= step]
    atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())
    return skipped
