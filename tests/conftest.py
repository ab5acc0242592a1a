"""Shared fixtures: an isolated cache/preset environment and an in-process CLI runner."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's cache, presets or device choice."""
    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("GANCLI_PRESETS", raising=False)
    monkeypatch.delenv("GANCLI_DEVICE", raising=False)
    monkeypatch.delenv("GANCLI_DEBUG", raising=False)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``gancli ARGS`` in-process through the real entry point (error mapping included)."""
    from gancli.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = 0
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and 'File "' not in text


# tiny, fast settings for any preset: a few steps on small data
TINY = ["--steps", "4", "--batch-size", "8", "--set", "train.log_every=2",
        "--set", "train.sample_every=0", "--set", "train.ckpt_every=0", "--set", "train.sample_n=4"]


def tiny_overrides(preset: str) -> list[str]:
    """Shrink a preset's networks and data so one run takes well under a second."""
    from gancli import load_config

    cfg = load_config(preset)
    sets = ["data.size=512", "model.g_width=8", "model.d_width=8"]
    if cfg.data.source.startswith("toy:"):
        sets += ["model.g_depth=2", "model.d_depth=2"]
    elif cfg.task in ("translation", "multi-domain"):  # one residual block, a 1-layer PatchGAN
        sets += ["data.resolution=8", "model.res_blocks=1", "model.d_depth=1"]
    elif cfg.model.attention:  # self-attention needs a block at some resolution: 8 of 16
        sets += ["data.resolution=16", "model.attention=8"]
    else:
        sets += ["data.resolution=8"]
    return [x for s in sets for x in ("--set", s)]


sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))


def load_benchmark(name: str):
    """The module ``benchmarks/<name>.py``, imported with ``benchmarks/`` on the path for its
    own imports (``from common import ...``) and off it again afterwards."""
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location(name, bench / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(bench))
    return mod
