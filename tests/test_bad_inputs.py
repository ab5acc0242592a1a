"""Every bad input of docs/reliability.md: the documented exit code, one line, no traceback."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import torch

from gancli import checkpoints

from bad_inputs import CASES, make_checkpoint
from conftest import no_traceback


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, cli, tmp_path, ckpt):
    name, _, setup, code, fragment = case
    with ExitStack() as stack:
        argv = setup(tmp_path, ckpt, stack)
        r = cli(*argv)
    text = r.out + r.err
    assert r.code == code, (name, r.code, r.err[-800:])
    assert fragment in text, (name, text[-800:])
    assert no_traceback(r.err) and "internal error" not in r.err, r.err
    # a message quotes bounded excerpts of what the user gave: no line grows with the input
    assert max(map(len, r.err.splitlines() or [""])) < 1000, (name, len(r.err))
    if code:
        # progress lines of work done before the error (preparing a folder) may come first
        lines = [line for line in r.err.splitlines()
                 if line.strip() and not line.startswith("preparing data: ")]
        assert lines[0].startswith("error: ") and len(lines) <= 2, r.err  # error + hint
    assert not (tmp_path / "pwned").exists()  # no YAML tag ever ran code


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(cli, tmp_path, ckpt):
    setup = dict((c[0], c[2]) for c in CASES)["disk-full-at-checkpoint"]
    with ExitStack() as stack:
        r = cli(*setup(tmp_path, ckpt, stack))
    assert r.code == 1 and "nothing was overwritten" in r.err
    ckpt_dir = tmp_path / "runs" / "gan-001" / "checkpoints"
    assert (ckpt_dir / "latest").read_text().strip() == "step-0000002.safetensors"
    good = checkpoints.load(checkpoints.resolve(ckpt_dir.parent))
    assert good.step == 2 and all(torch.isfinite(t).all() for t in good.tensors.values()
                                  if t.is_floating_point())
    assert not list(ckpt_dir.glob(".*.tmp")) and not (ckpt_dir / "step-0000003.safetensors").exists()
    # and the run continues from there once there is space again
    r = cli("train", "--resume", str(ckpt_dir.parent), "--quiet")
    assert r.code == 0, r.err
    assert checkpoints.load(checkpoints.resolve(ckpt_dir.parent), tensors=False).step == 5


def test_a_stored_run_out_is_never_written_to(cli, tmp_path, ckpt):
    setup = dict((c[0], c[2]) for c in CASES)["tampered-run-out"]
    with ExitStack() as stack:
        r = cli(*setup(tmp_path, ckpt, stack))
    assert r.code == 0, r.err
    assert not (tmp_path / "elsewhere").exists()
    assert (tmp_path / "runs" / "gan-001" / "checkpoints" / "latest").is_file()


def test_a_failed_start_leaves_no_run_folder(cli, tmp_path, ckpt):
    for name in ("absurd-batch", "disk-full-foreseen", "run-name-escape"):
        setup = dict((c[0], c[2]) for c in CASES)[name]
        with ExitStack() as stack:
            assert cli(*setup(tmp_path, ckpt, stack)).code in (1, 2)
        runs = tmp_path / "runs"
        assert not runs.exists() or not any(runs.iterdir()), name
