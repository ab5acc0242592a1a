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

With ``--raw MODES`` the disk itself is probed instead, the modes taking the files in turn:
``--reads`` random sample-sized ``os.pread`` calls per file (a quarter of them for ``qd1``):
``qd1`` one at a time, ``threadsN`` from N threads at once, ``adviceN`` one at a time in order
with ``posix_fadvise(WILLNEED)`` given N reads ahead (what ``Batches`` does for whole batches).

    python benchmarks/cold_reads.py /opt/pypi/files/*.whl
    python benchmarks/cold_reads.py --raw qd1,threads8,threads32,threads64,advice64 /opt/pypi/files/*.whl
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


def raw(path: Path, mode: str, sample: int, reads: int, seed: int = 5) -> tuple[float, float]:
    """(reads/s, CPU ms per read) of random ``sample``-byte reads of ``path`` in ``mode``."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    k = reads // 4 if mode == "qd1" else reads
    idx = random.Random(seed).sample(range(os.path.getsize(path) // sample), k)
    fd = os.open(path, os.O_RDONLY)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        if mode == "qd1":
            for i in idx:
                os.pread(fd, sample, i * sample)
        elif mode.startswith("threads"):
            with ThreadPoolExecutor(int(mode[7:])) as pool:
                list(pool.map(lambda i: os.pread(fd, sample, i * sample), idx))
        elif mode.startswith("advice"):
            d = int(mode[6:])
            for i in idx[:d]:
                os.posix_fadvise(fd, i * sample, sample, os.POSIX_FADV_WILLNEED)
            for j, i in enumerate(idx):
                if j + d < len(idx):
                    os.posix_fadvise(fd, idx[j + d] * sample, sample, os.POSIX_FADV_WILLNEED)
                os.pread(fd, sample, i * sample)
        else:
            raise SystemExit(f"unknown mode {mode}: qd1, threadsN or adviceN")
        return k / (time.perf_counter() - t0), (time.process_time() - c0) / k * 1e3
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--raw", default="", help="comma list of disk probe modes (see above)")
    ap.add_argument("--reads", type=int, default=256, help="reads per file with --raw")
    args = ap.parse_args()
    sample = 3 * args.resolution ** 2
    need = sample * max(args.batch_size * args.batches, args.reads) * 2
    files = [f for f in args.files if f.is_file() and f.stat().st_size >= need
             and cached_bytes(f) == 0]
    print(f"{len(files)} of {len(args.files)} files are large enough and have no cached page",
          flush=True)
    if args.raw:
        modes = args.raw.split(",")
        rates: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
        for k, f in enumerate(files):
            m = modes[k % len(modes)]
            rates[m].append(raw(f, m, sample, args.reads))
            print(f"  {m:10s} {rates[m][-1][0]:7.0f} reads/s  {rates[m][-1][1]:.3f} CPU ms/read  {f}",
                  flush=True)
        print("\n| mode | files | reads/s: median (min to max) | CPU ms per read (median) |\n|---|---|---|---|")
        for m, v in rates.items():
            if v:
                r = [a for a, _ in v]
                print(f"| {m} | {len(v)} | {statistics.median(r):.0f} ({min(r):.0f} to {max(r):.0f}) | "
                      f"{statistics.median(c for _, c in v):.3f} |")
        return
    import torch

    torch.set_num_threads(1)
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
