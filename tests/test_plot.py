"""``gancli plot``: curves from metrics.jsonl, several runs overlaid, smoothing, --json."""

from __future__ import annotations

import json
import math
import sys

import pytest

from gancli.plotting import ema, window_mean
from gancli.runlog import append_jsonl

from conftest import no_traceback


def make_run(root, name, d_losses, extra_rows=()):
    run = root / name
    run.mkdir()
    for i, d in enumerate(d_losses, 1):
        append_jsonl(run / "metrics.jsonl", {"step": 10 * i, "steps": 100, "d_loss": d,
                                             "g_loss": 2 * d, "lr_g": 1e-4, "img_s": 50.0,
                                             "eta_s": 1.0, "elapsed_s": 1.0})
    for row in extra_rows:
        append_jsonl(run / "metrics.jsonl", row)
    return run


@pytest.fixture
def two_runs(tmp_path):
    a = make_run(tmp_path, "a-001", [1.0, 0.5, 0.25, 0.125],
                 [{"step": 20, "event": "rollback", "lr_g": 5e-5, "lr_d": 5e-5},
                  {"step": 40, "modes": 7, "modes_total": 8, "high_quality": 0.5,
                   "reverse_kl": 0.1, "samples": 2500}])
    with open(a / "metrics.jsonl", "ab") as f:
        f.write(b"\xff not json\n")
    b = make_run(tmp_path, "b-001", [2.0, float("nan"), 1.0])
    return a, b


def test_json_series_are_the_logged_values(cli, two_runs):
    a, b = two_runs
    r = cli("plot", str(a), str(b), "--json")
    assert r.code == 0, r.err
    got = json.loads(r.out)
    assert got["out"] is None  # --json alone draws nothing
    # losses first; bookkeeping (steps, img_s, eta_s, elapsed_s, modes_total, samples) left out
    assert got["metrics"] == ["d_loss", "g_loss", "lr_g", "modes", "high_quality", "reverse_kl"]
    ra, rb = got["runs"]
    assert ra["label"] == "a-001" and ra["skipped_lines"] == 1
    assert ra["series"]["d_loss"] == {"step": [10, 20, 30, 40], "value": [1.0, 0.5, 0.25, 0.125]}
    assert ra["series"]["lr_g"]["value"] == [1e-4] * 4  # the rollback row's lr is an event
    assert ra["series"]["modes"] == {"step": [40], "value": [7.0]}
    assert rb["series"]["d_loss"]["value"] == [2.0, None, 1.0]  # NaN as null
    assert "modes" not in rb["series"]


def test_smoothing(cli, two_runs):
    a, _ = two_runs
    r = cli("plot", str(a), "--metrics", "d_loss", "--smooth", "0.5", "--json")
    s = json.loads(r.out)["runs"][0]["series"]["d_loss"]["smoothed"]
    # debiased EMA by hand: sums 0.5, 0.5, 0.375, 0.25 over weights 0.5, 0.75, 0.875, 0.9375
    assert s == pytest.approx([1.0, 0.5 / 0.75, 0.375 / 0.875, 0.25 / 0.9375])
    r = cli("plot", str(a), "--metrics", "d_loss", "--window", "2", "--json")
    s = json.loads(r.out)["runs"][0]["series"]["d_loss"]["smoothed"]
    assert s == pytest.approx([1.0, 0.75, 0.375, 0.1875])


def test_smoothers_by_hand():
    assert ema([4.0, 0.0], 0.5) == pytest.approx([4.0, (0.5 * 0.5 * 4.0) / 0.75])
    assert ema([1.0, math.nan, 1.0], 0.9)[2] == pytest.approx(1.0)
    assert math.isnan(ema([1.0, math.nan], 0.9)[1])
    assert window_mean([1.0, 2.0, 3.0, 4.0], 3) == pytest.approx([1.0, 1.5, 2.0, 3.0])


def test_png_of_two_runs(cli, two_runs, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    out = tmp_path / "figs" / "curves.png"
    r = cli("plot", *map(str, two_runs), "--metrics", "d_loss,g_loss", "--smooth", "0.6",
            "--out", str(out))
    assert r.code == 0, r.err
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > img.size[1] > 200
    assert "2 metric(s) of 2 run(s)" in r.err


def test_missing_matplotlib_is_one_line(cli, two_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = cli("plot", str(two_runs[0]), "--out", str(tmp_path / "c.png"))
    assert r.code == 1 and no_traceback(r.err)
    assert "gancli plot needs the Python package 'matplotlib'" in r.err
    assert 'pip install "gancli[plot]"' in r.err and not (tmp_path / "c.png").exists()
    assert cli("plot", str(two_runs[0]), "--json").code == 0  # the series need no matplotlib


@pytest.mark.parametrize("args, words", [
    (["--metrics", "d_loss,fid"], "no metric fid in these runs"),
    (["--smooth", "0.9", "--window", "5"], "not both"),
    (["--out", "c.gif"], "unsupported output"),
])
def test_bad_arguments(cli, two_runs, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    r = cli("plot", str(two_runs[0]), *args)
    assert r.code == 2 and words in r.err and no_traceback(r.err)  # a usage error (docs/cli.md)


def test_missing_run_and_empty_log(cli, tmp_path):
    r = cli("plot", str(tmp_path / "nope"))
    assert r.code == 1 and "no such run folder" in r.err
    (tmp_path / "empty").mkdir()
    r = cli("plot", str(tmp_path / "empty"))
    assert r.code == 1 and "no metrics.jsonl" in r.err and no_traceback(r.err)
    (tmp_path / "junk.jsonl").write_bytes(b"\x00\xff garbage\n[1, 2]\n")
    r = cli("plot", str(tmp_path / "junk.jsonl"))
    assert r.code == 1 and f"no numeric metrics in {tmp_path / 'junk.jsonl'}" in r.err
