"""Prepare an image folder into a dataset store (see ``gancli.data.store``), with constant memory.

The folder is scanned (``images.list_image_files``), then decoded by a process pool in chunks of files
(``images.decode_image``: grey or RGB, shorter side resized to ``resolution`` with LANCZOS,
center square crop; JPEGs decoded through libjpeg's DCT scaling when that still gives at least
``resolution`` pixels, exactly as the in-memory loader does, so the pixels are the same).
Finished chunks are appended in file order to ``OUT.partial/pixels.u8`` (and ``labels.i64``,
and each used file's name to ``names.jsonl``) with at most ``2 x workers + 4`` chunks in
flight, so memory is bounded by the chunk size, not by the folder.

Kill-safety: after each flush of data (``fsync``), a journal (``journal.json``, written
atomically) records how many source files are done and how many rows are valid. Running the
same command again resumes after the last journalled chunk (bytes beyond it are cut off) and
produces a byte-identical store. ``meta.json`` is written last and the folder is renamed to
``OUT`` only when complete, so an interrupted prepare is never read as a store.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import shutil
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from gancli.data import images
from gancli.data.store import (LABELS, META, NAMES, PIXELS, STORE_FORMAT, STORE_VERSION, Store,
                                fingerprint)
from gancli.errors import DataError
from gancli.fileio import atomic_write_bytes, fsync_dir, sha256_file

JOURNAL = "journal.json"
MAX_EXAMPLES = 10  # skipped files named in the summary and meta.json
CHUNK_BYTES = 8 << 20  # decoded bytes per chunk of work (64 files at 128 px RGB is 3 MB)
JOURNAL_EVERY_S = 2.0  # seconds between journal writes (each one fsyncs the data)
_GREY_PROBE = 64  # headers read in-process before the pool looks at the rest (_decide_channels)

Progress = Callable[[dict], None]


def store_key(entries, broken, resolution: int, channels: int | None, labels: bool,
              pairs: str | None = None) -> str:
    """sha256 over everything that decides a store's bytes: the listing and the settings
    (``pairs``: the pair layout of a pix2pix store, see ``prepare``)."""
    payload = {"store": STORE_VERSION, "loader": images.LOADER_VERSION, "resolution": int(resolution),
               "channels": channels, "labels": bool(labels), "files": entries, "broken": broken}
    if pairs is not None:  # absent otherwise: the keys of image stores stay as they were
        payload["pairs"] = pairs
    return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def _skip_reason(file: Path) -> str:
    """Why ``decode_image`` gave up on ``file``: the decoder's own error, in one short line."""
    from PIL import Image

    try:
        with Image.open(file) as img:
            img.load()
    except Exception as e:  # noqa: BLE001 - PIL raises many types; the reason is the message
        text = str(e).splitlines()[0] if str(e) else ""
        for name in (f"'{file}'", f'"{file}"', str(file)):  # the reason, not the file, is grouped
            text = text.replace(name, "")
        return f"{type(e).__name__}: {' '.join(text.split())}".rstrip(": ")[:160]
    return "could not be converted to a grey or RGB image"


_UNREADABLE_ENTRY = "cannot be read (dangling link or unreadable folder)"


def _broken_reason(root: Path, rel: str) -> str:
    """Why a listed name was never opened: not a regular file (a FIFO, socket or device, which
    could block a reader forever), or not readable at all."""
    try:
        return images.SKIP_NOT_REGULAR if not stat.S_ISREG(os.stat(Path(root) / rel).st_mode) \
            else _UNREADABLE_ENTRY
    except OSError:
        return _UNREADABLE_ENTRY


def _broken_reasons(root: Path, broken: list[str]) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for rel in broken:
        why = _broken_reason(root, rel)
        reasons[why] = reasons.get(why, 0) + 1
    return reasons


def _decode_chunk(root: str, rels: list[str], resolution: int, channels: int,
                  out: np.ndarray | None = None) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """Decode ``rels`` (in a worker): (pixels (k, C, R, R) uint8 of the k usable files, their
    positions in ``rels``, (position, reason) of each skipped file). ``out``: a flat uint8
    buffer of at least ``len(rels) x C x R x R`` bytes to decode into (a slot of the pool)."""
    out = _rows(out, len(rels), channels, resolution)
    used: list[int] = []
    skipped: list[tuple[int, str]] = []
    limit = images.max_image_pixels()
    for pos, rel in enumerate(rels):
        a, why = images.decode_image_why(Path(root) / rel, resolution, channels, limit)
        if a is None:  # the loader's reason (too large, not a regular file), or the decoder's
            skipped.append((pos, why if not why.startswith(images.SKIP_UNREADABLE)
                            else _skip_reason(Path(root) / rel)))
            continue
        out[len(used)] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        used.append(pos)
    return out[:len(used)], used, skipped


def _rows(out: np.ndarray | None, n: int, channels: int, resolution: int) -> np.ndarray:
    """(n, C, R, R) uint8 rows: a new array, or the start of the flat buffer ``out``."""
    shape = (n, channels, resolution, resolution)
    if out is None:
        return np.empty(shape, dtype=np.uint8)
    return out[:n * channels * resolution * resolution].reshape(shape)


PAIR_ODD_WIDTH = "odd width"  # aligned A|B image whose halves would differ by a column
PAIR_SIZES_DIFFER = "sizes differ"  # named pair whose two images differ in pixel size
PAIR_REFUSALS = (PAIR_ODD_WIDTH, PAIR_SIZES_DIFFER)


def _open_whole(file: Path, limit: int):
    """(upright grey-or-RGB PIL image, "") or (None, skip reason), decoded at full size (no
    JPEG draft: the original size decides the split and the size check)."""
    from PIL import ImageOps

    try:
        with images.open_image(file, limit=limit) as img:
            img.load()
            try:
                img = ImageOps.exif_transpose(img)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the pixels
                pass
            return images.to_gray_or_rgb(img), ""
    except images.NotARegularFile:
        return None, images.SKIP_NOT_REGULAR
    except images.ImageTooLarge as e:
        return None, (f"{images.SKIP_TOO_LARGE}: {e}; "
                      f"{images.too_large_hint(e.size[0] * e.size[1])}")
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files
        return None, _skip_reason(file)


def _decode_pair_chunk(root: str, items: list, resolution: int, channels: int,
                       out: np.ndarray | None = None
                       ) -> tuple[np.ndarray, list[int], list[tuple[int, str, str]]]:
    """Decode pix2pix pairs (in a worker) into 2 rows each, A then B: (pixels (2k, C, R, R)
    uint8 of the k usable pairs, their positions in ``items``, (position, file, reason) of each
    skipped pair). An item is a file name (an aligned ``A|B`` image, split at the middle) or a
    (file A, file B) list (named). Each half is fitted as ``images.fit_image`` fits any image.
    An odd width or two sizes are skipped with the reasons ``PAIR_REFUSALS`` (detail after
    ``": "``), which ``prepare`` refuses by name. ``out``: as for ``_decode_chunk``."""
    from gancli.data.paired import split_aligned

    out = _rows(out, 2 * len(items), channels, resolution)
    used: list[int] = []
    skipped: list[tuple[int, str, str]] = []
    limit = images.max_image_pixels()

    def put(a: np.ndarray, row: int) -> None:
        out[row] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    for pos, item in enumerate(items):
        if isinstance(item, str):
            img, why = _open_whole(Path(root) / item, limit)
            if img is None:
                skipped.append((pos, item, why))
                continue
            try:
                fitted = split_aligned(img, resolution, channels)
            except ValueError as e:  # "WxH: odd width"
                skipped.append((pos, item, f"{PAIR_ODD_WIDTH}: {item} ({e})"))
                continue
        else:
            halves, bad = [], None
            for rel in item:
                img, why = _open_whole(Path(root) / rel, limit)
                if img is None:
                    bad = (pos, rel, why)
                    break
                halves.append(img)
            if bad is not None:
                skipped.append(bad)
                continue
            (wa, ha), (wb, hb) = halves[0].size, halves[1].size
            if (wa, ha) != (wb, hb):
                skipped.append((pos, item[0], f"{PAIR_SIZES_DIFFER}: {item[0]} {wa}x{ha} vs "
                                              f"{item[1]} {wb}x{hb}"))
                continue
            fitted = [images.fit_image(h, resolution, channels) for h in halves]
        row = 2 * len(used)
        put(fitted[0], row)
        put(fitted[1], row + 1)
        used.append(pos)
    return out[:2 * len(used)], used, skipped


def _grey_chunk(root: str, rels: list[str]) -> bool:
    """True when every readable file of ``rels`` has a grey mode (header only, no decode)."""
    from PIL import Image

    for rel in rels:
        try:
            with Image.open(Path(root) / rel) as img:
                if not images.is_gray_mode(img.mode):
                    return False
        except Exception:  # noqa: BLE001 - unreadable files are skipped later
            continue
    return True


def _die_with_parent(parent: int) -> None:
    """In a worker: end when the preparing process dies (a SIGKILL gives it no chance to stop
    its pool; an idle orphan would wait for work forever)."""
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


_SLOTS = None  # in a forked worker: the pool's shared slots (``_Pool``), set by ``_init_worker``


def _init_worker(parent: int, slots) -> None:
    global _SLOTS
    _die_with_parent(parent)
    _SLOTS = slots


def _in_slot(fn, slot: int, slot_bytes: int, args: tuple) -> tuple:
    """In a worker: ``fn(*args, out=slot)``, returning the pixel block's shape in place of the
    block (its bytes stay in the shared slot for the parent to write)."""
    out = np.frombuffer(_SLOTS, dtype=np.uint8, count=slot_bytes, offset=slot * slot_bytes)
    block, *rest = fn(*args, out=out)
    return (block.shape, *rest)


class _Pool:
    """Ordered map over chunks with a bounded number in flight; in-process for 1 worker.

    With ``slot_bytes`` and the fork start method, decoded pixels travel through shared
    memory: ``depth`` slots of one anonymous ``MAP_SHARED`` mapping made before the workers
    are forked; chunk ``j`` is decoded into slot ``j % depth`` and the parent gets a view of
    it, valid until it asks for the next result (the slot is not handed out again before).
    This saves pickling each chunk (3 MB at 64 x 128 px RGB) through a pipe, unpickling it
    and copying it once more to write it: about 8 % of the CPU per file at 128 px.
    """

    def __init__(self, workers: int, slot_bytes: int = 0):
        self.workers = workers
        # chunks in flight: each worker has some queued while the parent writes or fsyncs (an
        # fsync of 2 s of pixels can outlast one chunk's decode); memory stays bounded by
        # depth x CHUNK_BYTES (2 workers: 8 x 3 MB at 128 px RGB)
        self.depth = 2 * workers + 4
        self.ex = None
        self.slots, self.slot_bytes = None, slot_bytes
        if workers > 1:
            import mmap
            import multiprocessing as mp

            fork = "fork" in mp.get_all_start_methods()
            if fork and slot_bytes:  # anonymous shared memory is inherited by forked workers only
                self.slots = mmap.mmap(-1, self.depth * slot_bytes)
            self.ex = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork" if fork else "spawn"),
                                          initializer=_init_worker,
                                          initargs=(os.getpid(), self.slots))

    def imap(self, fn, jobs, pixels: bool = False):
        """``fn(*args)`` for each of ``jobs``, in order. ``pixels``: ``fn`` returns (uint8
        block, ...) and accepts ``out=`` (a flat buffer to decode into)."""
        jobs = iter(jobs)
        if self.ex is None:
            for args in jobs:
                yield fn(*args)
            return
        shared = pixels and self.slots is not None
        pending: list[tuple[int, Future]] = []
        for j, args in enumerate(jobs):
            slot = j % self.depth
            pending.append((slot, self.ex.submit(_in_slot, fn, slot, self.slot_bytes, args)
                            if shared else self.ex.submit(fn, *args)))
            if len(pending) >= self.depth:
                yield self._result(*pending.pop(0), shared)
        while pending:
            yield self._result(*pending.pop(0), shared)

    def _result(self, slot: int, future: Future, shared: bool):
        result = future.result()
        if not shared:
            return result
        shape, *rest = result
        block = np.frombuffer(self.slots, dtype=np.uint8, count=int(np.prod(shape)),
                              offset=slot * self.slot_bytes).reshape(shape)
        return (block, *rest)

    def close(self) -> None:
        if self.ex is not None:
            self.ex.shutdown(wait=True, cancel_futures=True)
        if self.slots is not None:
            try:
                self.slots.close()
            except BufferError:  # a view is still referenced (an exception unwinding): freed with it
                pass


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def prepare(src: str | Path, out: str | Path, resolution: int, channels: int | None = None,
            labels: bool = False, workers: int | None = None, progress: Progress | None = None,
            scan: tuple | None = None, pairs: str | None = None, items: list | None = None
            ) -> dict:
    """Decode every image under ``src`` into the store ``out``; resume an interrupted one.

    Args:
        src: an image folder (searched recursively; with ``labels`` its first-level
            sub-folders are the classes).
        out: the store folder to create. An existing complete store made from the same
            files and settings is kept as it is (``summary["status"] == "exists"``).
        resolution: side of the square images, pixels.
        channels: 1, 3, or None (1 when every image is grey, else 3; decided from the
            files' headers before decoding).
        labels: store class labels from the sub-folders.
        workers: decoding processes (default: every core this process may use).
        progress: called with a dict (``phase``, ``source``, ``done``, ``total``, ``used``,
            ``skipped``, ``files_s``, ``eta_s``) after each chunk.
        scan: ``images.list_image_files(src)`` when the caller already has it.
        pairs: pix2pix pairs instead of images (``gancli.data.paired``): ``"aligned"`` (each
            file of ``scan`` holds A|B side by side, split at the middle) or ``"named"``
            (``items`` lists the (file A, file B) pairs, relative to ``src``; ``scan`` then
            lists the pairs' entries). Each usable pair is 2 rows, A then B (``meta["pairs"]``
            names the layout). Aligned images of odd width and named pairs of two pixel sizes
            are refused after the decode (DataError naming them; the journal is kept, so
            the same command refuses again without decoding). The halves are decoded at full
            size (no JPEG draft), as the loader before stores did.

    Returns:
        The summary: ``status`` (``"prepared"``, ``"resumed"`` or ``"exists"``), ``path``, ``n``,
        ``skipped``, ``skipped_examples`` ([path, reason] pairs), ``reasons`` (count per
        reason), ``resolution``, ``channels``, ``classes``, ``counts``, ``bytes``, ``seconds``
        (wall time of the decode), ``files_s`` and ``cpu_seconds`` (CPU time of the decode,
        this process and its workers together).

    Raises:
        DataError: a missing source, no usable image, refused pairs, a bad label layout, ``out`` holding
            something else than this store, or too little free disk space for it (checked
            before anything is decoded).
    """
    root = Path(src).expanduser()
    out = Path(out).expanduser()
    images.check_source_args(root, resolution, channels)
    resolution = int(resolution)
    entries, broken, n_other = scan if scan is not None else images.list_image_files(root)
    if labels:
        images.check_label_layout(root, entries)
    key = store_key(entries, broken, resolution, channels, labels, pairs)
    if pairs is not None and items is None:
        items = [rel for rel, _, _ in entries]
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file", hint="choose another --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_file = out.parent / f".{out.name}.lock"
    with open(lock_file, "a+") as lock:
        # a second prepare of the same store (torchrun ranks, two terminals) waits, then reuses
        # it; a POSIX record lock, not flock: decoding workers forked below do not inherit it,
        # so a killed prepare never leaves its lock held
        fcntl.lockf(lock, fcntl.LOCK_EX)
        if (out / META).is_file():
            return _existing(out, key)
        if out.exists() and any(out.iterdir()):
            raise DataError(f"{out} exists and is not a dataset store",
                            hint="choose another --out, or delete that folder")
        check_disk(out, len(entries) * (2 if pairs else 1), channels or 3, resolution)
        return _prepare(root, out, key, entries, broken, n_other, resolution, channels, labels,
                        workers or default_workers(), progress, pairs, items)


def check_disk(out: Path, files: int, channels: int, resolution: int) -> None:
    """Refuse, before decoding, a store that cannot fit on the disk of ``out`` (at most
    ``files`` images; the bytes of an interrupted prepare count as already there)."""
    need = files * channels * resolution * resolution
    partial = out.with_name(out.name + ".partial")
    have = 0
    for name in (PIXELS, LABELS):
        try:
            have += (partial / name).stat().st_size
        except OSError:
            pass
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        return
    if need - have > free:
        raise DataError(f"not enough free space for the dataset store {out}: {files} images at "
                        f"{resolution} px need up to {need / 1e9:.3g} GB, {free / 1e9:.3g} GB free",
                        hint="free some space, prepare it elsewhere (--out, or GANCLI_CACHE for the "
                             "cache), or choose a lower resolution")


def _existing(out: Path, key: str) -> dict:
    store = Store(out)
    if store.meta.get("key") != key:
        raise DataError(f"{out} already holds a store made from other files or settings",
                        hint="choose another --out, or delete it to prepare it again")
    return {**summary_of(store), "status": "exists", "seconds": 0.0, "files_s": 0.0,
            "cpu_seconds": 0.0}


def summary_of(store: Store) -> dict:
    m = store.meta
    return {"path": str(store.root), "n": store.n, "skipped": m["skipped"],
            "skipped_examples": m["skipped_examples"], "reasons": m["reasons"],
            "resolution": store.resolution, "channels": store.channels, "classes": store.classes,
            "counts": m.get("counts"), "bytes": store.nbytes, "source": m["source"]}


def _prepare(root, out, key, entries, broken, n_other, resolution, channels, labels, workers,
             progress, pairs=None, items=None) -> dict:
    partial = out.with_name(out.name + ".partial")
    journal = _open_journal(partial, key, root, broken, channels)
    resumed_from = journal["done"]
    rels = items if pairs is not None else [rel for rel, _, _ in entries]
    files_of = [f for it in rels for f in ([it] if isinstance(it, str) else it)]  # headers to probe
    rows_per = 2 if pairs is not None else 1
    decode = _decode_pair_chunk if pairs is not None else _decode_chunk
    journal.setdefault("refused", [])
    folders = sorted({rel.split("/", 1)[0] for rel in rels}) if labels else None
    class_of = {name: i for i, name in enumerate(folders)} if labels else None
    pool = _Pool(min(workers, max(1, len(rels) // 8)), _slot_bytes(resolution, rows_per))
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    try:
        if journal["channels"] is None:
            journal["channels"] = _decide_channels(pool, root, files_of)
            _write_journal(partial, journal)
        c = journal["channels"]
        sample_bytes = c * resolution * resolution
        chunk = _chunk_files(sample_bytes, rows_per)
        pix_path, lab_path, names_path = partial / PIXELS, partial / LABELS, partial / NAMES
        with open(pix_path, "a+b") as pix, open(lab_path, "a+b") as lab, \
                open(names_path, "a+b") as names:
            pix.truncate(journal["rows"] * sample_bytes)  # cut what the last journal did not vouch for
            lab.truncate(journal["rows"] * 8 if labels else 0)
            names.truncate(journal["names_bytes"])
            for f in (pix, lab, names):
                f.seek(0, os.SEEK_END)
            starts = range(journal["done"], len(rels), chunk)
            jobs = ((str(root), rels[s:s + chunk], resolution, c) for s in starts)
            last_journal = time.perf_counter()
            for s, (block, used, skipped) in zip(starts, pool.imap(decode, jobs, pixels=True)):
                _append_rows((pix, lab, names), journal, block, [rels[s + p] for p in used],
                             rows_per, class_of)
                _record_skips(journal, skipped, rels, s)
                journal["rows"] += rows_per * len(used)
                journal["done"] = min(len(rels), s + chunk)
                now = time.perf_counter()
                if now - last_journal >= JOURNAL_EVERY_S or journal["done"] == len(rels):
                    for f in (pix, lab, names):
                        f.flush()
                        os.fsync(f.fileno())
                    _write_journal(partial, journal)
                    last_journal = now
                if progress is not None:
                    rate = (journal["done"] - resumed_from) / max(now - t0, 1e-9)
                    progress(_decode_event(root, journal, len(rels), rate))
    finally:
        pool.close()
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0  # the workers have been joined: their time is counted
    if pairs is not None:
        _refuse_pairs(root, journal)
    if journal["rows"] == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise _no_usable_image(root, journal, len(rels) + len(broken), n_other)
    classes, counts = None, None
    if labels:
        classes, counts = _finish_labels(partial / LABELS, folders)
    else:
        (partial / LABELS).unlink(missing_ok=True)
    meta = _store_meta(partial, root, key, journal, c, resolution, labels, classes, counts,
                       len(rels) + len(broken), n_other, pairs)
    atomic_write_bytes(partial / META, json.dumps(meta, indent=1).encode())
    (partial / JOURNAL).unlink(missing_ok=True)
    fsync_dir(partial)
    os.replace(partial, out) if not out.exists() else (out.rmdir(), os.replace(partial, out))
    fsync_dir(out.parent)
    store = Store(out)
    return {**summary_of(store), "status": "resumed" if resumed_from else "prepared",
            "seconds": seconds, "files_s": (len(rels) - resumed_from) / max(seconds, 1e-9),
            "cpu_seconds": cpu}


def _chunk_files(sample_bytes: int, rows_per: int) -> int:
    """Files per chunk of work: about ``CHUNK_BYTES`` of decoded pixels, at most 64 files."""
    return max(1, min(64, CHUNK_BYTES // (rows_per * sample_bytes)))


def _slot_bytes(resolution: int, rows_per: int) -> int:
    """Bytes of one shared slot: the largest chunk of either channel count (decided later)."""
    return max(_chunk_files(c * resolution * resolution, rows_per) * rows_per * c * resolution ** 2
               for c in (1, 3))


def _open_journal(partial: Path, key: str, root: Path, broken: list[str],
                  channels: int | None) -> dict:
    """The journal of an interrupted prepare of the same key in ``partial``, else a new one
    (``partial`` emptied and made): files done, rows written, bytes of names, skips so far."""
    journal = _read_journal(partial, key)
    if journal is None:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        journal = {"key": key, "channels": channels, "done": 0, "rows": 0, "names_bytes": 0,
                   "skipped": len(broken),
                   "examples": [[b, _broken_reason(root, b)] for b in broken[:MAX_EXAMPLES]],
                   "reasons": _broken_reasons(root, broken)}
    return journal


def _record_skips(journal: dict, skipped: list, rels: list, start: int) -> None:
    """Count a decoded chunk's skips (``(position, [file,] reason)``, positions from
    ``start``) in the journal by reason, keeping the first few named; pair refusals are
    grouped by kind and each one is kept for the refusal message."""
    for p, *file, reason in skipped:
        name = file[0] if file else rels[start + p]
        if reason.startswith(PAIR_REFUSALS):  # grouped by kind, each one named
            kind, detail = reason.split(": ", 1)
            if len(journal["refused"]) < MAX_EXAMPLES:
                journal["refused"].append([kind, detail])
            reason = kind
        journal["skipped"] += 1
        journal["reasons"][reason] = journal["reasons"].get(reason, 0) + 1
        if len(journal["examples"]) < MAX_EXAMPLES:
            journal["examples"].append([name, reason])


def _no_usable_image(root: Path, journal: dict, looked: int, n_other: int) -> DataError:
    """The error of a prepare that kept no image: the reason named when it is one the user can
    act on (too large, not a regular file), else the count and the supported extensions."""
    named = [(rel, why) for rel, why in journal["examples"]
             if why.startswith((images.SKIP_TOO_LARGE, images.SKIP_NOT_REGULAR))]
    if named:  # name the reason: a lone big scan is "too large", not "could not be read"
        rel, why = named[0]
        counts = ", ".join(f"{n} {r.split(':', 1)[0]}" for r, n in sorted(journal["reasons"].items()))
        return DataError(f"no usable image in {root}: looked at {looked} image file(s) ({counts}), "
                         f"e.g. {rel}: {why.split('; ', 1)[0]}",
                         hint=why.split("; ", 1)[1] if "; " in why else "only regular files are "
                         "read: FIFOs, sockets and devices are skipped")
    return DataError(
        f"no usable image in {root}: looked at {looked} image file(s), {journal['skipped']} could "
        f"not be read" + (f", {n_other} other file(s) ignored" if n_other else ""),
        hint="supported extensions: " + ", ".join(images.SUPPORTED_EXTENSIONS)
        + " (sub-folders are searched too)")


def _store_meta(partial: Path, root: Path, key: str, journal: dict, channels: int,
                resolution: int, labels: bool, classes, counts, source_files: int, n_other: int,
                pairs: str | None) -> dict:
    """meta.json of a finished prepare: sizes, sha256 and fingerprints of its files, shape,
    classes, the source and its skips, how it was decoded, when and by which gancli."""
    import gancli

    files = {}
    for name in (PIXELS, LABELS, NAMES) if labels else (PIXELS, NAMES):
        path = partial / name
        files[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path),
                       "fingerprint": fingerprint(path)}
    meta = {"format": STORE_FORMAT, "version": STORE_VERSION, "key": key, "n": journal["rows"],
            "channels": channels, "resolution": resolution, "layout": "NCHW uint8",
            "classes": classes, "counts": counts, "files": files,
            "class_folders": _class_folders(root) if labels else None,
            "source": str(root.resolve()), "source_files": source_files,
            "other_files": n_other, "skipped": journal["skipped"],
            "skipped_examples": journal["examples"], "reasons": journal["reasons"],
            "decode": {"loader_version": images.LOADER_VERSION, "resize": "shorter side to "
                       "resolution, LANCZOS, center square crop", "jpeg_draft": pairs is None},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "gancli_version": gancli.__version__}
    if pairs is not None:
        meta["pairs"] = pairs
    return meta


def _append_rows(files: tuple, journal: dict, block: np.ndarray, items: list, rows_per: int,
                 class_of: dict[str, int] | None) -> None:
    """Append a decoded chunk to the partial store's (pixels, labels, names) files: its pixel
    rows, a little-endian int64 class per row when ``class_of`` maps top folders to classes,
    and one JSON-quoted name per row (any file name survives: newlines, undecodable bytes)."""
    pix, lab, names = files
    pix.write(np.ascontiguousarray(block).data)  # no copy: a view of the pool's shared slot
    if class_of is not None:
        lab.write(np.array([class_of[rel.split("/", 1)[0]] for rel in items],
                           dtype="<i8").tobytes())
    line = "".join(json.dumps(rel) + "\n" for item in items
                   for rel in _row_names(item, rows_per)).encode()
    names.write(line)
    journal["names_bytes"] += len(line)


def _decode_event(root: Path, journal: dict, total: int, rate: float) -> dict:
    """A progress event of the decode phase (files done of ``total``, rows kept, skips,
    files/s and the ETA in seconds)."""
    return {"phase": "decode", "source": str(root), "done": journal["done"], "total": total,
            "used": journal["rows"], "skipped": journal["skipped"], "files_s": rate,
            "eta_s": (total - journal["done"]) / max(rate, 1e-9)}


def _row_names(item, rows: int) -> list[str]:
    """The source file of each of the ``rows`` rows an item makes: a file (an A|B image twice:
    its two halves) or a named pair's two files."""
    return [item] * rows if isinstance(item, str) else list(item)


def _refuse_pairs(root: Path, journal: dict) -> None:
    """After a pairs decode: refuse, naming them, aligned images of odd width and named pairs
    of two sizes (the journal is kept, so the same command refuses again at once)."""
    for kind, what, hint in (
            (PAIR_ODD_WIDTH, "image(s) in {root} cannot be split into two equal halves",
             "an aligned image holds A and B side by side at the same size, so its width is "
             "even; fix or remove these"),
            (PAIR_SIZES_DIFFER, "pair(s) in {root} have images of different sizes",
             "the two images of a pair must correspond pixel for pixel; resize or remove these")):
        n = journal["reasons"].get(kind, 0)
        if n:
            names = [detail for k, detail in journal["refused"] if k == kind][:5]
            more = f" and {n - len(names)} more" if n > len(names) else ""
            raise DataError(f"{n} {what.format(root=root)}: {', '.join(names)}{more}", hint=hint)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished (joined) children."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _decide_channels(pool: _Pool, root: Path, rels: list[str]) -> int:
    """3 as soon as one file's header has a colour mode, else 1. The first ``_GREY_PROBE``
    headers are read here: a colour folder is nearly always settled by its first file, while
    handing the pool 2 x workers chunks of 512 headers first read 2,048 headers (0.15 ms of
    CPU each) before the first answer, about 6 % of the decode time of 3,000 CelebA JPEGs."""
    if not _grey_chunk(str(root), rels[:_GREY_PROBE]):
        return 3
    rels = rels[_GREY_PROBE:]
    jobs = ((str(root), rels[s:s + 512]) for s in range(0, len(rels), 512))
    for grey in pool.imap(_grey_chunk, jobs):
        if not grey:
            return 3
    return 1


def _class_folders(root: Path) -> list[str]:
    """The non-hidden sub-folders directly under ``root``: with labels, each is a class, and one
    without a usable image is refused (or left out and named) when the store is read."""
    with os.scandir(root) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _finish_labels(path: Path, folders: list[str]) -> tuple[list[str], list[int]]:
    """Classes are the sub-folders with at least one usable image (as the in-memory loader
    counts them); labels are renumbered when a folder lost all its images."""
    y = np.fromfile(path, dtype="<i8")
    counts = np.bincount(y, minlength=len(folders))
    keep = np.flatnonzero(counts)
    if len(keep) < len(folders):
        remap = np.full(len(folders), -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        atomic_write_bytes(path, remap[y].astype("<i8").tobytes())
    return [folders[i] for i in keep], [int(counts[i]) for i in keep]


def _read_journal(partial: Path, key: str) -> dict | None:
    try:
        j = json.loads((partial / JOURNAL).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    ok = isinstance(j, dict) and j.get("key") == key
    ok = ok and all(isinstance(j.get(k), int) and j[k] >= 0
                    for k in ("done", "rows", "skipped", "names_bytes"))
    ok = ok and isinstance(j.get("examples"), list) and isinstance(j.get("reasons"), dict)
    ok = ok and j.get("channels") in (None, 1, 3)
    return j if ok else None


def _write_journal(partial: Path, journal: dict) -> None:
    atomic_write_bytes(partial / JOURNAL, json.dumps(journal).encode())
