"""metrics.jsonl: damaged lines are skipped by every reader and by a resume's trim."""

from __future__ import annotations

import json

from gancli.runlog import parse_row, read_metrics, trim_metrics


def test_parse_row_keeps_objects_and_rejects_everything_else():
    assert parse_row('{"step": 3, "d_loss": 0.5}') == {"step": 3, "d_loss": 0.5}
    assert parse_row(b'{"step": 4.0}') == {"step": 4}
    for bad in ("7", "[1, 2]", '"text"', "{", '{"step": "ten"}', '{"step": -1}', '{"step": true}',
                '{"step": NaN}', '{"step": 1.5}', b"\xff\xfe{}", "", "null"):
        assert parse_row(bad) is None, bad


def test_a_damaged_log_still_trims_on_resume(tmp_path):
    log = tmp_path / "metrics.jsonl"
    lines = [b'{"step": 1, "d_loss": 1.0}', b"42", b"\xff\xfe not utf-8", b'{"step": "x"}',
             b'{"step": 2, "d_loss": 2.0}', b'{"step": 3, "d_loss": 3.0}', b'{"step": 4, "d_lo']
    log.write_bytes(b"\n".join(lines))
    rows, skipped = read_metrics(log)
    assert [r["step"] for r in rows] == [1, 2, 3] and skipped == 4
    assert trim_metrics(log, 2) == 4
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def test_missing_log_reads_empty(tmp_path):
    assert read_metrics(tmp_path / "nope.jsonl") == ([], 0)
    assert trim_metrics(tmp_path / "nope.jsonl", 5) == 0
