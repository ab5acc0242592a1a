"""The command line as a user (or a script) meets it: help, errors, exit codes, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gancli import __version__

from conftest import TINY, no_traceback, tiny_overrides


def test_help_does_not_import_torch():
    code = ("import sys; from gancli.cli import app, main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_version_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "gancli", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"gancli {__version__}"


@pytest.mark.parametrize("args, code, words", [
    (["train", "dcgn"], 2, ["unknown preset 'dcgn'", "did you mean 'dcgan'"]),
    (["train", "dcgan", "--set", "train.stepz=3"], 2, ["train.stepz", "did you mean 'train.steps'"]),
    (["train", "dcgan", "--set", "optim.lr_g=abc"], 2, ["expects float"]),
    (["train", "dcgan", "--steps", "0"], 2, []),
    (["train", "dcgan", "--bogus-flag"], 2, []),
    (["train"], 2, ["no preset given"]),
    (["train", "dcgan", "--data", "/no/such/folder"], 1, ["no such folder"]),
    (["train", "dcgan", "--device", "cuda:7"], 1, ["not available"]),
    (["train", "dcgan", "--device", "tpu"], 1, ["unknown device"]),
    (["train", "dcgan", "--config", "/no/such.yaml"], 2, ["config file not found"]),
    (["sample", "/no/such/run"], 1, ["no such run"]),
    (["interpolate", "/no/such/run", "--seeds", "1,2"], 1, ["no such run"]),
    (["zoo", "nope"], 2, ["unknown preset"]),
    (["train", "gan", "--data", "toy:grid24"], 1, ["unknown toy mixture"]),
    (["train", "dcgan", "--data", "toy:grid25"], 2, ["cannot model points", "model.family=mlp"]),
    (["train", "dcgan", "--set", "train.augment=rotate"], 2, ["unknown augmentation 'rotate'"]),
    (["train", "gan", "--set", "train.augment=cutout"], 2, ["DiffAugment works on images"]),
    (["train", "sngan", "--set", "loss.label_flip=0.1"], 2, ["label flip", "hinge"]),
    (["train", "sagan", "--set", "model.attention=12"], 2, ["self-attention", "16, 32"]),
    (["train", "infogan", "--set", "model.info_cat=0", "--set", "model.info_cont=0"], 2,
     ["at least one latent code"]),
    (["train", "cgan", "--data", "toy:ring8", "--set", "model.family=mlp"], 2,
     ["labelled data"]),
])
def test_user_errors_are_one_line_with_a_hint(cli, tmp_path, args, code, words):
    r = cli(*args, "--out", str(tmp_path)) if args[0] == "train" and len(args) > 1 else cli(*args)
    assert r.code == code, (r.code, r.err)
    assert no_traceback(r.err)
    for w in words:
        assert w in r.err
    if words:
        assert "hint:" in r.err


def test_dry_run_prints_resolved_config(cli, tmp_path):
    r = cli("train", "wgan-gp", "--dry-run", "--steps", "7", "--set", "optim.lr_d=3e-4")
    assert r.code == 0 and "steps: 7" in r.out and "lr_d: 0.0003" in r.out
    r = cli("train", "wgan-gp", "--dry-run", "--json", "--data", str(tmp_path))
    cfg = json.loads(r.out)
    assert cfg["data"]["source"] == str(tmp_path) and cfg["reg"]["gp"] == 10.0
    assert not list(tmp_path.iterdir()), "--dry-run writes nothing"


def test_zoo_lists_all_with_availability(cli):
    r = cli("zoo", "--json")
    rows = {p["name"]: p for p in json.loads(r.out)["presets"]}
    assert rows["dcgan"]["available"] and rows["dcgan"]["arxiv"] == "1511.06434"
    assert all(row["available"] and row["missing"] is None for row in rows.values())
    r = cli("zoo", "wgan-gp")
    assert r.code == 0 and "Improved Training of Wasserstein GANs" in r.out
    r = cli("zoo", "--filter", "wgan*", "--json")
    assert {p["name"] for p in json.loads(r.out)["presets"]} == {"wgan", "wgan-gp", "wgan-gp-toy"}


def test_run_folders_are_numbered_and_never_reused(cli, tmp_path):
    for _ in range(2):
        r = cli("train", "gan", *TINY, *tiny_overrides("gan"), "--out", str(tmp_path), "--quiet")
        assert r.code == 0 and r.out == "" and r.err == "", r.err  # --quiet: silence on success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gan-001", "gan-002"]


def test_plain_output_when_not_a_terminal(cli, tmp_path):
    r = cli("train", "gan", *TINY, *tiny_overrides("gan"), "--out", str(tmp_path))
    assert r.code == 0
    assert r.out == ""  # progress goes to stderr; stdout stays clean for results
    assert "step 2/4" in r.err and "done: 4 steps" in r.err
