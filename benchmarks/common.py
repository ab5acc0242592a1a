"""Shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from gancli import load_config
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


def train_preset(preset: str, sets: list[str], out: str | None = None,
                 name: str | None = None) -> tuple[Path, float]:
    """Train ``preset`` with ``--set``-style overrides on the CPU; (checkpoint, minutes)."""
    cfg = load_config(preset, sets)
    run = create_run_dir(out or tempfile.mkdtemp(prefix="gancli-bench-"), name or cfg.name)
    write_config(run, cfg)
    t0 = time.perf_counter()
    result = train(cfg, run, torch.device("cpu"), Reporter())
    return result.checkpoint, (time.perf_counter() - t0) / 60


def interleaved_medians(runs: dict, repeats: int, verbose: bool = False) -> dict[str, float]:
    """Call every ``runs[name]()`` (returning a rate) once per repeat, interleaved so that
    machine load hits all of them alike; the median rate of each."""
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(repeats):
        for name, fn in runs.items():
            rates[name].append(fn())
        if verbose:
            print(f"  repeat {r + 1}: " + "  ".join(f"{k} {v[-1]:.3f}" for k, v in rates.items()),
                  flush=True)
    return {k: statistics.median(v) for k, v in rates.items()}


def run_or_train_parser(description: str):
    """An argparse parser with --run (score an existing run) and --train PRESET [--set k=v]."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--run", help="a run folder or checkpoint to score")
    ap.add_argument("--train", help="a preset to train first (on the CPU)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override")
    return ap


def run_or_train(ap, args) -> tuple[str, float | None]:
    """(checkpoint or run to score, training minutes or None)."""
    if args.train:
        checkpoint, minutes = train_preset(args.train, args.sets)
        return str(checkpoint), minutes
    if not args.run:
        ap.error("give --run or --train")
    return args.run, None
