"""Data at real scale: prepare a CelebA-layout folder into a dataset store and train from it.

1. Generates ``--n`` JPEGs of 178x218 (CelebA's aligned size) in ``ROOT/celeba/img_align_celeba``:
   deterministic, different pixels per file (one of 64 smooth bases, a bicubic upscale of a 9x8
   random image, shifted, tinted and overlaid with one of 16 grain tiles; all parameters drawn
   up front from ``--seed``), JPEG quality 90, ~10 kB each like CelebA's. Chunks of 500 files
   per process; files already there are kept.
2. ``gancli data prepare`` at ``--resolution`` (default 128) with every core: wall time and
   peak memory. Then the decode rate of ``gancli data prepare`` on the first ``--pil-n`` files
   against a plain single-process PIL loop (open, RGB, resize the shorter side with LANCZOS,
   center crop, to a numpy array) on the same files, and of one such loop per core at once (the
   machine's ceiling for parallel decoding), interleaved ``--repeats`` times (medians)
   so that the load of a shared machine hits both alike.
3. SIGKILL during a second ``gancli data prepare`` of the same folder (once ``--kill-at`` of the
   files are done), then the same command again: its store must equal the first one
   (sha256 of every file).
4. ``disk``: random sample-sized reads (``os.pread``) from the store's ``pixels.u8`` after
   evicting it from the page cache, at queue depths 1, 8, 32 and 64 (threads): what the disk
   gives a store that is not cached.
5. ``batches``: the data path alone (``Batches.next()``, no model) from the store, evicted before
   each timed pass, with ``data.read_threads`` 1 and the default, against the first ``--ram-n``
   samples as one tensor in RAM.
6. ``gancli train dcgan --data STORE`` for ``--steps`` steps, and the same training on the
   first ``--ram-n`` samples of the store held as one in-memory uint8 tensor (the old way):
   training img/s of both and peak memory. The store is evicted from the page cache
   (``posix_fadvise(DONTNEED)``, no root needed) before every run from it, and each repeat
   uses another ``train.seed`` (another order, so other samples), so its reads come from the
   disk, not from pages an earlier run left cached.

Peak memory is measured two ways for each command: ``ru_maxrss`` (the largest single process,
from ``/usr/bin/time``-style ``wait4`` accounting) and the peak of the summed PSS (proportional
set size, so forked workers' shared pages count once) of the whole process tree, sampled
every 0.2 s from ``/proc``.

    nice -n 10 python benchmarks/data_scale.py --n 20000 --root /tmp/datascale
    nice -n 10 python benchmarks/data_scale.py --n 200000 --root /tmp/datascale
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

W, H = 178, 218
BANK = 64  # smooth base images; every file is one of them, shifted, tinted and grained
PAD = 24  # base images are this much larger than a file, so shifts stay inside them
GEN_CHUNK = 500  # files per generator task
_BASES: np.ndarray | None = None
_GRAIN: np.ndarray | None = None


def _bank(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(BANK smooth bases (BANK, H+PAD, W+PAD, 3) int16, 16 grain tiles (16, H, W, 3) int16),
    a pure function of ``seed``; made once per worker (about 0.2 s)."""
    global _BASES, _GRAIN
    if _BASES is None:
        from PIL import Image

        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, (BANK, 9, 8, 3), dtype=np.uint8)
        _BASES = np.stack([np.asarray(Image.fromarray(s).resize((W + PAD, H + PAD),
                                                              Image.Resampling.BICUBIC), np.int16)
                           for s in small])
        _GRAIN = rng.integers(-6, 7, (16, H, W, 3), dtype=np.int16)
    return _BASES, _GRAIN


def _params(n: int, seed: int) -> np.ndarray:
    """Per file (n, 6) int16: base, shift y, shift x, tint R, G, B; drawn for all files at once,
    so a file's pixels do not depend on how the work is split."""
    rng = np.random.default_rng([seed, n])
    return np.stack([rng.integers(0, BANK, n), rng.integers(0, PAD + 1, n),
                     rng.integers(0, PAD + 1, n), *rng.integers(-40, 41, (3, n))], 1).astype(np.int16)


def _make_chunk(job: tuple[str, int, int, np.ndarray]) -> int:
    """Write files ``start .. start+len(params)-1`` (those not there yet); returns how many."""
    from PIL import Image

    folder, seed, start, params = job
    bases, grain = _bank(seed)
    made = 0
    for k, (b, dy, dx, *tint) in enumerate(params.tolist()):
        i = start + k
        path = os.path.join(folder, f"{i + 1:06d}.jpg")
        if os.path.exists(path):
            continue
        img = bases[b, dy:dy + H, dx:dx + W] + grain[i % 16] + np.asarray(tint, np.int16)
        tmp = os.path.join(folder, f".{i + 1:06d}.tmp")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(tmp, "JPEG", quality=90)
        os.replace(tmp, path)
        made += 1
    return made


def generate(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` CelebA-sized JPEGs in ``root/celeba/img_align_celeba`` (000001.jpg ...), every one
    different (one of ``BANK`` smooth bases, shifted by up to ``PAD`` px, tinted, plus one of 16
    grain tiles), byte-identical for a given ``seed``; files already there are kept."""
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    names = set(os.listdir(folder))
    have = sum(1 for i in range(n) if f"{i + 1:06d}.jpg" in names)
    if have < n:
        t0 = time.perf_counter()
        params = _params(n, seed)
        jobs = [(str(folder), seed, s, params[s:s + GEN_CHUNK]) for s in range(0, n, GEN_CHUNK)
                if any(f"{i + 1:06d}.jpg" not in names for i in range(s, min(n, s + GEN_CHUNK)))]
        with Pool(len(os.sched_getaffinity(0))) as pool:
            made = sum(pool.imap_unordered(_make_chunk, jobs))
        dt = time.perf_counter() - t0
        print(f"generated {made} JPEGs in {dt:.0f} s ({made / dt:.0f} files/s)", flush=True)
    extra = sorted(p for p in names if p.endswith(".jpg") and p > f"{n:06d}.jpg")
    for p in extra:  # a larger folder from an earlier run: trim
        (folder / p).unlink()
    return folder


def _pss_tree(pid: int) -> int:
    """Summed PSS (bytes) of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, every thread) that process ``pid`` has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _logged_steps(metrics: Path) -> list[int]:
    try:
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []
    return [r["step"] for r in rows if "elapsed_s" in r]


def measured(cmd: list[str], env: dict | None = None, kill_when=None,
             metrics: Path | None = None) -> dict:
    """Run ``cmd``; wall seconds, exit code, ru_maxrss (bytes, largest process) and the peak
    summed PSS of its process tree. ``kill_when()`` true -> SIGKILL it. With ``metrics`` (the
    run's metrics.jsonl): ``cpu_steps`` = (first logged step, CPU s of the process when it
    appeared, last logged step, CPU s when that one appeared), sampled every 0.2 s, so the
    CPU time of training alone (start-up and data loading excluded) can be told."""
    t0 = time.perf_counter()
    seen: list = []
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    out_lines: list[str] = []
    reader = threading.Thread(target=lambda: out_lines.extend(proc.stdout), daemon=True)
    reader.start()
    err_box: list[str] = []
    err_reader = threading.Thread(target=lambda: err_box.extend(proc.stderr), daemon=True)
    err_reader.start()
    killed = False
    while True:
        try:
            _, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            break
        if _:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        peak[0] = max(peak[0], _pss_tree(proc.pid))
        if metrics is not None:
            steps, cpu = _logged_steps(metrics), _cpu_s(proc.pid)
            if steps and cpu is not None and (not seen or steps[-1] != seen[-1][0]):
                seen.append((steps[-1], cpu))
        if kill_when is not None and not killed and kill_when():
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.2)
    reader.join(5)
    err_reader.join(5)
    return {"seconds": time.perf_counter() - t0, "code": proc.returncode, "killed": killed,
            "maxrss": usage.ru_maxrss * 1024, "pss_peak": peak[0], "out": "".join(out_lines),
            "err": "".join(err_box),
            "cpu_steps": (*seen[0], *seen[-1]) if len(seen) >= 2 else None}


def evict(path: Path) -> int:
    """Drop ``path``'s pages from the page cache (``POSIX_FADV_DONTNEED``: clean pages of a
    file, no root needed); returns the bytes still cached after it (``mincore`` through
    ``fincore``), or -1 when that cannot be told."""
    from cold_reads import cached_bytes

    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return cached_bytes(path)


def disk_probe(path: Path, sample_bytes: int, reads: int = 512, depths=(1, 8, 32, 64),
               seed: int = 0) -> list[tuple[int, float, float]]:
    """(queue depth, reads/s, ms per read) of random ``sample_bytes`` reads at sample offsets of
    ``path``, evicted before each depth; each depth reads other samples (``reads`` of them,
    a quarter at depth 1)."""
    from concurrent.futures import ThreadPoolExecutor

    n = os.path.getsize(path) // sample_bytes
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    fd = os.open(path, os.O_RDONLY)
    got, at = [], 0
    try:
        for qd in depths:
            k = min(reads // 4 if qd == 1 else reads, n - at)
            if k < 1:  # a store too small for fresh samples at every depth
                break
            idx = order[at:at + k].tolist()
            at += k
            evict(path)
            t0 = time.perf_counter()
            if qd == 1:
                for i in idx:
                    os.pread(fd, sample_bytes, i * sample_bytes)
            else:
                with ThreadPoolExecutor(qd) as pool:
                    list(pool.map(lambda i: os.pread(fd, sample_bytes, i * sample_bytes), idx))
            dt = time.perf_counter() - t0
            got.append((qd, k / dt, dt / k * 1e3))
            print(f"  disk: queue depth {qd}: {k / dt:.0f} reads/s, {dt / k * 1e3:.2f} ms per read",
                  flush=True)
    finally:
        os.close(fd)
    return got


def pil_loop(folder: Path, n: int, resolution: int) -> tuple[float, float]:
    """(images/s, CPU ms per image) of a plain single-process PIL decode of the first ``n``
    files."""
    files = sorted(folder.glob("*.jpg"))[:n]
    t0 = time.perf_counter()
    cpu = _pil_files((files, resolution))
    return len(files) / (time.perf_counter() - t0), cpu / len(files) * 1e3


def _pil_files(args: tuple) -> float:
    """CPU seconds of the plain loop on ``(files, resolution)``: open, RGB, resize the shorter
    side with LANCZOS, center crop, to a numpy array."""
    files, resolution = args
    from PIL import Image

    c0 = time.process_time()
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = resolution / min(w, h)
            im = im.resize((max(resolution, round(w * s)), max(resolution, round(h * s))),
                           Image.Resampling.LANCZOS)
            w, h = im.size
            left, top = (w - resolution) // 2, (h - resolution) // 2
            np.asarray(im.crop((left, top, left + resolution, top + resolution)))
    return time.process_time() - c0


def pil_loop_parallel(folder: Path, n: int, resolution: int, procs: int) -> float:
    """files/s of ``procs`` copies of the plain loop at once, each on its share of the first
    ``n`` files (forked, started before the clock): what the machine's cores give work that
    shares nothing, the ceiling of any parallel decoder on it."""
    files = sorted(folder.glob("*.jpg"))[:n]
    shares = [(files[i::procs], resolution) for i in range(procs)]
    with Pool(procs) as pool:
        pool.map(abs, range(procs))  # workers forked and running before the clock starts
        t0 = time.perf_counter()
        pool.map(_pil_files, shares, chunksize=1)
        return len(files) / (time.perf_counter() - t0)


def subset_folder(folder: Path, n: int) -> Path:
    """A folder of symbolic links to the first ``n`` files of ``folder`` (made once)."""
    subset = folder.parent / f"subset-{n}"
    if not subset.is_dir() or sum(1 for _ in subset.iterdir()) != n:
        shutil.rmtree(subset, ignore_errors=True)
        subset.mkdir()
        for f in sorted(folder.glob("*.jpg"))[:n]:
            (subset / f.name).symlink_to(f)
    return subset


def decode_comparison(folder: Path, n: int, resolution: int, repeats: int, env: dict,
                      gancli: list[str]) -> dict:
    """Median files/s of ``gancli data prepare`` (every core) and of the plain PIL loop on the
    same first ``n`` files, interleaved ``repeats`` times so that the machine's load (shared
    cores) hits both alike. The prepare rate is its own (decode loop only, no start-up). Also
    the CPU ms per file of each (prepare: its process and workers together) and the cores
    the prepare actually got (CPU s / wall s): under load, fewer than its workers."""
    subset = subset_folder(folder, n)
    ours, plain, ours_cpu, plain_cpu, cores, both = [], [], [], [], [], []
    procs = len(os.sched_getaffinity(0))
    for _ in range(repeats):
        out = folder.parent / "subset-store"
        shutil.rmtree(out, ignore_errors=True)
        # not `measured`: its sampling of the process tree's PSS every 0.2 s reads /proc/PID/smaps
        # of each process (taking their memory-map locks), which cost the prepare ~8 % of its rate
        r = subprocess.run(gancli + ["data", "prepare", str(subset), "--out", str(out),
                                     "--resolution", str(resolution), "--json"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        done = json.loads(r.stdout.strip().splitlines()[-1])
        ours.append(done["files_s"])
        ours_cpu.append(done["cpu_seconds"] / done["n"] * 1e3)
        cores.append(done["cpu_seconds"] / done["seconds"])
        rate, cpu = pil_loop(subset, n, resolution)
        plain.append(rate)
        plain_cpu.append(cpu)
        both.append(pil_loop_parallel(subset, n, resolution, procs))
        print(f"  decode: gancli prepare {ours[-1]:.0f} files/s ({ours_cpu[-1]:.2f} CPU ms/file, "
              f"{cores[-1]:.2f} cores), plain PIL {plain[-1]:.0f} files/s ({plain_cpu[-1]:.2f} CPU "
              f"ms/file), {procs} plain loops at once {both[-1]:.0f} files/s, load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    med = statistics.median
    return {"ours": med(ours), "plain": med(plain), "ours_cpu": med(ours_cpu),
            "plain_cpu": med(plain_cpu), "cores": med(cores), "parallel": med(both),
            "procs": procs, "runs": [(a, b) for a, b in zip(ours, plain)]}


def batch_path(store: Path, ram_n: int, batch_size: int, steps: int, repeats: int = 2) -> dict:
    """CPU and wall ms per ``Batches.next()`` (flips on, no model): the data path alone, from
    the store evicted from the page cache before each timed pass (one read at a time without
    advice to the kernel, as before; ``read_threads`` 1 with advice; the default), and from the
    first ``ram_n`` samples as one in-memory tensor; they alternate ``repeats`` times, each pass
    starting at another position (other samples). Means over repeats."""
    import torch

    from gancli.data.base import Dataset
    from gancli.data.batches import READ_THREADS, Batches
    from gancli.data.store import open_store

    torch.set_num_threads(1)
    x = open_store(store).x
    ram = Dataset("ram", "images", x[:ram_n])
    before = open_store(store).x
    before.will_need = lambda idx: None  # no advice to the kernel: the reads as they were
    sets = {"store, one read at a time, no advice (as before)": (Dataset("s", "images", before), 1),
            "store, read_threads 1, advice": (Dataset("s", "images", x), 1),
            f"store, read_threads {READ_THREADS}, advice": (Dataset("s", "images", x), READ_THREADS),
            "ram": (ram, 1)}
    got: dict = {k: [] for k in sets}
    for rep in range(repeats):
        for name, (data, threads) in sets.items():
            b = Batches(data, batch_size, seed=rep, device=torch.device("cpu"), flip=True,
                        read_threads=threads)
            b.pos = (1 + list(sets).index(name)) * steps * batch_size
            if data is not ram:
                evict(store / "pixels.u8")
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(steps):
                b.next()
            got[name].append(((time.process_time() - c0) / steps * 1e3,
                              (time.perf_counter() - t0) / steps * 1e3))
            b.close()
            print(f"  batches: {name}: {got[name][-1][0]:.2f} CPU / {got[name][-1][1]:.2f} wall ms "
                  "per batch", flush=True)
    return {k: tuple(statistics.mean(v[i] for v in runs) for i in (0, 1)) for k, runs in got.items()}


def sha_files(store: Path) -> dict:
    return json.loads((store / "meta.json").read_text())["files"]


TRAIN_RAM = """
import os, sys, torch
from gancli import load_config
from gancli.data.base import Dataset
from gancli.data.store import open_store
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train
store, k, out, *sets = sys.argv[1:]
x = open_store(store).x[:int(k)]  # one uint8 tensor in RAM, as before stores
fd = os.open(os.path.join(store, "pixels.u8"), os.O_RDONLY)  # leave no store page cached
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)
cfg = load_config("dcgan", sets)
run = create_run_dir(out, "ram")
write_config(run, cfg)
train(cfg, run, torch.device("cpu"), Reporter(), data=Dataset("ram", "images", x))
"""


def img_rate(run: Path) -> float:
    """Training images/s from the first logged step to the last (start-up excluded): the
    total over the run, steadier than a median of the per-window rates on a shared machine
    (dcgan: one real batch per step)."""
    import yaml

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "elapsed_s" in r]
    first, last = rows[0], rows[-1]
    batch = yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"]
    return (last["step"] - first["step"]) * batch / (last["elapsed_s"] - first["elapsed_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--root", default="/tmp/gancli-datascale")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated JPEGs")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--pil-n", type=int, default=8000, help="files of the interleaved decode "
                    "comparison (gancli prepare against a plain PIL loop)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kill-at", type=float, default=0.4, help="share of files done at the SIGKILL; "
                    "0 skips the kill check")
    ap.add_argument("--kill-n", type=int, default=0, help="files of the SIGKILL check (the first "
                    "ones, prepared once uninterrupted for the reference); 0 = all --n")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=16, help="dcgan model.g_width = model.d_width")
    ap.add_argument("--ram-n", type=int, default=40_000)
    ap.add_argument("--batch-steps", type=int, default=100, help="batches per timed pass of the "
                    "data path comparison")
    ap.add_argument("--batch-repeats", type=int, default=2)
    ap.add_argument("--train-repeats", type=int, default=2)
    ap.add_argument("--read-threads", type=int, default=16, help="data.read_threads of the runs "
                    "from the store")
    ap.add_argument("--before-tree", default="", help="also train from the store with the gancli "
                    "package tree at this path (PYTHONPATH), e.g. a checkout from before a change; "
                    "sequential runs only")
    ap.add_argument("--concurrent", action="store_true", help="train from the store and in RAM at "
                    "the same time (OMP_NUM_THREADS=1 each) rather than one after the other: on a "
                    "machine shared with other jobs, both then run under the same load")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: prepare (reuse the "
                    "store), decode, kill, disk, batches, train")
    args = ap.parse_args()
    root = Path(args.root)
    folder = generate(root, args.n, args.seed)
    env = {**os.environ, "GANCLI_CACHE": str(root / "cache")}
    gancli = [sys.executable, "-m", "gancli"]
    pixels_gb = args.n * 3 * args.resolution ** 2 / 1e9
    table: list[tuple[str, str]] = [("images", f"{args.n} JPEGs {W}x{H}, {pixels_gb:.2f} GB of "
                                               f"pixels at {args.resolution} px"),
                                    ("cores", str(len(os.sched_getaffinity(0)))),
                                    ("load average at the start (1 min)", f"{os.getloadavg()[0]:.1f}")]

    store = root / f"store-{args.n}-{args.resolution}"
    if "prepare" not in args.skip or not (store / "meta.json").is_file():
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(store.with_name(store.name + ".partial"), ignore_errors=True)
        prep = measured(gancli + ["data", "prepare", str(folder), "--out", str(store),
                                  "--resolution", str(args.resolution), "--json"], env)
        assert prep["code"] == 0, prep["err"][-2000:]
        done = json.loads(prep["out"].strip().splitlines()[-1])
        table += [("prepare: wall time", f"{prep['seconds']:.0f} s ({done['n']} images, "
                                         f"{done['skipped']} skipped, {done['files_s']:.0f} files/s)"),
                  ("prepare: peak RSS (largest process)", f"{prep['maxrss'] / 1e9:.2f} GB"),
                  ("prepare: peak PSS (all processes)", f"{prep['pss_peak'] / 1e9:.2f} GB")]
    if "decode" not in args.skip:
        load0 = os.getloadavg()[0]
        d = decode_comparison(folder, min(args.pil_n, args.n), args.resolution, args.repeats, env,
                              gancli)
        table += [(f"decode, first {min(args.pil_n, args.n)} files, median of {args.repeats} "
                   "interleaved: gancli prepare", f"{d['ours']:.0f} files/s ({d['ours_cpu']:.2f} CPU "
                                                 f"ms/file, {d['cores']:.2f} cores obtained)"),
                  ("... plain single-process PIL loop", f"{d['plain']:.0f} files/s "
                                                        f"({d['plain_cpu']:.2f} CPU ms/file)"),
                  ("prepare / plain PIL (medians)", f"{d['ours'] / d['plain']:.2f}x (runs: "
                   + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in d["runs"]) + "; load average "
                   f"{load0:.1f} -> {os.getloadavg()[0]:.1f})"),
                  (f"... {d['procs']} plain loops at once, each on its share (the machine's "
                   "ceiling for parallel decoding)", f"{d['parallel']:.0f} files/s = "
                   f"{d['parallel'] / d['plain']:.2f}x one loop; gancli prepare reaches "
                   f"{d['ours'] / d['parallel']:.2f} of it")]
    print("\n".join(f"{k}: {v}" for k, v in table), flush=True)

    if args.kill_at > 0 and "kill" not in args.skip:
        kill_n = min(args.kill_n or args.n, args.n)
        src, whole = folder, store
        if kill_n < args.n:  # the first kill_n files, prepared uninterrupted for the reference
            src, whole = subset_folder(folder, kill_n), root / f"store-{kill_n}-{args.resolution}"
            shutil.rmtree(whole, ignore_errors=True)
            ref = measured(gancli + ["data", "prepare", str(src), "--out", str(whole),
                                     "--resolution", str(args.resolution), "--json"], env)
            assert ref["code"] == 0, ref["err"][-2000:]
        again = root / "store-killed"
        for p in (again, again.with_name(again.name + ".partial")):
            shutil.rmtree(p, ignore_errors=True)
        journal = again.with_name(again.name + ".partial") / "journal.json"

        def far_enough() -> bool:
            try:
                return json.loads(journal.read_text())["done"] >= args.kill_at * kill_n
            except (OSError, ValueError, KeyError):
                return False

        cmd = gancli + ["data", "prepare", str(src), "--out", str(again), "--resolution",
                        str(args.resolution), "--json"]
        k = measured(cmd, env, kill_when=far_enough)
        at = json.loads(journal.read_text())["done"] if journal.exists() else None
        r = measured(cmd, env)
        same = r["code"] == 0 and sha_files(again) == sha_files(whole)
        status = json.loads(r["out"].strip().splitlines()[-1])["status"] if r["code"] == 0 else "-"
        table += [("SIGKILL during prepare", f"{kill_n} files: killed={k['killed']} after {at} "
                                             f"files journalled; rerun: {status}, "
                                             f"{r['seconds']:.0f} s"),
                  ("killed + resumed store == uninterrupted (sha256 of every file)", str(same))]
        print("\n".join(f"{k_}: {v}" for k_, v in table[-2:]), flush=True)
        shutil.rmtree(again, ignore_errors=True)

    sample_bytes = 3 * args.resolution ** 2
    if "disk" not in args.skip:
        probe = disk_probe(store / "pixels.u8", sample_bytes)
        table += [(f"disk: random {sample_bytes // 1024} KiB reads from the evicted store, "
                   "queue depth", ", ".join(f"{qd}: {rate:.0f}/s ({ms:.2f} ms)"
                                            for qd, rate, ms in probe))]
        print(f"{table[-1][0]}: {table[-1][1]}", flush=True)

    if "batches" not in args.skip:
        bp = batch_path(store, min(args.ram_n, args.n), args.batch_size, args.batch_steps,
                        args.batch_repeats)
        table += [(f"data path alone: Batches.next(), batch {args.batch_size}, flips, "
                   f"{args.batch_steps} batches x {args.batch_repeats}, CPU / wall ms per batch: "
                   "from the evicted store, "
                   f"{k[7:]}", f"{v[0]:.2f} / {v[1]:.2f}") for k, v in bp.items() if k != "ram"]
        table += [(f"... first {min(args.ram_n, args.n)} samples as one tensor in RAM",
                   f"{bp['ram'][0]:.2f} / {bp['ram'][1]:.2f}")]
        print("\n".join(f"{k}: {v}" for k, v in table[-4:]), flush=True)

    if "train" not in args.skip:
        sets = [f"data.resolution={args.resolution}", f"model.g_width={args.width}",
                f"model.d_width={args.width}", "train.sample_every=0", "train.log_every=10",
                f"train.steps={args.steps}", f"train.batch_size={args.batch_size}",
                "train.ckpt_every=0"]
        runs = root / "runs"
        shutil.rmtree(runs, ignore_errors=True)
        flags = [x for s in sets for x in ("--set", s)]
        ram_n = min(args.ram_n, args.n)
        store_rates, ram_rates, store_rss, store_pss, ram_rss = [], [], 0, 0, 0
        store_cpu, ram_cpu, loads, cached = [], [], [], []
        old_rates: list[float] = []
        runs_before = root / "runs-before"
        shutil.rmtree(runs_before, ignore_errors=True)

        def before(rep: int) -> None:
            """The same store run with the gancli tree at --before-tree (e.g. the main checkout
            before a change; no data.read_threads there), the store evicted first."""
            cmd = gancli + ["train", "dcgan", "--data", str(store), "--out", str(runs_before),
                            "--device", "cpu", "--quiet", *flags, "--set",
                            f"train.seed={args.seed + rep}"]
            evict(store / "pixels.u8")
            mb = runs_before / f"dcgan-{rep + 1:03d}" / "metrics.jsonl"
            r = measured(cmd, {**env, "PYTHONPATH": args.before_tree}, metrics=mb)
            assert r["code"] == 0, r["err"][-2000:]
            old_rates.append(img_rate(mb.parent))
            print(f"  train: store with {args.before_tree}: {old_rates[-1]:.1f} img/s", flush=True)

        for rep in range(args.train_repeats):
            ms = runs / f"dcgan-{rep + 1:03d}" / "metrics.jsonl"
            mr = runs / f"ram-{rep + 1:03d}" / "metrics.jsonl"
            seed = [f"train.seed={args.seed + rep}"]  # another order: samples no run read before
            store_cmd = gancli + ["train", "dcgan", "--data", str(store), "--out", str(runs),
                                  "--device", "cpu", "--quiet", *flags, "--set", seed[0], "--set",
                                  f"data.read_threads={args.read_threads}"]
            ram_cmd = [sys.executable, "-c", TRAIN_RAM, str(store), str(ram_n), str(runs), *sets,
                       *seed]
            cached.append(evict(store / "pixels.u8"))
            loads.append(os.getloadavg()[0])
            if args.concurrent:  # side by side, one core's worth each: both see the same load
                env1 = {**env, "OMP_NUM_THREADS": "1"}
                box: dict = {}
                th = threading.Thread(target=lambda box=box, env1=env1, mr=mr, cmd=ram_cmd: box.update(
                    m=measured(cmd, env1, metrics=mr)))
                th.start()
                t = measured(store_cmd, env1, metrics=ms)
                th.join()
                m = box["m"]
            elif rep % 2 == 0:  # one after the other, A B (C) then (C) B A: a drifting load cancels
                t = measured(store_cmd, env, metrics=ms)
                m = measured(ram_cmd, env, metrics=mr)
                if args.before_tree:
                    before(rep)
            else:
                if args.before_tree:
                    before(rep)
                m = measured(ram_cmd, env, metrics=mr)
                cached[-1] = evict(store / "pixels.u8")
                t = measured(store_cmd, env, metrics=ms)
            loads.append(os.getloadavg()[0])
            assert t["code"] == 0, t["err"][-2000:]
            assert m["code"] == 0, m["err"][-2000:]
            store_rates.append(img_rate(ms.parent))
            ram_rates.append(img_rate(mr.parent))
            for box_, r in ((store_cpu, t), (ram_cpu, m)):  # images per CPU second of training
                s0, c0, s1, c1 = r["cpu_steps"]
                box_.append((s1 - s0) * args.batch_size / (c1 - c0))
            store_rss, store_pss = max(store_rss, t["maxrss"]), max(store_pss, t["pss_peak"])
            ram_rss = max(ram_rss, m["maxrss"])
            print(f"  train: store {store_rates[-1]:.1f} img/s ({store_cpu[-1]:.1f} per CPU s), "
                  f"in RAM {ram_rates[-1]:.1f} img/s ({ram_cpu[-1]:.1f} per CPU s), load "
                  f"{loads[-2]:.1f} -> {loads[-1]:.1f}", flush=True)
        s_rate, r_rate = statistics.mean(store_rates), statistics.mean(ram_rates)
        s_cpu, r_cpu = statistics.mean(store_cpu), statistics.mean(ram_cpu)
        table += [("train: runs", f"dcgan, {args.train_repeats} x {args.steps} steps each way, "
                                  f"batch {args.batch_size}, widths {args.width}, "
                                  f"{args.resolution} px, CPU, "
                                  + ("side by side, 1 thread each" if args.concurrent
                                     else "one after the other, A B B A")),
                  ("train: load average (1 min) before/after each pair",
                   ", ".join(f"{v:.1f}" for v in loads)),
                  ("train from the store: data.read_threads; store bytes cached when each run "
                   "started (after eviction)", f"{args.read_threads}; "
                   + ", ".join(f"{c / 1e6:.1f} MB" if c >= 0 else "?" for c in cached)),
                  ("train from the store: peak RSS (largest process)", f"{store_rss / 1e9:.2f} GB"),
                  ("train from the store: peak PSS", f"{store_pss / 1e9:.2f} GB"),
                  ("train from the store", f"{s_rate:.1f} img/s, {s_cpu:.1f} img per CPU s "
                                           f"({args.n} samples)"),
                  ("train in RAM: peak RSS", f"{ram_rss / 1e9:.2f} GB ({ram_n} samples as one "
                                             "tensor)"),
                  ("train in RAM", f"{r_rate:.1f} img/s, {r_cpu:.1f} img per CPU s"),
                  ("store / in RAM (means): wall img/s", f"{s_rate / r_rate:.3f}x (runs: "
                   + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(store_rates, ram_rates)) + ")"),
                  ("store / in RAM (means): img per CPU second", f"{s_cpu / r_cpu:.3f}x")]
        if old_rates:
            table += [(f"train from the store with gancli from {args.before_tree} (evicted, same "
                       "seeds)", f"{statistics.mean(old_rates):.1f} img/s, "
                                 f"{statistics.mean(old_rates) / r_rate:.3f}x in RAM (runs: "
                                 + ", ".join(f"{v:.1f}" for v in old_rates) + ")")]
    table.append(("load average at the end (1 min)", f"{os.getloadavg()[0]:.1f}"))
    print("\n| measure | value |\n|---|---|")
    for k_, v in table:
        print(f"| {k_} | {v} |")


if __name__ == "__main__":
    main()
