"""Endless shuffled batches from an in-memory Dataset, already on the device.

The order is a pure function of (seed, number of samples consumed): each epoch is a
permutation drawn from a generator seeded by (seed, epoch). Resuming needs only the
position, and a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import torch

from gancli.data.base import Dataset


class Batches:
    def __init__(self, data: Dataset, batch_size: int, seed: int, device: torch.device,
                 flip: bool = False, rank: int = 0, world: int = 1):
        self.x = data.x.to(device)  # uint8 images stay uint8 on the device: 4x less memory
        self.y = data.y.to(device) if data.y is not None else None
        self.images = data.kind in ("images", "pairs")
        self.n, self.batch_size, self.seed, self.flip = len(data), batch_size, seed, flip
        self.device = device
        self.pos = 0  # samples consumed so far, by all processes together
        # data-parallel: each global batch of batch_size * world samples is cut into one slice
        # per rank, so ranks see different data and the order stays a function of ``pos``
        self.rank, self.world = rank, world
        self._epoch = -1
        self._order = self._flips = torch.empty(0)

    def _load_epoch(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        self._order = torch.randperm(self.n, generator=g).to(self.device)
        self._flips = (torch.rand(self.n, generator=g) < 0.5).to(self.device)
        self._epoch = epoch

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next batch: images as float in [-1, 1] (or 2-D points), and labels or None."""
        parts, flips, need = [], [], self.batch_size * self.world
        while need:
            epoch, offset = divmod(self.pos, self.n)
            if epoch != self._epoch:
                self._load_epoch(epoch)
            take = min(need, self.n - offset)
            parts.append(self._order[offset:offset + take])
            flips.append(self._flips[offset:offset + take])
            self.pos += take
            need -= take
        idx = torch.cat(parts) if len(parts) > 1 else parts[0]
        if self.world > 1:
            mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
            idx, flips = idx[mine], [(torch.cat(flips) if len(flips) > 1 else flips[0])[mine]]
        x = self.x[idx]
        if self.images:
            x = x.float().div_(127.5).sub_(1.0)
            if self.flip:
                mask = torch.cat(flips) if len(flips) > 1 else flips[0]
                mask = mask.view(-1, *[1] * (x.dim() - 1))
                x = torch.where(mask, x.flip(-1), x)
        return x, (self.y[idx] if self.y is not None else None)
