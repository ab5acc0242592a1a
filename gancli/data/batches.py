"""Endless shuffled batches from a Dataset: in memory on the device, or gathered per step from
a dataset store.

The order is a pure function of (seed, number of samples consumed): each epoch is a
permutation drawn from a generator seeded by (seed, epoch), then the flips (and, for
``data.crop=random``, the crop offsets) of that epoch from the same generator. Resuming needs
only the position, and a resumed run sees exactly the batches an uninterrupted one would.
The same indices are read whether the data sits in memory or in a store, so both give
bit-identical batches.

Store-backed data (``Dataset.x`` a ``StoredImages``) is not copied whole: each step reads
only its ``batch_size`` samples (each torchrun rank only its own slice), ahead of time and
concurrently, so that a store the page cache does not hold is not read at the latency of one
random read per sample (on the development machine's virtual disk about 10 ms per 48 KiB read
at queue depth 1, against 3 to 4 ms per read with 8 to 64 waiting: docs/data.md):

- ``AHEAD`` batches are planned ahead of the one in use (at most ``AHEAD_BYTES``); for each,
  the kernel is told at once which samples will be read (``posix_fadvise(WILLNEED)``, from a
  thread of its own), so it queues all of their reads at the disk without a thread per read;
- one background thread gathers those batches in order, each gather spreading its samples'
  positional reads over a pool of ``read_threads`` threads (``data.read_threads``;
  ``os.preadv`` releases the GIL), for disks or file systems that ignore the advice.

The batches land in buffers made once and used in turn, pinned on CUDA and followed by a
``non_blocking`` copy. The batches and their order do not depend on how they are read. A
store that takes at most ``DEVICE_SHARE`` of a CUDA device's free memory is moved there whole
instead (faster: no reads at all).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from gancli.data.base import Dataset
from gancli.imaging import from_uint8

# a store is copied whole to a CUDA device when it takes at most this share of its free memory
DEVICE_SHARE = 0.25
# default of data.read_threads: concurrent sample reads of a streamed store (the disk's queue
# depth within a batch)
READ_THREADS = 16
# batches read ahead of the one in use, taking at most AHEAD_BYTES (at least one batch)
AHEAD = 2
AHEAD_BYTES = 256 << 20


@dataclass
class _Plan:
    pos: int  # position the plan starts at
    end: int  # position after it
    idx: torch.Tensor  # this process's sample indices
    flips: torch.Tensor  # bool, one per index
    top: torch.Tensor | None  # random-crop offsets, or None
    left: torch.Tensor | None


class Batches:
    """Endless batches of ``data`` (see the module doc).

    Args:
        data: the data set; ``data.x`` a tensor (indexed in memory, on ``device``) or a
            ``LazyImages`` such as a store (streamed, unless it fits a CUDA device).
        batch_size: samples per batch of this process (a global batch is ``batch_size * world``).
        seed: the order's seed; the batch at position ``pos`` is a pure function of (seed, pos).
        device: where batches are returned.
        flip: random horizontal flips (per sample and epoch).
        rank, world: this process's slice of each global batch under torchrun.
        read_threads: streamed data only: concurrent sample reads within a batch (>= 1).
    """

    def __init__(self, data: Dataset, batch_size: int, seed: int, device: torch.device,
                 flip: bool = False, rank: int = 0, world: int = 1,
                 read_threads: int = READ_THREADS):
        self.stream = not isinstance(data.x, torch.Tensor) and not _fits_device(data.x, device)
        if self.stream:
            self.x = data.x  # read per step, never whole
        else:
            self.x = data.x.to(device)  # uint8 images stay uint8 on the device: 4x less memory
        self.y = data.y.to(device) if data.y is not None else None
        self.images = data.kind in ("images", "pairs")
        self.n, self.batch_size, self.seed, self.flip = len(data), batch_size, seed, flip
        self.device = device
        self.pos = 0  # samples consumed so far, by all processes together
        # data-parallel: each global batch of batch_size * world samples is cut into one slice
        # per rank, so ranks see different data and the order stays a function of ``pos``
        self.rank, self.world = rank, world
        side = int(data.x.shape[-1])
        self.crop_to = data.crop_to if self.images and data.crop_to and data.crop_to < side else None
        self.random_crop = self.crop_to is not None and data.crop == "random"
        self.side = side
        self._epochs: dict[int, tuple] = {}
        self.read_threads = max(1, int(read_threads))
        self.ahead = 0  # batches read ahead; set with the buffers at the first read
        # the batches being read, oldest first: (plan, future of (batch, buffer slot))
        self._inflight: deque[tuple[_Plan, Future]] = deque()
        self._pool: ThreadPoolExecutor | None = None  # gathers batches, in order
        self._readers: ThreadPoolExecutor | None = None  # reads the samples of one
        self._advice: ThreadPoolExecutor | None = None  # tells the kernel what comes next
        self._bufs: list[torch.Tensor] = []
        self._events: list = []
        self._slot = 0

    # ------------------------------------------------------------------ order
    def _epoch(self, epoch: int) -> tuple:
        if epoch not in self._epochs:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            where = self.device if not self.stream else torch.device("cpu")
            order = torch.randperm(self.n, generator=g)
            flips = torch.rand(self.n, generator=g) < 0.5
            top = left = None
            if self.random_crop:  # drawn after the flips: the flips do not change with the crop
                room = self.side - self.crop_to + 1
                top = torch.randint(0, room, (self.n,), generator=g)
                left = torch.randint(0, room, (self.n,), generator=g)
            if len(self._epochs) >= 2:
                self._epochs.pop(min(self._epochs))
            self._epochs[epoch] = (order.to(where), flips.to(where),
                                   None if top is None else top.to(where),
                                   None if left is None else left.to(where))
        return self._epochs[epoch]

    def _plan(self, pos: int) -> _Plan:
        """The indices (and flips, crop offsets) of the global batch starting at ``pos``,
        cut to this rank's slice; a pure function of (seed, pos)."""
        parts: list[list[torch.Tensor]] = [[], [], [], []]
        need, start = self.batch_size * self.world, pos
        while need:
            epoch, offset = divmod(pos, self.n)
            take = min(need, self.n - offset)
            for part, t in zip(parts, self._epoch(epoch)):
                if t is not None:
                    part.append(t[offset:offset + take])
            pos += take
            need -= take
        idx, flips, top, left = (torch.cat(p) if len(p) > 1 else (p[0] if p else None)
                                 for p in parts)
        if self.world > 1:
            mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
            idx, flips = idx[mine], flips[mine]
            top, left = (None if top is None else top[mine]), (None if left is None else left[mine])
        return _Plan(start, pos, idx, flips, top, left)

    # ------------------------------------------------------------------ reads
    def _gather(self, plan: _Plan, slot: int) -> tuple[torch.Tensor, int]:
        """Read a plan's samples from the store into buffer ``slot`` (in the prefetch thread,
        whose gathers spread their reads over the reader pool); on CUDA, once the previous
        copy out of that (pinned) buffer has finished."""
        if self._events[slot] is not None:
            self._events[slot].synchronize()
        return self.x.gather(plan.idx, self._bufs[slot][:len(plan.idx)]), slot

    def _buffers(self, plan: _Plan) -> None:
        """Make the buffers, once: a step allocates no batch memory. ``ahead`` batches are read
        while the current one is used; CPU: ``ahead + 1`` buffers (``next`` converts a batch to
        float before the buffer it came in is read into again); CUDA: ``ahead + 2`` pinned ones
        (one more being copied to the device)."""
        batch_bytes = max(1, len(plan.idx) * self.x.sample_bytes)
        self.ahead = max(1, min(AHEAD, AHEAD_BYTES // batch_bytes))
        cuda = self.device.type == "cuda"
        shape = (len(plan.idx), *self.x.shape[1:])
        self._bufs = [torch.empty(shape, dtype=torch.uint8, pin_memory=cuda)
                      for _ in range(self.ahead + (2 if cuda else 1))]
        self._events = [None] * len(self._bufs)
        self._slot = len(self._bufs) - 1

    def _submit(self, plan: _Plan) -> None:
        """Queue the gather of a plan into the next buffer, and the kernel's read-ahead of its
        samples (``will_need``, in its own thread: it runs ahead of the gathers, so the disk
        gets the samples of every batch in flight at once). Buffers are used in turn, so the
        one a read goes to held a batch that was returned (and used) before."""
        self._slot = (self._slot + 1) % len(self._bufs)
        self._advice.submit(self.x.will_need, plan.idx)
        self._inflight.append((plan, self._pool.submit(self._gather, plan, self._slot)))

    def _drain(self) -> None:
        """Wait for the gathers in flight and forget them (their data is not wanted)."""
        while self._inflight:
            f = self._inflight.popleft()[1]
            f.cancel() or f.exception()

    def _read(self, plan: _Plan) -> torch.Tensor:
        if not self.stream:
            return self.x[plan.idx]
        if self._pool is None:
            from gancli.data.store import use_readers

            self._readers = ThreadPoolExecutor(self.read_threads, thread_name_prefix="gancli-read")
            self._advice = ThreadPoolExecutor(1, thread_name_prefix="gancli-advice")
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="gancli-batches",
                                            initializer=use_readers,
                                            initargs=(self._readers, self.read_threads))
            self._buffers(plan)
        if not self._inflight or self._inflight[0][0].pos != plan.pos:
            self._drain()  # first batch, or pos was moved (resume)
            self._submit(plan)
        x, slot = self._inflight.popleft()[1].result()  # a failed read raises here
        last = self._inflight[-1][0] if self._inflight else plan
        while len(self._inflight) < self.ahead:
            last = self._plan(last.end)
            self._submit(last)
        if self.device.type == "cuda":
            x = x.to(self.device, non_blocking=True)
            self._events[slot] = torch.cuda.Event()
            self._events[slot].record()
        return x

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next batch: images as float in [-1, 1] (or 2-D points), and labels or None."""
        plan = self._plan(self.pos)
        self.pos = plan.end
        x = self._read(plan)
        idx = plan.idx.to(self.device) if self.stream else plan.idx
        if self.crop_to is not None:
            x = self._crop(x, plan)
        if self.images:
            x = from_uint8(x)
            if self.flip:
                mask = plan.flips.to(self.device).view(-1, *[1] * (x.dim() - 1))
                x = torch.where(mask, x.flip(-1), x)
        return x, (self.y[idx] if self.y is not None else None)

    def _crop(self, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        r = self.crop_to
        if not self.random_crop:
            o = (self.side - r) // 2
            return x[..., o:o + r, o:o + r]
        dev = x.device
        ar = torch.arange(r, device=dev)
        rows = (plan.top.to(dev)[:, None] + ar)  # (B, r)
        cols = (plan.left.to(dev)[:, None] + ar)
        b = torch.arange(x.shape[0], device=dev)
        flat = x.reshape(x.shape[0], -1, self.side, self.side)  # pairs: (B, 2C, H, W)
        out = flat[b[:, None, None, None], torch.arange(flat.shape[1], device=dev)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
        return out.reshape(*x.shape[:-2], r, r)

    def close(self) -> None:
        """Stop reading ahead: cancel the queued reads, wait for the running ones."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._advice.shutdown(wait=True, cancel_futures=True)
            self._readers.shutdown(wait=True)
            self._pool = self._readers = self._advice = None
            self._inflight.clear()

    def __del__(self):
        for pool in (getattr(self, name, None) for name in ("_pool", "_readers", "_advice")):
            if pool is not None:
                pool.shutdown(wait=False)


def _fits_device(x, device: torch.device) -> bool:
    """A store small enough to copy whole to a CUDA device (never on the CPU: RAM is the
    budget the store exists to save)."""
    if device.type != "cuda":
        return False
    try:
        free = torch.cuda.mem_get_info(device)[0]
    except Exception:  # noqa: BLE001 - no answer: stream
        return False
    return x.nbytes <= DEVICE_SHARE * free
