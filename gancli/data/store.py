"""A prepared dataset on disk: decoded uint8 pixels read per batch, never held whole in RAM.

Layout of a store folder (format version ``STORE_VERSION``)::

    DATASET/
      pixels.u8     raw uint8, N x C x H x W, C-order (one sample = C*H*W contiguous bytes)
      labels.i64    optional: int64 little-endian class index per sample, (N,)
      names.jsonl   the source file of each sample, relative to the source folder: one JSON
                    string per line, N lines (attribute tables such as CelebA's are keyed by
                    file name); absent in version 1 stores, which are still read
      meta.json     what the files hold (below); written last, so a folder without it is
                    never read as a store

``meta.json`` holds ``format`` (``"gancli-store"``), ``version``, ``n``, ``channels``,
``resolution`` (H = W), ``classes`` and ``counts`` (or null), ``files`` (byte size and
sha256 of each data file), ``fingerprint`` (sha256 of sampled blocks, see below), how it was
made (``source``, ``crop``, ``decode``, ``created``, ``gancli_version``, ``workers``) and the
skipped source files with the reason of each (``skipped``, ``skipped_examples``).

Why raw files and positional reads: a sample is one contiguous run of bytes at offset
``i * C*H*W``, so a batch is ``batch_size`` ``os.preadv`` calls straight into the batch
buffer (pinned on CUDA). The file is page-cache friendly (torchrun ranks, ``evaluate`` and
repeated runs share the kernel's cached pages) yet, unlike a ``numpy.memmap``, the pages a
long run touches are not charged to the process's resident memory, so the RSS of training
stays bounded by the batch, not by the store. No pickle, no code runs on reading.

Integrity: every open checks that each file has the size ``meta.json`` records and that a
cheap fingerprint (sha256 over ``FINGERPRINT_BLOCKS`` blocks of ``FINGERPRINT_BLOCK`` bytes
spread evenly over each file, plus its size) matches; ``verify()`` (``gancli data info
--verify``) re-hashes every byte. A damaged store is refused naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gancli.errors import DataError

_local = threading.local()  # per thread: the pool a gather spreads its reads over, if any


def use_readers(pool: ThreadPoolExecutor | None, threads: int = 1) -> None:
    """From now on, ``StoredImages.gather`` called by this thread spreads its samples' reads
    over ``pool`` (``threads`` workers; at most one chunk of samples per worker) and waits for
    them; None: reads them one after the other. ``Batches`` sets it in its prefetch thread
    (``data.read_threads``)."""
    _local.readers = (pool, threads) if pool is not None and threads > 1 else None


STORE_FORMAT = "gancli-store"
STORE_VERSION = 2
READ_VERSIONS = (1, 2)  # 1: the same without names.jsonl
META = "meta.json"
PIXELS = "pixels.u8"
LABELS = "labels.i64"
NAMES = "names.jsonl"
FINGERPRINT_BLOCKS = 64
FINGERPRINT_BLOCK = 4096


def is_store(path: Path) -> bool:
    """True when ``path`` is a folder holding a store's ``meta.json`` (complete or damaged)."""
    p = Path(path)
    return p.is_dir() and (p / META).is_file() and (p / PIXELS).exists()


def fingerprint(path: Path, size: int | None = None) -> str:
    """sha256 of the file's size and ``FINGERPRINT_BLOCKS`` evenly spread 4 KiB blocks.

    Cheap (256 KiB read whatever the size), catches truncation, appended bytes and most
    edits; ``sha256`` over every byte is what ``verify`` checks.
    """
    size = os.path.getsize(path) if size is None else size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= FINGERPRINT_BLOCKS * FINGERPRINT_BLOCK:
            h.update(f.read())
        else:
            step = (size - FINGERPRINT_BLOCK) // (FINGERPRINT_BLOCKS - 1)
            for k in range(FINGERPRINT_BLOCKS):
                f.seek(k * step)
                h.update(f.read(FINGERPRINT_BLOCK))
    return h.hexdigest()


def _damaged(path: Path, why: str) -> DataError:
    return DataError(f"dataset store file {path} {why}",
                     hint="prepare it again: gancli data prepare SRC --out DATASET (after deleting "
                          "the damaged store)")


def _unreadable(path: Path, e: OSError) -> DataError:
    """A read of a store file that failed while in use (I/O error, file removed)."""
    return DataError(f"dataset store file {path} cannot be read: {e.strerror or e}",
                     hint="check the disk (dmesg) and that the store is still there; prepare it "
                          "again if it is damaged")


def read_meta(root: Path) -> dict:
    """Parse and check ``meta.json``; DataError naming the file on any damage."""
    file = Path(root) / META
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _damaged(file, f"cannot be read ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        raise _damaged(file, "is not a gancli dataset store description")
    if meta.get("version") not in READ_VERSIONS:
        raise DataError(f"dataset store {root} has format version {meta.get('version')!r}; this "
                        f"gancli reads versions {', '.join(map(str, READ_VERSIONS))}",
                        hint="prepare it again with this gancli version: gancli data prepare")
    try:
        n, c, r = (int(meta[k]) for k in ("n", "channels", "resolution"))
        files = meta["files"]
        ok = n >= 1 and c in (1, 3) and r >= 1 and isinstance(files, dict) and PIXELS in files
        classes = meta.get("classes")
        if classes is not None:
            ok = ok and LABELS in files and isinstance(classes, list) and len(classes) >= 1
            ok = ok and all(isinstance(s, str) for s in classes)
        for name, rec in files.items():
            ok = ok and name in (PIXELS, LABELS, NAMES) and isinstance(rec, dict)
            ok = ok and isinstance(rec.get("bytes"), int) and isinstance(rec.get("sha256"), str)
        ok = ok and files[PIXELS]["bytes"] == n * c * r * r
        ok = ok and (LABELS not in files or files[LABELS]["bytes"] == 8 * n)
    except (KeyError, TypeError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise _damaged(file, "is inconsistent (edited or from a broken writer)")
    return meta


class Store:
    """An opened store: its description and the files, checked as described in the module doc."""

    def __init__(self, root: Path, check: bool = True):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"dataset store {self.root} does not exist",
                            hint="make one with: gancli data prepare SRC --out DATASET")
        if not (self.root / META).is_file():
            partial = " (an interrupted prepare)" if self.root.name.endswith(".partial") else ""
            raise DataError(f"{self.root} is not a complete dataset store: no {META}{partial}",
                            hint="run the same gancli data prepare command again; it resumes")
        self.meta = read_meta(self.root)
        self.n = int(self.meta["n"])
        self.channels = int(self.meta["channels"])
        self.resolution = int(self.meta["resolution"])
        self.classes: list[str] | None = self.meta.get("classes")
        self.sample_bytes = self.channels * self.resolution ** 2
        if check:
            self.check()

    def check(self) -> None:
        """Sizes and fingerprints of every data file against ``meta.json``."""
        for name, rec in self.meta["files"].items():
            path = self.root / name
            try:
                size = path.stat().st_size
            except OSError:
                raise _damaged(path, "is missing") from None
            if size != rec["bytes"]:
                raise _damaged(path, f"has {size} bytes, {META} says {rec['bytes']} (truncated or "
                                     "edited)")
            if rec.get("fingerprint") and fingerprint(path, size) != rec["fingerprint"]:
                raise _damaged(path, "does not match its fingerprint in meta.json (edited)")

    def verify(self, progress=None) -> None:
        """Re-hash every byte of every data file (sha256) against ``meta.json``."""
        for name, rec in self.meta["files"].items():
            path = self.root / name
            h = hashlib.sha256()
            done = 0
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(name, done, rec["bytes"])
            if h.hexdigest() != rec["sha256"]:
                raise _damaged(path, "does not match its sha256 in meta.json (edited or corrupted)")

    @property
    def nbytes(self) -> int:
        return sum(int(rec["bytes"]) for rec in self.meta["files"].values())

    def images(self) -> "StoredImages":
        return StoredImages(self.root / PIXELS, self.n, self.channels, self.resolution)

    def names(self) -> list[str] | None:
        """The source file of each sample (paths relative to the source folder, posix), or None
        for a version 1 store. Read whole: about 20 bytes per sample."""
        if NAMES not in self.meta["files"]:
            return None
        path = self.root / NAMES
        try:
            names = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError, ValueError):
            raise _damaged(path, "cannot be read") from None
        if len(names) != self.n or not all(isinstance(v, str) for v in names):
            raise _damaged(path, f"does not name the {self.n} samples one per line")
        return names

    def labels(self) -> torch.Tensor | None:
        """int64 labels (N,), read whole: 8 bytes per sample."""
        if self.classes is None:
            return None
        a = np.fromfile(self.root / LABELS, dtype="<i8")
        y = torch.from_numpy(a.astype(np.int64))
        if len(y) != self.n or (len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes))):
            raise _damaged(self.root / LABELS, "holds labels outside the class list")
        return y


class LazyImages:
    """uint8 samples read on demand, indexed like a tensor: ``x[idx]`` reads only ``idx``.

    Subclasses set ``shape`` (a ``torch.Size``; (N, C, H, W), or (N, 2, C, H, W) for pairs)
    and define ``gather(idx, out=None)``, which reads samples ``idx`` (int64, any order,
    repeats allowed) into ``out`` (uint8, (len(idx), *shape[1:]), or allocated when None)
    and returns it. This class adds ``len``, ``nbytes``, ``dim``, ``x[int]``, ``x[slice]``,
    ``x[index tensor or array]``, ``x[i, ...]`` (each a new uint8 tensor), ``to`` and
    ``read_all``: everything gancli does with ``Dataset.x``.
    """

    dtype = torch.uint8
    shape: torch.Size

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.shape[1:]))

    @property
    def nbytes(self) -> int:
        return len(self) * self.sample_bytes

    def dim(self) -> int:
        return len(self.shape)

    def gather(self, idx, out: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def will_need(self, idx) -> None:
        """Tell the kernel that samples ``idx`` will be read soon, so it starts reading them
        from the disk now, all at once (advice only: nothing is read into this process, errors
        are ignored). Data in memory needs no advice: this base version does nothing."""

    def _indices(self, idx) -> torch.Tensor:
        """``idx`` as int64 (k,), negatives counted from the end; IndexError when outside."""
        idx = torch.as_tensor(idx, dtype=torch.int64).reshape(-1)
        n = len(self)
        if len(idx) and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"index out of range for {n} stored samples")
        return torch.where(idx < 0, idx + n, idx)

    def __getitem__(self, key):
        if isinstance(key, int):
            return self.gather([key])[0]
        if isinstance(key, slice):
            return self.gather(torch.arange(len(self))[key])
        if isinstance(key, tuple):  # x[i, c, ...] / x[idx, :, 2:6]: read the samples, then slice
            head = self[key[0]]
            return head[key[1:]] if isinstance(key[0], int) else head[(slice(None), *key[1:])]
        if isinstance(key, torch.Tensor) and key.dtype == torch.bool:
            key = key.nonzero().reshape(-1)
        return self.gather(torch.as_tensor(np.asarray(key), dtype=torch.int64))

    def to(self, *args, **kwargs) -> torch.Tensor:
        """The whole set as one tensor (only for sets that fit: see ``Batches``)."""
        return self.read_all().to(*args, **kwargs)

    def read_all(self, chunk: int = 4096) -> torch.Tensor:
        out = torch.empty(self.shape, dtype=torch.uint8)
        for i in range(0, len(self), chunk):
            j = min(len(self), i + chunk)
            self.gather(torch.arange(i, j), out[i:j])
        return out


class StoredImages(LazyImages):
    """uint8 images (N, C, H, W) in a store's ``pixels.u8``, read with ``os.preadv``.

    ``gather(idx, out)`` reads into a caller's buffer (a pinned one on CUDA); ``out`` may be
    a strided view (the A or B half of a pairs batch) as long as each sample in it is
    contiguous. Thread-safe: ``os.preadv`` takes no file position; a thread given a reader
    pool (``use_readers``) reads a batch's samples concurrently.
    """

    def __init__(self, path: Path, n: int, channels: int, resolution: int):
        self.path = Path(path)
        self.shape = torch.Size((n, channels, resolution, resolution))
        self._fd: int | None = None
        self._lock = threading.Lock()

    def _file(self) -> int:
        with self._lock:
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_RDONLY)
                except OSError as e:
                    raise _unreadable(self.path, e) from None
            return self._fd

    def __getstate__(self):  # a DataLoader worker or a subprocess opens its own descriptor
        return {"path": self.path, "shape": tuple(self.shape)}

    def __setstate__(self, s):
        self.__init__(s["path"], *s["shape"][:3])

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass

    def gather(self, idx, out: torch.Tensor | None = None) -> torch.Tensor:
        """Read samples ``idx`` into ``out`` (see ``LazyImages``): one ``os.preadv`` per sample,
        spread over the reader pool this thread was given (``use_readers``), if any, so that
        they wait for the disk together.

        Raises:
            DataError: a read failed (I/O error, file gone) or the file ended early; the
                message names the file.
        """
        idx = self._indices(idx)
        if out is None:
            out = torch.empty((len(idx), *self.shape[1:]), dtype=torch.uint8)
        fd = self._file()
        rows = out.numpy()
        if out.is_contiguous():
            rows = rows.reshape(len(idx), self.sample_bytes)
        elif not all(rows[r].flags.c_contiguous for r in range(len(idx))):
            raise ValueError("gather: each sample of out must be contiguous")
        where = idx.tolist()
        pool, threads = getattr(_local, "readers", None) or (None, 1)
        k = min(len(where), threads)
        if k <= 1:
            self._read_rows(fd, rows, where, 0, len(where))
            return out
        cuts = [len(where) * j // k for j in range(k + 1)]
        futures = [pool.submit(self._read_rows, fd, rows, where, lo, hi)
                   for lo, hi in zip(cuts, cuts[1:])]
        errors = [f.exception() for f in futures]  # every read ends before out is given back
        for e in errors:
            if e is not None:
                raise e
        return out

    def will_need(self, idx) -> None:
        """``posix_fadvise(POSIX_FADV_WILLNEED)`` for each sample of ``idx``: the kernel queues
        their reads at once (the disk's queue depth, without a thread per read) and returns;
        a later ``gather`` finds them in the page cache or on their way."""
        size = self.sample_bytes
        try:
            fd = self._file()
            for i in self._indices(idx).tolist():
                os.posix_fadvise(fd, i * size, size, os.POSIX_FADV_WILLNEED)
        except (OSError, DataError):  # advice only: a real read reports the problem
            pass

    def _read_rows(self, fd: int, rows, where: list[int], lo: int, hi: int) -> None:
        """Samples ``where[lo:hi]`` into ``rows[lo:hi]``."""
        size = self.sample_bytes
        for row in range(lo, hi):
            i = where[row]
            try:
                got = os.preadv(fd, [memoryview(rows[row].reshape(-1))], i * size)
            except OSError as e:
                raise _unreadable(self.path, e) from None
            if got != size:
                raise DataError(f"dataset store file {self.path} ended early (truncated while in "
                                "use?)", hint="prepare the store again")


class RowImages(LazyImages):
    """The samples ``rows`` (int64 (k,)) of another ``LazyImages``, in that order: the images
    of a store that an attribute table lists."""

    def __init__(self, base: LazyImages, rows):
        self.base = base
        self.rows = torch.as_tensor(rows, dtype=torch.int64).reshape(-1)
        self.shape = torch.Size((len(self.rows), *base.shape[1:]))

    def gather(self, idx, out: torch.Tensor | None = None) -> torch.Tensor:
        return self.base.gather(self.rows[self._indices(idx)], out)

    def will_need(self, idx) -> None:
        self.base.will_need(self.rows[self._indices(idx)])


@dataclass
class OpenedStore:
    store: Store
    x: StoredImages
    y: torch.Tensor | None


def open_store(root: Path, check: bool = True) -> OpenedStore:
    s = Store(root, check=check)
    return OpenedStore(s, s.images(), s.labels())
