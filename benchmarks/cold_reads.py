"""Batches read from files the page cache has never held: the store's data path on a cold disk.

A store written a minute ago is not cold on a virtual machine even after evicting it from the
guest's page cache (``posix_fadvise(DONTNEED)``): the host still caches what was just written,
and reads come back in a fraction of a millisecond. Files nobody has read for a long time (the
guest's page cache holds none of their pages: ``fincore`` reports 0 bytes) are what a large
store that does not fit in memory looks like. This script views each given file as the pixels
of a store (``StoredImages``: samples of ``3 x --resolution^2`` bytes at sample offsets, file
size rounded down) and times the reads of ``Batches.next()`` on it (its uint8 batches, without
the float conversion and flips, so that a loaded CPU does not hide the disk), in random order,
``--batches`` batches of ``--batch-size``:

- ``before``: one read at a time, no advice to the kernel (how batches were read before
  ``data.read_threads``);
- ``after``: the default (``data.read_threads`` threads, the kernel told the samples of the
  batches ahead).

The two alternate over the files (file 1 before, file 2 after, file 3 before, ...), each file
read once, so that a disk or host cache that warms up over time favours neither. Only files
with no page in the page cache are used. Reading does not change the files.

    python benchmarks/cold_reads.py /opt/pypi/files/*.whl
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path


def cached_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache (``fincore``), or -1 when that cannot be told."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                             capture_output=True, text=True, timeout=60).stdout
        return int(out.split()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return -1


def timed(path: Path, mode: str, resolution: int, batch_size: int, batches: int) -> float:
    """Samples/s of the reads of ``batches`` batches of ``Batches`` on ``path`` viewed as a
    store."""
    import torch

    from gancli.data.base import Dataset
    from gancli.data.batches import READ_THREADS, Batches
    from gancli.data.store import StoredImages

    size = 3 * resolution * resolution
    x = StoredImages(path, os.path.getsize(path) // size, 3, resolution)
    if mode == "before":
        x.will_need = lambda idx: None
    b = Batches(Dataset("cold", "images", x), batch_size, seed=0, device=torch.device("cpu"),
                flip=True, read_threads=1 if mode == "before" else READ_THREADS)
    t0 = time.perf_counter()
    pos = 0
    for _ in range(batches):  # the reads of next() without its float conversion and flips,
        plan = b._plan(pos)  # which on a loaded machine would time the CPU, not the disk
        b._read(plan)
        pos = plan.end
    dt = time.perf_counter() - t0
    b.close()
    return batches * batch_size / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=4)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    need = 3 * args.resolution ** 2 * args.batch_size * args.batches * 2
    files = [f for f in args.files if f.is_file() and f.stat().st_size >= need
             and cached_bytes(f) == 0]
    print(f"{len(files)} of {len(args.files)} files are large enough and have no cached page",
          flush=True)
    got: dict[str, list[float]] = {"before": [], "after": []}
    for k, f in enumerate(files):
        mode = ("before", "after")[k % 2]
        rate = timed(f, mode, args.resolution, args.batch_size, args.batches)
        got[mode].append(rate)
        print(f"  {mode:6s} {rate:7.0f} samples/s  {f}", flush=True)
    med = {m: statistics.median(v) for m, v in got.items() if v}
    print("\n| reads | files | samples/s: median (min to max) |\n|---|---|---|")
    for m, v in got.items():
        if v:
            print(f"| {m} | {len(v)} | {med[m]:.0f} ({min(v):.0f} to {max(v):.0f}) |")
    if len(med) == 2:
        print(f"\nafter / before (medians): {med['after'] / med['before']:.1f}x; load average "
              f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
