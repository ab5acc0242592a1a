"""The wheel ships the presets and the built-in data: an installed gancli finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_presets_and_data(tmp_path):
    out = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path),
                          str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("gancli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {p.name for p in (ROOT / "presets").glob("*.yaml")}
    assert presets and {f"gancli/_presets/{p}" for p in presets} <= names
    assert "gancli/data/digits.csv.gz" in names and "gancli/data/DIGITS_LICENSE.txt" in names
    assert not any(n.startswith("tests/") for n in names)
