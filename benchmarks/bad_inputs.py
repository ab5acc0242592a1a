"""Run every bad-input case of tests/bad_inputs.py through gancli's entry point; print the table.

    python benchmarks/bad_inputs.py > table.md

The table in docs/reliability.md is this script's output: case, exit code, and the first
line gancli printed (the error, or for a counted skip the data line of the JSON start event).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bad_inputs import CASES, make_checkpoint  # noqa: E402

from gancli.cli import main  # noqa: E402


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def summary(code: int, out: str, err: str, tmp: Path) -> str:
    if code:
        return err.splitlines()[0].replace(str(tmp), "…").replace(str(tmp.parent), "…")
    for line in out.splitlines():  # --json: the start event says what was loaded and skipped
        row = json.loads(line)
        if row.get("event") == "start" and row.get("data_info"):
            info = row["data_info"]
            return (f"trained; {info['files']} images loaded, {info['skipped']} skipped "
                    f"({', '.join(info['skipped_examples'])})".replace(" ()", "")
                    + "".join(f"; note: {n}" for n in info.get("notes", [])))
        if "metrics" in row and row.get("resolution"):  # evaluate --json: the resolution it chose
            fake = row["fake"]
            how = (f" ({fake['chosen_by']}; short sides {fake['short_sides'][0]}..{fake['short_sides'][2]})"
                   if fake.get("chosen_by") else "")
            return (f"scored at {row['resolution']['working']} px{how}"
                    + "".join(f"; note: {n}" for n in fake.get("notes", [])))
    return "trained"


def main_() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print("| case | exit | gancli says |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as base:
        ckpt = make_checkpoint(Path(base) / "ckpt")
        for i, (_name, what, setup, want, _) in enumerate(CASES):
            tmp = Path(base) / f"case-{i}"
            tmp.mkdir()
            with contextlib.ExitStack() as stack:
                code, out, err = run(setup(tmp, ckpt, stack))
            flag = "" if code == want else f" (expected {want})"
            text = summary(code, out, err, tmp).replace("|", "\\|")
            print(f"| {what} | {code}{flag} | {text} |")


if __name__ == "__main__":
    main_()
